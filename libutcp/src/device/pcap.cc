// pcap.cc - classic pcap writing and the recording Device wrapper.
#include "device/pcap.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

namespace utcp {

namespace {
void put_le32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = uint8_t(v >> (8 * i));
}
void put_le16(uint8_t* p, uint16_t v) {
  p[0] = uint8_t(v);
  p[1] = uint8_t(v >> 8);
}
}  // namespace

PcapWriter::PcapWriter(Sink sink, uint32_t snaplen) : sink_(std::move(sink)), snaplen_(snaplen) {
  // pcap global header: magic, version 2.4, thiszone 0, sigfigs 0, snaplen, linktype.
  uint8_t h[24] = {};
  put_le32(h, 0xa1b2c3d4);
  put_le16(h + 4, 2);
  put_le16(h + 6, 4);
  put_le32(h + 16, snaplen_);
  put_le32(h + 20, kLinktypeEthernet);
  sink_(h);
}

std::unique_ptr<PcapWriter> PcapWriter::open(const std::string& path, std::string* error,
                                             uint32_t snaplen) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) {
    if (error != nullptr) *error = "cannot create pcap file " + path + ": " + std::strerror(errno);
    return nullptr;
  }
  // The sink owns the FILE; it closes when the writer (holding the sink) goes away.
  std::shared_ptr<std::FILE> file(f, [](std::FILE* p) { std::fclose(p); });
  return std::make_unique<PcapWriter>(
      [file](std::span<const uint8_t> b) { std::fwrite(b.data(), 1, b.size(), file.get()); },
      snaplen);
}

void PcapWriter::write(Instant ts, std::span<const uint8_t> frame) {
  const int64_t us = ts.time_since_epoch().count();
  const uint32_t caplen = uint32_t(std::min<size_t>(frame.size(), snaplen_));
  // Record header: ts_sec, ts_usec, captured length, original length.
  uint8_t h[16];
  put_le32(h, uint32_t(us / 1000000));
  put_le32(h + 4, uint32_t(us % 1000000));
  put_le32(h + 8, caplen);
  put_le32(h + 12, uint32_t(frame.size()));
  sink_(h);
  sink_(frame.first(caplen));
  ++frames_;
}

size_t PcapTap::receive(Instant now, const std::function<void(std::span<const uint8_t>)>& fn,
                        size_t max) {
  return inner_.receive(now, [&](std::span<const uint8_t> f) {
    writer_.write(now, f);
    fn(f);
  }, max);
}

std::span<uint8_t> PcapTap::tx_buffer(size_t len) {
  last_buffer_ = inner_.tx_buffer(len);
  return last_buffer_;
}

void PcapTap::tx_commit(size_t len) {
  // Copied now: the inner device may reuse the buffer before flush() stamps the time.
  pending_.push(last_buffer_.first(std::min(len, last_buffer_.size())));
  inner_.tx_commit(len);
}

void PcapTap::flush(Instant now) {
  pending_.drain([&](std::span<const uint8_t> f) { writer_.write(now, f); });
  inner_.flush(now);
}

}  // namespace utcp
