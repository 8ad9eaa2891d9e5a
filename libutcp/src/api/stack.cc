// stack.cc - the stack: frame demultiplexing, connection and socket tables, timers, output.
#include "api/stack.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "api/profiles.h"
#include "api/publish.h"
#include "tcp/state_export.h"
#include "wire/checksum.h"
#include "wire/ethernet.h"
#include "wire/ipv4.h"
#include "wire/tcp.h"

namespace utcp {

using namespace tcp_flags;

// A connection as the stack keeps it: the TCB, its timer, and who may see it.
struct Stack::ConnEntry {
  explicit ConnEntry(std::unique_ptr<Connection> c) : conn(std::move(c)), timer(this) {}
  std::unique_ptr<Connection> conn;
  TimerEntry timer;
  int handle = -1;    // user's socket handle; -1 while in an accept queue or orphaned
  int listener = -1;  // listener handle for a passive connection not yet accepted
  bool queued = false;  // in the listener's accept queue
  bool dirty = false;
  std::optional<MacAddr> peer_mac;  // learn_peer_mac: where the opening frame came from
};

struct Stack::Listener {
  int backlog = 0;
  int embryonic = 0;  // SYN-RECEIVED children
  std::deque<ConnEntry*> ready;
  Instant last_cookie = kInstantNever;  // when a SYN cookie was last sent (never: none)
};

struct Stack::Socket {
  enum class Kind { kFresh, kListener, kConnection } kind = Kind::kFresh;
  uint16_t port = 0;  // bound local port, 0 if none
  ConnEntry* entry = nullptr;
  std::unique_ptr<Listener> listener;
  bool nodelay = false;
  bool keepalive = false;
  Duration keep_idle, keep_intvl;
  uint32_t keep_cnt = 0;
  LingerOpt linger{0, 0};
  uint32_t rcvbuf = 0, sndbuf = 0;
  std::string congestion;  // empty: the stack's TcpConfig default
  Duration delayed_ack;
  uint32_t ack_every = 2;
  std::string profile = "default";
  bool shut_rd = false;
  bool error_reported = false;  // kError already returned the connection's error
  LiveToken<LiveKind::kSocket> live;
};

Stack::Stack(Device* dev, const StackConfig& cfg)
    : dev_(dev),
      cfg_(cfg),
      isn_(cfg.isn_key ? *cfg.isn_key : IsnGenerator::random_key()),
      cookie_key_(IsnGenerator::random_key()),
      wheel_(cfg.timer_tick),
      next_ephemeral_(cfg.ephemeral_lo) {
  app_info_ = dev_->app_info_area();
  if (app_info_) pid_ = uint32_t(::getpid());
  if (cfg.isn_key) {
    // Reproducible runs (tests) derive the cookie secret from the ISN secret, so the
    // two are never equal and one never reveals the other.
    static constexpr uint8_t kLabel[] = "utcp syn cookie secret";
    for (int half = 0; half < 2; ++half) {
      uint8_t in[sizeof kLabel + 1];
      std::memcpy(in, kLabel, sizeof kLabel);
      in[sizeof kLabel] = uint8_t(half);
      uint64_t h = siphash24(*cfg.isn_key, in);
      for (int j = 0; j < 8; ++j) cookie_key_[size_t(half * 8 + j)] = uint8_t(h >> (8 * j));
    }
  }
}

Stack::~Stack() {
  wheel_.clear();
  conns_.clear();
}

uint16_t Stack::mss_from_mtu() const {
  // RFC 9293 §3.7.1 / RFC 879: MSS = MTU - 20 (IPv4) - 20 (TCP), no options counted.
  const uint32_t mtu = dev_ ? dev_->caps().mtu : 1500;
  return uint16_t(std::clamp<uint32_t>(mtu, 576, 65535) - 40);
}

// ------------------------------------------------------------------ output

bool Stack::send(const FourTuple& t, const TcpRepr& repr, std::span<const uint8_t> p1,
                 std::span<const uint8_t> p2) {
  MacAddr dst_mac;
  const ConnEntry* learnt = nullptr;
  if (cfg_.learn_peer_mac) {
    if (auto it = conns_.find(t); it != conns_.end() && it->second->peer_mac) learnt = it->second.get();
  }
  if (learnt) {
    dst_mac = *learnt->peer_mac;
  } else if (cfg_.learn_peer_mac && reply_mac_ && reply_ip_ == t.remote_ip) {
    dst_mac = *reply_mac_;  // a reply of no connection: back to the hop the frame came from
  } else if (auto it = neighbors_.find(t.remote_ip.v); it != neighbors_.end()) {
    dst_mac = it->second;
  } else if (cfg_.default_neighbor) {
    dst_mac = *cfg_.default_neighbor;
  } else {
    // No link address: the segment is lost on the floor, like one dropped by the
    // network; retransmission covers it once the neighbour is known.
    ++stats_.no_neighbor;
    return true;
  }
  if (open_.active && gso_append(t, repr, p1, p2)) return true;
  gso_close();
  const DeviceCaps caps = dev_->caps();
  const size_t tcp_hlen = tcp_header_len(repr);
  const size_t payload = p1.size() + p2.size();
  const size_t l3 = Ipv4Repr::kHeaderLen;
  const size_t hdrs = EthernetRepr::kHeaderLen + l3 + tcp_hlen;
  const size_t total = hdrs + payload;
  // Payload in one piece in the device's area (the send buffer lent to it, not
  // wrapping here): the device takes it from there, only the headers are built.
  const bool split = payload > 0 && p2.empty() && in_area(p1) && total <= caps.max_tx_frame;
  auto buf = dev_->tx_buffer(split ? hdrs : total);
  if (buf.size() < (split ? hdrs : total)) {
    ++stats_.tx_full;
    return false;
  }
  // Build in place: payload first, then headers around it (emit_tcp sums the payload
  // where it already lies).
  uint8_t* tcp_at = buf.data() + EthernetRepr::kHeaderLen + l3;
  uint8_t* pay_at = tcp_at + tcp_hlen;
  if (!split) {
    if (!p1.empty()) std::memcpy(pay_at, p1.data(), p1.size());
    if (!p2.empty()) std::memcpy(pay_at + p1.size(), p2.data(), p2.size());
  }
  // A full-sized data segment on a device that takes frames beyond the MTU stays open:
  // the next segments of the same connection in this round may join it (TSO). Only
  // segments of exactly the size the device will cut at, so the wire carries what
  // per-segment sending would have (RFC 9293's MSS is respected by construction).
  const size_t seg_at_mtu = caps.mtu > l3 + tcp_hlen ? caps.mtu - l3 - tcp_hlen : 0;
  const bool may_grow = caps.gso() && repr.flags == tcp_flags::kAck && payload > 0 &&
                        payload == seg_at_mtu &&
                        (split ? total + seg_at_mtu <= caps.max_tx_frame : buf.size() >= total + seg_at_mtu);
  TcpRepr r = repr;
  const bool offload = caps.tx_checksum_offload || caps.tx_tcp_checksum_offload;
  size_t n;
  if (split) {
    const bool fill = !offload && !may_grow;
    n = emit_tcp_header(r, t.local_ip, t.remote_ip, {tcp_at, tcp_hlen}, payload, fill ? checksum_add(p1) : 0, fill);
    if (n != 0) n += payload;
  } else {
    r.payload = {pay_at, payload};
    n = emit_tcp(r, t.local_ip, t.remote_ip, {tcp_at, tcp_hlen + payload}, !offload && !may_grow);
  }
  if (n == 0) return true;  // cannot be encoded (too long): drop, never wedge
  if (may_grow) {
    open_ = OpenFrame{true, t, dst_mac, buf, tcp_hlen, seg_at_mtu, payload, 1, repr.seq + uint32_t(payload), repr.flags,
                      split ? p1.data() : nullptr};
    return true;
  }
  Ipv4Repr ip;
  ip.src = t.local_ip;
  ip.dst = t.remote_ip;
  ip.protocol = uint8_t(IpProto::kTcp);
  ip.ident = ip_ident_++;
  ip.payload_len = uint16_t(n);
  emit_ipv4(ip, buf.subspan(EthernetRepr::kHeaderLen, l3));
  EthernetRepr eth{dst_mac, cfg_.mac, uint16_t(EtherType::kIpv4)};
  emit_ethernet(eth, buf);
  if (split) {
    dev_->tx_commit_split(hdrs, p1);
    ++stats_.split_frames;
    stats_.split_bytes += payload;
  } else {
    dev_->tx_commit(EthernetRepr::kHeaderLen + l3 + n);
  }
  ++stats_.frames_out;
  return true;
}

bool Stack::gso_append(const FourTuple& t, const TcpRepr& repr, std::span<const uint8_t> p1,
                       std::span<const uint8_t> p2) {
  // Joins the open frame when this segment continues it exactly: same connection, the
  // next sequence number, a header identical but for the sequence number and PSH/FIN
  // (the device copies the first segment's header into every segment it cuts), at most
  // one segment's payload, and room left in the slot and in the IPv4 length field.
  OpenFrame& o = open_;
  const size_t payload = p1.size() + p2.size();
  if (!(o.t == t) || repr.seq != o.next_seq || o.flags != tcp_flags::kAck || payload == 0 ||
      payload > o.seg || (repr.flags & ~(tcp_flags::kPsh | tcp_flags::kFin)) != tcp_flags::kAck)
    return false;
  const size_t l2l3 = EthernetRepr::kHeaderLen + Ipv4Repr::kHeaderLen;
  const size_t end = l2l3 + o.tcp_hlen + o.payload + payload;
  // A split frame's payload lies in the send buffer: the next segment must follow it
  // there, in one piece; an ordinary frame is bounded by its slot.
  if (o.ext ? (!p2.empty() || p1.data() != o.ext + o.payload) : end > o.buf.size()) return false;
  if (end > dev_->caps().max_tx_frame || end - EthernetRepr::kHeaderLen > 0xffff) return false;
  if (tcp_header_len(repr) != o.tcp_hlen) return false;
  std::array<uint8_t, TcpRepr::kMaxHeaderLen> h;
  TcpRepr r = repr;
  r.seq = SeqNum(0);
  r.flags = o.flags;
  if (emit_tcp_header(r, t.local_ip, t.remote_ip, h, 0, 0, false) != o.tcp_hlen) return false;
  const uint8_t* cur = o.buf.data() + l2l3;
  // Ports, ack + data offset, flags, window, urgent + options; not seq (4..7), checksum.
  if (std::memcmp(h.data(), cur, 4) != 0 || std::memcmp(h.data() + 8, cur + 8, 8) != 0 ||
      std::memcmp(h.data() + 18, cur + 18, o.tcp_hlen - 18) != 0)
    return false;
  if (!o.ext) {
    uint8_t* at = o.buf.data() + l2l3 + o.tcp_hlen + o.payload;
    if (!p1.empty()) std::memcpy(at, p1.data(), p1.size());
    if (!p2.empty()) std::memcpy(at + p1.size(), p2.data(), p2.size());
  }
  o.payload += payload;
  ++o.segments;
  o.next_seq = repr.seq + uint32_t(payload);
  o.flags = repr.flags;
  // A short segment, PSH or FIN ends the frame; so does a slot with no room for another.
  if (payload < o.seg || o.flags != tcp_flags::kAck || (!o.ext && end + o.seg > o.buf.size()) ||
      end + o.seg > dev_->caps().max_tx_frame || end + o.seg - EthernetRepr::kHeaderLen > 0xffff)
    gso_close();
  return true;
}

void Stack::gso_close() {
  // Finishes the open frame: flags of its last segment, checksum, IPv4 and Ethernet
  // headers, and commits it.
  if (!open_.active) return;
  OpenFrame& o = open_;
  o.active = false;
  const DeviceCaps caps = dev_->caps();
  const size_t l3 = Ipv4Repr::kHeaderLen;
  uint8_t* tcp_at = o.buf.data() + EthernetRepr::kHeaderLen + l3;
  const size_t seg_len = o.tcp_hlen + o.payload;
  tcp_at[13] = o.flags;
  const uint32_t pseudo = pseudo_header_sum(o.t.local_ip, o.t.remote_ip, uint8_t(IpProto::kTcp), uint16_t(seg_len));
  uint16_t check;
  if (o.segments == 1 && !caps.tx_checksum_offload && !caps.tx_tcp_checksum_offload) {
    tcp_at[16] = tcp_at[17] = 0;
    if (o.ext)  // the header's length is a multiple of 4: the two sums just add up
      check = checksum_fold(checksum_add({o.ext, o.payload}, checksum_add({tcp_at, o.tcp_hlen}, pseudo)));
    else
      check = checksum_fold(checksum_add({tcp_at, seg_len}, pseudo));
  } else {
    // What a checksum-offloading device expects (Linux CHECKSUM_PARTIAL): the folded
    // pseudo-header sum; the device (for a GSO frame: each segment's) completes it.
    check = uint16_t(~checksum_fold(pseudo));
  }
  tcp_at[16] = uint8_t(check >> 8);
  tcp_at[17] = uint8_t(check);
  Ipv4Repr ip;
  ip.src = o.t.local_ip;
  ip.dst = o.t.remote_ip;
  ip.protocol = uint8_t(IpProto::kTcp);
  ip.ident = ip_ident_;
  ip_ident_ = uint16_t(ip_ident_ + o.segments);  // the device numbers each segment it cuts
  ip.payload_len = uint16_t(seg_len);
  emit_ipv4(ip, o.buf.subspan(EthernetRepr::kHeaderLen, l3));
  EthernetRepr eth{o.dst, cfg_.mac, uint16_t(EtherType::kIpv4)};
  emit_ethernet(eth, o.buf);
  if (o.ext) {
    dev_->tx_commit_split(EthernetRepr::kHeaderLen + l3 + o.tcp_hlen, {o.ext, o.payload});
    ++stats_.split_frames;
    stats_.split_bytes += o.payload;
  } else {
    dev_->tx_commit(EthernetRepr::kHeaderLen + l3 + seg_len);
  }
  ++stats_.frames_out;
  if (o.segments > 1) {
    ++stats_.gso_frames;
    stats_.gso_segments += o.segments;
  }
}

// ------------------------------------------------------------------ input

void Stack::on_frame(Instant now, std::span<const uint8_t> frame) {
  ++stats_.frames_in;
  ParseError err;
  const bool verify = !dev_->rx_frame_checksum_ok();
  if (!parse_frame_into(frame, verify, &parsed_, &err)) {
    ++stats_.parse_errors;
    return;
  }
  // ARP answers come from the registry (static neighbour table): nothing to do here.
  if (parsed_.arp || !parsed_.tcp) {
    ++stats_.not_for_us;
    return;
  }
  // RFC 1122 §4.2.3.10: TCP takes only unicast: our address, our MAC. RFC 1122
  // §3.2.1.3: a broadcast, multicast or zero source address is discarded.
  const uint32_t src = parsed_.ip.src.v;
  const bool bad_src = src == 0 || src == 0xffffffffu || (src >> 28) == 0xe;
  if (parsed_.ip.dst != cfg_.ip || parsed_.eth.dst != cfg_.mac || bad_src) {
    ++stats_.not_for_us;
    return;
  }
  reply_mac_ = &parsed_.eth.src;
  reply_ip_ = parsed_.ip.src;
  on_tcp(now, parsed_.eth.src, parsed_.ip, *parsed_.tcp);
  reply_mac_ = nullptr;
}

void Stack::on_tcp(Instant now, const MacAddr& src_mac, const Ipv4Repr& ip, const TcpRepr& seg) {
  const FourTuple t{ip.dst, seg.dst_port, ip.src, seg.src_port};
  if (auto it = conns_.find(t); it != conns_.end()) {
    ConnEntry* e = it->second.get();
    e->conn->process(now, seg, *this);
    mark_dirty(e);
    return;
  }
  if (auto lit = listeners_.find(seg.dst_port); lit != listeners_.end()) {
    Socket* ls = sock(lit->second);
    Listener& l = *ls->listener;
    // RFC 9293 §3.10.7.2 LISTEN: a RST is ignored, an ACK draws a RST, a SYN opens.
    if (seg.has(kRst)) return;
    if (seg.has(kAck)) {
      if (!seg.has(kSyn) && cfg_.syn_cookies && l.last_cookie != kInstantNever &&
          accept_syncookie(now, t, src_mac, seg, lit->second))
        return;
      if (auto r = rst_reply(seg)) send(t, *r, {}, {});
      return;
    }
    if (!seg.has(kSyn)) return;
    if (int(l.ready.size()) >= l.backlog || (!cfg_.syn_cookies && l.embryonic + int(l.ready.size()) >= l.backlog)) {
      ++stats_.syn_dropped_backlog;  // the peer retransmits its SYN (Linux drops too)
      return;
    }
    if (l.embryonic >= l.backlog) {  // the SYN queue is full: answer without state
      send_syncookie(now, t, seg, l);
      return;
    }
    auto c = std::make_unique<Connection>(cfg_.tcp, t, mss_from_mtu());
    apply_options(*ls, *c, now);
    c->open_passive(isn_.isn(now, t.local_ip, t.local_port, t.remote_ip, t.remote_port));
    c->process(now, seg, *this);
    if (c->state() != TcpState::kSynReceived) return;
    ConnEntry* e = add_connection(t, std::move(c));
    e->listener = lit->second;
    if (cfg_.learn_peer_mac) e->peer_mac = src_mac;
    ++l.embryonic;
    mark_dirty(e);
    return;
  }
  // RFC 9293 §3.10.7.1: no connection: answer with a RST (unless it is one).
  if (auto r = rst_reply(seg)) {
    ++stats_.rst_sent_no_connection;
    send(t, *r, {}, {});
  }
}

// ------------------------------------------------------------------ SYN cookies
//
// RFC 4987 §3.6, after Bernstein's layout (as Linux's cookie_v4_init_sequence): the ISN of
// a stateless SYN-ACK is
//   bits 31..27  a counter of 64-second periods, modulo 32
//   bits 26..24  an index into kCookieMss, the largest entry not above the peer's MSS
//   bits 23..0   SipHash-2-4 under a per-stack secret of the 4-tuple, the peer's ISN,
//                the full counter and the MSS index
// An ACK returns ISN+1 in its acknowledgment field and the peer's ISN+1 in its sequence
// field, so the whole cookie is checked without state. It is good for the period it was
// made in and the next one (64-128 s), and only while the listener has sent cookies in
// that time (an ACK at a listener is otherwise answered with a RST, as before).
// What a cookie cannot carry: window scaling, SACK and timestamps are not offered in a
// cookie SYN-ACK, so a connection opened by a cookie runs without them (Linux encodes
// them in the timestamp instead; utcp keeps the cookie path simple, as it is taken only
// under a flood). Data on the SYN is not kept, as on the stateful path.

namespace {
constexpr uint16_t kCookieMss[8] = {256, 536, 1220, 1300, 1400, 1440, 1460, 8960};
constexpr int64_t kCookiePeriodUs = 64'000'000;
constexpr uint32_t kCookieMaxAge = 1;  // periods

uint32_t cookie_count(Instant now) { return uint32_t(now.time_since_epoch().count() / kCookiePeriodUs); }
}  // namespace

uint32_t Stack::syncookie_hash(const FourTuple& t, SeqNum peer_isn, uint32_t count, uint32_t mss_index) const {
  uint8_t buf[24];
  auto put32 = [&](size_t off, uint32_t v) {
    for (int j = 0; j < 4; ++j) buf[off + j] = uint8_t(v >> (24 - 8 * j));
  };
  put32(0, t.local_ip.v);
  put32(4, t.remote_ip.v);
  put32(8, uint32_t(t.local_port) << 16 | t.remote_port);
  put32(12, peer_isn.raw());
  put32(16, count);
  put32(20, mss_index);
  return uint32_t(siphash24(cookie_key_, buf)) & 0xffffffu;
}

void Stack::send_syncookie(Instant now, const FourTuple& t, const TcpRepr& syn, Listener& l) {
  const uint16_t peer_mss = syn.options.mss ? *syn.options.mss : 536;  // RFC 9293 §3.7.1 default
  uint32_t idx = 0;
  for (uint32_t i = 0; i < 8; ++i)
    if (kCookieMss[i] <= peer_mss) idx = i;
  const uint32_t count = cookie_count(now);
  const uint32_t cookie = (count & 31u) << 27 | idx << 24 | syncookie_hash(t, syn.seq, count, idx);
  TcpRepr r;
  r.src_port = syn.dst_port;
  r.dst_port = syn.src_port;
  r.seq = SeqNum(cookie);
  r.ack = syn.seq + 1;
  r.flags = kSyn | kAck;
  r.window = uint16_t(std::min<uint32_t>(cfg_.tcp.rcvbuf, 65535));
  r.options.mss = mss_from_mtu();
  l.last_cookie = now;
  ++stats_.syn_cookies_sent;
  send(t, r, {}, {});
}

bool Stack::accept_syncookie(Instant now, const FourTuple& t, const MacAddr& src_mac, const TcpRepr& ack,
                             int listener_handle) {
  Socket* ls = sock(listener_handle);
  Listener& l = *ls->listener;
  const uint32_t count = cookie_count(now);
  if (now > l.last_cookie + Duration((kCookieMaxAge + 1) * kCookiePeriodUs)) return false;  // none lately
  const uint32_t cookie = (ack.ack - 1).raw();
  const SeqNum peer_isn = ack.seq - 1;
  const uint32_t age = (count - (cookie >> 27)) & 31u;
  const uint32_t idx = (cookie >> 24) & 7u;
  if (age > kCookieMaxAge || count < age || syncookie_hash(t, peer_isn, count - age, idx) != (cookie & 0xffffffu)) {
    ++stats_.syn_cookies_failed;
    return false;  // the caller answers with a RST
  }
  if (int(l.ready.size()) >= l.backlog) {
    // No room to queue it: drop the ACK (as Linux does); the peer's next segment brings
    // the cookie again.
    ++stats_.syn_dropped_backlog;
    return true;
  }
  TcpRepr syn;
  syn.src_port = ack.src_port;
  syn.dst_port = ack.dst_port;
  syn.seq = peer_isn;
  syn.flags = kSyn;
  syn.window = ack.window;  // no window scaling on a cookie connection: the ACK's window as is
  syn.options.mss = kCookieMss[idx];
  auto c = std::make_unique<Connection>(cfg_.tcp, t, mss_from_mtu());
  apply_options(*ls, *c, now);
  c->open_syncookie(now, SeqNum(cookie), syn);
  c->process(now, ack, *this);  // SYN-RECEIVED -> ESTABLISHED, with any data it carries
  if (!c->is_synchronized()) {
    ++stats_.syn_cookies_failed;
    return true;  // process() answered it
  }
  ++stats_.syn_cookies_ok;
  ConnEntry* e = add_connection(t, std::move(c));
  e->listener = listener_handle;
  if (cfg_.learn_peer_mac) e->peer_mac = src_mac;
  ++l.embryonic;  // service() moves it to the accept queue
  mark_dirty(e);
  return true;
}

// ------------------------------------------------------------------ polling

void Stack::mark_dirty(ConnEntry* e) {
  if (e->dirty) return;
  e->dirty = true;
  dirty_.push_back(e);
}

void Stack::poll(Instant now) {
  now_ = now;
  size_t budget = cfg_.max_rx_per_poll;
  while (budget > 0) {
    size_t n = dev_->receive(now, [&](std::span<const uint8_t> f) { on_frame(now, f); },
                             std::min<size_t>(budget, 64));
    if (n == 0) break;
    budget -= std::min(budget, n);
  }
  wheel_.advance(now, [&](TimerEntry& te) { mark_dirty(static_cast<ConnEntry*>(te.owner)); });
  // service() may mark entries dirty again (into the fresh dirty_) and removes only the
  // entry it serves; the two vectors are swapped so no allocation happens per poll.
  work_.swap(dirty_);
  for (ConnEntry* e : work_) e->dirty = false;
  for (ConnEntry* e : work_) service(now, e);
  work_.clear();
  gso_close();
  if (!defer_flush_) dev_->flush(now);
  // The last change inside a publication interval is published when the interval ends,
  // even if nothing else happens to the connection (observers would see stale figures).
  if (publish_due_ && published_ && now - published_at_ >= kPublishInterval) {
    publish_due_ = false;
    published_at_ = now;
    publish_app_info(app_info_, *published_->conn, pid_, now);
  }
}

void Stack::service(Instant now, ConnEntry* e) {
  Connection& c = *e->conn;
  c.dispatch(now, *this);
  gso_close();  // a frame only ever holds one connection's segments of one dispatch
  // For observers, at most once a millisecond per connection unless its state changed:
  // off the per-segment path of a busy connection.
  if (app_info_ && e->listener < 0 && (published_ == e || !published_) &&
      (published_ != e || c.state() != published_state_ || now - published_at_ >= kPublishInterval)) {
    published_ = e;
    published_state_ = c.state();
    published_at_ = now;
    publish_due_ = false;
    publish_app_info(app_info_, c, pid_, now);
  } else if (app_info_ && published_ == e) {
    publish_due_ = true;  // skipped inside the interval: poll() publishes it once it ends
  }
  // A passive child that went back to LISTEN (RST or SYN in SYN-RECEIVED) is dropped:
  // the listener itself stays (RFC 9293 §3.10.7.4 second/fourth).
  if (e->listener >= 0 && !e->queued) {
    Socket* ls = sock(e->listener);
    if (c.state() == TcpState::kListen || c.state() == TcpState::kClosed) {
      if (ls && ls->listener) --ls->listener->embryonic;
      remove(e);
      return;
    }
    if (c.state() != TcpState::kSynReceived && ls && ls->listener) {
      --ls->listener->embryonic;
      ls->listener->ready.push_back(e);
      e->queued = true;
    }
  }
  if (c.state() == TcpState::kClosed && e->handle < 0 && e->listener < 0) {
    remove(e);  // orphaned and finished (after TIME-WAIT, or reset)
    return;
  }
  const Instant at = c.poll_at();
  if (at <= now) {
    // Still has work (the device was full): try again on the next poll.
    wheel_.cancel(e->timer);
    mark_dirty(e);
  } else {
    wheel_.schedule(e->timer, at);
  }
}

Instant Stack::poll_at() const {
  if (!dirty_.empty()) return now_;
  const Instant publish = publish_due_ && published_ ? published_at_ + kPublishLag : kInstantNever;
  return std::min({wheel_.next_expiry(), dev_ ? dev_->poll_at() : kInstantNever, publish});
}

Stack::ConnEntry* Stack::add_connection(const FourTuple& t, std::unique_ptr<Connection> c) {
  auto e = std::make_unique<ConnEntry>(std::move(c));
  ConnEntry* p = e.get();
  conns_.emplace(t, std::move(e));
  port_ref(t.local_port, +1);
  return p;
}

void Stack::lend_area(ConnEntry* e) {
  // The send buffer moves into device memory on the first write that finds the area
  // free (or its holder done sending). With its payload there, a data frame is sent
  // without copying the payload behind its headers (Device::tx_commit_split).
  // A connection imported into another process moves its send data into the area again
  // at the same place in the rings: a split frame the module still held back (rate
  // limit) from the exporter could then leave with other bytes than it had -- the
  // reason an exporter should flush and drain first (examples/utcp_handoff.cc does).
  if (area_owner_ && !area_owner_->conn->return_send_buffer()) return;  // still in use
  area_owner_ = nullptr;
  auto area = dev_->tx_payload_area(e->conn->send_space() + e->conn->send_queued());
  if (area.empty() || !e->conn->place_send_buffer(area)) return;
  area_ = area;
  area_owner_ = e;
}

void Stack::remove(ConnEntry* e) {
  if (published_ == e) {
    published_ = nullptr;
    publish_due_ = false;
  }
  if (area_owner_ == e) area_owner_ = nullptr;  // the area is free for the next writer
  wheel_.cancel(e->timer);
  if (e->dirty) {
    dirty_.erase(std::remove(dirty_.begin(), dirty_.end(), e), dirty_.end());
  }
  const FourTuple t = e->conn->tuple();
  port_ref(t.local_port, -1);
  conns_.erase(t);
}

void Stack::port_ref(uint16_t port, int delta) {
  int& r = port_refs_[port];
  r += delta;
  if (r <= 0) port_refs_.erase(port);
}

// ------------------------------------------------------------------ sockets

Stack::Socket* Stack::sock(int h) {
  if (h < 0 || size_t(h) >= sockets_.size()) return nullptr;
  return sockets_[h].get();
}
const Stack::Socket* Stack::sock(int h) const {
  if (h < 0 || size_t(h) >= sockets_.size()) return nullptr;
  return sockets_[h].get();
}

int Stack::new_handle(std::unique_ptr<Socket> s) {
  if (!free_handles_.empty()) {
    int h = free_handles_.back();
    free_handles_.pop_back();
    sockets_[h] = std::move(s);
    return h;
  }
  sockets_.push_back(std::move(s));
  return int(sockets_.size() - 1);
}

int Stack::socket() {
  auto s = std::make_unique<Socket>();
  s->rcvbuf = cfg_.tcp.rcvbuf;
  s->sndbuf = cfg_.tcp.sndbuf;
  s->nodelay = cfg_.tcp.nodelay;
  s->delayed_ack = cfg_.tcp.delayed_ack;
  s->ack_every = cfg_.tcp.ack_every;
  s->keepalive = cfg_.tcp.keepalive;
  s->keep_idle = cfg_.tcp.keepalive_idle;
  s->keep_intvl = cfg_.tcp.keepalive_interval;
  s->keep_cnt = cfg_.tcp.keepalive_count;
  return new_handle(std::move(s));
}

int Stack::alloc_ephemeral(uint16_t* port) {
  const uint32_t range = uint32_t(cfg_.ephemeral_hi - cfg_.ephemeral_lo) + 1;
  for (uint32_t i = 0; i < range; ++i) {
    uint16_t p = next_ephemeral_;
    next_ephemeral_ = p >= cfg_.ephemeral_hi ? cfg_.ephemeral_lo : uint16_t(p + 1);
    if (!port_refs_.count(p)) {
      *port = p;
      return 0;
    }
  }
  return -EADDRINUSE;  // Linux says EADDRNOTAVAIL; EADDRINUSE is what callers check
}

int Stack::bind(int h, uint16_t port) {
  Socket* s = sock(h);
  if (!s) return -EBADF;
  if (s->kind != Socket::Kind::kFresh || s->port != 0) return -EINVAL;
  if (port == 0) {
    if (int r = alloc_ephemeral(&port); r < 0) return r;
  } else if (port_refs_.count(port)) {
    return -EADDRINUSE;
  }
  s->port = port;
  port_ref(port, +1);
  return 0;
}

int Stack::listen(int h, int backlog) {
  Socket* s = sock(h);
  if (!s) return -EBADF;
  if (s->kind == Socket::Kind::kListener) {
    s->listener->backlog = backlog > 0 ? backlog : cfg_.default_backlog;
    return 0;
  }
  if (s->kind != Socket::Kind::kFresh) return -EINVAL;
  if (s->port == 0) {
    if (int r = bind(h, 0); r < 0) return r;
  }
  if (listeners_.count(s->port)) return -EADDRINUSE;
  s->kind = Socket::Kind::kListener;
  s->listener = std::make_unique<Listener>();
  s->listener->backlog = backlog > 0 ? backlog : cfg_.default_backlog;
  listeners_[s->port] = h;
  return 0;
}

int Stack::accept(int h, FourTuple* peer) {
  Socket* s = sock(h);
  if (!s) return -EBADF;
  if (s->kind != Socket::Kind::kListener) return -EINVAL;
  auto& q = s->listener->ready;
  if (q.empty()) return -EAGAIN;
  ConnEntry* e = q.front();
  q.pop_front();
  auto ns = std::make_unique<Socket>();
  ns->kind = Socket::Kind::kConnection;
  ns->entry = e;
  ns->port = e->conn->tuple().local_port;
  ns->nodelay = s->nodelay;
  ns->keepalive = s->keepalive;
  ns->keep_idle = s->keep_idle;
  ns->keep_intvl = s->keep_intvl;
  ns->keep_cnt = s->keep_cnt;
  ns->linger = s->linger;
  ns->rcvbuf = s->rcvbuf;
  ns->sndbuf = s->sndbuf;
  ns->congestion = s->congestion;
  ns->delayed_ack = s->delayed_ack;
  ns->ack_every = s->ack_every;
  ns->profile = s->profile;
  e->listener = -1;
  e->queued = false;
  if (peer) *peer = e->conn->tuple();
  int nh = new_handle(std::move(ns));
  e->handle = nh;
  return nh;
}

void Stack::apply_options(const Socket& s, Connection& c, Instant now) {
  c.set_buffers(s.rcvbuf, s.sndbuf);
  c.set_nodelay(s.nodelay);
  c.set_ack_policy(s.delayed_ack, s.ack_every);
  c.set_keepalive(now, s.keepalive, s.keep_idle, s.keep_intvl, s.keep_cnt);
  if (!s.congestion.empty()) c.set_congestion(s.congestion);  // validated by setsockopt
}

int Stack::connect(int h, Ipv4Addr ip, uint16_t port, Instant now) {
  Socket* s = sock(h);
  if (!s) return -EBADF;
  if (s->kind == Socket::Kind::kConnection) {
    Connection& c = *s->entry->conn;
    if (c.state() == TcpState::kSynSent || c.state() == TcpState::kSynReceived) return -EALREADY;
    if (c.error()) return -c.error();
    return -EISCONN;
  }
  if (s->kind != Socket::Kind::kFresh) return -EINVAL;
  if (port == 0) return -EINVAL;
  if (s->port == 0) {
    if (int r = bind(h, 0); r < 0) return r;
  }
  const FourTuple t{cfg_.ip, s->port, ip, port};
  if (conns_.count(t)) return -EADDRINUSE;
  auto c = std::make_unique<Connection>(cfg_.tcp, t, mss_from_mtu());
  apply_options(*s, *c, now);
  // RFC 6528: ISN = M + F(4-tuple, secret).
  c->open_active(now, isn_.isn(now, t.local_ip, t.local_port, t.remote_ip, t.remote_port));
  ConnEntry* e = add_connection(t, std::move(c));
  port_ref(s->port, -1);  // the connection now holds the port reference
  e->handle = h;
  s->kind = Socket::Kind::kConnection;
  s->entry = e;
  mark_dirty(e);
  return -EINPROGRESS;
}

int64_t Stack::write(int h, std::span<const uint8_t> data) {
  Socket* s = sock(h);
  if (!s) return -EBADF;
  if (s->kind != Socket::Kind::kConnection) return -ENOTCONN;
  Connection& c = *s->entry->conn;
  if (c.state() == TcpState::kSynSent || c.state() == TcpState::kSynReceived) return -EAGAIN;
  if (area_owner_ != s->entry) lend_area(s->entry);
  int64_t n = c.send(data);
  if (n == 0 && !data.empty()) return -EAGAIN;
  if (n > 0) mark_dirty(s->entry);
  return n;
}

int64_t Stack::read(int h, std::span<uint8_t> out) {
  Socket* s = sock(h);
  if (!s) return -EBADF;
  if (s->kind != Socket::Kind::kConnection) return -ENOTCONN;
  if (s->shut_rd) return 0;
  Connection& c = *s->entry->conn;
  if (c.state() == TcpState::kSynSent || c.state() == TcpState::kSynReceived) return -EAGAIN;
  int64_t n = c.recv(out);
  if (n > 0 && c.poll_at() <= now_) mark_dirty(s->entry);  // a window update is due
  return n;
}

int64_t Stack::read(int h, std::span<uint8_t> out, Instant now) {
  int64_t n = read(h, out);
  if (n != -EAGAIN || out.empty()) return n;
  Connection* c = sock(h)->entry->conn.get();
  c->post_read(out);
  poll(now);
  // The handle keeps its entry (and connection) alive through the poll.
  const size_t got = c->end_posted_read();
  if (got == 0) return read(h, out);
  if (c->poll_at() <= now_) mark_dirty(sock(h)->entry);  // an ACK or window update is due
  return int64_t(got);
}

int Stack::shutdown(int h, int how) {
  Socket* s = sock(h);
  if (!s) return -EBADF;
  if (how < 0 || how > 2) return -EINVAL;
  if (s->kind != Socket::Kind::kConnection) return -ENOTCONN;
  if (how == 0 || how == 2) s->shut_rd = true;
  if (how == 1 || how == 2) {
    s->entry->conn->shutdown_write();
    mark_dirty(s->entry);
  }
  return 0;
}

int Stack::close(int h) {
  Socket* s = sock(h);
  if (!s) return -EBADF;
  switch (s->kind) {
    case Socket::Kind::kFresh:
      if (s->port) port_ref(s->port, -1);
      break;
    case Socket::Kind::kListener: {
      listeners_.erase(s->port);
      port_ref(s->port, -1);
      // Connections nobody accepted are reset, as Linux does on closing a listener.
      std::vector<ConnEntry*> children;
      for (auto& [t, e] : conns_)
        if (e->listener == h) children.push_back(e.get());
      for (ConnEntry* e : children) {
        e->conn->abort(*this);
        remove(e);
      }
      break;
    }
    case Socket::Kind::kConnection: {
      ConnEntry* e = s->entry;
      Connection& c = *e->conn;
      e->handle = -1;
      // SO_LINGER with zero timeout, or unread data (RFC 2525 §2.17), aborts with RST;
      // otherwise a graceful close goes on without the user (orphan).
      if ((s->linger.onoff && s->linger.seconds == 0) || c.recv_queued() > 0) {
        c.abort(*this);
      } else {
        c.shutdown_write();
        c.orphan(now_);
      }
      mark_dirty(e);
      break;
    }
  }
  sockets_[h].reset();
  free_handles_.push_back(h);
  return 0;
}

const Connection* Stack::find(const FourTuple& t) const {
  auto it = conns_.find(t);
  return it == conns_.end() ? nullptr : it->second->conn.get();
}

int Stack::events(int h) const {
  const Socket* s = sock(h);
  if (!s) return -EBADF;
  uint32_t ev = 0;
  switch (s->kind) {
    case Socket::Kind::kFresh:
      return kEventOut | kEventHup;  // like Linux for an unconnected TCP socket
    case Socket::Kind::kListener:
      return s->listener->ready.empty() ? 0 : int(kEventIn);
    case Socket::Kind::kConnection: {
      const Connection& c = *s->entry->conn;
      if (c.readable() || s->shut_rd) ev |= kEventIn;
      if (c.is_synchronized() && c.writable()) ev |= kEventOut;
      if (c.error()) ev |= kEventErr | kEventOut;
      if (c.state() == TcpState::kClosed || (c.at_eof() && c.state() != TcpState::kCloseWait &&
                                              c.state() != TcpState::kEstablished))
        ev |= kEventHup;
      return int(ev);
    }
  }
  return 0;
}

std::optional<MacAddr> Stack::peer_mac(int h) const {
  const Socket* s = sock(h);
  if (!s || s->kind != Socket::Kind::kConnection) return std::nullopt;
  return s->entry->peer_mac;
}

int Stack::local_port(int h) const {
  const Socket* s = sock(h);
  if (!s) return -EBADF;
  return s->port;
}

int Stack::setsockopt(int h, SockOpt opt, const void* val, size_t len, Instant now) {
  Socket* s = sock(h);
  if (!s) return -EBADF;
  Connection* c = s->kind == Socket::Kind::kConnection ? s->entry->conn.get() : nullptr;
  auto get_int = [&](int* out) {
    if (!val || len < sizeof(int)) return false;
    std::memcpy(out, val, sizeof(int));
    return true;
  };
  int v = 0;
  switch (opt) {
    case SockOpt::kNoDelay:
      if (!get_int(&v)) return -EINVAL;
      s->nodelay = v != 0;
      if (c) {
        c->set_nodelay(s->nodelay);
        mark_dirty(s->entry);  // held data may go now
      }
      return 0;
    case SockOpt::kKeepAlive:
    case SockOpt::kKeepIdle:
    case SockOpt::kKeepIntvl:
    case SockOpt::kKeepCnt:
      if (!get_int(&v)) return -EINVAL;
      if (opt == SockOpt::kKeepAlive) s->keepalive = v != 0;
      else if (v <= 0 || v > 32767) return -EINVAL;  // Linux's bounds
      else if (opt == SockOpt::kKeepIdle) s->keep_idle = Duration(int64_t(v) * 1'000'000);
      else if (opt == SockOpt::kKeepIntvl) s->keep_intvl = Duration(int64_t(v) * 1'000'000);
      else s->keep_cnt = uint32_t(v);
      if (c) {
        c->set_keepalive(now, s->keepalive, s->keep_idle, s->keep_intvl, s->keep_cnt);
        mark_dirty(s->entry);
      }
      return 0;
    case SockOpt::kLinger:
      if (!val || len < sizeof(LingerOpt)) return -EINVAL;
      std::memcpy(&s->linger, val, sizeof(LingerOpt));
      if (s->linger.seconds < 0) return -EINVAL;
      return 0;
    case SockOpt::kRcvBuf:
    case SockOpt::kSndBuf: {
      if (!get_int(&v)) return -EINVAL;
      if (v < 256 || uint32_t(v) > ConnectionState::kMaxBuffer) return -EINVAL;
      uint32_t& field = opt == SockOpt::kRcvBuf ? s->rcvbuf : s->sndbuf;
      uint32_t old = field;
      field = uint32_t(v);
      // Buffers are fixed once data can flow (the window was advertised).
      if (c && !c->set_buffers(s->rcvbuf, s->sndbuf)) {
        field = old;
        return -EINVAL;
      }
      return 0;
    }
    case SockOpt::kCongestion: {
      // Like Linux's TCP_CONGESTION: a name, NUL-terminated or not, up to 15 characters.
      if (!val || len == 0) return -EINVAL;
      std::string name(static_cast<const char*>(val), strnlen(static_cast<const char*>(val), len));
      TcpConfig probe = cfg_.tcp;
      probe.congestion = name;
      if (name.empty() || name.size() > 15 || Connection::check_config(probe) < 0) return -ENOENT;
      if (c) {
        if (int r = c->set_congestion(name); r < 0) return r;  // -EISCONN once synchronized
      }
      s->congestion = name;
      return 0;
    }
    case SockOpt::kProfile: {
      if (!val || len == 0) return -EINVAL;
      std::string name(static_cast<const char*>(val), strnlen(static_cast<const char*>(val), len));
      const Profile* p = find_profile(name);
      if (!p) return -ENOENT;
      if (c && c->is_synchronized()) return -EISCONN;  // buffers and options are negotiated
      s->nodelay = p->nodelay;
      s->delayed_ack = p->delayed_ack;
      s->ack_every = p->ack_every;
      s->rcvbuf = p->rcvbuf;
      s->sndbuf = p->sndbuf;
      s->congestion = std::string(p->congestion);
      s->profile = name;
      if (c) {
        apply_options(*s, *c, now);
        mark_dirty(s->entry);
      }
      return 0;
    }
    case SockOpt::kError:
      return -ENOPROTOOPT;  // read-only
  }
  return -ENOPROTOOPT;
}

int Stack::getsockopt(int h, SockOpt opt, void* val, size_t* len) {
  Socket* s = sock(h);
  if (!s) return -EBADF;
  if (!val || !len) return -EINVAL;
  Connection* c = s->kind == Socket::Kind::kConnection ? s->entry->conn.get() : nullptr;
  auto put_int = [&](int v) {
    if (*len < sizeof(int)) return -EINVAL;
    std::memcpy(val, &v, sizeof(int));
    *len = sizeof(int);
    return 0;
  };
  switch (opt) {
    case SockOpt::kNoDelay: return put_int(s->nodelay);
    case SockOpt::kKeepAlive: return put_int(s->keepalive);
    case SockOpt::kKeepIdle: return put_int(int(s->keep_idle.count() / 1'000'000));
    case SockOpt::kKeepIntvl: return put_int(int(s->keep_intvl.count() / 1'000'000));
    case SockOpt::kKeepCnt: return put_int(int(s->keep_cnt));
    case SockOpt::kRcvBuf: return put_int(int(s->rcvbuf));
    case SockOpt::kSndBuf: return put_int(int(s->sndbuf));
    case SockOpt::kLinger:
      if (*len < sizeof(LingerOpt)) return -EINVAL;
      std::memcpy(val, &s->linger, sizeof(LingerOpt));
      *len = sizeof(LingerOpt);
      return 0;
    case SockOpt::kProfile:
      if (*len < s->profile.size() + 1) return -EINVAL;
      std::memcpy(val, s->profile.c_str(), s->profile.size() + 1);
      *len = s->profile.size() + 1;
      return 0;
    case SockOpt::kCongestion: {
      std::string name = c ? std::string(c->congestion()) : s->congestion.empty() ? cfg_.tcp.congestion : s->congestion;
      if (*len < name.size() + 1) return -EINVAL;
      std::memcpy(val, name.c_str(), name.size() + 1);
      *len = name.size() + 1;
      return 0;
    }
    case SockOpt::kError: {
      // Like SO_ERROR: the connection's error is reported once, then 0.
      int e = 0;
      if (c && c->error() && !s->error_reported) {
        e = c->error();
        s->error_reported = true;
      }
      return put_int(e);
    }
  }
  return -ENOPROTOOPT;
}

Connection* Stack::connection(int h) {
  Socket* s = sock(h);
  if (!s || s->kind != Socket::Kind::kConnection) return nullptr;
  return s->entry->conn.get();
}

// ------------------------------------------------------------------ moving connections

int Stack::export_connection(int h, Instant now, std::vector<uint8_t>* out) {
  Socket* s = sock(h);
  if (!s) return -EBADF;
  if (s->kind != Socket::Kind::kConnection) return -ENOTCONN;
  ConnEntry* e = s->entry;
  ConnectionState st = e->conn->export_state(now);
  if (const char* why = st.validate(); why != nullptr) return -EINVAL;  // e.g. not synchronized
  *out = st.serialize();
  remove(e);
  sockets_[h].reset();
  free_handles_.push_back(h);
  return 0;
}

int Stack::import_connection(std::span<const uint8_t> bytes, Instant now) {
  const char* err = nullptr;
  auto st = ConnectionState::parse(bytes, &err);
  if (!st) return -EINVAL;
  if (st->tuple.local_ip != cfg_.ip) return -EINVAL;
  if (conns_.count(st->tuple)) return -EADDRINUSE;
  auto c = Connection::import_state(cfg_.tcp, *st, now, &err);
  if (!c) return -EINVAL;
  auto ns = std::make_unique<Socket>();
  ns->kind = Socket::Kind::kConnection;
  ns->port = st->tuple.local_port;
  ns->nodelay = st->nodelay;
  ns->keepalive = st->keepalive;
  ns->keep_idle = c->config().keepalive_idle;
  ns->keep_intvl = c->config().keepalive_interval;
  ns->keep_cnt = c->config().keepalive_count;
  ns->rcvbuf = st->rcvbuf;
  ns->sndbuf = st->sndbuf;
  ConnEntry* e = add_connection(st->tuple, std::move(c));
  ns->entry = e;
  int h = new_handle(std::move(ns));
  e->handle = h;
  mark_dirty(e);
  return h;
}

}  // namespace utcp
