// publish.cc - the writer and a reader of the uapi utcp_app_info seqlock.
#include "api/publish.h"

#include <arpa/inet.h>

#include <algorithm>
#include <atomic>
#include <cstring>

namespace utcp {
namespace {

uint32_t clamp32(uint64_t v) { return v > UINT32_MAX ? UINT32_MAX : uint32_t(v); }
uint32_t micros(Duration d) { return d.count() < 0 ? 0 : clamp32(uint64_t(d.count())); }

}  // namespace

void publish_app_info(utcp_app_info* dst, const Connection& c, uint32_t pid, Instant now) {
  utcp_app_info v{};
  v.magic = UTCP_APP_INFO_MAGIC;
  v.pid = pid;
  v.state = uint8_t(c.state());
  v.flags = uint8_t((c.sack_enabled() ? UTCP_APPF_SACK : 0) | (c.ts_enabled() ? UTCP_APPF_TIMESTAMPS : 0) |
                    (c.ws_enabled() ? UTCP_APPF_WSCALE : 0) | (c.in_recovery() ? UTCP_APPF_RECOVERY : 0));
  v.snd_wscale = c.snd_wnd_shift();
  v.rcv_wscale = c.rcv_wnd_shift();
  const FourTuple& t = c.tuple();
  v.local_ip = htonl(t.local_ip.v);
  v.remote_ip = htonl(t.remote_ip.v);
  v.local_port = htons(t.local_port);
  v.remote_port = htons(t.remote_port);
  v.snd_una = c.snd_una().raw();
  v.snd_nxt = c.snd_nxt().raw();
  v.rcv_nxt = c.rcv_nxt().raw();
  v.snd_wnd = c.snd_wnd();
  v.rcv_wnd = c.rcv_wnd();
  v.snd_mss = c.snd_mss();
  v.rcv_mss = c.rcv_mss();
  v.cwnd = c.cwnd();
  v.ssthresh = c.ssthresh();
  v.srtt_us = micros(c.srtt());
  v.rttvar_us = micros(c.rttvar());
  v.rto_us = micros(c.rto());
  v.send_queue = clamp32(c.send_queued());
  v.recv_queue = clamp32(c.recv_queued());
  const Connection::Stats& s = c.counters();
  v.bytes_sent = s.bytes_out;
  v.bytes_received = s.bytes_in;
  v.segs_out = s.segs_out;
  v.segs_in = s.segs_in;
  v.retransmits = s.retransmits;
  v.timeouts = s.timeouts;
  std::string_view cc = c.congestion();
  std::memcpy(v.congestion, cc.data(), std::min(cc.size(), sizeof v.congestion - 1));
  v.updated_us = uint64_t(now.time_since_epoch().count());

  // Seqlock writer: odd, fields, even. The reader (the module's ioctl) copies between
  // two reads of seq and retries when they differ or are odd.
  std::atomic_ref<uint32_t> seq(dst->seq);
  const uint32_t s0 = seq.load(std::memory_order_relaxed);
  seq.store(s0 | 1, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_release);
  v.seq = s0 | 1;
  std::memcpy(dst, &v, sizeof v);
  seq.store((s0 | 1) + 1, std::memory_order_release);
}

bool read_app_info(const utcp_app_info* src, utcp_app_info* out) {
  auto* s = const_cast<utcp_app_info*>(src);
  std::atomic_ref<uint32_t> seq(s->seq);
  for (int i = 0; i < 8; ++i) {
    uint32_t a = seq.load(std::memory_order_acquire);
    if (a & 1) continue;
    std::memcpy(out, src, sizeof *out);
    std::atomic_thread_fence(std::memory_order_acquire);
    if (seq.load(std::memory_order_relaxed) != a) continue;
    out->seq = a;
    return out->magic == UTCP_APP_INFO_MAGIC;
  }
  return false;
}

const char* app_state_name(uint8_t state) {
  return state <= uint8_t(TcpState::kTimeWait) ? to_string(TcpState(state)) : "?";
}

}  // namespace utcp
