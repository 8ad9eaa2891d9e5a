// prefetch_test.cc - GrantPrefetcher against a scripted registry on a socketpair: it asks
// ahead per destination, matches utcpd's answers to its questions by sequence number
// whatever their order, returns refusals to the connect that meets them, gives back what
// it will not use, hands recycled endpoints out again first (giving back those utcpd would
// not move), and fails (never hangs) when the registry goes away.
#include "registry/prefetch.h"

#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <functional>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

using namespace utcp;
using namespace utcp::registry;

namespace {

// A registry that answers Connects as `policy` says: 0 = grant now, > 0 = hold until
// release_held(), < 0 = refuse with that errno.
class FakeRegistry {
 public:
  using Policy = std::function<int(const ConnectRequest&)>;
  explicit FakeRegistry(Policy p) : policy_(std::move(p)) {
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) std::abort();
    mine_ = sv[0];
    theirs_ = sv[1];
    thread_ = std::thread([this] { serve(); });
  }
  ~FakeRegistry() {
    close_now();
    thread_.join();
  }
  int client_fd() { return std::exchange(theirs_, -1); }
  void close_now() {
    std::lock_guard<std::mutex> g(mu_);
    if (mine_ >= 0) ::shutdown(mine_, SHUT_RDWR);
  }
  // Answers every held Connect, newest first.
  void release_held() {
    std::lock_guard<std::mutex> g(mu_);
    for (auto it = held_.rbegin(); it != held_.rend(); ++it) answer(*it, 0);
    held_.clear();
  }
  // Waits until `n` Connects were asked and answered or held.
  bool wait_connects(size_t n) {
    std::unique_lock<std::mutex> g(mu_);
    return cv_.wait_for(g, std::chrono::seconds(10), [&] { return connects_.size() >= n; });
  }
  bool wait_releases(size_t n) {
    std::unique_lock<std::mutex> g(mu_);
    return cv_.wait_for(g, std::chrono::seconds(10), [&] { return released_.size() >= n; });
  }
  std::vector<ConnectRequest> connects() {
    std::lock_guard<std::mutex> g(mu_);
    return connects_;
  }
  std::set<uint32_t> released() {
    std::lock_guard<std::mutex> g(mu_);
    return released_;
  }

 private:
  void serve() {
    for (;;) {
      uint8_t buf[256];
      ssize_t n = ::recv(mine_, buf, sizeof buf, 0);
      if (n <= 0) break;
      RegHeader h;
      if (size_t(n) < sizeof h) continue;
      std::memcpy(&h, buf, sizeof h);
      std::lock_guard<std::mutex> g(mu_);
      if (h.type == uint16_t(MsgType::kRelease) && size_t(n) == sizeof(ReleaseRequest)) {
        ReleaseRequest r;
        std::memcpy(&r, buf, sizeof r);
        EXPECT_EQ(r.flags, kReleaseNoReply);
        released_.insert(r.endpoint_id);
      } else if (h.type == uint16_t(MsgType::kConnect) && size_t(n) == sizeof(ConnectRequest)) {
        ConnectRequest r;
        std::memcpy(&r, buf, sizeof r);
        EXPECT_TRUE(r.flags == 0 || (r.flags == kConnectReuse && r.reuse_id != 0))
            << "a Connect asked ahead runs no handshake";
        connects_.push_back(r);
        int p = policy_(r);
        if (p > 0)
          held_.push_back(r);
        else
          answer(r, p);
      } else {
        ADD_FAILURE() << "unexpected request type " << h.type;
      }
      cv_.notify_all();
    }
    std::lock_guard<std::mutex> g(mu_);
    ::close(mine_);
    mine_ = -1;
  }
  void answer(const ConnectRequest& r, int err) {
    EndpointReply rep{};
    rep.hdr.type = uint16_t(MsgType::kConnect) | uint16_t(MsgType::kReply);
    rep.hdr.length = sizeof rep;
    rep.hdr.seq = r.hdr.seq;
    rep.error = err;
    if (err) {
      std::snprintf(rep.message, sizeof rep.message, "scripted refusal of seq %u", r.hdr.seq);
      ::send(mine_, &rep, sizeof rep, MSG_NOSIGNAL);
      return;
    }
    rep.endpoint_id = r.reuse_id ? r.reuse_id : 1000 + r.hdr.seq;
    rep.local_ip = 0x0a4d0001;
    rep.remote_ip = r.remote_ip;
    rep.local_port = uint16_t(40000 + r.hdr.seq);
    rep.remote_port = r.remote_port;
    rep.mtu = 1500;
    if (r.reuse_id) {  // the client has the endpoint's file
      ::send(mine_, &rep, sizeof rep, MSG_NOSIGNAL);
      return;
    }
    int efd = ::eventfd(0, EFD_CLOEXEC);
    msghdr mh{};
    iovec iov{&rep, sizeof rep};
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    alignas(cmsghdr) char ctl[CMSG_SPACE(sizeof(int))] = {};
    mh.msg_control = ctl;
    mh.msg_controllen = sizeof ctl;
    cmsghdr* cm = CMSG_FIRSTHDR(&mh);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(cm), &efd, sizeof efd);
    ::sendmsg(mine_, &mh, MSG_NOSIGNAL);
    ::close(efd);
  }

  Policy policy_;
  int mine_ = -1, theirs_ = -1;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<ConnectRequest> connects_, held_;
  std::set<uint32_t> released_;
  std::thread thread_;
};

const Ipv4Addr kA{0x0a4d0002}, kB{0x0a4d0003};

void expect_grant_for(const Grant& g, Ipv4Addr ip, uint16_t port) {
  EXPECT_EQ(g.remote_ip.v, ip.v);
  EXPECT_EQ(g.remote_port, port);
  EXPECT_GE(g.endpoint_fd, 0);
  EXPECT_GE(::fcntl(g.endpoint_fd, F_GETFD), 0) << "the endpoint file is open";
}

}  // namespace

TEST(GrantPrefetcher, AsksAheadAndServesTheNextConnectFromWhatIsReady) {
  FakeRegistry reg([](const ConnectRequest&) { return 0; });
  GrantPrefetcher::Options o;
  o.depth = 3;
  GrantPrefetcher p(o);
  p.adopt(reg.client_fd());
  std::string err;
  Grant g1;
  ASSERT_EQ(p.take(kA, 80, &g1, &err), 0) << err;
  expect_grant_for(g1, kA, 80);
  EXPECT_EQ(p.hits(), 0u) << "nothing was ready for the first connect";
  // One asked for the first connect, then `depth` ahead.
  ASSERT_TRUE(reg.wait_connects(4));
  EXPECT_EQ(reg.connects().size(), 4u);
  std::set<uint32_t> ids{g1.endpoint_id};
  for (int i = 0; i < 5; ++i) {
    Grant g;
    ASSERT_EQ(p.take(kA, 80, &g, &err), 0) << err;
    expect_grant_for(g, kA, 80);
    EXPECT_TRUE(ids.insert(g.endpoint_id).second) << "each grant is given once";
    ::close(g.endpoint_fd);
  }
  EXPECT_GE(p.hits(), 1u);
  EXPECT_EQ(p.taken(), 6u);
  // Never more than depth outstanding for one destination, beyond the one being taken.
  ASSERT_TRUE(reg.wait_connects(9));
  EXPECT_EQ(reg.connects().size(), 9u);
  ::close(g1.endpoint_fd);
}

TEST(GrantPrefetcher, MatchesAnswersToDestinationsInAnyOrder) {
  // Every Connect is held, then all are answered newest first.
  FakeRegistry reg([](const ConnectRequest&) { return 1; });
  GrantPrefetcher::Options o;
  o.depth = 2;
  GrantPrefetcher p(o);
  p.adopt(reg.client_fd());
  std::thread answers([&] {
    reg.wait_connects(1);
    reg.release_held();
  });
  std::string err;
  Grant ga;
  ASSERT_EQ(p.take(kA, 80, &ga, &err), 0) << err;
  answers.join();
  expect_grant_for(ga, kA, 80);
  // A second destination while A's Connects ahead are unanswered: answers to A's and B's
  // arrive together, newest first; each take gets its own destination's.
  std::thread answers2([&] {
    reg.wait_connects(4);
    reg.release_held();
  });
  Grant gb;
  ASSERT_EQ(p.take(kB, 443, &gb, &err), 0) << err;
  answers2.join();
  expect_grant_for(gb, kB, 443);
  reg.wait_connects(6);
  reg.release_held();
  for (int i = 0; i < 2; ++i) {
    Grant g;
    ASSERT_EQ(p.take(kA, 80, &g, &err), 0) << err;
    expect_grant_for(g, kA, 80);
    ::close(g.endpoint_fd);
    reg.release_held();
  }
  ::close(ga.endpoint_fd);
  ::close(gb.endpoint_fd);
}

TEST(GrantPrefetcher, ARefusalReachesTheConnectThatMeetsItAndIsNotAskedAhead) {
  FakeRegistry reg([](const ConnectRequest& r) { return r.remote_port == 9 ? -EHOSTUNREACH : 0; });
  GrantPrefetcher p;
  p.adopt(reg.client_fd());
  std::string err;
  Grant g;
  EXPECT_EQ(p.take(kA, 9, &g, &err), -EHOSTUNREACH);
  EXPECT_NE(err.find("scripted refusal"), std::string::npos) << err;
  EXPECT_EQ(p.in_flight(), 0u) << "a refused destination gets no Connects ahead";
  EXPECT_EQ(p.take(kA, 9, &g, &err), -EHOSTUNREACH) << "and is asked again by the next connect";
  EXPECT_EQ(reg.connects().size(), 2u);
}

TEST(GrantPrefetcher, GivesBackGrantsTooOldToTrustAndAllReadyOnesAtTheEnd) {
  FakeRegistry reg([](const ConnectRequest&) { return 0; });
  std::set<uint32_t> taken;
  {
    GrantPrefetcher::Options o;
    o.depth = 2;
    o.max_age = std::chrono::milliseconds(30);
    GrantPrefetcher p(o);
    p.adopt(reg.client_fd());
    std::string err;
    Grant g;
    ASSERT_EQ(p.take(kA, 80, &g, &err), 0) << err;
    taken.insert(g.endpoint_id);
    ::close(g.endpoint_fd);
    ASSERT_TRUE(reg.wait_connects(3));
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    // The two asked ahead are now too old: given back, and this connect gets a new one.
    ASSERT_EQ(p.take(kA, 80, &g, &err), 0) << err;
    taken.insert(g.endpoint_id);
    ::close(g.endpoint_fd);
    EXPECT_EQ(p.expired(), 2u);
    ASSERT_TRUE(reg.wait_releases(2));
    ASSERT_TRUE(reg.wait_connects(6));
    // Let the two asked ahead again arrive, then end: they go back too.
    for (int i = 0; i < 1000 && p.ready() < 2; ++i) {
      ASSERT_EQ(p.collect_ready(&err), 0) << err;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    EXPECT_EQ(p.ready(), 2u);
    EXPECT_EQ(p.in_flight(), 0u);
  }
  ASSERT_TRUE(reg.wait_releases(4));
  for (uint32_t id : reg.released()) EXPECT_FALSE(taken.count(id)) << "a taken grant is never given back by it";
}

TEST(GrantPrefetcher, FailsWithoutHangingWhenTheRegistryGoes) {
  FakeRegistry reg([](const ConnectRequest&) { return 1; });  // never answers
  GrantPrefetcher p;
  p.adopt(reg.client_fd());
  std::thread closer([&] {
    reg.wait_connects(1);
    reg.close_now();
  });
  std::string err;
  Grant g;
  EXPECT_LT(p.take(kA, 80, &g, &err), 0);
  EXPECT_FALSE(err.empty());
  closer.join();
  EXPECT_EQ(p.in_flight(), 0u);
}

TEST(GrantPrefetcher, ARecycledEndpointIsHandedOutAgainFirstWithoutAFileAndAsksNothingInItsStead) {
  FakeRegistry reg([](const ConnectRequest&) { return 0; });
  GrantPrefetcher::Options o;
  o.depth = 2;
  GrantPrefetcher p(o);
  p.adopt(reg.client_fd());
  std::string err;
  Grant g1;
  ASSERT_EQ(p.take(kA, 80, &g1, &err), 0) << err;
  expect_grant_for(g1, kA, 80);
  ASSERT_TRUE(reg.wait_connects(3));  // the first, then two ahead
  // The connection is over: its endpoint goes to the next connection to A:80.
  ASSERT_EQ(p.recycle(g1.endpoint_id, kA, 80, &err), 0) << err;
  ASSERT_TRUE(reg.wait_connects(4));
  const ConnectRequest reuse = reg.connects().back();
  EXPECT_EQ(reuse.flags, kConnectReuse);
  EXPECT_EQ(reuse.reuse_id, g1.endpoint_id);
  EXPECT_EQ(reuse.rings.rx_entries | reuse.rings.tx_entries | reuse.rings.slot_size, 0u) << "the rings stay";
  Grant g2;
  ASSERT_EQ(p.take(kA, 80, &g2, &err), 0) << err;
  EXPECT_EQ(g2.endpoint_id, g1.endpoint_id) << "the recycled endpoint before the ones granted ahead";
  EXPECT_EQ(g2.endpoint_fd, -1) << "the owner has its file";
  EXPECT_EQ(p.reused(), 1u);
  // Lent out again and expected back: two ready plus it make depth, so nothing more is asked.
  EXPECT_EQ(p.ready(), 2u);
  EXPECT_EQ(reg.connects().size(), 4u);
  ASSERT_EQ(p.recycle(g2.endpoint_id, kA, 80, &err), 0) << err;
  ASSERT_TRUE(reg.wait_connects(5));
  Grant g3;
  ASSERT_EQ(p.take(kA, 80, &g3, &err), 0) << err;
  EXPECT_EQ(g3.endpoint_id, g1.endpoint_id);
  // Given back instead of recycled: it no longer counts, and the next take asks ahead again.
  ASSERT_EQ(p.release(g3.endpoint_id, &err), 0) << err;
  ASSERT_TRUE(reg.wait_releases(1));
  Grant g4;
  ASSERT_EQ(p.take(kA, 80, &g4, &err), 0) << err;
  expect_grant_for(g4, kA, 80);
  ASSERT_TRUE(reg.wait_connects(6));
  EXPECT_TRUE(p.given_back().empty());
  ::close(g1.endpoint_fd);
  ::close(g4.endpoint_fd);
}

TEST(GrantPrefetcher, AReuseUtcpdRefusesIsGivenBackAndTheConnectGetsANewEndpoint) {
  FakeRegistry reg([](const ConnectRequest& r) { return r.reuse_id ? -EADDRINUSE : 0; });
  GrantPrefetcher::Options o;
  o.depth = 1;
  GrantPrefetcher p(o);
  p.adopt(reg.client_fd());
  std::string err;
  Grant g1;
  ASSERT_EQ(p.take(kA, 80, &g1, &err), 0) << err;
  ASSERT_TRUE(reg.wait_connects(2));
  ASSERT_EQ(p.recycle(g1.endpoint_id, kA, 80, &err), 0) << err;
  ASSERT_TRUE(reg.wait_connects(3));
  Grant g2;
  ASSERT_EQ(p.take(kA, 80, &g2, &err), 0) << err;
  expect_grant_for(g2, kA, 80);
  EXPECT_NE(g2.endpoint_id, g1.endpoint_id);
  EXPECT_EQ(p.reused(), 0u);
  // The refused endpoint is still granted on its old 4-tuple: released, and the owner told.
  EXPECT_EQ(p.given_back(), std::vector<uint32_t>{g1.endpoint_id});
  ASSERT_TRUE(reg.wait_releases(1));
  EXPECT_TRUE(reg.released().count(g1.endpoint_id));
  EXPECT_TRUE(p.given_back().empty()) << "each is named once";
  ::close(g1.endpoint_fd);
  ::close(g2.endpoint_fd);
}
