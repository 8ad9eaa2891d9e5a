// udp_endpoint.cc - UDP datagrams in and out of a Device (udp_endpoint.h).
#include "udp/udp_endpoint.h"

#include <cerrno>
#include <cstring>

#include "wire/ethernet.h"
#include "wire/frame.h"
#include "wire/ipv4.h"
#include "wire/udp.h"

namespace utcp {

UdpEndpoint::UdpEndpoint(Device* dev, Ipv4Addr ip, MacAddr mac, uint16_t local_port, size_t queue_limit)
    : dev_(dev), ip_(ip), mac_(mac), port_(local_port), queue_limit_(queue_limit) {}

size_t UdpEndpoint::max_payload() const {
  return dev_->caps().mtu - Ipv4Repr::kHeaderLen - UdpRepr::kHeaderLen;
}

int64_t UdpEndpoint::sendto(Ipv4Addr dst, uint16_t dst_port, std::span<const uint8_t> data, Instant now) {
  if (dst.v == 0 || dst_port == 0 || port_ == 0) return -EINVAL;
  if (data.size() > max_payload()) return -EMSGSIZE;
  auto nb = neighbors_.find(dst.v);
  if (nb == neighbors_.end()) {
    ++stats_.tx_no_neighbor;
    return -EHOSTUNREACH;
  }
  const size_t l4 = UdpRepr::kHeaderLen + data.size();
  const size_t total = EthernetRepr::kHeaderLen + Ipv4Repr::kHeaderLen + l4;
  auto buf = dev_->tx_buffer(total);
  if (buf.size() < total) {
    ++stats_.tx_full;
    return -EAGAIN;
  }
  uint8_t* udp_at = buf.data() + EthernetRepr::kHeaderLen + Ipv4Repr::kHeaderLen;
  if (!data.empty()) std::memcpy(udp_at + UdpRepr::kHeaderLen, data.data(), data.size());
  UdpRepr u;
  u.src_port = port_;
  u.dst_port = dst_port;
  u.payload = {udp_at + UdpRepr::kHeaderLen, data.size()};
  if (emit_udp(u, ip_, dst, {udp_at, l4}, !dev_->caps().tx_checksum_offload) != l4) return -EMSGSIZE;
  Ipv4Repr ip;
  ip.src = ip_;
  ip.dst = dst;
  ip.protocol = uint8_t(IpProto::kUdp);
  ip.ident = ident_++;
  ip.payload_len = uint16_t(l4);
  emit_ipv4(ip, buf.subspan(EthernetRepr::kHeaderLen, Ipv4Repr::kHeaderLen));
  emit_ethernet({nb->second, mac_, uint16_t(EtherType::kIpv4)}, buf);
  dev_->tx_commit(total);
  dev_->flush(now);
  ++stats_.tx_datagrams;
  return int64_t(data.size());
}

void UdpEndpoint::on_frame(std::span<const uint8_t> frame) {
  ParseError err{};
  auto f = parse_frame(frame, !dev_->caps().rx_checksum_verified, &err);
  if (!f) {
    ++stats_.rx_malformed;
    return;
  }
  if (!f->udp || f->ip.dst != ip_ || f->udp->dst_port != port_) {
    ++stats_.rx_not_for_us;
    return;
  }
  if (queue_.size() >= queue_limit_) {
    ++stats_.rx_queue_drops;
    return;
  }
  std::vector<uint8_t> data;
  if (!spare_.empty()) {
    data = std::move(spare_.back());
    spare_.pop_back();
  }
  data.assign(f->udp->payload.begin(), f->udp->payload.end());
  queue_.push_back({f->ip.src, f->udp->src_port, std::move(data)});
  ++stats_.rx_datagrams;
}

size_t UdpEndpoint::poll(Instant now, size_t max) {
  const uint64_t before = stats_.rx_datagrams;
  dev_->receive(now, [&](std::span<const uint8_t> frame) { on_frame(frame); }, max);
  return size_t(stats_.rx_datagrams - before);
}

int64_t UdpEndpoint::recvfrom(std::span<uint8_t> buf, Ipv4Addr* src, uint16_t* src_port, Instant now) {
  if (queue_.empty()) poll(now);
  if (queue_.empty()) return -EAGAIN;
  Datagram& d = queue_.front();
  if (!buf.empty() && !d.data.empty()) std::memcpy(buf.data(), d.data.data(), std::min(buf.size(), d.data.size()));
  if (src) *src = d.src;
  if (src_port) *src_port = d.src_port;
  const int64_t n = int64_t(d.data.size());
  if (spare_.size() < 64) spare_.push_back(std::move(d.data));
  queue_.pop_front();
  return n;
}

}  // namespace utcp
