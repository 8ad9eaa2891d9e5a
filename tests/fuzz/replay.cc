// replay.cc - runs the fuzz_wire target without libFuzzer: every corpus file, each of its prefixes and single-bit flips.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

void run(const std::vector<uint8_t>& v) { LLVMFuzzerTestOneInput(v.data(), v.size()); }

// A cheap deterministic mutation sweep so the corpus exercises the refusal paths too.
size_t sweep(const std::vector<uint8_t>& bytes) {
  size_t n = 0;
  for (size_t len = 0; len <= bytes.size(); ++len, ++n) run({bytes.begin(), bytes.begin() + long(len)});
  for (size_t i = 0; i < bytes.size(); ++i) {
    for (int bit = 0; bit < 8; ++bit, ++n) {
      auto m = bytes;
      m[i] ^= uint8_t(1u << bit);
      run(m);
    }
  }
  return n;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR_OR_FILE...\n", argv[0]);
    return 2;
  }
  size_t files = 0, runs = 0;
  for (int a = 1; a < argc; ++a) {
    std::vector<std::filesystem::path> paths;
    if (std::filesystem::is_directory(argv[a])) {
      for (const auto& e : std::filesystem::directory_iterator(argv[a])) paths.push_back(e.path());
    } else {
      paths.emplace_back(argv[a]);
    }
    for (const auto& p : paths) {
      std::ifstream in(p, std::ios::binary);
      if (!in) {
        std::fprintf(stderr, "replay: cannot read %s\n", p.c_str());
        return 1;
      }
      std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      runs += sweep(bytes);
      ++files;
    }
  }
  if (files == 0) {
    std::fprintf(stderr, "replay: no corpus files found\n");
    return 1;
  }
  std::printf("replay: %zu files, %zu inputs, all invariants held\n", files, runs);
  return 0;
}
