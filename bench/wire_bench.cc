// wire_bench.cc - wire-layer speed: checksum throughput, parse_frame rate, TCP segment build.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <vector>

#include "wire/checksum.h"
#include "wire/frame.h"
#include "wire/ipv4.h"
#include "wire/tcp.h"

namespace utcp {
namespace {

std::vector<uint8_t> random_bytes(size_t n) {
  std::vector<uint8_t> v(n);
  uint64_t x = 0x243f6a8885a308d3ULL;
  for (auto& b : v) {
    x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    b = uint8_t(x >> 56);
  }
  return v;
}

// RFC 1071 word-at-a-time, the baseline the 8-byte loop is measured against.
uint16_t naive_checksum(const uint8_t* p, size_t n) {
  uint32_t sum = 0;
  for (size_t i = 0; i + 1 < n; i += 2) sum += uint32_t(p[i]) << 8 | p[i + 1];
  if (n % 2) sum += uint32_t(p[n - 1]) << 8;
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return uint16_t(~sum);
}

void BM_Checksum(benchmark::State& state) {
  auto data = random_bytes(size_t(state.range(0)));
  for (auto _ : state) {
    benchmark::DoNotOptimize(checksum_fold(checksum_add(data)));
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * state.range(0));
}
BENCHMARK(BM_Checksum)->Arg(64)->Arg(1460)->Arg(65536);

void BM_ChecksumNaive(benchmark::State& state) {
  auto data = random_bytes(size_t(state.range(0)));
  for (auto _ : state) {
    benchmark::DoNotOptimize(naive_checksum(data.data(), data.size()));
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * state.range(0));
}
BENCHMARK(BM_ChecksumNaive)->Arg(64)->Arg(1460)->Arg(65536);

// A full-sized data segment as the stack builds it: Ethernet + IPv4 + TCP with timestamps.
std::vector<uint8_t> data_frame(size_t payload) {
  const Ipv4Addr src = Ipv4Addr::of(10, 0, 0, 1), dst = Ipv4Addr::of(10, 0, 0, 2);
  TcpRepr t;
  t.src_port = 40000;
  t.dst_port = 5001;
  t.seq = SeqNum(1);
  t.ack = SeqNum(2);
  t.flags = tcp_flags::kAck;
  t.window = 1000;
  t.options.timestamps = TcpTimestamps{1, 2};
  auto body = random_bytes(payload);
  t.payload = body;
  std::vector<uint8_t> f(14 + 20 + tcp_header_len(t) + payload);
  f[12] = 0x08;
  const size_t n = emit_tcp(t, src, dst, std::span(f).subspan(34));
  Ipv4Repr ip;
  ip.src = src;
  ip.dst = dst;
  ip.protocol = uint8_t(IpProto::kTcp);
  ip.payload_len = uint16_t(n);
  emit_ipv4(ip, std::span(f).subspan(14));
  return f;
}

void BM_ParseFrame(benchmark::State& state) {
  auto f = data_frame(size_t(state.range(0)));
  const bool verify = state.range(1) != 0;
  if (!parse_frame(f, true, nullptr)) state.SkipWithError("bench frame does not parse");
  for (auto _ : state) {
    benchmark::DoNotOptimize(parse_frame(f, verify, nullptr));
  }
  state.SetItemsProcessed(int64_t(state.iterations()));
  state.SetLabel(verify ? "verify checksums" : "no checksum");
}
BENCHMARK(BM_ParseFrame)->Args({0, 0})->Args({0, 1})->Args({1448, 0})->Args({1448, 1});

// The receive path's form: one ParsedFrame reused, filled in place.
void BM_ParseFrameInto(benchmark::State& state) {
  auto f = data_frame(size_t(state.range(0)));
  const bool verify = state.range(1) != 0;
  ParsedFrame out;
  for (auto _ : state) {
    benchmark::DoNotOptimize(parse_frame_into(f, verify, &out));
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(int64_t(state.iterations()));
  state.SetLabel(verify ? "verify checksums" : "no checksum");
}
BENCHMARK(BM_ParseFrameInto)->Args({0, 0})->Args({0, 1})->Args({1448, 0})->Args({1448, 1});

void BM_EmitTcpInPlace(benchmark::State& state) {
  const Ipv4Addr src = Ipv4Addr::of(10, 0, 0, 1), dst = Ipv4Addr::of(10, 0, 0, 2);
  TcpRepr t;
  t.flags = tcp_flags::kAck;
  t.options.timestamps = TcpTimestamps{1, 2};
  const size_t hlen = tcp_header_len(t);
  auto buf = random_bytes(hlen + size_t(state.range(0)));
  t.payload = std::span(buf).subspan(hlen);
  for (auto _ : state) {
    t.seq += 1;
    benchmark::DoNotOptimize(emit_tcp(t, src, dst, buf));
  }
  state.SetItemsProcessed(int64_t(state.iterations()));
}
BENCHMARK(BM_EmitTcpInPlace)->Arg(0)->Arg(1448);

}  // namespace
}  // namespace utcp

BENCHMARK_MAIN();
