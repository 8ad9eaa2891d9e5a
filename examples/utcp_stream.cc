// utcp_stream.cc - the kernel-TCP side's helper for long checked transfers: writes a
// seeded deterministic stream to stdout (gen) or hashes stdin (hash), printing the byte
// count and SHA-256, so `utcp-stream gen 2 1G | nc ...` and `nc ... | utcp-stream hash`
// pair with utcp-xfer's --send-seeded and --hash-received without files or openssl.
//
//   utcp-stream gen SEED BYTES   the stream to stdout; "BYTES SHA256" to stderr
//   utcp-stream hash             stdin hashed; "BYTES SHA256" to stdout
#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "seeded_stream.h"

using utcp::examples::SeededStream;
using utcp::examples::Sha256;

namespace {

int usage(FILE* out) {
  std::fprintf(out,
               "usage: utcp-stream gen SEED BYTES\n"
               "       utcp-stream hash\n"
               "\n"
               "gen writes BYTES bytes of a deterministic stream made from SEED (splitmix64) to\n"
               "stdout and then \"BYTES SHA256\" of what it wrote to stderr; hash reads stdin to\n"
               "its end and prints \"BYTES SHA256\" to stdout. utcp-xfer --send-seeded SEED:BYTES\n"
               "sends the same stream. Exit status 0, 1 on an I/O error, 2 for a usage error.\n"
               "\n"
               "example:  utcp-stream gen 7 1073741824 | nc -N -l 5001\n"
               "          nc 192.0.2.7 5001 | utcp-stream hash\n");
  return out == stdout ? 0 : 2;
}

bool parse_u64(const char* s, uint64_t* out) {
  char* end = nullptr;
  errno = 0;
  unsigned long long v = std::strtoull(s, &end, 0);
  if (errno != 0 || end == s || *end != '\0' || s[0] == '-') return false;
  *out = v;
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 2 && (std::strcmp(argv[1], "-h") == 0 || std::strcmp(argv[1], "--help") == 0)) return usage(stdout);
  std::vector<uint8_t> buf(256 * 1024);
  Sha256 sha;
  if (argc == 4 && std::strcmp(argv[1], "gen") == 0) {
    uint64_t seed = 0, bytes = 0;
    if (!parse_u64(argv[2], &seed) || !parse_u64(argv[3], &bytes)) return usage(stderr);
    SeededStream gen(seed, bytes);
    for (size_t n; (n = gen.read(buf.data(), buf.size())) > 0;) {
      sha.update(buf.data(), n);
      for (size_t off = 0; off < n;) {
        ssize_t w = ::write(1, buf.data() + off, n - off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
          std::fprintf(stderr, "utcp-stream: writing stdout after %" PRIu64 " bytes: %s\n",
                       bytes - gen.left() - (n - off), w < 0 ? std::strerror(errno) : "nothing written");
          return 1;
        }
        off += size_t(w);
      }
    }
    std::fprintf(stderr, "%" PRIu64 " %s\n", sha.bytes(), sha.hex().c_str());
    return 0;
  }
  if (argc == 2 && std::strcmp(argv[1], "hash") == 0) {
    for (;;) {
      ssize_t r = ::read(0, buf.data(), buf.size());
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) {
        std::fprintf(stderr, "utcp-stream: reading stdin: %s\n", std::strerror(errno));
        return 1;
      }
      if (r == 0) break;
      sha.update(buf.data(), size_t(r));
    }
    std::printf("%" PRIu64 " %s\n", sha.bytes(), sha.hex().c_str());
    return 0;
  }
  return usage(stderr);
}
