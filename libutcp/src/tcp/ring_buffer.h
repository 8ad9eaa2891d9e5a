// ring_buffer.h - fixed-capacity byte ring for TCP send and receive queues (no per-packet allocation).
//
// Besides FIFO write/read it lets the receive path store out-of-order bytes in the free
// space past the readable data (write_at) and later make them readable (commit), and
// the send path look at unacknowledged bytes in place (peek_spans) without copying.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <utility>

#include "tcp/copy.h"
#include "tcp/live.h"

namespace utcp {

class RingBuffer {
 public:
  explicit RingBuffer(size_t capacity = 0) { reset(capacity); }
  RingBuffer(RingBuffer&&) = default;
  RingBuffer& operator=(RingBuffer&&) = default;

  // Drops the contents and sets the capacity; only for setup (socket options before
  // connect). The storage is allocated when the first byte is stored: a connection that
  // never receives, or whose send buffer is lent device memory (adopt) before its first
  // write, never allocates it -- a short connection then costs no megabyte of malloc,
  // page faults and trimming.
  void reset(size_t capacity) {
    buf_.reset();
    data_ = nullptr;
    cap_ = capacity;
    head_ = len_ = 0;
  }
  // Moves the readable bytes into `mem` (not owned; it must outlive this ring or the
  // next reset()/adopt()) and keeps using it, with the same capacity. Bytes stored past
  // the readable end (write_at) are dropped: for a send buffer, which has none. False,
  // nothing changed, when `mem` is smaller than the capacity.
  bool adopt(std::span<uint8_t> mem) {
    if (mem.size() < cap_) return false;
    if (mem.data() == data_) return true;
    if (!data_) {  // nothing stored yet, so nothing allocated: just use `mem`
      data_ = mem.data();
      head_ = 0;
      return true;
    }
    // `mem` is other memory than the current storage (no overlap).
    auto [a, b] = peek_spans(0, len_);
    copy_bytes(mem.data(), a.data(), a.size());
    copy_bytes(mem.data() + a.size(), b.data(), b.size());
    buf_.reset();
    data_ = mem.data();
    head_ = 0;
    return true;
  }
  // The storage in use (for a caller that lent it with adopt()).
  const uint8_t* data() const { return data_; }

  size_t capacity() const { return cap_; }
  size_t size() const { return len_; }
  size_t free() const { return cap_ - len_; }
  bool empty() const { return len_ == 0; }

  // Appends up to free() bytes; returns how many.
  size_t write(std::span<const uint8_t> data) {
    size_t n = write_at(0, data);
    len_ += n;
    return n;
  }
  // Copies `data` to the free space starting `offset` bytes past the readable end,
  // without making it readable. Returns the bytes that fit.
  size_t write_at(size_t offset, std::span<const uint8_t> data) {
    if (offset >= free()) return 0;
    size_t n = std::min(data.size(), free() - offset);
    copy_in(pos(len_ + offset), data.first(n));
    return n;
  }
  // Makes `n` bytes stored by write_at readable.
  void commit(size_t n) { len_ += std::min(n, free()); }

  // Copies out and consumes up to out.size() bytes.
  size_t read(std::span<uint8_t> out) {
    size_t n = peek(0, out);
    consume(n);
    return n;
  }
  // Copies out from `offset` without consuming.
  size_t peek(size_t offset, std::span<uint8_t> out) const {
    auto [a, b] = peek_spans(offset, out.size());
    copy_bytes(out.data(), a.data(), a.size());
    copy_bytes(out.data() + a.size(), b.data(), b.size());
    return a.size() + b.size();
  }
  // Up to `len` readable bytes from `offset`, as at most two contiguous pieces.
  std::pair<std::span<const uint8_t>, std::span<const uint8_t>> peek_spans(size_t offset,
                                                                           size_t len) const {
    if (offset >= len_) return {};
    len = std::min(len, len_ - offset);
    size_t p = pos(offset);
    size_t first = std::min(len, cap_ - p);
    return {{data_ + p, first}, {data_, len - first}};
  }
  void consume(size_t n) {
    n = std::min(n, len_);
    // head_ is not reset when the ring empties: bytes stored past the end by write_at
    // are addressed relative to head_ + len_, which must not move.
    head_ = pos(n);
    len_ -= n;
  }

 private:
  size_t pos(size_t off) const {
    size_t p = head_ + off;
    return p >= cap_ ? p - cap_ : p;
  }
  void copy_in(size_t p, std::span<const uint8_t> data) {
    if (data.empty()) return;
    if (!data_) {
      buf_.reset(new uint8_t[cap_]);
      data_ = buf_.get();
    }
    size_t first = std::min(data.size(), cap_ - p);
    copy_bytes(data_ + p, data.data(), first);
    copy_bytes(data_, data.data() + first, data.size() - first);
  }

  std::unique_ptr<uint8_t[]> buf_;  // owned storage, or null after adopt() or before the first byte
  uint8_t* data_ = nullptr;
  size_t cap_ = 0, head_ = 0, len_ = 0;
  LiveToken<LiveKind::kBuffer> live_;
};

}  // namespace utcp
