// copy.h - copy_bytes: the data path's bulk copy (send buffer in, receive buffer out, data
// placed into a posted read), as memcpy calls of at most kCopyPiece bytes each.
//
// Why pieces: glibc's memcpy switches from its vector loop to `rep movsb` above
// rep_movsb_threshold (2048 bytes with SSE2, 2112 with FSRM, 8192 with AVX2, more with
// AVX-512), and how fast `rep movsb` is depends on the CPU: an emulator (qemu TCG, where
// the benchmarks run) executes it a byte at a time. Measured in the TCG guest (glibc 2.36,
// -cpu max, so AVX2 and a threshold of 8192: pieces of 8192 bytes ran at 660 MB/s, of
// 8193 at 140 MB/s), copying 64 KiB at a time into a 1 MiB ring: 70-210 MB/s in one
// call, 760-850 MB/s in pieces of 2048 (the host's load varied between runs). The
// library's own copies of 16 KiB and 64 KiB application writes, and of the peer's 64 KiB
// frames, went that slow way.
// Pieces of 2048 bytes stay on the vector loop whatever the threshold; on hardware
// where `rep movsb` is fast the vector loop is within a few percent of it at this size.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace utcp {

inline constexpr size_t kCopyPiece = 2048;

inline void copy_bytes(void* dst, const void* src, size_t n) {
  auto* d = static_cast<uint8_t*>(dst);
  auto* s = static_cast<const uint8_t*>(src);
  while (n > 0) {
    size_t piece = n < kCopyPiece ? n : kCopyPiece;
    // Hidden from the optimizer: a memcpy whose size GCC knows to be at most 2048 is
    // expanded inline as `rep movsq` (its generic x86-64 tuning), the instruction
    // family this avoids; an unknown size is a call to the library's memcpy.
    asm("" : "+r"(piece));
    std::memcpy(d, s, piece);
    d += piece;
    s += piece;
    n -= piece;
  }
}

}  // namespace utcp
