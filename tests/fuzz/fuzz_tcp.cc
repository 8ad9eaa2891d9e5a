// fuzz_tcp.cc - libFuzzer target: one utcp::Stack driven by a byte-coded script of peer segments, clock steps and socket calls, invariants checked after every step.
//
// Script (all fields one byte unless said; a script that runs out of bytes reads zeros
// and stops at the next record):
//   header  scenario cfg peer_port peer_iss peer_ts app_bytes peer_bytes
//     scenario % 4: 0 listening socket on port 80; 1 active open to 10.0.0.2:80 (the SYN
//       is out, the script must answer it); 2 established by a passive open, 3 by an
//       active open (the driver runs the handshake), then app_bytes*64 queued by the
//       application and peer_bytes*64 sent by the peer.
//     cfg bits: 0 window scaling, 1 timestamps, 2 SACK (what the stack offers), 3 nodelay,
//       4 keepalive (10 s idle), 5-6 buffers 4 KiB/16 KiB/64 KiB/1 MiB, 7 the driver's
//       handshake offers options too.
//   records, opcode % 12:
//     0 ms: advance ms                  1 q: advance q*250 ms
//     2 segment: flags seqmode seqdelta [u32] ackmode ackdelta [u32] win opts param len
//        seq base (mode&3): peer's next / stack's last ACK / peer ISS / the u32;
//        ack base: stack's highest sequence sent / stack ISS+1 / peer's last ACK / the u32;
//        delta is a signed byte times 1, 2^8, 2^16 or 2^24 (mode bits 2-3).
//        opts bits: 0 MSS=param*8, 1 WS=param&15, 2 SACK-permitted, 3 TSopt, 4 TSval
//        stale by 2^31, 5 SACK blocks (1+param>>6) after the ACK, 6 URG=param, 7 len*8.
//        The payload is peer_byte(seq) so reads can be checked byte for byte.
//     3 n bytes: raw IPv4 packet      4 n bytes: same, IPv4 and TCP checksums repaired
//     5 h n: write n*64+1 bytes       6 h n: read up to n*64+1 bytes
//     7 h how: shutdown               8 h: close        9: accept
//     10 h: SO_LINGER {1,0}           11: advance to the stack's next timer
//   (h picks one of the handles the script holds, listener included, modulo their count.)
// At the end every handle is closed and time runs past every timer: nothing may be left.
#include <algorithm>
#include <cstdarg>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <optional>
#include <span>
#include <tuple>
#include <vector>

#include "api/raw_device.h"
#include "api/stack.h"
#include "tcp/live.h"
#include "wire/bytes.h"
#include "wire/checksum.h"
#include "wire/ethernet.h"
#include "wire/frame.h"
#include "wire/ipv4.h"
#include "wire/tcp.h"

namespace {

using namespace utcp;
using namespace utcp::tcp_flags;

[[noreturn]] void fail(const char* fmt, ...) {
  std::va_list ap;
  va_start(ap, fmt);
  std::fprintf(stderr, "fuzz_tcp: invariant broken: ");
  std::vfprintf(stderr, fmt, ap);
  std::fprintf(stderr, "\n");
  va_end(ap);
  std::abort();
}
#define CHECK(c, ...) \
  do {                \
    if (!(c)) fail(#c " " __VA_ARGS__); \
  } while (0)

constexpr Ipv4Addr kLocal = Ipv4Addr::of(10, 0, 0, 1), kPeer = Ipv4Addr::of(10, 0, 0, 2);
constexpr uint16_t kServicePort = 80;
constexpr uint32_t kMtu = 1500;
const MacAddr kStackMac{{0x02, 0, 0, 0, 0, 0x01}}, kPeerMac{{0x02, 0, 0, 0, 0, 0x02}};

// What the scripted peer sends is a function of its sequence number, what the application
// writes a function of the stream offset: both ends' data can be checked without storing it.
// FUZZ_TCP_TRACE=1 prints every segment in and out, to read a crashing input.
const bool kTrace = std::getenv("FUZZ_TCP_TRACE") != nullptr;

void trace(const char* dir, Instant now, const TcpRepr& s) {
  if (!kTrace) return;
  std::fprintf(stderr, "%12lld %s %u>%u seq %u ack %u flags %#04x win %u len %zu%s\n",
               (long long)now.time_since_epoch().count(), dir, s.src_port, s.dst_port,
               s.seq.raw(), s.ack.raw(), s.flags, s.window, s.payload.size(),
               s.options.timestamps ? " ts" : "");
}

uint8_t peer_byte(SeqNum s) { return uint8_t((s.raw() * 2654435761u) >> 24); }
uint8_t app_byte(uint64_t k) { return uint8_t(k * 131 + (k >> 9) + 7); }

class Script {
 public:
  explicit Script(std::span<const uint8_t> b) : b_(b) {}
  bool done() const { return pos_ >= b_.size(); }
  uint8_t u8() { return pos_ < b_.size() ? b_[pos_++] : 0; }
  uint32_t u32() {
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v = v << 8 | u8();
    return v;
  }
  std::span<const uint8_t> take(size_t n) {
    n = std::min(n, b_.size() - pos_);
    auto s = b_.subspan(pos_, n);
    pos_ += n;
    return s;
  }

 private:
  std::span<const uint8_t> b_;
  size_t pos_ = 0;
};

using TupleKey = std::tuple<uint16_t, uint32_t, uint16_t>;  // local port, remote ip, remote port
TupleKey key_of(const FourTuple& t) { return {t.local_port, t.remote_ip.v, t.remote_port}; }

// One connection as the peer sees it, per 4-tuple; an incarnation starts at each new ISS.
struct TupleTrack {
  std::optional<SeqNum> iss;   // the stack's SYN
  uint64_t written = 0;        // bytes the application queued in this incarnation
  uint64_t peer_payload = 0;   // payload bytes ever injected on this tuple (bounds reads)
  SeqNum stack_max;            // highest sequence the stack sent, + 1
  std::optional<SeqNum> stack_ack;
  uint32_t stack_tsval = 0;
  Instant last_out;            // when the stack last sent on it, and whether a window probe
  bool last_was_probe = false;
};

// Known engine gap (found by this target, see the report of issue 4 item 7): an orphaned
// connection whose peer advertised a zero window and then fell silent sends window probes
// forever; RFC 1122 §4.2.2.17 lets it keep probing only while the peer ACKs them. While
// that stands the final leak check accepts connections whose last act was such a probe.
constexpr bool kTolerateEndlessPersist = false;

struct Handle {
  int h;
  bool listener = false;
  std::optional<FourTuple> tuple;
  std::optional<SeqNum> irs;   // learnt once the connection is synchronized
  uint64_t read = 0;
};

class Driver {
 public:
  explicit Driver(Script& s) : s_(s), dev_(kMtu, kStackMac, kPeerMac) {}

  void run();

 private:
  StackConfig config(uint8_t cfg) const;
  void setup();
  void record();
  void step() {
    stack_->poll(now_);
    drain();
  }
  void drain();
  void check_emitted(std::span<const uint8_t> pkt);
  void inject_tcp(TcpRepr seg);
  void inject_raw(std::span<const uint8_t> pkt, bool repair);
  void segment_record();
  Handle* pick(bool conn_only);
  void learn_irs();
  void do_write(Handle& hd, size_t n);
  void do_read(Handle& hd, size_t n);
  TupleTrack& main_track() { return tracks_[key_of(main_)]; }
  void finish();

  Script& s_;
  RawDevice dev_;
  std::optional<Stack> stack_;
  Instant now_ = Instant(Duration(1'000'000'000));
  std::vector<Handle> handles_;
  std::map<TupleKey, TupleTrack> tracks_;
  FourTuple main_;  // the tuple segment records speak on
  bool offer_opts_ = false;
  SeqNum peer_iss_, peer_nxt_, peer_ack_;
  uint32_t peer_ts_ = 0;
  Instant peer_ts_base_;
  // RST replies to a segment without a connection carry SEG.ACK or 0 (RFC 9293 §3.10.7.1).
  std::vector<SeqNum> rst_exempt_;
  bool raw_data_seen_ = false;  // raw packets may carry any payload: content checks off
};

StackConfig Driver::config(uint8_t cfg) const {
  StackConfig c;
  c.ip = kLocal;
  c.mac = kStackMac;
  c.default_neighbor = kPeerMac;
  c.isn_key = std::array<uint8_t, 16>{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
  c.tcp.window_scaling = cfg & 1;
  c.tcp.timestamps = cfg & 2;
  c.tcp.sack = cfg & 4;
  c.tcp.nodelay = cfg & 8;
  c.tcp.keepalive = cfg & 16;
  c.tcp.keepalive_idle = Duration(10'000'000);
  c.tcp.keepalive_interval = Duration(1'000'000);
  c.tcp.keepalive_count = 3;
  static constexpr uint32_t kBufs[4] = {4096, 16384, 65536, 1u << 20};
  c.tcp.rcvbuf = c.tcp.sndbuf = kBufs[(cfg >> 5) & 3];
  // Short TIME-WAIT and FIN-WAIT-2 keep the final drain quick; the states are the same.
  c.tcp.msl = Duration(1'000'000);
  c.tcp.fin_wait2_timeout = Duration(5'000'000);
  return c;
}

void Driver::run() {
  setup();
  while (!s_.done()) record();
  finish();
}

void Driver::setup() {
  uint8_t scenario = s_.u8() % 4, cfg = s_.u8();
  uint16_t peer_port = uint16_t(40000 + s_.u8());
  peer_iss_ = SeqNum((uint32_t(s_.u8()) << 24) - 100);  // 0: just below the wrap
  peer_nxt_ = peer_iss_;
  peer_ts_ = (uint32_t(s_.u8()) << 24) - 50;
  peer_ts_base_ = now_;
  size_t app_bytes = size_t(s_.u8()) * 64, peer_bytes = size_t(s_.u8()) * 64;
  offer_opts_ = cfg & 0x80;
  stack_.emplace(&dev_, config(cfg));

  bool passive = scenario == 0 || scenario == 2;
  if (passive) {
    int l = stack_->socket();
    CHECK(stack_->bind(l, kServicePort) == 0);
    CHECK(stack_->listen(l, 8) == 0);
    handles_.push_back({l, true, {}, {}, 0});
    main_ = {kLocal, kServicePort, kPeer, peer_port};
  } else {
    int c = stack_->socket();
    CHECK(stack_->connect(c, kPeer, kServicePort, now_) == -EINPROGRESS);
    main_ = {kLocal, uint16_t(stack_->local_port(c)), kPeer, kServicePort};
    handles_.push_back({c, false, main_, {}, 0});
  }
  step();
  if (scenario < 2) return;

  // The driver's handshake: RFC 9293 §3.5 figure 2 from the peer's side.
  TcpRepr syn;
  syn.src_port = main_.remote_port;
  syn.dst_port = main_.local_port;
  syn.seq = peer_iss_;
  syn.window = 65535;
  syn.options.mss = 1460;
  if (offer_opts_) {
    syn.options.window_scale = 7;
    syn.options.sack_permitted = true;
    syn.options.timestamps = TcpTimestamps{peer_ts_, 0};
  }
  if (passive) {
    syn.flags = kSyn;
    inject_tcp(syn);
    TupleTrack& t = main_track();
    CHECK(t.iss.has_value(), "(no SYN-ACK to the driver's SYN)");
    TcpRepr ack = syn;
    ack.flags = kAck;
    ack.seq = peer_iss_ + 1;
    ack.ack = *t.iss + 1;
    ack.options = {};
    if (offer_opts_) ack.options.timestamps = TcpTimestamps{peer_ts_, t.stack_tsval};
    inject_tcp(ack);
    int h = stack_->accept(handles_[0].h);
    CHECK(h >= 0, "(accept after the handshake: %d)", h);
    handles_.push_back({h, false, main_, {}, 0});
  } else {
    TupleTrack& t = main_track();
    CHECK(t.iss.has_value(), "(connect sent no SYN)");
    syn.flags = kSyn | kAck;
    syn.ack = *t.iss + 1;
    if (offer_opts_) syn.options.timestamps = TcpTimestamps{peer_ts_, t.stack_tsval};
    inject_tcp(syn);
  }
  learn_irs();
  Handle& conn = handles_.back();
  if (app_bytes) do_write(conn, app_bytes);
  for (size_t off = 0; off < peer_bytes;) {
    size_t n = std::min<size_t>(1000, peer_bytes - off);
    TcpRepr d;
    d.src_port = main_.remote_port;
    d.dst_port = main_.local_port;
    d.seq = peer_nxt_;
    d.ack = peer_ack_;
    d.flags = kAck | kPsh;
    d.window = 65535;
    if (offer_opts_) d.options.timestamps = TcpTimestamps{peer_ts_, main_track().stack_tsval};
    std::vector<uint8_t> p(n);
    for (size_t i = 0; i < n; ++i) p[i] = peer_byte(d.seq + uint32_t(i));
    d.payload = p;
    inject_tcp(d);
    off += n;
  }
  step();
}

void Driver::record() {
  uint8_t op = s_.u8() % 12;
  switch (op) {
    case 0:
      now_ += Duration(int64_t(s_.u8()) * 1000);
      break;
    case 1:
      now_ += Duration(int64_t(s_.u8()) * 250'000);
      break;
    case 2:
      segment_record();
      break;
    case 3:
    case 4: {
      bool repair = op == 4;
      size_t n = s_.u8();
      inject_raw(s_.take(n), repair);
      break;
    }
    case 5:
      if (Handle* hd = pick(true)) do_write(*hd, size_t(s_.u8()) * 64 + 1);
      break;
    case 6:
      if (Handle* hd = pick(true)) do_read(*hd, size_t(s_.u8()) * 64 + 1);
      break;
    case 7:
      if (Handle* hd = pick(true)) stack_->shutdown(hd->h, s_.u8() % 3);
      break;
    case 8:
      if (Handle* hd = pick(false)) {
        stack_->close(hd->h);
        handles_.erase(handles_.begin() + (hd - handles_.data()));
      }
      break;
    case 9:
      for (auto& hd : handles_) {
        if (!hd.listener) continue;
        FourTuple t;
        int h = stack_->accept(hd.h, &t);
        if (h >= 0) {
          handles_.push_back({h, false, t, {}, 0});
          break;
        }
      }
      break;
    case 10:
      if (Handle* hd = pick(true)) {
        LingerOpt lo{1, 0};
        stack_->setsockopt(hd->h, SockOpt::kLinger, &lo, sizeof lo, now_);
      }
      break;
    case 11: {
      Instant at = stack_->poll_at();
      if (at != kInstantNever && at > now_) now_ = at;
      break;
    }
  }
  step();
  learn_irs();
}

Handle* Driver::pick(bool conn_only) {
  uint8_t i = s_.u8();
  std::vector<Handle*> c;
  for (auto& h : handles_)
    if (!conn_only || !h.listener) c.push_back(&h);
  return c.empty() ? nullptr : c[i % c.size()];
}

void Driver::learn_irs() {
  for (auto& hd : handles_) {
    if (hd.listener || hd.irs) continue;
    Connection* c = stack_->connection(hd.h);
    if (c && c->is_synchronized()) hd.irs = c->irs();
  }
}

void Driver::do_write(Handle& hd, size_t n) {
  if (!hd.tuple) return;
  TupleTrack& t = tracks_[key_of(*hd.tuple)];
  std::vector<uint8_t> buf(n);
  for (size_t i = 0; i < n; ++i) buf[i] = app_byte(t.written + i);
  int64_t r = stack_->write(hd.h, buf);
  CHECK(r <= int64_t(n), "(write took %lld of %zu)", (long long)r, n);
  if (r > 0) t.written += uint64_t(r);
}

void Driver::do_read(Handle& hd, size_t n) {
  std::vector<uint8_t> buf(n);
  int64_t r = stack_->read(hd.h, buf);
  if (r <= 0) return;
  CHECK(r <= int64_t(n));
  CHECK(hd.tuple.has_value());
  const TupleTrack& t = tracks_[key_of(*hd.tuple)];
  CHECK(hd.read + uint64_t(r) <= t.peer_payload, "(read %llu, peer sent %llu)",
        (unsigned long long)(hd.read + r), (unsigned long long)t.peer_payload);
  learn_irs();
  CHECK(hd.irs.has_value(), "(data read before the connection was synchronized)");
  if (!raw_data_seen_) {
    // Stream offset k is sequence IRS+1+k (RFC 9293 §3.4: the SYN occupies IRS).
    for (int64_t i = 0; i < r; ++i) {
      SeqNum s = *hd.irs + 1 + uint32_t(hd.read + uint64_t(i));
      if (buf[size_t(i)] != peer_byte(s))
        fail("read byte %llu is %u, the peer sent %u", (unsigned long long)(hd.read + i),
             buf[size_t(i)], peer_byte(s));
    }
  }
  hd.read += uint64_t(r);
}

SeqNum scaled(SeqNum base, uint8_t mode, uint8_t delta) {
  static constexpr int32_t kScale[4] = {1, 1 << 8, 1 << 16, 1 << 24};
  return base + uint32_t(int32_t(int8_t(delta)) * kScale[(mode >> 2) & 3]);
}

void Driver::segment_record() {
  TupleTrack& t = main_track();
  TcpRepr seg;
  seg.src_port = main_.remote_port;
  seg.dst_port = main_.local_port;
  seg.flags = s_.u8();
  uint8_t sm = s_.u8(), sd = s_.u8();
  SeqNum sb = (sm & 3) == 0 ? peer_nxt_
            : (sm & 3) == 1 ? t.stack_ack.value_or(peer_nxt_)
            : (sm & 3) == 2 ? peer_iss_
                            : SeqNum(s_.u32());
  seg.seq = scaled(sb, sm, sd);
  uint8_t am = s_.u8(), ad = s_.u8();
  SeqNum ab = (am & 3) == 0 ? t.stack_max
            : (am & 3) == 1 ? t.iss.value_or(SeqNum(0)) + 1
            : (am & 3) == 2 ? peer_ack_
                            : SeqNum(s_.u32());
  seg.ack = scaled(ab, am, ad);
  uint8_t w = s_.u8();
  seg.window = uint16_t(w * 257);
  uint8_t opts = s_.u8(), param = s_.u8();
  size_t len = s_.u8();
  if (opts & 1) seg.options.mss = uint16_t(param * 8);
  if (opts & 2) seg.options.window_scale = uint8_t(param & 15);
  seg.options.sack_permitted = opts & 4;
  if (opts & 8) {
    uint32_t tsval = peer_ts_ + uint32_t((now_ - peer_ts_base_).count() / 1000);
    // RFC 7323 §5.3: a TSval 2^31 behind TS.Recent is what PAWS must refuse.
    if (opts & 16) tsval -= 0x80000000u;
    seg.options.timestamps = TcpTimestamps{tsval, t.stack_tsval};
  }
  if (opts & 32) {
    seg.options.sack_count = uint8_t(1 + (param >> 6));
    for (uint8_t i = 0; i < seg.options.sack_count; ++i) {
      SeqNum l = seg.ack + uint32_t(param & 63) * 16 * (i + 1u);
      seg.options.sack[i] = {l, l + 64 * (i + 1u)};
    }
  }
  if (opts & 64) seg.urgent = param;
  if (opts & 128) len *= 8;
  len = std::min(len, kMtu - Ipv4Repr::kHeaderLen - tcp_header_len(seg));
  std::vector<uint8_t> p(len);
  SeqNum data_seq = seg.seq + (seg.has(kSyn) ? 1 : 0);
  for (size_t i = 0; i < len; ++i) p[i] = peer_byte(data_seq + uint32_t(i));
  seg.payload = p;
  inject_tcp(seg);
}

void Driver::inject_tcp(TcpRepr seg) {
  std::vector<uint8_t> pkt(kMtu);
  size_t tl = emit_tcp(seg, kPeer, kLocal, std::span(pkt).subspan(Ipv4Repr::kHeaderLen));
  CHECK(tl > 0, "(driver built a segment emit_tcp refused)");
  Ipv4Repr ip;
  ip.src = kPeer;
  ip.dst = kLocal;
  ip.protocol = uint8_t(IpProto::kTcp);
  ip.payload_len = uint16_t(tl);
  CHECK(emit_ipv4(ip, pkt) == Ipv4Repr::kHeaderLen);
  pkt.resize(Ipv4Repr::kHeaderLen + tl);

  trace("in ", now_, seg);
  TupleTrack& t = tracks_[key_of({kLocal, seg.dst_port, kPeer, seg.src_port})];
  t.peer_payload += seg.payload.size();
  if (seg.has(kAck)) rst_exempt_.push_back(seg.ack);
  SeqNum end = seg.seq + seg.seg_len();
  if (end > peer_nxt_) peer_nxt_ = end;
  if (seg.has(kAck)) peer_ack_ = seg.ack;
  CHECK(dev_.inject(pkt));
  step();
}

void Driver::inject_raw(std::span<const uint8_t> bytes, bool repair) {
  std::vector<uint8_t> pkt(bytes.begin(), bytes.end());
  if (repair && pkt.size() >= Ipv4Repr::kHeaderLen) {
    size_t ihl = size_t(pkt[0] & 15) * 4;
    if (ihl >= Ipv4Repr::kHeaderLen && ihl <= pkt.size()) {
      pkt[10] = pkt[11] = 0;
      wire::store_be16(pkt.data() + 10, checksum_fold(checksum_add(std::span(pkt).first(ihl))));
      size_t total = wire::load_be16(pkt.data() + 2);
      if (pkt[9] == uint8_t(IpProto::kTcp) && total <= pkt.size() && total >= ihl + 20) {
        // RFC 9293 §3.1: pseudo-header (src, dst, zero, protocol, TCP length) + segment.
        std::span<uint8_t> seg = std::span(pkt).subspan(ihl, total - ihl);
        seg[16] = seg[17] = 0;
        uint8_t pseudo[12];
        std::memcpy(pseudo, pkt.data() + 12, 8);
        pseudo[8] = 0;
        pseudo[9] = uint8_t(IpProto::kTcp);
        wire::store_be16(pseudo + 10, uint16_t(seg.size()));
        wire::store_be16(seg.data() + 16, checksum_fold(checksum_add(seg, checksum_add(pseudo))));
      }
    }
  }
  // Bookkeeping only for what the stack itself would accept (same checked parsers).
  std::span<const uint8_t> l4;
  if (auto ip = parse_ipv4(pkt, &l4, true); ip && ip->protocol == uint8_t(IpProto::kTcp)) {
    if (auto seg = parse_tcp(l4, ip->src, ip->dst, true)) {
      trace("raw", now_, *seg);
      TupleTrack& t = tracks_[key_of({ip->dst, seg->dst_port, ip->src, seg->src_port})];
      t.peer_payload += seg->payload.size();
      if (!seg->payload.empty()) raw_data_seen_ = true;
      if (seg->has(kAck)) rst_exempt_.push_back(seg->ack);
    }
  }
  if (dev_.inject(pkt)) step();
}

void Driver::drain() {
  for (std::span<const uint8_t> p = dev_.front(); !p.empty(); p = dev_.front()) {
    check_emitted(p);
    dev_.pop();
  }
  rst_exempt_.clear();
}

void Driver::check_emitted(std::span<const uint8_t> pkt) {
  // The device strips Ethernet; put it back so the whole frame goes through parse_frame.
  std::vector<uint8_t> frame(EthernetRepr::kHeaderLen + pkt.size());
  emit_ethernet({kPeerMac, kStackMac, uint16_t(EtherType::kIpv4)}, frame);
  std::copy(pkt.begin(), pkt.end(), frame.begin() + EthernetRepr::kHeaderLen);
  ParseError err = ParseError::kOk;
  auto f = parse_frame(frame, true, &err);
  CHECK(f.has_value(), "(the stack emitted a frame parse_frame refuses: %s)", to_string(err));
  CHECK(f->tcp.has_value(), "(the stack emitted a non-TCP packet)");
  CHECK(f->ip.src == kLocal);
  const TcpRepr& seg = *f->tcp;
  // parse_tcp again on its own, as a peer's stack would see the segment.
  auto again = parse_tcp(f->ip_payload, f->ip.src, f->ip.dst, true, &err);
  CHECK(again.has_value(), "(parse_tcp refuses an emitted segment: %s)", to_string(err));

  trace("out", now_, seg);
  TupleTrack& t = tracks_[key_of({kLocal, seg.src_port, f->ip.dst, seg.dst_port})];
  if (seg.has(kRst)) {
    // RFC 9293 §3.10.7.1/§3.10.7.2/§3.10.7.3: a RST answering a segment takes SEG.ACK as
    // its sequence number, or 0 with an ACK when the segment had none.
    bool answer = std::find(rst_exempt_.begin(), rst_exempt_.end(), seg.seq) != rst_exempt_.end();
    bool zero = seg.seq == SeqNum(0) && seg.has(kAck) && seg.payload.empty();
    if (answer || zero) return;
  }
  if (seg.has(kSyn) && t.iss != seg.seq) {
    // A new incarnation (or the first): its own ISS and an empty send stream.
    t.iss = seg.seq;
    t.written = 0;
    t.stack_max = seg.seq;
    t.stack_ack.reset();
  }
  CHECK(t.iss.has_value(), "(segment seq %u flags %#x on a tuple with no SYN)", seg.seq.raw(),
        seg.flags);
  // Everything the stack sends lies in [ISS, ISS + written + 2]: SYN, data, FIN.
  int64_t off = int64_t(uint32_t(seg.seq - *t.iss));
  int64_t end = off + int64_t(seg.seg_len());
  CHECK(end <= int64_t(t.written) + 2, "(seq ISS+%lld..+%lld, app wrote %llu)", (long long)off,
        (long long)end, (unsigned long long)t.written);
  // The data is what the application wrote, at the right offset (the SYN takes ISS).
  int64_t data_off = off + (seg.has(kSyn) ? 1 : 0) - 1;
  for (size_t i = 0; i < seg.payload.size(); ++i) {
    int64_t k = data_off + int64_t(i);
    CHECK(k >= 0 && k < int64_t(t.written), "(data byte at offset %lld)", (long long)k);
    if (seg.payload[i] != app_byte(uint64_t(k)))
      fail("sent byte at offset %lld is %u, the application wrote %u", (long long)k,
           seg.payload[i], app_byte(uint64_t(k)));
  }
  SeqNum e = seg.seq + seg.seg_len();
  if (e > t.stack_max) t.stack_max = e;
  if (seg.has(kAck)) t.stack_ack = seg.ack;
  if (seg.options.timestamps) t.stack_tsval = seg.options.timestamps->tsval;
  t.last_out = now_;
  t.last_was_probe = seg.payload.size() == 1 && !seg.has(kSyn | kFin | kRst);
}

void Driver::finish() {
  // Kept to describe a connection that would not die (orphans stay in the stack's table).
  for (auto& hd : handles_) stack_->close(hd.h);
  handles_.clear();
  step();
  // Nobody answers now: retransmissions, persist probes, FIN-WAIT-2 and TIME-WAIT must
  // all run out. Linux-like limits end within hours of virtual time.
  const Instant limit = now_ + Duration(int64_t(6) * 3600 * 1'000'000);
  for (int polls = 0; stack_->connection_count() > 0 && polls < 100000; ++polls) {
    Instant at = stack_->poll_at();
    if (at == kInstantNever || at > limit) break;
    if (at > now_) now_ = at;
    step();
  }
  size_t probing = 0;
  for (const auto& [k, t] : tracks_)
    if (t.last_was_probe && now_ - t.last_out <= 2 * stack_->config().tcp.rto_max) ++probing;
  bool tolerated = kTolerateEndlessPersist && probing >= stack_->connection_count();
  if (!tolerated) {
    CHECK(stack_->connection_count() == 0,
          "(%zu connections alive 6 h after closing everything)", stack_->connection_count());
    CHECK(live_count(LiveKind::kConnection) == 0);
  }
  CHECK(live_count(LiveKind::kSocket) == 0);
  stack_.reset();
  CHECK(live_count(LiveKind::kConnection) == 0);
  CHECK(live_count(LiveKind::kBuffer) == 0);
  CHECK(live_count(LiveKind::kStack) == 0);
  CHECK(live_count(LiveKind::kSocket) == 0);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Script s({data, size});
  Driver d(s);
  d.run();
  return 0;
}
