// config_test.cc - the preload layer's destination rules and its fd bookkeeping.
#include <gtest/gtest.h>

#include <thread>

#include "preload/config.h"
#include "preload/fd_table.h"

namespace utcp::preload {
namespace {

constexpr uint32_t ip(int a, int b, int c, int d) { return uint32_t(a) << 24 | b << 16 | c << 8 | d; }

Config with(const char* dests) {
  Config c;
  std::string err;
  EXPECT_TRUE(parse_dests(dests, &c.rules, &err)) << err;
  return c;
}

TEST(PreloadConfig, StarTakesEveryUnicastAddressButLoopback) {
  Config c = with("*");
  EXPECT_TRUE(wants_utcp(c, ip(10, 77, 0, 2), 80));
  EXPECT_TRUE(wants_utcp(c, ip(192, 0, 2, 7), 65535));
  EXPECT_FALSE(wants_utcp(c, ip(127, 0, 0, 1), 80));
  EXPECT_FALSE(wants_utcp(c, 0, 80));
  EXPECT_FALSE(wants_utcp(c, ip(224, 0, 0, 1), 80));
  EXPECT_FALSE(wants_utcp(c, 0xffffffffu, 80));
}

TEST(PreloadConfig, PrefixesPortsAndExclusions) {
  Config c = with("10.77.0.0/24:5000-5100, 192.0.2.7:80, !10.77.0.9, 127.0.0.1:9");
  EXPECT_TRUE(wants_utcp(c, ip(10, 77, 0, 2), 5000));
  EXPECT_TRUE(wants_utcp(c, ip(10, 77, 0, 200), 5100));
  EXPECT_FALSE(wants_utcp(c, ip(10, 77, 0, 2), 5101));
  EXPECT_FALSE(wants_utcp(c, ip(10, 77, 1, 2), 5000));
  EXPECT_FALSE(wants_utcp(c, ip(10, 77, 0, 9), 5000));  // excluded
  EXPECT_TRUE(wants_utcp(c, ip(192, 0, 2, 7), 80));
  EXPECT_FALSE(wants_utcp(c, ip(192, 0, 2, 7), 81));
  EXPECT_TRUE(wants_utcp(c, ip(127, 0, 0, 1), 9));  // loopback only when named
  EXPECT_TRUE(wants_utcp(with("127.0.0.0/8"), ip(127, 0, 0, 1), 9));
  EXPECT_FALSE(wants_utcp(with("0.0.0.0/0"), ip(127, 0, 0, 1), 9));
}

TEST(PreloadConfig, NoneAndEmptyTakeNothing) {
  EXPECT_TRUE(with("none").rules.empty());
  EXPECT_TRUE(with("").rules.empty());
  EXPECT_FALSE(wants_utcp(with("none"), ip(10, 0, 0, 1), 80));
}

TEST(PreloadConfig, MalformedEntriesAreRefusedByName) {
  for (const char* bad : {"10.0.0.1/33", "10.0.0.256", "10.0.0.1:0", "10.0.0.1:70000", "10.0.0.1:90-80",
                          "host.example", "10.0.0.1:8o", "!"}) {
    std::vector<DestRule> r;
    std::string err;
    EXPECT_FALSE(parse_dests(bad, &r, &err)) << bad;
    EXPECT_NE(err.find("UTCP_PRELOAD_DESTS"), std::string::npos) << bad;
  }
}

TEST(PreloadConfig, EnvironmentDefaultsAndErrors) {
  unsetenv("UTCP_PRELOAD_DESTS");
  unsetenv("UTCP_PRELOAD_FALLBACK");
  unsetenv("UTCP_PRELOAD_LINGER_MS");
  std::string err;
  Config c = load_config(&err);
  EXPECT_TRUE(err.empty());
  EXPECT_TRUE(c.fallback);
  EXPECT_TRUE(wants_utcp(c, ip(10, 0, 0, 1), 80));  // default: every non-loopback address
  setenv("UTCP_PRELOAD_FALLBACK", "maybe", 1);
  setenv("UTCP_PRELOAD_DESTS", "10.0.0.1/40", 1);
  c = load_config(&err);
  EXPECT_NE(err.find("UTCP_PRELOAD_FALLBACK"), std::string::npos);
  EXPECT_NE(err.find("UTCP_PRELOAD_DESTS"), std::string::npos);
  EXPECT_TRUE(c.rules.empty());  // a bad list sends nothing to utcp
  setenv("UTCP_PRELOAD_FALLBACK", "0", 1);
  setenv("UTCP_PRELOAD_DESTS", "none", 1);
  c = load_config(&err);
  EXPECT_FALSE(c.fallback);
  unsetenv("UTCP_PRELOAD_DESTS");
  unsetenv("UTCP_PRELOAD_FALLBACK");
}

Config listening(const char* ports) {
  Config c;
  std::string err;
  EXPECT_TRUE(parse_listen(ports, &c.listen_ports, &err)) << err;
  return c;
}

TEST(PreloadConfig, ListenPortsRangesAndAll) {
  Config c = listening("80, 5201,7000-7010");
  EXPECT_TRUE(wants_utcp_listen(c, 80));
  EXPECT_TRUE(wants_utcp_listen(c, 5201));
  EXPECT_TRUE(wants_utcp_listen(c, 7000));
  EXPECT_TRUE(wants_utcp_listen(c, 7010));
  EXPECT_FALSE(wants_utcp_listen(c, 7011));
  EXPECT_FALSE(wants_utcp_listen(c, 81));
  EXPECT_FALSE(wants_utcp_listen(c, 0));  // an unbound listen (ephemeral port) only with "all"
  EXPECT_TRUE(takes_any(c));
  for (const char* all : {"all", "*", "none,all"}) {
    Config a = listening(all);
    EXPECT_TRUE(wants_utcp_listen(a, 1)) << all;
    EXPECT_TRUE(wants_utcp_listen(a, 65535)) << all;
    EXPECT_TRUE(wants_utcp_listen(a, 0)) << all;
  }
  for (const char* none : {"none", "", " "}) {
    Config n = listening(none);
    EXPECT_FALSE(wants_utcp_listen(n, 80)) << none;
    EXPECT_FALSE(takes_any(n)) << none;
  }
}

TEST(PreloadConfig, MalformedListenEntriesAreRefusedByName) {
  for (const char* bad : {"0", "65536", "90-80", "http", "80-", "-80", "8o", "10.0.0.1:80"}) {
    std::vector<PortRange> r{{1, 2}};
    std::string err;
    EXPECT_FALSE(parse_listen(bad, &r, &err)) << bad;
    EXPECT_NE(err.find("UTCP_PRELOAD_LISTEN"), std::string::npos) << bad;
    EXPECT_EQ(r.size(), 1u) << bad;  // left as it was
  }
}

TEST(PreloadConfig, ListenEnvironment) {
  unsetenv("UTCP_PRELOAD_LISTEN");
  std::string err;
  Config c = load_config(&err);
  EXPECT_TRUE(c.listen_ports.empty());  // default: servers stay on the kernel's TCP
  setenv("UTCP_PRELOAD_LISTEN", "8000,5201", 1);
  c = load_config(&err);
  EXPECT_TRUE(err.empty()) << err;
  EXPECT_TRUE(wants_utcp_listen(c, 8000));
  EXPECT_FALSE(wants_utcp_listen(c, 8001));
  setenv("UTCP_PRELOAD_LISTEN", "8000,x", 1);
  c = load_config(&err);
  EXPECT_NE(err.find("UTCP_PRELOAD_LISTEN"), std::string::npos);
  EXPECT_TRUE(c.listen_ports.empty());  // a bad list takes no listen
  unsetenv("UTCP_PRELOAD_LISTEN");
}

TEST(PreloadFdTable, MarksOnlyWhatWasSetAndSharesEntriesBetweenDups) {
  FdTable<int> t;
  EXPECT_FALSE(t.maybe(3));  // nothing allocated yet
  auto v = std::make_shared<int>(7);
  EXPECT_TRUE(t.set(3, v));
  EXPECT_TRUE(t.set(9, v));  // a dup
  EXPECT_TRUE(t.maybe(3));
  EXPECT_FALSE(t.maybe(4));
  EXPECT_FALSE(t.maybe(-1));
  EXPECT_FALSE(t.set(FdTable<int>::kMaxFd, v));
  EXPECT_FALSE(t.maybe(FdTable<int>::kMaxFd));
  EXPECT_EQ(t.get(9), v);
  EXPECT_EQ(t.fds_of(v.get()).size(), 2u);
  EXPECT_EQ(t.entries().size(), 1u);
  EXPECT_EQ(t.erase(3), v);
  EXPECT_FALSE(t.maybe(3));
  EXPECT_EQ(t.get(3), nullptr);
  EXPECT_EQ(t.erase(3), nullptr);
  EXPECT_EQ(t.fds_of(v.get()), std::vector<int>{9});
  EXPECT_EQ(t.erase(9), v);
  EXPECT_EQ(t.size(), 0u);
}

TEST(PreloadFdTable, ConcurrentSetAndErase) {
  FdTable<int> t;
  std::vector<std::thread> th;
  for (int k = 0; k < 4; ++k)
    th.emplace_back([&, k] {
      for (int i = 0; i < 2000; ++i) {
        int fd = k * 10000 + i;
        ASSERT_TRUE(t.set(fd, std::make_shared<int>(fd)));
        ASSERT_EQ(*t.get(fd), fd);
        ASSERT_NE(t.erase(fd), nullptr);
      }
    });
  for (auto& x : th) x.join();
  EXPECT_EQ(t.size(), 0u);
}

}  // namespace
}  // namespace utcp::preload
