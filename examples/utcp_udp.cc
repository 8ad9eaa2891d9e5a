// utcp_udp.cc - UDP through utcp: datagrams to a peer and its answers, over a module
// endpoint with a UDP template granted by utcpd (the second protocol of issue 5).
//
//   utcp-udp IP PORT COUNT SIZE      send COUNT datagrams of SIZE bytes, one at a time,
//                                    each waiting (up to 1 s) for the peer's echo
//
// Each datagram carries its number and a pattern; an echo is counted when it comes back
// byte for byte. Prints "sent N echoed M" and exits 0 when every datagram came back.
#include <arpa/inet.h>
#include <poll.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "device/kmod_device.h"
#include "registry/client.h"
#include "udp/udp_endpoint.h"

using namespace utcp;

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: utcp-udp IP PORT COUNT SIZE\n");
    return 2;
  }
  in_addr a;
  if (inet_pton(AF_INET, argv[1], &a) != 1) {
    std::fprintf(stderr, "utcp-udp: bad address %s\n", argv[1]);
    return 2;
  }
  const Ipv4Addr remote{ntohl(a.s_addr)};
  const uint16_t port = uint16_t(std::atoi(argv[2]));
  const long count = std::atol(argv[3]);
  const size_t size = size_t(std::atol(argv[4]));
  std::string err;
  registry::RegistryClient reg;
  registry::Grant g;
  if (reg.connect(&err) < 0 || reg.udp_endpoint(remote, port, 0, &g, &err) < 0) {
    std::fprintf(stderr, "utcp-udp: %s\n", err.c_str());
    return 1;
  }
  auto dev = KmodDevice::open(g.endpoint_fd, g.mtu, &err);
  if (!dev) {
    std::fprintf(stderr, "utcp-udp: %s\n", err.c_str());
    return 1;
  }
  UdpEndpoint ep(dev.get(), g.local_ip, g.local_mac, g.local_port);
  ep.add_neighbor(g.remote_ip, g.next_hop_mac);
  if (size < 4 || size > ep.max_payload()) {
    std::fprintf(stderr, "utcp-udp: SIZE must be 4..%zu\n", ep.max_payload());
    return 2;
  }
  long echoed = 0;
  std::vector<uint8_t> msg(size), buf(size + 1);
  for (long i = 0; i < count; ++i) {
    for (size_t k = 0; k < size; ++k) msg[k] = uint8_t(k * 7 + uint64_t(i));
    std::memcpy(msg.data(), &i, 4);
    if (int64_t r = ep.sendto(remote, port, msg, Clock::now()); r < 0) {
      std::fprintf(stderr, "utcp-udp: sendto: %s\n", std::strerror(int(-r)));
      return 1;
    }
    const Instant deadline = Clock::now() + Duration(1'000'000);
    while (Clock::now() < deadline) {
      Ipv4Addr src;
      uint16_t sport = 0;
      int64_t n = ep.recvfrom(buf, &src, &sport, Clock::now());
      if (n == int64_t(size) && src == remote && sport == port && std::memcmp(buf.data(), msg.data(), size) == 0) {
        ++echoed;
        break;
      }
      if (n < 0) dev->wait(Duration(10'000));
    }
  }
  std::printf("sent %ld echoed %ld (local port %u; malformed %llu, not for us %llu)\n", count, echoed,
              unsigned(g.local_port), (unsigned long long)ep.stats().rx_malformed,
              (unsigned long long)ep.stats().rx_not_for_us);
  return echoed == count ? 0 : 1;
}
