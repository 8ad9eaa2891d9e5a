// kmod_device.cc - a utcp::Device over an endpoint file of the utcp kernel module.
#include "device/kmod_device.h"

#include <poll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>

#include "device/module.h"

namespace utcp {

namespace {

// The shared indices are plain __u32 in the uapi struct; atomic_ref gives them the
// acquire/release semantics the ring protocol needs (see the diagram in utcp.h).
uint32_t load_acquire(uint32_t* p) { return std::atomic_ref<uint32_t>(*p).load(std::memory_order_acquire); }
void store_release(uint32_t* p, uint32_t v) { std::atomic_ref<uint32_t>(*p).store(v, std::memory_order_release); }

}  // namespace

std::unique_ptr<KmodDevice> KmodDevice::open(int fd, uint32_t mtu, std::string* error) {
  // The ABI first: a module of another release may lay out the rings differently, and
  // this query works on every file of the device.
  utcp_abi_info abi{};
  if (query_abi(fd, &abi) == 0 && check_abi(abi, error) < 0) {
    ::close(fd);
    return nullptr;
  }
  utcp_endpoint_info info{};
  if (::ioctl(fd, UTCP_IOC_EP_INFO, &info) < 0) {
    int e = errno;
    *error = std::string("not a utcp endpoint file (UTCP_IOC_EP_INFO: ") + std::strerror(e) +
             "); endpoint fds come from UTCP_IOC_ENDPOINT_CREATE or from utcpd";
    ::close(fd);
    return nullptr;
  }
  const utcp_ring_layout& l = info.layout;
  if (l.rx_entries == 0 || (l.rx_entries & (l.rx_entries - 1)) || l.tx_entries == 0 ||
      (l.tx_entries & (l.tx_entries - 1)) || l.map_size < uint64_t(l.slots_off) + uint64_t(l.slot_count) * l.slot_size) {
    *error = "utcp endpoint reports an impossible ring layout: module and library disagree on the ABI";
    ::close(fd);
    return nullptr;
  }
  void* map = ::mmap(nullptr, l.map_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (map == MAP_FAILED) {
    int e = errno;
    *error = std::string("cannot map the endpoint rings: ") + std::strerror(e);
    ::close(fd);
    return nullptr;
  }
  auto dev = std::unique_ptr<KmodDevice>(new KmodDevice(fd, info, static_cast<uint8_t*>(map)));
  dev->mtu_ = mtu;
  dev->abi_flags_ = abi.flags;
  // The payload area is the upper half of the TX slots, decided from the layout alone,
  // so every process that maps these rings (the registry before and after us, a
  // process we hand the connection to) builds frames only in the lower half and never
  // overwrites payload a queued split frame still refers to.
  const uint64_t half = uint64_t(l.tx_entries / 2) * l.slot_size;
  if ((abi.flags & UTCP_ABI_F_TX_SPLIT) && l.tx_entries >= 4 && half >= kMinPayloadArea) {
    dev->frame_slots_ = l.tx_entries / 2;
    dev->area_ = {dev->map_ + l.slots_off + (uint64_t(l.rx_entries) + dev->frame_slots_) * l.slot_size, size_t(half)};
  }
  return dev;
}

KmodDevice::KmodDevice(int fd, const utcp_endpoint_info& info, uint8_t* map)
    : fd_(fd), info_(info), map_(map) {
  const utcp_ring_layout& l = info_.layout;
  hdr_ = reinterpret_cast<utcp_ring_header*>(map_ + l.header_off);
  rx_desc_ = reinterpret_cast<utcp_desc*>(map_ + l.rx_desc_off);
  tx_desc_ = reinterpret_cast<utcp_desc*>(map_ + l.tx_desc_off);
  // Another process may have used these rings before (fd passed over SCM_RIGHTS):
  // resume from the shared indices rather than from zero.
  rx_cons_ = std::atomic_ref<uint32_t>(hdr_->rx_cons.value).load(std::memory_order_relaxed);
  tx_prod_ = std::atomic_ref<uint32_t>(hdr_->tx_prod.value).load(std::memory_order_relaxed);
  tx_cons_seen_ = load_acquire(index(hdr_->tx_cons));
  frame_slots_ = l.tx_entries;
  tx_base_ = tx_prod_;
  tx_base_known_ = tx_prod_ == tx_cons_seen_;
}

KmodDevice::~KmodDevice() {
  ::munmap(map_, info_.layout.map_size);
  ::close(fd_);
}

DeviceCaps KmodDevice::caps() const {
  DeviceCaps c;
  c.mtu = mtu_;
  uint32_t slot = info_.layout.slot_size;
  c.max_tx_frame = std::min<uint32_t>(slot, UTCP_MAX_FRAME_LEN);
  // The module cuts a GSO frame at the template's mss when one is set, else at MTU -
  // headers, which is what the stack assumes (DeviceCaps::gso()): with a fixed mss,
  // no frames beyond the MTU.
  if (info_.tmpl.mss != 0) c.max_tx_frame = std::min<uint32_t>(c.max_tx_frame, mtu_ + 14);
  c.max_rx_frame = std::min<uint32_t>(slot, UTCP_MAX_FRAME_LEN);
  c.tx_tcp_checksum_offload = (abi_flags_ & UTCP_ABI_F_TX_TCP_CSUM) != 0;
  return c;
}

size_t KmodDevice::receive(Instant, const std::function<void(std::span<const uint8_t>)>& fn, size_t max) {
  const utcp_ring_layout& l = info_.layout;
  // Acquire: pairs with the module's release store of rx_prod, so the descriptors and
  // slot bytes it wrote before publishing are visible to the reads below.
  uint32_t prod = load_acquire(index(hdr_->rx_prod));
  size_t n = 0;
  while (rx_cons_ != prod && n < max) {
    const utcp_desc& d = rx_desc_[rx_cons_ & (l.rx_entries - 1)];
    // The module is trusted, but a stale or torn ring must not make us read outside the map.
    if (uint64_t(d.offset) + d.len <= l.map_size && d.offset >= l.slots_off) {
      rx_csum_ok_ = (d.flags & UTCP_RXF_CSUM_OK) != 0;
      fn(std::span<const uint8_t>(map_ + d.offset, d.len));
    }
    ++rx_cons_;
    ++n;
  }
  rx_csum_ok_ = false;
  // Release: we are done reading those slots before the module may refill them.
  if (n) store_release(index(hdr_->rx_cons), rx_cons_);
  return n;
}

uint32_t KmodDevice::tx_queued() const {
  return tx_prod_ - std::atomic_ref<uint32_t>(hdr_->tx_cons.value).load(std::memory_order_acquire);
}

std::span<uint8_t> KmodDevice::tx_buffer(size_t len) {
  const utcp_ring_layout& l = info_.layout;
  if (len > l.slot_size || len > UTCP_MAX_FRAME_LEN) return {};
  // At most frame_slots_ frames queued: descriptor i uses frame slot (i - tx_base_) mod
  // frame_slots_, in ring order, starting again at slot 0 once everything was sent.
  if (tx_prod_ - tx_cons_seen_ >= frame_slots_ || !tx_base_known_) {
    // Acquire: the module finished with the slots before it published tx_cons.
    tx_cons_seen_ = load_acquire(index(hdr_->tx_cons));
    if (tx_prod_ - tx_cons_seen_ >= frame_slots_) return {};
    // Frames another process queued sit in slots we cannot know: wait until they left.
    if (!tx_base_known_ && tx_prod_ != tx_cons_seen_) return {};
  }
  if (tx_prod_ == tx_cons_seen_) {
    tx_base_ = tx_prod_;
    tx_base_known_ = true;
  }
  return {map_ + l.slots_off + uint64_t(frame_slot(tx_prod_)) * l.slot_size, l.slot_size};
}

void KmodDevice::tx_commit(size_t len) {
  const utcp_ring_layout& l = info_.layout;
  utcp_desc& d = tx_desc_[tx_prod_ & (l.tx_entries - 1)];
  d.offset = uint32_t(l.slots_off + uint64_t(frame_slot(tx_prod_)) * l.slot_size);
  d.len = uint32_t(len);
  d.flags = 0;
  d.reserved = 0;
  ++tx_prod_;
}

std::span<uint8_t> KmodDevice::tx_payload_area(size_t min_size) {
  return area_.size() >= min_size && !area_.empty() ? area_ : std::span<uint8_t>();
}

void KmodDevice::tx_commit_split(size_t hdr_len, std::span<const uint8_t> payload) {
  // uapi UTCP_TXF_SPLIT: headers in this descriptor's frame slot, payload in the area.
  const utcp_ring_layout& l = info_.layout;
  utcp_desc& d = tx_desc_[tx_prod_ & (l.tx_entries - 1)];
  d.offset = uint32_t(l.slots_off + uint64_t(frame_slot(tx_prod_)) * l.slot_size);
  d.len = uint32_t(hdr_len + payload.size());
  d.flags = UTCP_TXF_SPLIT | (uint32_t(hdr_len) << UTCP_TXF_HDR_SHIFT);
  d.reserved = uint32_t(payload.data() - map_);
  ++tx_prod_;
}

void KmodDevice::flush(Instant) {
  // Release: descriptors and frame bytes are written before the module sees tx_prod.
  store_release(index(hdr_->tx_prod), tx_prod_);
  if (tx_queued() == 0) return;
  last_tx_ = {};
  int rc = ::ioctl(fd_, UTCP_IOC_TX, &last_tx_);
  last_tx_rc_ = rc < 0 ? -errno : rc;
  tx_cons_seen_ = load_acquire(index(hdr_->tx_cons));
}

int KmodDevice::wait(Duration timeout) {
  if (load_acquire(index(hdr_->rx_prod)) != rx_cons_) return 1;
  pollfd p{fd_, POLLIN, 0};
  int64_t us = timeout.count();
  int ms = us < 0 ? -1 : int(std::min<int64_t>((us + 999) / 1000, 1 << 30));
  int rc = ::poll(&p, 1, ms);
  if (rc < 0) return errno == EINTR ? 0 : -errno;
  if (rc == 0) return 0;
  if (p.revents & (POLLHUP | POLLERR)) return -EPIPE;
  return 1;
}

int KmodDevice::flush_and_wait(Instant now, Duration timeout, bool data_only) {
  if (!has_tx_wait()) {
    flush(now);
    return wait(timeout);
  }
  // Release: descriptors and frame bytes are written before the module sees tx_prod.
  store_release(index(hdr_->tx_prod), tx_prod_);
  if (!data_only && load_acquire(index(hdr_->rx_prod)) != rx_cons_) {
    flush(now);  // frames are waiting already: send, do not sleep
    return 1;
  }
  utcp_tx_wait w{};
  w.flags = data_only ? UTCP_TXW_DATA : 0;
  const int64_t us = timeout.count();
  w.timeout_ns = us < 0 || us > INT64_MAX / 1000 ? -1 : us * 1000;
  int rc = ::ioctl(fd_, UTCP_IOC_TX_WAIT, &w);
  const int err = rc < 0 ? errno : 0;
  last_tx_ = w.tx;
  last_tx_rc_ = rc < 0 ? -err : rc;
  tx_cons_seen_ = load_acquire(index(hdr_->tx_cons));
  if (rc >= 0) return w.rx_ready ? 1 : 0;
  if (err == ENOTCONN) return -EPIPE;  // the endpoint was destroyed or detached
  // The module refused the batch and did not sleep (see uapi UTCP_IOC_TX_WAIT).
  return wait(timeout);
}

int KmodDevice::stats(utcp_endpoint_stats* out) const {
  return ::ioctl(fd_, UTCP_IOC_EP_STATS, out) < 0 ? -errno : 0;
}

}  // namespace utcp
