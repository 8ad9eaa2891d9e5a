// probe.cc - smallest libFuzzer target; meson compiles it to learn whether clang++ can link -fsanitize=fuzzer.
#include <cstddef>
#include <cstdint>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t*, size_t) { return 0; }
