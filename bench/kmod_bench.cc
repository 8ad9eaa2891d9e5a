// kmod_bench.cc - raw frames user-to-user through utcp.ko vs AF_PACKET on the same veth
// link in the same run, and the classifier's cost per frame via BPF_PROG_TEST_RUN.
// Runs inside the utcp VM (--net); compare the printed ratios, not absolute numbers.
#include <sys/socket.h>

#include <atomic>
#include <cinttypes>

#include "../tests/kmod/kmod_test_util.h"

namespace {

using Clock = std::chrono::steady_clock;

struct Result {
  uint64_t sent = 0, received = 0;
  double seconds = 0;
  double pps() const { return seconds > 0 ? double(received) / seconds : 0; }
};

std::vector<uint8_t> udp_frame(const utcp_template& t, utcp::MacAddr dst, size_t size) {
  std::vector<uint8_t> payload(size > 42 ? size - 42 : 0, 0x5a);
  auto f = utcp::frame_for_template(t, dst);
  f.payload = payload;
  std::vector<uint8_t> fr(42 + payload.size());
  fr.resize(utcp::build_frame(f, fr));
  return fr;
}

// Receiver side of a run: counts frames until `want` or until the sender is done and the
// link has been quiet for 300 ms. Time runs from the first frame to the last.
template <typename RecvBatch>
Result receive_loop(uint64_t want, std::atomic<bool>& sender_done, RecvBatch recv_batch) {
  Result r;
  Clock::time_point first{}, last{}, quiet = Clock::now();
  while (r.received < want) {
    size_t n = recv_batch();
    auto now = Clock::now();
    if (n) {
      if (!r.received) first = now;
      r.received += n;
      last = now;
      quiet = now;
    } else if (sender_done && now - quiet > std::chrono::milliseconds(300)) {
      break;
    }
  }
  r.seconds = std::chrono::duration<double>(last - first).count();
  return r;
}

Result run_module(kt::Side& a, kt::Side& b, uint64_t frames, size_t size, uint32_t batch) {
  utcp_template ta = utcp::make_template(a.mac, IPPROTO_UDP, a.addr, 5000, b.addr, 6000);
  utcp_template tb = utcp::make_template(b.mac, IPPROTO_UDP, b.addr, 6000, a.addr, 5000);
  auto ea = a.endpoint(ta, nullptr, 2048, 1024);
  auto eb = b.endpoint(tb, nullptr, 2048, 4096);
  if (!ea || !eb) return {};
  auto frame = udp_frame(ta, b.mac, size);
  std::atomic<bool> done{false};
  Result rx;
  std::thread receiver([&] {
    rx = receive_loop(frames, done, [&] {
      size_t n = eb->receive(utcp::kInstantZero, [](std::span<const uint8_t>) {}, 256);
      if (!n) eb->wait(std::chrono::milliseconds(50));
      return n;
    });
  });
  uint64_t sent = 0;
  while (sent < frames) {
    uint32_t k = 0;
    for (; k < batch && sent + k < frames; ++k)
      if (!ea->transmit(frame)) break;
    ea->flush(utcp::kInstantZero);
    sent += uint64_t(std::max(ea->last_tx_rc(), 0));
    if (ea->last_tx_rc() <= 0) std::this_thread::yield();
  }
  done = true;
  receiver.join();
  rx.sent = sent;
  return rx;
}

int packet_socket(const std::string& ifname) {
  int fd = ::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_IP));
  sockaddr_ll sll{};
  sll.sll_family = AF_PACKET;
  sll.sll_protocol = htons(ETH_P_IP);
  sll.sll_ifindex = int(if_nametoindex(ifname.c_str()));
  if (fd >= 0 && ::bind(fd, reinterpret_cast<sockaddr*>(&sll), sizeof(sll)) < 0) {
    ::close(fd);
    return -1;
  }
  int big = 8 << 20;
  ::setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof(big));
  return fd;
}

Result run_packet(kt::Side& a, kt::Side& b, uint64_t frames, size_t size, uint32_t batch, int fa, int fb) {
  utcp_template ta = utcp::make_template(a.mac, IPPROTO_UDP, a.addr, 5100, b.addr, 6100);
  auto frame = udp_frame(ta, b.mac, size);
  std::atomic<bool> done{false};
  Result rx;
  std::thread receiver([&] {
    std::vector<std::vector<uint8_t>> bufs(64, std::vector<uint8_t>(2048));
    std::vector<mmsghdr> msgs(64);
    std::vector<iovec> iov(64);
    rx = receive_loop(frames, done, [&] {
      for (size_t i = 0; i < msgs.size(); ++i) {
        iov[i] = {bufs[i].data(), bufs[i].size()};
        msgs[i] = {};
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
      }
      pollfd p{fb, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) return size_t(0);
      int n = ::recvmmsg(fb, msgs.data(), unsigned(msgs.size()), MSG_DONTWAIT, nullptr);
      size_t ours = 0;
      // Count only the benchmark's frames (the kernel's replies also pass by).
      for (int i = 0; i < n; ++i)
        if (msgs[i].msg_len == frame.size() && bufs[i][37] == frame[37]) ++ours;
      return ours;
    });
  });
  std::vector<mmsghdr> msgs(batch);
  std::vector<iovec> iov(batch);
  for (uint32_t i = 0; i < batch; ++i) {
    iov[i] = {frame.data(), frame.size()};
    msgs[i] = {};
    msgs[i].msg_hdr.msg_iov = &iov[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
  }
  uint64_t sent = 0;
  while (sent < frames) {
    unsigned k = unsigned(std::min<uint64_t>(batch, frames - sent));
    int n = ::sendmmsg(fa, msgs.data(), k, 0);
    if (n > 0) sent += uint64_t(n);
    else std::this_thread::yield();
  }
  done = true;
  receiver.join();
  rx.sent = sent;
  return rx;
}

int cmd_raw(int argc, char** argv) {
  uint64_t frames = 200000;
  size_t size = 64;
  uint32_t batch = 32;
  for (int i = 2; i + 1 < argc; i += 2) {
    std::string o = argv[i];
    if (o == "--frames") frames = std::strtoull(argv[i + 1], nullptr, 10);
    else if (o == "--size") size = std::strtoul(argv[i + 1], nullptr, 10);
    else if (o == "--batch") batch = uint32_t(std::strtoul(argv[i + 1], nullptr, 10));
  }
  size = std::clamp<size_t>(size, 60, 1514);
  batch = std::clamp<uint32_t>(batch, 1, 1024);
  std::string err;
  kt::Side a, b;
  std::string ns_a = kt::env("UTCP_NS_A", "utcp-a"), ns_b = kt::env("UTCP_NS_B", "utcp-b");
  std::string if_a = kt::env("UTCP_IF_A", "va"), if_b = kt::env("UTCP_IF_B", "vb");
  if (!a.setup(ns_a, if_a, kt::env("UTCP_IP_A", "10.77.0.1"), true, &err) ||
      !b.setup(ns_b, if_b, kt::env("UTCP_IP_B", "10.77.0.2"), true, &err))
    return std::fprintf(stderr, "setup: %s\n", err.c_str()), 1;

  // Alternate the two, three rounds each, and keep each one's best: the guest shares
  // two host cores with whatever else runs, so single runs are noisy.
  Result pk, km;
  for (int round = 0; round < 3; ++round) {
    // Packet sockets exist only during their own run (each is bound to the namespace
    // current at creation): open ones would also tap (copy) the module's frames.
    kt::enter_netns(ns_b);
    int fb = packet_socket(if_b);
    kt::enter_netns(ns_a);
    int fa = packet_socket(if_a);
    if (fa < 0 || fb < 0) return std::fprintf(stderr, "AF_PACKET sockets: %s\n", std::strerror(errno)), 1;
    // Without a classifier the rx_handler passes every frame at once: the AF_PACKET run
    // pays only for the hook, not for classifying frames that are not the module's.
    utcp::ctl_set_classifier(a.ctl, -1);
    utcp::ctl_set_classifier(b.ctl, -1);
    Result p = run_packet(a, b, frames, size, batch, fa, fb);
    for (kt::Side* s : {&a, &b})
      utcp::ctl_set_classifier(s->ctl, bpf_program__fd(bpf_object__find_program_by_name(s->bpf, UTCP_CLASSIFIER_PROG)));
    ::close(fa);
    ::close(fb);
    if (p.pps() > pk.pps()) pk = p;
    Result k = run_module(a, b, frames, size, batch);
    if (k.pps() > km.pps()) km = k;
  }
  auto line = [&](const char* name, const Result& r) {
    std::printf("%-9s frames %" PRIu64 " sent %" PRIu64 " received %" PRIu64 " in %.3f s: %.0f frames/s, %.1f Mbit/s\n",
                name, frames, r.sent, r.received, r.seconds, r.pps(), r.pps() * double(size) * 8 / 1e6);
  };
  line("af_packet", pk);
  line("utcp.ko", km);
  std::printf("ratio utcp.ko/af_packet (best of 3 each, frames/s, %zu-byte frames, batch %u): %.2f\n", size, batch,
              pk.pps() > 0 ? km.pps() / pk.pps() : 0.0);
  utcp_global_stats g{};
  utcp::ctl_global_stats(b.ctl, &g);
  if (g.classifier_sampled_runs)
    std::printf("in-module classifier: %" PRIu64 " runs, sampled %.0f ns/run (incl. 2 clock reads)\n",
                uint64_t(g.classifier_runs), double(g.classifier_sampled_ns) / double(g.classifier_sampled_runs));
  return pk.received && km.received ? 0 : 1;
}

int cmd_classifier(int argc, char** argv) {
  uint32_t repeat = argc > 2 ? uint32_t(std::strtoul(argv[2], nullptr, 10)) : 1000000;
  std::string obj = kt::env("UTCP_BUILD", "build") + "/kmod/utcp_classifier.bpf.o";
  bpf_object* bpf = bpf_object__open_file(obj.c_str(), nullptr);
  if (!bpf || libbpf_get_error(bpf) || bpf_object__load(bpf) < 0)
    return std::fprintf(stderr, "cannot load %s\n", obj.c_str()), 1;
  int prog = bpf_program__fd(bpf_object__find_program_by_name(bpf, UTCP_CLASSIFIER_PROG));
  int flows = bpf_map__fd(bpf_object__find_map_by_name(bpf, UTCP_FLOW_MAP_NAME));
  utcp::MacAddr mac{{2, 0, 0, 0, 0, 1}};
  utcp_template t = utcp::make_template(mac, IPPROTO_UDP, utcp::Ipv4Addr::of(10, 77, 0, 1), 5000,
                                        utcp::Ipv4Addr::of(10, 77, 0, 2), 6000);
  // Fill the map with many flows so lookups hit a realistic table.
  for (uint32_t i = 0; i < 10000; ++i) {
    utcp_flow_key k{t.remote_ip, t.local_ip, htons(uint16_t(10000 + i)), t.local_port, IPPROTO_UDP, {}};
    uint32_t id = i + 2;
    bpf_map_update_elem(flows, &k, &id, BPF_ANY);
  }
  utcp_flow_key k{t.remote_ip, t.local_ip, t.remote_port, t.local_port, IPPROTO_UDP, {}};
  uint32_t id = 1;
  bpf_map_update_elem(flows, &k, &id, BPF_ANY);
  // The frame as received by the remote side: remote's view of local.
  auto f = utcp::frame_for_template(t, mac);
  std::vector<uint8_t> hit(64);
  hit.resize(utcp::build_frame(f, hit));
  f.dst_port = 9;
  std::vector<uint8_t> miss(64);
  miss.resize(utcp::build_frame(f, miss));
  int rc = 0;
  // BPF_PROG_TEST_RUN strips an Ethernet header (eth_type_trans) and runs a socket
  // filter from the network header; the module runs it from the MAC header. A 14-byte
  // dummy header in front makes the test run see what the module's runs see.
  hit.insert(hit.begin(), 14, 0);
  miss.insert(miss.begin(), 14, 0);
  for (auto& [name, frame, want] : {std::tuple{"flow hit", &hit, 1u}, std::tuple{"miss (3 lookups)", &miss, 0u}}) {
    LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame->data(), .data_size_in = uint32_t(frame->size()),
                .repeat = int(repeat));
    if (bpf_prog_test_run_opts(prog, &opts) < 0) {
      std::fprintf(stderr, "BPF_PROG_TEST_RUN: %s\n", std::strerror(errno));
      rc = 1;
      continue;
    }
    std::printf("classifier %-17s %u runs: %u ns/frame, returned %u%s\n", name, repeat, opts.duration, opts.retval,
                opts.retval == want ? "" : " (WRONG)");
    if (opts.retval != want) rc = 1;
  }
  bpf_object__close(bpf);
  return rc;
}

}  // namespace

int main(int argc, char** argv) {
  std::string c = argc > 1 ? argv[1] : "";
  if (c == "raw") return cmd_raw(argc, argv);
  if (c == "classifier") return cmd_classifier(argc, argv);
  std::fprintf(stderr,
               "usage: kmod_bench raw [--frames N] [--size BYTES] [--batch N]\n"
               "       kmod_bench classifier [REPEAT]\n"
               "Runs inside the utcp VM with the two-host link (tools/utcp-vm --net).\n");
  return 2;
}
