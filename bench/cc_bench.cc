// cc_bench.cc - goodput on a lossy long-delay link, in virtual time: SACK + RACK-TLP + CUBIC
// against NewReno without SACK (issue 5). Two Stacks over a seeded LinkPair; every byte
// received is checked; prints each run and the ratio of the averages.
//
// Usage: cc_bench [MEGABYTES [SEEDS]]   (defaults 32 and 5; run by `meson test --benchmark`)
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <vector>

#include "api/stack.h"
#include "device/link.h"
#include "tcp/connection.h"

namespace {

using namespace utcp;

struct Variant {
  const char* label;
  const char* congestion;
  bool sack;
};

struct Run {
  bool ok = false;
  double seconds = 0;  // virtual
  Connection::Stats st;
};

uint8_t byte_at(uint64_t i) { return uint8_t((i * 2654435761u) >> 13 ^ (i >> 16)); }

// 100 Mbit/s, 20 ms each way (40 ms RTT), 1% loss each way, a 1000-frame queue.
Run transfer(const Variant& v, uint64_t total, uint64_t seed) {
  LinkConfig lc;
  lc.seed = seed;
  lc.loss = 0.01;
  lc.delay = Duration(20'000);
  lc.bandwidth_bps = 100'000'000;
  lc.queue_limit = 1000;
  lc.tx_ring = 1024;
  LinkPair link(lc);
  const Ipv4Addr ia = Ipv4Addr::of(10, 0, 0, 1), ib = Ipv4Addr::of(10, 0, 0, 2);
  const MacAddr ma{{2, 0, 0, 0, 0, 1}}, mb{{2, 0, 0, 0, 0, 2}};
  StackConfig ca, cb;
  ca.ip = ia;
  ca.mac = ma;
  cb.ip = ib;
  cb.mac = mb;
  for (StackConfig* c : {&ca, &cb}) {
    c->tcp.congestion = v.congestion;
    c->tcp.sack = v.sack;
    c->tcp.rcvbuf = c->tcp.sndbuf = 4u << 20;  // > the 500 KB bandwidth-delay product
    c->isn_key = std::array<uint8_t, 16>{uint8_t(seed), 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
  }
  Stack a(&link.a(), ca), b(&link.b(), cb);
  a.add_neighbor(ib, mb);
  b.add_neighbor(ia, ma);
  Instant now(Duration(1'000'000));
  auto step = [&] {
    a.poll(now);
    b.poll(now);
    const Instant next = std::min(a.poll_at(), b.poll_at());
    if (next > now && next != kInstantNever) now = next;
    else if (next == kInstantNever) now += Duration(1000);
  };
  const int l = b.socket();
  b.bind(l, 80);
  b.listen(l, 1);
  const int c = a.socket();
  a.connect(c, ib, 80, now);
  int s = -1;
  const Instant give_up = now + Duration(600'000'000);
  while (s < 0 && now < give_up) {
    step();
    s = b.accept(l);
  }
  Run r;
  if (s < 0) return r;
  std::vector<uint8_t> chunk(64 * 1024), in(64 * 1024);
  uint64_t sent = 0, got = 0;
  size_t off = 0, len = 0;
  bool bad = false;
  const Instant start = now;
  while (got < total && !bad && now < give_up) {
    while (sent < total) {
      if (off == len) {
        len = size_t(std::min<uint64_t>(chunk.size(), total - sent));
        for (size_t i = 0; i < len; ++i) chunk[i] = byte_at(sent + i);
        off = 0;
      }
      const int64_t w = a.write(c, {chunk.data() + off, len - off});
      if (w <= 0) break;
      off += size_t(w);
      sent += uint64_t(w);
    }
    step();
    for (int64_t n; (n = b.read(s, in)) > 0;) {
      for (int64_t i = 0; i < n; ++i) bad |= in[size_t(i)] != byte_at(got + uint64_t(i));
      got += uint64_t(n);
    }
  }
  r.ok = !bad && got == total;
  r.seconds = double((now - start).count()) / 1e6;
  if (Connection* k = a.connection(c)) r.st = k->stats();
  a.close(c);
  b.close(s);
  b.close(l);
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  const uint64_t mb = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 32;
  const uint64_t seeds = argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 5;
  if (mb == 0 || seeds == 0) {
    std::fprintf(stderr, "usage: cc_bench [MEGABYTES>0 [SEEDS>0]]\n");
    return 2;
  }
  const uint64_t total = mb << 20;
  const Variant variants[] = {{"SACK+RACK-TLP+CUBIC", "cubic", true},
                              {"NewReno, no SACK", "newreno", false}};
  std::printf("lossy long-delay link: 100 Mbit/s, 40 ms RTT, 1%% loss each way; %llu MiB, %llu seeds; "
              "virtual time\n", (unsigned long long)mb, (unsigned long long)seeds);
  double mbps[2] = {0, 0};
  bool all_ok = true;
  for (int vi = 0; vi < 2; ++vi) {
    double sum = 0;
    for (uint64_t seed = 1; seed <= seeds; ++seed) {
      const Run r = transfer(variants[vi], total, seed);
      all_ok &= r.ok;
      const double rate = r.ok ? double(total) * 8 / r.seconds / 1e6 : 0;
      sum += rate;
      std::printf("  %-22s seed %llu: %s %7.3f s  %6.2f Mbit/s  retransmits %llu timeouts %llu "
                  "TLP %llu RACK-lost %llu undone %llu cwnd %u ssthresh %u\n",
                  variants[vi].label, (unsigned long long)seed, r.ok ? "ok " : "BAD", r.seconds, rate,
                  (unsigned long long)r.st.retransmits, (unsigned long long)r.st.timeouts,
                  (unsigned long long)r.st.tlp_probes, (unsigned long long)r.st.rack_marked_lost,
                  (unsigned long long)r.st.spurious_undos, r.st.cc.cwnd, r.st.cc.ssthresh);
    }
    mbps[vi] = sum / double(seeds);
  }
  std::printf("average goodput: %s %.2f Mbit/s, %s %.2f Mbit/s; ratio %.2fx\n", variants[0].label,
              mbps[0], variants[1].label, mbps[1], mbps[1] > 0 ? mbps[0] / mbps[1] : 0.0);
  if (!all_ok) {
    std::fprintf(stderr, "cc_bench: a transfer failed or delivered wrong bytes\n");
    return 1;
  }
  return 0;
}
