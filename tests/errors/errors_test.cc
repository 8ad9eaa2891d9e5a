// errors_test.cc - the messages a user meets when the system around libutcp is not ready
// (no module, another ABI, no utcpd, a stale socket, no permission, refusals from utcpd):
// each names the cause and what to do. Real sockets and files where the situation can be
// made without privileges or the module; the message functions themselves for the rest.
#include <fcntl.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <linux/utcp.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "device/kmod_device.h"
#include "device/module.h"
#include "registry/client.h"
#include "registry/protocol.h"

namespace utcp {
namespace {

// `text` contains `part` (shown in full when it does not).
#define EXPECT_HAS(text, part) EXPECT_NE(std::string(text).find(part), std::string::npos) << (text)

// A private directory for socket files, removed with everything in it.
class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/utcp-errors-XXXXXX";
    path_ = ::mkdtemp(tmpl);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::string file(const char* name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// ---- the module's device

TEST(ModuleErrors, MissingDeviceSaysLoadTheModule) {
  TempDir d;
  std::string err;
  std::string path = d.file("utcp");
  EXPECT_EQ(open_module(&err, nullptr, path.c_str()), -ENOENT);
  EXPECT_HAS(err, "not loaded");
  EXPECT_HAS(err, "modprobe utcp");
  EXPECT_HAS(err, path);
}

TEST(ModuleErrors, ADeviceThatIsNotUtcpSaysSo) {
  std::string err;
  EXPECT_LT(open_module(&err, nullptr, "/dev/null"), 0);
  EXPECT_HAS(err, "does not answer the utcp ABI query");
  EXPECT_HAS(err, "lsmod");
}

TEST(ModuleErrors, PermissionDeniedSaysWhoMayOpenIt) {
  // Made by hand: as root (the test machine) open(2) never fails with EACCES.
  for (int e : {EACCES, EPERM}) {
    std::string msg = module_open_error(e, "/dev/utcp");
    EXPECT_HAS(msg, "permission denied opening /dev/utcp");
    EXPECT_HAS(msg, "run as root");
    EXPECT_HAS(msg, "60-utcp.rules");
  }
  EXPECT_HAS(module_open_error(EIO, "/dev/utcp"), std::strerror(EIO));
}

TEST(ModuleErrors, AbiMismatchNamesBothVersionsAndTheFix) {
  utcp_abi_info abi{};
  std::string err;
  abi.abi_version = UTCP_ABI_VERSION;
  EXPECT_EQ(check_abi(abi, &err), 0);
  EXPECT_TRUE(err.empty());
  abi.abi_version = UTCP_ABI_VERSION + 1;
  EXPECT_EQ(check_abi(abi, &err), -EPROTO);
  EXPECT_HAS(err, "ABI mismatch");
  EXPECT_HAS(err, "module speaks version " + std::to_string(UTCP_ABI_VERSION + 1));
  EXPECT_HAS(err, "this library version " + std::to_string(UTCP_ABI_VERSION));
  EXPECT_HAS(err, "modprobe utcp");
}

TEST(ModuleErrors, KmodDeviceOnAPlainFileSaysItIsNoEndpoint) {
  TempDir d;
  int fd = ::open(d.file("f").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  ASSERT_GE(fd, 0);
  std::string err;
  EXPECT_EQ(KmodDevice::open(fd, 1500, &err), nullptr);  // takes and closes fd
  EXPECT_HAS(err, "not a utcp endpoint");
  EXPECT_HAS(err, "from utcpd");
}

// ---- the registry socket

TEST(RegistryErrors, NoSocketSaysUtcpdIsNotRunning) {
  TempDir d;
  std::string path = d.file("utcpd.sock"), err;
  registry::RegistryClient c;
  EXPECT_EQ(c.connect(&err, path.c_str()), -ENOENT);
  EXPECT_HAS(err, "utcpd not running");
  EXPECT_HAS(err, path);
  EXPECT_HAS(err, "utcpd --interface");
  EXPECT_HAS(err, "UTCP_REGISTRY");
}

TEST(RegistryErrors, UtcpRegistryNamesTheSocket) {
  TempDir d;
  std::string path = d.file("elsewhere.sock"), err;
  ASSERT_EQ(::setenv("UTCP_REGISTRY", path.c_str(), 1), 0);
  registry::RegistryClient c;
  int rc = c.connect(&err);
  ::unsetenv("UTCP_REGISTRY");
  EXPECT_EQ(rc, -ENOENT);
  EXPECT_HAS(err, path);
}

TEST(RegistryErrors, StaleSocketSaysLeftOver) {
  // A socket file nobody listens on: what a utcpd killed with SIGKILL leaves behind.
  TempDir d;
  std::string path = d.file("utcpd.sock"), err;
  int s = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  std::strcpy(sa.sun_path, path.c_str());
  ASSERT_EQ(::bind(s, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
  ::close(s);
  registry::RegistryClient c;
  EXPECT_EQ(c.connect(&err, path.c_str()), -ECONNREFUSED);
  EXPECT_HAS(err, "utcpd not running");
  EXPECT_HAS(err, "left over");
  EXPECT_HAS(err, "systemctl start utcpd");
}

TEST(RegistryErrors, NotASocketAndTooLong) {
  TempDir d;
  std::string err;
  registry::RegistryClient c;
  std::string file = d.file("plain");
  ::close(::open(file.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600));
  EXPECT_EQ(c.connect(&err, (file + "/sock").c_str()), -ENOTDIR);
  EXPECT_HAS(err, "not a registry socket");
  EXPECT_HAS(err, "UTCP_REGISTRY");
  std::string longpath = "/tmp/" + std::string(200, 'x');
  EXPECT_EQ(c.connect(&err, longpath.c_str()), -ENAMETOOLONG);
  EXPECT_HAS(err, "too long");
}

TEST(RegistryErrors, PermissionDeniedPointsAtTheDirectory) {
  // Made by hand: root passes every permission check.
  std::string msg = registry::connect_error_message(EACCES, "/run/utcp/utcpd.sock");
  EXPECT_HAS(msg, "permission denied connecting to the registry at /run/utcp/utcpd.sock");
  EXPECT_HAS(msg, "ls -ld /run/utcp/");
}

// A registry that answers one request with a reply built by `make` (given the request).
class FakeRegistry {
 public:
  template <typename Make>
  FakeRegistry(const std::string& path, Make make) {
    listen_fd_ = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::strcpy(sa.sun_path, path.c_str());
    ok_ = ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0 && ::listen(listen_fd_, 1) == 0;
    if (!ok_) return;
    thread_ = std::thread([this, make] {
      int c = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) return;
      uint8_t buf[registry::kMaxMessage];
      ssize_t n = ::recv(c, buf, sizeof buf, 0);
      if (n >= ssize_t(sizeof(registry::RegHeader))) {
        registry::RegHeader h;
        std::memcpy(&h, buf, sizeof h);
        std::string reply = make(h);
        ::send(c, reply.data(), reply.size(), MSG_NOSIGNAL);
      }
      ::close(c);
    });
  }
  ~FakeRegistry() {
    if (thread_.joinable()) thread_.join();
    ::close(listen_fd_);
  }
  bool ok() const { return ok_; }

 private:
  int listen_fd_ = -1;
  bool ok_ = false;
  std::thread thread_;
};

template <typename T>
std::string bytes_of(const T& v) {
  return std::string(reinterpret_cast<const char*>(&v), sizeof v);
}

// An EndpointReply refusing the request with `error` and utcpd's `message`.
auto refusal(int error, const char* message) {
  return [=](const registry::RegHeader& req) {
    registry::EndpointReply rep{};
    rep.hdr.type = uint16_t(req.type | uint16_t(registry::MsgType::kReply));
    rep.hdr.length = sizeof rep;
    rep.hdr.seq = req.seq;
    rep.error = error;
    std::snprintf(rep.message, sizeof rep.message, "%s", message);
    return bytes_of(rep);
  };
}

std::string connect_through(const std::string& path, int* rc) {
  registry::RegistryClient c;
  std::string err;
  *rc = c.connect(&err, path.c_str());
  if (*rc < 0) return err;
  registry::Grant g;
  std::vector<uint8_t> state;
  *rc = c.connect_endpoint(Ipv4Addr::of(192, 0, 2, 7), 5001, 80, &g, &err, &state);
  return err;
}

TEST(RegistryErrors, RefusalsCarryUtcpdsReasonAndAHint) {
  struct Case {
    int error;
    const char* utcpd_says;
    const char* hint;
  } cases[] = {
      {-EADDRINUSE, "local port 80 is in use", "choose another local port"},
      {-EACCES, "ports below 1024 need root", nullptr},  // utcpd's words are the hint
      {-ENETUNREACH, "no route to 192.0.2.7", "ip route"},
      {-EHOSTUNREACH, "no ARP answer from 192.0.2.1", "ip neigh"},
      {-ECONNREFUSED, "the peer refused the connection", "nothing listens"},
      {-ETIMEDOUT, "no answer to the SYN", "firewall"},
      {-EMFILE, "endpoint creation failed: Too many open files", "endpoint table is full"},
      {-EPROTO, "registry protocol version 2 not spoken here", "different releases"},
  };
  for (const Case& k : cases) {
    TempDir d;
    std::string path = d.file("utcpd.sock");
    FakeRegistry fake(path, refusal(k.error, k.utcpd_says));
    ASSERT_TRUE(fake.ok());
    int rc = 0;
    std::string err = connect_through(path, &rc);
    EXPECT_EQ(rc, k.error) << err;
    EXPECT_HAS(err, std::string("utcpd: ") + k.utcpd_says);
    EXPECT_HAS(err, std::strerror(-k.error));
    if (k.hint) {
      EXPECT_HAS(err, k.hint);
    }
    // The hint is not repeated when utcpd already said it.
    EXPECT_EQ(err.find("ports below 1024 need root"), err.rfind("ports below 1024 need root")) << err;
  }
}

TEST(RegistryErrors, AMalformedReplySaysDifferentReleases) {
  TempDir d;
  std::string path = d.file("utcpd.sock");
  FakeRegistry fake(path, [](const registry::RegHeader&) { return std::string(10, '\xff'); });
  ASSERT_TRUE(fake.ok());
  int rc = 0;
  std::string err = connect_through(path, &rc);
  EXPECT_EQ(rc, -EBADMSG);
  EXPECT_HAS(err, "malformed reply from the registry");
  EXPECT_HAS(err, "different releases");
}

TEST(RegistryErrors, AUtcpdThatHangsUpSaysSo) {
  TempDir d;
  std::string path = d.file("utcpd.sock");
  FakeRegistry fake(path, [](const registry::RegHeader&) { return std::string(); });
  ASSERT_TRUE(fake.ok());
  int rc = 0;
  std::string err = connect_through(path, &rc);
  EXPECT_LT(rc, 0);
  EXPECT_HAS(err, "did it exit?");
}

TEST(RegistryErrors, HelloRefusesAModuleOfAnotherAbi) {
  for (uint32_t module_abi : {uint32_t(UTCP_ABI_VERSION), uint32_t(UTCP_ABI_VERSION + 1)}) {
    TempDir d;
    std::string path = d.file("utcpd.sock");
    FakeRegistry fake(path, [module_abi](const registry::RegHeader& req) {
      registry::HelloReply rep{};
      rep.hdr.type = uint16_t(req.type | uint16_t(registry::MsgType::kReply));
      rep.hdr.length = sizeof rep;
      rep.hdr.seq = req.seq;
      rep.module_abi = module_abi;
      return bytes_of(rep);
    });
    ASSERT_TRUE(fake.ok());
    registry::RegistryClient c;
    std::string err;
    ASSERT_EQ(c.connect(&err, path.c_str()), 0) << err;
    registry::HelloReply hello{};
    int rc = c.hello(&hello, &err);
    if (module_abi == UTCP_ABI_VERSION) {
      EXPECT_EQ(rc, 0) << err;
    } else {
      EXPECT_EQ(rc, -EPROTO);
      EXPECT_HAS(err, "ABI mismatch");
    }
  }
}

}  // namespace
}  // namespace utcp
