// inherit.h - connections the registry inherits when their application is gone (paper §3.4).
//
// The library keeps all TCP state in the application, so when it exits or crashes only
// two things are left: the endpoint (the registry holds its own reference to the file)
// and what the module saw leave through its template check — the highest sequence number
// sent, the last acknowledgment, whether a SYN, FIN or RST went out (utcp_endpoint_stats
// tcp_*). From those the registry finishes the connection for the peer:
//  - an orderly one (our FIN left) gets TIME-WAIT: the port and flow stay held for 2·MSL,
//    the peer's retransmitted FINs and data are acknowledged, our FIN is retransmitted
//    until acknowledged (RFC 9293 §3.6, §3.10.7.4);
//  - one closed after the peer's FIN (a passive close, RFC 9293 LAST-ACK) has no
//    TIME-WAIT: our FIN is retransmitted until acknowledged, then it is released — at
//    once if the module already saw the peer acknowledge it;
//  - an abandoned one (no FIN, no RST) is reset: RST at SND.MAX, and a RST at the
//    acknowledgment number of any challenge ACK the peer answers with (RFC 5961 §3.2),
//    so the peer learns of it even when data was still in flight;
//  - one that was already reset, or never sent anything, is released at once.
// An endpoint whose file is still held elsewhere (passed to another process, paper §3.2's
// inetd case) is not inherited until the last holder lets go.
#pragma once

#include <linux/utcp.h>

#include <cstdint>
#include <memory>
#include <string>

#include "base/time.h"
#include "device/kmod_device.h"
#include "wire/types.h"

namespace utcp::registry {

struct InheritConfig {
  Duration time_wait = Duration(60'000'000);  // 2·MSL, Linux's TCP_TIMEWAIT_LEN
  Duration reset_linger = Duration(2'000'000);  // answering challenge ACKs after our RST
  Duration fin_rto = Duration(1'000'000);       // our FIN again, doubling, until acknowledged
  int fin_retries = 6;
};

// What an inherited connection needs to speak for itself on the wire.
struct OrphanAddress {
  Ipv4Addr local_ip, remote_ip;
  uint16_t local_port = 0, remote_port = 0;
  MacAddr local_mac, next_hop;
};

class Orphan {
 public:
  enum class Kind { kRelease, kTimeWait, kLastAck, kReset };
  // What to do for a connection given the module's record of its endpoint.
  static Kind classify(const utcp_endpoint_stats& st);

  // Takes over `dev` (the registry's mapping of the endpoint) and starts the work of
  // `kind` at `now`: the RST leaves here for kReset.
  Orphan(std::unique_ptr<KmodDevice> dev, const OrphanAddress& a, const utcp_endpoint_stats& st, Kind kind,
         const InheritConfig& cfg, Instant now);

  // Handles received segments and timers. Returns false once the connection is over and
  // its endpoint and port can be released.
  bool poll(Instant now);
  Instant poll_at() const;
  int fd() const { return dev_->fd(); }
  Kind kind() const { return kind_; }
  static const char* describe(Kind k);
  uint64_t rsts_sent() const { return rsts_; }
  uint64_t acks_sent() const { return acks_; }

 private:
  void send(uint8_t flags, uint32_t seq, uint32_t ack);
  void on_segment(Instant now, const TcpRepr& seg);

  std::unique_ptr<KmodDevice> dev_;
  OrphanAddress a_;
  Kind kind_;
  InheritConfig cfg_;
  uint32_t snd_max_, rcv_nxt_;
  bool have_ack_;
  bool fin_acked_ = false;
  int fin_tries_ = 0;
  Instant end_, next_fin_;
  Duration fin_rto_;
  uint16_t ident_ = 0;
  uint64_t rsts_ = 0, acks_ = 0;
};

}  // namespace utcp::registry
