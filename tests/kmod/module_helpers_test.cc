// module_helpers_test.cc - the user-space side of the module ABI that runs without the
// module: template/flow-key byte order, test-frame building, KmodDevice refusing non-endpoints.
#include <arpa/inet.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include <gtest/gtest.h>

#include "device/kmod_device.h"
#include "device/module.h"
#include "wire/frame.h"

namespace utcp {
namespace {

const MacAddr kMac{{0x02, 0x11, 0x22, 0x33, 0x44, 0x55}};

TEST(ModuleHelpers, TemplateIsNetworkOrder) {
  utcp_template t = make_template(kMac, 6, Ipv4Addr::of(10, 77, 0, 1), 5000, Ipv4Addr::of(10, 77, 0, 2), 80);
  EXPECT_EQ(t.local_ip, htonl(0x0a4d0001));
  EXPECT_EQ(t.remote_ip, htonl(0x0a4d0002));
  EXPECT_EQ(t.local_port, htons(5000));
  EXPECT_EQ(t.remote_port, htons(80));
  EXPECT_EQ(t.flags, 0);
  EXPECT_EQ(0, std::memcmp(t.src_mac, kMac.b.data(), 6));
  EXPECT_FALSE(is_listener(t));
  utcp_template l = make_template(kMac, 17, Ipv4Addr::of(10, 77, 0, 1), 53, {}, 0, true);
  EXPECT_TRUE(is_listener(l));
  EXPECT_EQ(l.remote_ip, 0u);
}

TEST(ModuleHelpers, FlowKeysMatchWhatTheClassifierBuilds) {
  // The classifier keys a received frame by (dst, src, dport, sport): the template's
  // local side is the frame's destination.
  utcp_template t = make_template(kMac, 6, Ipv4Addr::of(10, 0, 0, 1), 5000, Ipv4Addr::of(10, 0, 0, 2), 80);
  utcp_flow_key k = flow_key_for(t);
  EXPECT_EQ(k.local_ip, t.local_ip);
  EXPECT_EQ(k.remote_ip, t.remote_ip);
  EXPECT_EQ(k.local_port, t.local_port);
  EXPECT_EQ(k.remote_port, t.remote_port);
  EXPECT_EQ(k.proto, 6);
  EXPECT_EQ(k.pad[0] | k.pad[1] | k.pad[2], 0);  // hashed as bytes: padding must be zero
  utcp_listen_key lk = listen_key_for(t);
  EXPECT_EQ(lk.local_ip, t.local_ip);
  EXPECT_EQ(lk.local_port, t.local_port);
  EXPECT_EQ(lk.pad, 0);
}

TEST(ModuleHelpers, FrameForTemplateParsesBackWithValidChecksums) {
  for (uint8_t proto : {uint8_t(6), uint8_t(17)}) {
    utcp_template t = make_template(kMac, proto, Ipv4Addr::of(10, 0, 0, 1), 5000, Ipv4Addr::of(10, 0, 0, 2), 80);
    FrameSpec f = frame_for_template(t, MacAddr::broadcast());
    const uint8_t payload[] = {'h', 'i', '!'};
    f.payload = payload;
    std::vector<uint8_t> out(200);
    size_t n = build_frame(f, out);
    ASSERT_EQ(n, 14u + 20 + (proto == 6 ? 20 : 8) + 3);
    auto p = parse_frame(std::span<const uint8_t>(out.data(), n), true);
    ASSERT_TRUE(p.has_value());
    EXPECT_EQ(p->eth.src, kMac);
    EXPECT_EQ(p->ip.src, Ipv4Addr::of(10, 0, 0, 1));
    EXPECT_EQ(p->ip.dst, Ipv4Addr::of(10, 0, 0, 2));
    if (proto == 6) {
      ASSERT_TRUE(p->tcp.has_value());
      EXPECT_EQ(p->tcp->src_port, 5000);
      EXPECT_EQ(p->tcp->payload.size(), 3u);
    } else {
      ASSERT_TRUE(p->udp.has_value());
      EXPECT_EQ(p->udp->dst_port, 80);
    }
  }
}

TEST(ModuleHelpers, BuildFrameRefusesShortBuffer) {
  utcp_template t = make_template(kMac, 17, Ipv4Addr::of(10, 0, 0, 1), 1, Ipv4Addr::of(10, 0, 0, 2), 2);
  FrameSpec f = frame_for_template(t, kMac);
  std::vector<uint8_t> out(41);
  EXPECT_EQ(build_frame(f, out), 0u);
  out.resize(42);
  EXPECT_EQ(build_frame(f, out), 42u);
}

TEST(KmodDevice, RefusesAFileThatIsNoEndpoint) {
  int fd = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  std::string error;
  auto dev = KmodDevice::open(fd, 1500, &error);  // takes and closes fd
  EXPECT_EQ(dev, nullptr);
  EXPECT_NE(error.find("not a utcp endpoint"), std::string::npos) << error;
  EXPECT_LT(::fcntl(fd, F_GETFD), 0);  // closed on failure, as documented
}

}  // namespace
}  // namespace utcp
