// ethernet.h - Ethernet II frame header: checked view, parse to EthernetRepr, emit.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

#include "wire/bytes.h"
#include "wire/types.h"

namespace utcp {

// A view over a frame whose 14-byte header is known to be present.
class EthernetView {
 public:
  static std::optional<EthernetView> parse(std::span<const uint8_t> frame, ParseError* err = nullptr);

  MacAddr dst() const { return mac_at(0); }
  MacAddr src() const { return mac_at(6); }
  uint16_t ethertype() const { return wire::load_be16(b_.data() + 12); }
  std::span<const uint8_t> payload() const { return b_.subspan(EthernetRepr::kHeaderLen); }

 private:
  explicit EthernetView(std::span<const uint8_t> b) : b_(b) {}
  MacAddr mac_at(size_t off) const;
  std::span<const uint8_t> b_;
};

// Parses the header; `payload` (if given) receives everything after it, including any
// Ethernet padding, which the IPv4 parser trims by the IP total length.
std::optional<EthernetRepr> parse_ethernet(std::span<const uint8_t> frame,
                                           std::span<const uint8_t>* payload,
                                           ParseError* err = nullptr);

// The same, filling `*out` in place (no Repr copies on the receive path); false on refusal.
bool parse_ethernet_into(std::span<const uint8_t> frame, EthernetRepr* out,
                         std::span<const uint8_t>* payload, ParseError* err = nullptr);

// Writes the 14-byte header; returns 14, or 0 when `out` is too short.
size_t emit_ethernet(const EthernetRepr& repr, std::span<uint8_t> out);

}  // namespace utcp
