// tcp_bench.cc - segments/s through the TCP state machine, and bulk goodput between two
// stacks over a lossless in-memory link on one core.
#include <benchmark/benchmark.h>

#include <memory>
#include <vector>

#include "api/stack.h"
#include "device/gso.h"
#include "device/link.h"
#include "tcp/connection.h"

namespace {

using namespace utcp;
using namespace utcp::tcp_flags;

class NullSink : public SegmentSink {
 public:
  bool send(const FourTuple&, const TcpRepr&, std::span<const uint8_t> p1,
            std::span<const uint8_t> p2) override {
    bytes += p1.size() + p2.size();
    ++segs;
    return true;
  }
  uint64_t bytes = 0, segs = 0;
};

// Receive path: in-order 1460-byte segments into an ESTABLISHED connection; the reader
// drains after each, and every other segment draws an ACK (dispatch).
void BM_ReceiveSegments(benchmark::State& state) {
  TcpConfig cfg;
  FourTuple t{Ipv4Addr::of(10, 0, 0, 1), 80, Ipv4Addr::of(10, 0, 0, 2), 40000};
  Connection c(cfg, t, 1460);
  NullSink out;
  Instant now(Duration(1'000'000));
  c.open_passive(SeqNum(1000));
  TcpRepr syn;
  syn.src_port = 40000;
  syn.dst_port = 80;
  syn.seq = SeqNum(5000);
  syn.flags = kSyn;
  syn.window = 65535;
  syn.options.mss = 1460;
  c.process(now, syn, out);
  c.dispatch(now, out);
  TcpRepr ack = syn;
  ack.flags = kAck;
  ack.options = {};
  ack.seq = SeqNum(5001);
  ack.ack = SeqNum(1001);
  c.process(now, ack, out);
  std::vector<uint8_t> payload(1460, 0x5a), sink(1460);
  TcpRepr d = ack;
  d.payload = payload;
  for (auto _ : state) {
    c.process(now, d, out);
    c.recv(sink);
    c.dispatch(now, out);
    d.seq += 1460;
  }
  state.SetItemsProcessed(int64_t(state.iterations()));
  state.SetBytesProcessed(int64_t(state.iterations()) * 1460);
  state.counters["acks_per_seg"] = double(out.segs) / double(state.iterations());
}
BENCHMARK(BM_ReceiveSegments);

// Send path: queue data, dispatch MSS segments, take the ACK for them.
void BM_SendSegments(benchmark::State& state) {
  TcpConfig cfg;
  cfg.nodelay = true;
  FourTuple t{Ipv4Addr::of(10, 0, 0, 1), 40000, Ipv4Addr::of(10, 0, 0, 2), 80};
  Connection c(cfg, t, 1460);
  NullSink out;
  Instant now(Duration(1'000'000));
  c.open_active(now, SeqNum(1000));
  c.dispatch(now, out);
  TcpRepr synack;
  synack.src_port = 80;
  synack.dst_port = 40000;
  synack.seq = SeqNum(5000);
  synack.ack = SeqNum(1001);
  synack.flags = kSyn | kAck;
  synack.window = 65535;
  synack.options.mss = 1460;
  c.process(now, synack, out);
  c.dispatch(now, out);
  std::vector<uint8_t> data(1460 * 8, 0x33);
  TcpRepr ack = synack;
  ack.flags = kAck;
  ack.options = {};
  ack.seq = SeqNum(5001);
  uint64_t segs_before = out.segs, bytes_before = out.bytes;
  for (auto _ : state) {
    c.send(data);
    c.dispatch(now, out);
    ack.ack = c.snd_nxt();
    c.process(now, ack, out);
  }
  state.SetItemsProcessed(int64_t(out.segs - segs_before));
  state.SetBytesProcessed(int64_t(out.bytes - bytes_before));
  state.counters["segs_per_iter"] = double(out.segs - segs_before) / double(state.iterations());
}
BENCHMARK(BM_SendSegments);

// Bulk goodput between two stacks over a lossless LinkPair (no delay, no bandwidth
// limit): everything runs on this one core, so this is the stacks' CPU cost per byte,
// including building, checksumming, parsing and copying every 1460-byte segment.
// Second argument 1: the sender's device takes TSO frames (SoftGso, which cuts them in
// software here, on this core too: what the kernel's GSO does for KmodDevice).
void BM_BulkTransfer(benchmark::State& state) {
  const size_t rcvbuf = size_t(state.range(0));
  const bool gso = state.range(1) != 0;
  const Ipv4Addr ia = Ipv4Addr::of(10, 0, 0, 1), ib = Ipv4Addr::of(10, 0, 0, 2);
  const MacAddr ma{{2, 0, 0, 0, 0, 1}}, mb{{2, 0, 0, 0, 0, 2}};
  LinkConfig lc;
  lc.tx_ring = 1024;
  LinkPair link(lc);
  StackConfig ca, cb;
  ca.ip = ia;
  ca.mac = ma;
  cb.ip = ib;
  cb.mac = mb;
  ca.tcp.rcvbuf = cb.tcp.rcvbuf = uint32_t(rcvbuf);
  ca.tcp.sndbuf = cb.tcp.sndbuf = uint32_t(rcvbuf);
  SoftGso soft(link.a());
  Stack a(gso ? static_cast<Device*>(&soft) : &link.a(), ca), b(&link.b(), cb);
  a.add_neighbor(ib, mb);
  b.add_neighbor(ia, ma);
  Instant now(Duration(1'000'000));
  int l = b.socket();
  b.bind(l, 80);
  b.listen(l, 1);
  int c = a.socket();
  a.connect(c, ib, 80, now);
  int s = -1;
  while (s < 0) {
    a.poll(now);
    b.poll(now);
    s = b.accept(l);
  }
  std::vector<uint8_t> data(64 * 1024, 0x42), in(64 * 1024);
  uint64_t got = 0;
  for (auto _ : state) {
    // One round: write what fits, let both stacks run, read everything.
    while (a.write(c, data) > 0) {
    }
    a.poll(now);
    b.poll(now);
    int64_t n;
    while ((n = b.read(s, in)) > 0) got += uint64_t(n);
    now += Duration(10);  // lets delayed ACK timers run on a moving clock
  }
  state.SetBytesProcessed(int64_t(got));
  state.counters["payload_bytes"] = double(got);  // the whole run's, for profile-report
  state.counters["goodput_Gbps"] =
      benchmark::Counter(double(got) * 8 / 1e9, benchmark::Counter::kIsRate);
  if (gso && a.stats().gso_frames)
    state.counters["segs_per_frame"] = double(a.stats().gso_segments) / double(a.stats().gso_frames);
  a.close(c);
  b.close(s);
  b.close(l);
}
BENCHMARK(BM_BulkTransfer)
    ->Args({64 * 1024, 0})
    ->Args({256 * 1024, 0})
    ->Args({256 * 1024, 1})
    ->UseRealTime();
// A fixed amount of work, for bench/profile-report (instruction counts that repeat).
BENCHMARK(BM_BulkTransfer)->Name("BM_BulkTransfer_profile")->Args({256 * 1024, 0})->Iterations(2000);

}  // namespace

BENCHMARK_MAIN();
