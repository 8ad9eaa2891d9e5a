// inherit.cc - the registry finishing or resetting connections of exited applications.
#include "inherit.h"

#include <algorithm>

#include "wire/ethernet.h"
#include "wire/frame.h"
#include "wire/ipv4.h"
#include "wire/tcp.h"

namespace utcp::registry {

namespace tf = tcp_flags;

Orphan::Kind Orphan::classify(const utcp_endpoint_stats& st) {
  if (!(st.tcp_flags & UTCP_EPT_SENT) || (st.tcp_flags & UTCP_EPT_RST)) return Kind::kRelease;
  if (st.tcp_flags & UTCP_EPT_FIN) {
    if (!(st.tcp_flags & UTCP_EPT_LAST_ACK)) return Kind::kTimeWait;
    return (st.tcp_flags & UTCP_EPT_FIN_ACKED) ? Kind::kRelease : Kind::kLastAck;
  }
  return Kind::kReset;
}

const char* Orphan::describe(Kind k) {
  switch (k) {
    case Kind::kRelease: return "finished: released";
    case Kind::kTimeWait: return "closed: TIME-WAIT held by utcpd";
    case Kind::kLastAck: return "closed after the peer: utcpd waits for the ACK of its FIN (LAST-ACK)";
    case Kind::kReset: return "abandoned: RST sent to the peer";
  }
  return "?";
}

Orphan::Orphan(std::unique_ptr<KmodDevice> dev, const OrphanAddress& a, const utcp_endpoint_stats& st, Kind kind,
               const InheritConfig& cfg, Instant now)
    : dev_(std::move(dev)),
      a_(a),
      kind_(kind),
      cfg_(cfg),
      snd_max_(st.tcp_snd_max),
      rcv_nxt_(st.tcp_rcv_ack),
      have_ack_(st.tcp_flags & UTCP_EPT_ACK),
      end_(now),
      next_fin_(kInstantNever),
      fin_rto_(cfg.fin_rto) {
  switch (kind_) {
    case Kind::kRelease:
      break;
    case Kind::kReset:
      send(have_ack_ ? uint8_t(tf::kRst | tf::kAck) : tf::kRst, snd_max_, rcv_nxt_);
      end_ = now + cfg_.reset_linger;
      break;
    case Kind::kTimeWait:
    case Kind::kLastAck:
      // Our FIN may be lost or unacknowledged: send it again (a duplicate only draws an
      // ACK), until the peer acknowledges SND.MAX. LAST-ACK ends with that ACK; the
      // 2·MSL bound only stops a peer that never answers (fin_retries stops it sooner).
      send(tf::kFin | tf::kAck, snd_max_ - 1, rcv_nxt_);
      next_fin_ = now + fin_rto_;
      end_ = now + cfg_.time_wait;
      break;
  }
  dev_->flush(now);
}

void Orphan::send(uint8_t flags, uint32_t seq, uint32_t ack) {
  constexpr size_t kLen = EthernetRepr::kHeaderLen + Ipv4Repr::kHeaderLen + TcpRepr::kMinHeaderLen;
  auto buf = dev_->tx_buffer(kLen);
  if (buf.size() < kLen) return;  // ring full: a lost segment, the timers cover it
  TcpRepr t;
  t.src_port = a_.local_port;
  t.dst_port = a_.remote_port;
  t.seq = SeqNum(seq);
  t.ack = SeqNum((flags & tf::kAck) ? ack : 0);
  t.flags = flags;
  t.window = 0;  // nobody will read more
  uint8_t* tcp_at = buf.data() + EthernetRepr::kHeaderLen + Ipv4Repr::kHeaderLen;
  size_t n = emit_tcp(t, a_.local_ip, a_.remote_ip, {tcp_at, TcpRepr::kMinHeaderLen}, true);
  if (n == 0) return;
  Ipv4Repr ip;
  ip.src = a_.local_ip;
  ip.dst = a_.remote_ip;
  ip.protocol = uint8_t(IpProto::kTcp);
  ip.ident = ident_++;
  ip.payload_len = uint16_t(n);
  emit_ipv4(ip, buf.subspan(EthernetRepr::kHeaderLen, Ipv4Repr::kHeaderLen));
  emit_ethernet({a_.next_hop, a_.local_mac, uint16_t(EtherType::kIpv4)}, buf);
  dev_->tx_commit(kLen);
  if (flags & tf::kRst) ++rsts_;
  else ++acks_;
}

void Orphan::on_segment(Instant now, const TcpRepr& seg) {
  if (seg.has(tf::kRst)) {
    if (kind_ == Kind::kReset) {
      end_ = now;  // the peer is done with it too
      return;
    }
    // TIME-WAIT ignores a RST (RFC 1337: no assassination), but a RST tells us the peer
    // has no connection left, so our FIN needs no more retransmissions: typically the
    // answer of a peer that already finished to our repeated FIN. In LAST-ACK a RST
    // closes the connection (RFC 9293 §3.10.7.4).
    fin_acked_ = true;
    if (kind_ == Kind::kLastAck) end_ = now;
    return;
  }
  if (kind_ == Kind::kReset) {
    // RFC 5961 §3.2: our RST was in the window but not at RCV.NXT, so the peer asks with
    // a challenge ACK; a RST at its acknowledgment number is accepted. Retransmitted data
    // gets the same answer.
    if (seg.has(tf::kAck)) send(tf::kRst, seg.ack.raw(), 0);
    return;
  }
  // TIME-WAIT (and the FIN-WAIT states before it).
  if (seg.has(tf::kAck) && seg.ack.raw() == snd_max_) {
    fin_acked_ = true;
    if (kind_ == Kind::kLastAck) {
      end_ = now;  // LAST-ACK: our FIN acknowledged, the connection is CLOSED
      return;
    }
  }
  const uint32_t seq = seg.seq.raw();
  const uint32_t end = seq + seg.seg_len();
  if (!seg.payload.empty() && int32_t(end - rcv_nxt_ - (seg.has(tf::kFin) ? 1 : 0)) > 0) {
    // New data for an application that is gone: RFC 9293 §3.10.7.4 has no reader to give
    // it to; as Linux does for an orphaned socket, reset.
    send(tf::kRst, snd_max_, 0);
    end_ = now;
    return;
  }
  if (seg.has(tf::kFin)) {
    if (int32_t(end - rcv_nxt_) > 0) rcv_nxt_ = end;
    end_ = now + cfg_.time_wait;  // RFC 9293 §3.10.7.4: a FIN restarts the 2·MSL timeout
    have_ack_ = true;
  }
  if (seg.seg_len() > 0) send(tf::kAck, snd_max_, rcv_nxt_);  // acknowledge (duplicates too)
}

bool Orphan::poll(Instant now) {
  if (kind_ == Kind::kRelease) return false;
  ParsedFrame f;
  dev_->receive(
      now,
      [&](std::span<const uint8_t> frame) {
        if (!parse_frame_into(frame, true, &f) || !f.tcp) return;
        const TcpRepr& seg = *f.tcp;
        if (f.ip.src != a_.remote_ip || f.ip.dst != a_.local_ip || seg.src_port != a_.remote_port ||
            seg.dst_port != a_.local_port)
          return;
        on_segment(now, seg);
      },
      256);
  if ((kind_ == Kind::kTimeWait || kind_ == Kind::kLastAck) && !fin_acked_ && now >= next_fin_ && now < end_) {
    if (++fin_tries_ > cfg_.fin_retries) {
      // Our FIN (or data before it) never got through: give up the way an RTO does.
      send(tf::kRst, snd_max_, 0);
      end_ = now;
    } else {
      send(tf::kFin | tf::kAck, snd_max_ - 1, rcv_nxt_);
      fin_rto_ = fin_rto_ * 2;
      next_fin_ = now + fin_rto_;
    }
  }
  dev_->flush(now);
  return now < end_;
}

Instant Orphan::poll_at() const {
  if (kind_ == Kind::kRelease) return kInstantZero;
  Instant at = end_;
  if ((kind_ == Kind::kTimeWait || kind_ == Kind::kLastAck) && !fin_acked_) at = std::min(at, next_fin_);
  return at;
}

}  // namespace utcp::registry
