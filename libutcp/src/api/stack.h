// stack.h - a TCP/IPv4 stack instance: device, addresses, neighbours, sockets, connections, timers.
//
// The Stack owns the connection table (hash on the 4-tuple), the listeners, a timing
// wheel with one entry per connection (armed at Connection::poll_at()), and the socket
// handles the public API (include/utcp/utcp.h) hands out. It reads no clock: every call
// that needs time takes an Instant, so tests drive it on a virtual clock.
#pragma once

#include <array>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <span>
#include <unordered_map>
#include <vector>

#include "base/time.h"
#include "device/device.h"
#include "tcp/connection.h"
#include "tcp/isn.h"
#include "tcp/live.h"
#include "tcp/timer_wheel.h"
#include "wire/frame.h"
#include "wire/types.h"

namespace utcp {

struct StackConfig {
  Ipv4Addr ip;
  MacAddr mac;
  TcpConfig tcp;
  // RFC 6528 secret; a random one when unset.
  std::optional<std::array<uint8_t, 16>> isn_key;
  // Used for destinations missing from the neighbour table (e.g. the raw API's link).
  std::optional<MacAddr> default_neighbor;
  Duration timer_tick = Duration(1000);
  uint16_t ephemeral_lo = 32768, ephemeral_hi = 60999;  // Linux's ip_local_port_range
  size_t max_rx_per_poll = 1024;
  int default_backlog = 128;
  // A connection opened passively answers through the hop its SYN (or the ACK carrying
  // a SYN cookie) came from: the frame's Ethernet source, kept per connection and used
  // before the neighbour table; replies to frames of no connection (RSTs, cookie
  // SYN-ACKs) go back to the frame's source too. For a stack that has no neighbour
  // table of its own, like utcpd's, which accepts for applications.
  bool learn_peer_mac = false;
  // RFC 4987 §3.6: when a listener's SYN queue (connections in SYN-RECEIVED) holds
  // `backlog`, further SYNs are answered statelessly with a cookie ISN, and an ACK that
  // returns a valid cookie creates the connection. Off by default: a connection opened
  // by a cookie has no window scaling, SACK or timestamps (see stack.cc).
  bool syn_cookies = false;
};

// Socket events, the values of poll(2).
enum : uint32_t { kEventIn = 0x001, kEventOut = 0x004, kEventErr = 0x008, kEventHup = 0x010 };

// Socket options understood by setsockopt/getsockopt (values of include/utcp/utcp.h).
enum class SockOpt : int {
  kNoDelay = 1,
  kKeepAlive = 2,
  kKeepIdle = 3,   // seconds
  kKeepIntvl = 4,  // seconds
  kKeepCnt = 5,
  kLinger = 6,     // struct { int onoff; int seconds; }
  kRcvBuf = 7,
  kSndBuf = 8,
  kError = 9,      // get only: pending error, cleared by reading
  // 10, 11: receive/send timeouts, kept by the C API's blocking layer
  kCongestion = 12,  // string: "cubic" or "newreno" (TCP_CONGESTION); before the handshake
  kProfile = 13,     // string: a profile of api/profiles.h; before the handshake
};

struct LingerOpt {
  int onoff;
  int seconds;
};

struct StackStats {
  uint64_t frames_in = 0, frames_out = 0, parse_errors = 0, not_for_us = 0;
  uint64_t rst_sent_no_connection = 0, syn_dropped_backlog = 0, no_neighbor = 0;
  uint64_t tx_full = 0;
  // Frames that carried more than one segment (GSO/TSO: the device cuts them), and the
  // segments they carried.
  uint64_t gso_frames = 0, gso_segments = 0;
  // Frames whose payload the device took from the send buffer in place (split frames:
  // no copy behind the headers), and those payload bytes.
  uint64_t split_frames = 0, split_bytes = 0;
  // RFC 4987 §3.6: cookie SYN-ACKs sent, ACKs that returned a valid cookie (connections
  // made), and ACKs refused with a RST (forged, stale, or no cookies sent lately).
  uint64_t syn_cookies_sent = 0, syn_cookies_ok = 0, syn_cookies_failed = 0;
};

class Stack : private SegmentSink {
 public:
  Stack(Device* dev, const StackConfig& cfg);
  ~Stack();
  Stack(const Stack&) = delete;
  Stack& operator=(const Stack&) = delete;

  void add_neighbor(Ipv4Addr ip, MacAddr mac) { neighbors_[ip.v] = mac; }
  Ipv4Addr ip() const { return cfg_.ip; }
  const StackConfig& config() const { return cfg_; }

  // One round: receive and demultiplex frames, run expired timers, send what is due,
  // flush the device once.
  void poll(Instant now);
  // When poll() next has work (<= now: at once).
  Instant poll_at() const;
  // With `defer` set, poll() leaves the frames it built queued in the device: they leave
  // with the caller's flush(), or with the call the caller sleeps in
  // (KmodDevice::flush_and_wait), so a request and the wait for its answer cost one
  // system call. A caller that sets it flushes before it sleeps any other way or stops
  // polling; until then nothing it queued is on the wire.
  void set_defer_flush(bool defer) { defer_flush_ = defer; }
  void flush(Instant now) { dev_->flush(now); }

  // --- sockets: integer handles, results as -errno ---
  int socket();
  int bind(int h, uint16_t port);
  int listen(int h, int backlog);
  // A new handle for an established connection, -EAGAIN when none is waiting.
  int accept(int h, FourTuple* peer = nullptr);
  // -EINPROGRESS: the SYN leaves on the next poll(); poll for kEventOut or read kError.
  int connect(int h, Ipv4Addr ip, uint16_t port, Instant now);
  int64_t write(int h, std::span<const uint8_t> data);
  int64_t read(int h, std::span<uint8_t> out);
  // read(), and when nothing is buffered, one poll(now) with `out` posted to the
  // connection (Connection::post_read): in-order data in the frames that poll takes
  // from the device is copied from them straight into `out`, skipping the receive
  // buffer. Returns like read(); -EAGAIN when the poll brought nothing either.
  int64_t read(int h, std::span<uint8_t> out, Instant now);
  // how: 0 read, 1 write, 2 both (SHUT_RD/WR/RDWR).
  int shutdown(int h, int how);
  int close(int h);
  // kEvent* bits, or -EBADF.
  int events(int h) const;
  int setsockopt(int h, SockOpt opt, const void* val, size_t len, Instant now);
  int getsockopt(int h, SockOpt opt, void* val, size_t* len);
  int local_port(int h) const;
  // The Ethernet source the connection's opening frame came from (learn_peer_mac).
  std::optional<MacAddr> peer_mac(int h) const;

  // --- moving connections (paper §3.4) ---
  // Serialises handle `h`'s connection and removes it from this stack without a word to
  // the peer; the handle is freed. Returns 0 or -errno.
  int export_connection(int h, Instant now, std::vector<uint8_t>* out);
  // Continues a connection from exported bytes here (the local address must be ours);
  // returns a handle, or -EINVAL for bytes that do not validate, -EADDRINUSE if taken.
  int import_connection(std::span<const uint8_t> bytes, Instant now);

  // For tests and tools.
  Connection* connection(int h);
  // The connection on 4-tuple `t`, also after its handle was closed; nullptr when gone.
  const Connection* find(const FourTuple& t) const;
  Device* device() const { return dev_; }
  size_t connection_count() const { return conns_.size(); }
  const StackStats& stats() const { return stats_; }
  const TimerWheel& timers() const { return wheel_; }

 private:
  struct Listener;
  struct ConnEntry;
  struct Socket;

  bool send(const FourTuple& t, const TcpRepr& repr, std::span<const uint8_t> p1,
            std::span<const uint8_t> p2) override;
  void on_frame(Instant now, std::span<const uint8_t> frame);
  void on_tcp(Instant now, const MacAddr& src_mac, const Ipv4Repr& ip, const TcpRepr& seg);
  void send_syncookie(Instant now, const FourTuple& t, const TcpRepr& syn, Listener& l);
  bool accept_syncookie(Instant now, const FourTuple& t, const MacAddr& src_mac, const TcpRepr& ack,
                        int listener_handle);
  uint32_t syncookie_hash(const FourTuple& t, SeqNum peer_isn, uint32_t count, uint32_t mss_index) const;
  void mark_dirty(ConnEntry* e);
  void service(Instant now, ConnEntry* e);
  void remove(ConnEntry* e);
  ConnEntry* add_connection(const FourTuple& t, std::unique_ptr<Connection> c);
  Socket* sock(int h);
  const Socket* sock(int h) const;
  int new_handle(std::unique_ptr<Socket> s);
  int alloc_ephemeral(uint16_t* port);
  void port_ref(uint16_t port, int delta);
  void apply_options(const Socket& s, Connection& c, Instant now);
  uint16_t mss_from_mtu() const;
  bool gso_append(const FourTuple& t, const TcpRepr& repr, std::span<const uint8_t> p1,
                  std::span<const uint8_t> p2);
  void gso_close();

  // A TCP frame built in a TX slot but not yet committed, which further full-sized
  // segments of the same connection may extend (TSO: the device cuts it back into
  // segments of `seg` payload bytes, each with a copy of this header). Only on devices
  // whose frames may exceed the MTU (DeviceCaps::gso()).
  struct OpenFrame {
    bool active = false;
    FourTuple t;
    MacAddr dst;
    std::span<uint8_t> buf;  // the whole writable TX space (headers at the start)
    size_t tcp_hlen = 0;
    size_t seg = 0;          // payload per segment: MTU - IP header - TCP header
    size_t payload = 0;      // payload bytes so far
    uint32_t segments = 0;
    SeqNum next_seq;         // the sequence number an appended segment must start at
    uint8_t flags = 0;       // of the last segment (PSH/FIN go on the last one only)
    // Split frame: the payload stays in the device's payload area (the connection's
    // send buffer) from here, and `buf` holds only the headers (Device::tx_commit_split).
    const uint8_t* ext = nullptr;
  };
  // Whether `p` lies in the device memory lent to a connection's send buffer.
  bool in_area(std::span<const uint8_t> p) const {
    return !area_.empty() && p.data() >= area_.data() && p.data() + p.size() <= area_.data() + area_.size();
  }
  // Lends the device's payload area to connection `e`'s send buffer when nobody has it.
  void lend_area(ConnEntry* e);

  Device* dev_;
  // Publication for observers (api/publish.h): the device's area, and which connection
  // has it.
  utcp_app_info* app_info_ = nullptr;
  const ConnEntry* published_ = nullptr;
  TcpState published_state_ = TcpState::kClosed;
  Instant published_at_{};
  bool publish_due_ = false;  // a change of published_ waits for the interval's end
  static constexpr Duration kPublishInterval = Duration(1000);
  // A publication skipped inside the interval goes out with the first poll after it; a
  // stack that has nothing else to do wakes for it only this long after the last one. A
  // deadline within the interval would be a wake-up less than a millisecond away after
  // nearly every exchange of a busy connection, and sleeping on such a near deadline cost
  // round trips 60-100 us in the TCG guest (rr 1 B: 370-445 against 297-315 us with no
  // deadline near; VM A/B of 2026-11-25).
  static constexpr Duration kPublishLag = Duration(50'000);
  uint32_t pid_ = 0;
  StackConfig cfg_;
  IsnGenerator isn_;
  std::array<uint8_t, 16> cookie_key_;
  // While a frame is processed: its source, where replies of no connection go.
  const MacAddr* reply_mac_ = nullptr;
  Ipv4Addr reply_ip_;
  TimerWheel wheel_;
  std::unordered_map<uint32_t, MacAddr> neighbors_;
  std::unordered_map<FourTuple, std::unique_ptr<ConnEntry>, FourTupleHash> conns_;
  std::unordered_map<uint16_t, int> listeners_;  // port -> listener handle
  std::unordered_map<uint16_t, int> port_refs_;  // local ports in use
  std::vector<std::unique_ptr<Socket>> sockets_;  // index = handle
  std::vector<int> free_handles_;
  std::vector<ConnEntry*> dirty_, work_;
  uint16_t next_ephemeral_;
  uint16_t ip_ident_ = 0;
  OpenFrame open_;
  // Device memory the send buffer of one connection lives in (Device::tx_payload_area),
  // and that connection; frames take their payload from it in place.
  std::span<uint8_t> area_;
  ConnEntry* area_owner_ = nullptr;
  ParsedFrame parsed_;
  Instant now_ = kInstantZero;
  bool defer_flush_ = false;
  StackStats stats_;
  LiveToken<LiveKind::kStack> live_;
};

}  // namespace utcp
