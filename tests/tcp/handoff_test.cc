// handoff_test.cc - the connection-handoff message (api/handoff.h): a round trip carries
// the descriptor, the facts and the state; every malformed message is refused with
// -EBADMSG and leaves no descriptor behind.
#include <gtest/gtest.h>

#include <dirent.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include "api/handoff.h"

namespace utcp {
namespace {

int open_fds() {
  int n = 0;
  DIR* d = ::opendir("/proc/self/fd");
  while (::readdir(d)) ++n;
  ::closedir(d);
  return n;
}

struct Pair {
  int a = -1, b = -1;
  Pair() {
    int sv[2];
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
    a = sv[0];
    b = sv[1];
  }
  ~Pair() {
    ::close(a);
    ::close(b);
  }
};

HandoffInfo sample_info() {
  HandoffInfo i;
  i.local_ip = Ipv4Addr::of(10, 0, 0, 1);
  i.remote_ip = Ipv4Addr::of(10, 0, 0, 2);
  i.local_mac = MacAddr{{2, 0, 0, 0, 0, 1}};
  i.next_hop = MacAddr{{2, 0, 0, 0, 0, 2}};
  i.mtu = 1500;
  return i;
}

// Sends raw bytes with `nfds` descriptors (copies of fd 0's pipe end) on `sock`.
void send_raw(int sock, const std::vector<uint8_t>& bytes, int nfds) {
  int p[2];
  ASSERT_EQ(::pipe(p), 0);
  iovec iov{const_cast<uint8_t*>(bytes.data()), bytes.size()};
  alignas(cmsghdr) char ctl[CMSG_SPACE(sizeof(int) * 2)] = {};
  msghdr mh{};
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  if (nfds > 0) {
    mh.msg_control = ctl;
    mh.msg_controllen = CMSG_SPACE(sizeof(int) * size_t(nfds));
    cmsghdr* cm = CMSG_FIRSTHDR(&mh);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int) * size_t(nfds));
    int fds[2] = {p[0], p[1]};
    std::memcpy(CMSG_DATA(cm), fds, sizeof(int) * size_t(nfds));
  }
  ASSERT_EQ(::sendmsg(sock, &mh, 0), ssize_t(bytes.size()));
  ::close(p[0]);
  ::close(p[1]);
}

TEST(Handoff, RoundTripCarriesDescriptorInfoAndState) {
  Pair ch;
  int p[2];
  ASSERT_EQ(::pipe(p), 0);
  std::vector<uint8_t> state(3000);
  for (size_t i = 0; i < state.size(); ++i) state[i] = uint8_t(i * 7);
  std::string err;
  ASSERT_EQ(send_connection(ch.a, p[1], sample_info(), state, &err), 0) << err;
  ::close(p[1]);
  int fd = -1;
  HandoffInfo got;
  std::vector<uint8_t> got_state;
  ASSERT_EQ(recv_connection(ch.b, &fd, &got, &got_state, &err), 0) << err;
  EXPECT_EQ(got_state, state);
  EXPECT_EQ(got.local_ip, sample_info().local_ip);
  EXPECT_EQ(got.remote_ip, sample_info().remote_ip);
  EXPECT_EQ(got.next_hop, sample_info().next_hop);
  EXPECT_EQ(got.mtu, 1500);
  EXPECT_EQ(::fcntl(fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
  // The received descriptor is the same pipe: bytes written there come out here.
  ASSERT_EQ(::write(fd, "x", 1), 1);
  char c = 0;
  ASSERT_EQ(::read(p[0], &c, 1), 1);
  EXPECT_EQ(c, 'x');
  ::close(fd);
  ::close(p[0]);
}

TEST(Handoff, SenderRefusesNonsense) {
  Pair ch;
  std::string err;
  std::vector<uint8_t> state(10);
  EXPECT_EQ(send_connection(ch.a, -1, sample_info(), state, &err), -EINVAL);
  EXPECT_EQ(send_connection(ch.a, 0, sample_info(), {}, &err), -EINVAL);
  std::vector<uint8_t> huge(kMaxHandoffState + 1);
  EXPECT_EQ(send_connection(ch.a, 0, sample_info(), huge, &err), -EINVAL);
}

TEST(Handoff, MalformedMessagesAreRefusedWithoutLeaks) {
  // A valid message to mutate: captured from send_connection.
  std::vector<uint8_t> good;
  {
    Pair ch;
    int p[2];
    ASSERT_EQ(::pipe(p), 0);
    std::vector<uint8_t> state(64, 0xab);
    std::string err;
    ASSERT_EQ(send_connection(ch.a, p[0], sample_info(), state, &err), 0);
    ::close(p[0]);
    ::close(p[1]);
    good.resize(1 << 16);
    alignas(cmsghdr) char ctl[CMSG_SPACE(sizeof(int))];
    iovec iov{good.data(), good.size()};
    msghdr mh{};
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    mh.msg_control = ctl;
    mh.msg_controllen = sizeof ctl;
    ssize_t n = ::recvmsg(ch.b, &mh, MSG_CMSG_CLOEXEC);
    ASSERT_GT(n, 32);
    good.resize(size_t(n));
    int fd;
    std::memcpy(&fd, CMSG_DATA(CMSG_FIRSTHDR(&mh)), sizeof fd);
    ::close(fd);
  }
  struct Case {
    const char* name;
    std::vector<uint8_t> bytes;
    int nfds;
  };
  auto with = [&](size_t off, uint8_t v) {
    auto b = good;
    b[off] = v;
    return b;
  };
  std::vector<Case> cases = {
      {"no descriptor", good, 0},
      {"two descriptors", good, 2},
      {"bad magic", with(0, 0), 1},
      {"other version", with(4, 9), 1},
      {"mtu below 576", with(7, 0), 1},
      {"state longer than sent", with(24, 200), 1},
      {"truncated", std::vector<uint8_t>(good.begin(), good.begin() + 20), 1},
      {"no remote address", [&] { auto b = good; std::memset(b.data() + 28, 0, 4); return b; }(), 1},
  };
  for (auto& c : cases) {
    Pair ch;
    send_raw(ch.a, c.bytes, c.nfds);
    int before = open_fds();
    int fd = 99;
    HandoffInfo info;
    std::vector<uint8_t> state;
    std::string err;
    EXPECT_EQ(recv_connection(ch.b, &fd, &info, &state, &err), -EBADMSG) << c.name;
    EXPECT_EQ(fd, -1) << c.name;
    EXPECT_FALSE(err.empty()) << c.name;
    EXPECT_EQ(open_fds(), before) << c.name << ": a received descriptor leaked";
  }
  // The sender hanging up is its own error.
  Pair ch;
  ::shutdown(ch.a, SHUT_WR);
  int fd;
  HandoffInfo info;
  std::vector<uint8_t> state;
  std::string err;
  EXPECT_EQ(recv_connection(ch.b, &fd, &info, &state, &err), -ECONNRESET);
}

}  // namespace
}  // namespace utcp
