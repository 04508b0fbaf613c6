// Runs the fuzz target over a bounded, deterministic set of inputs: valid
// frames with random byte flips, insertions, truncations and splices, plus
// pure noise. A crash or sanitizer report fails the test; the count of
// inputs that still opened is checked so the driver cannot silently test
// nothing.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);
std::vector<std::string> fuzz_seeds();
size_t fuzz_opened_count();

namespace {

std::string mutate(std::string s, std::mt19937& rng) {
  int ops = 1 + static_cast<int>(rng() % 4);
  for (int i = 0; i < ops && !s.empty(); ++i) {
    size_t pos = rng() % s.size();
    switch (rng() % 4) {
      case 0: s[pos] = static_cast<char>(rng()); break;
      case 1: s.insert(pos, 1 + rng() % 8, static_cast<char>(rng())); break;
      case 2: s.resize(pos); break;
      case 3: s.replace(pos, std::min<size_t>(4, s.size() - pos), "\xff\xff\xff\x7f"); break;
    }
  }
  return s;
}

TEST(EnvelopeFuzz, TenThousandMutatedFramesNeverCrash) {
  std::mt19937 rng(20261125);
  auto seeds = fuzz_seeds();
  ASSERT_FALSE(seeds.empty());
  for (const auto& s : seeds) {
    LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(s.data()), s.size());
  }
  ASSERT_EQ(fuzz_opened_count(), seeds.size()) << "valid seed frames must open";
  for (int i = 0; i < 10000; ++i) {
    std::string input = i % 10 == 0 ? std::string(rng() % 256, static_cast<char>(rng()))
                                    : mutate(seeds[rng() % seeds.size()], rng);
    LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(input.data()), input.size());
  }
  // Mutations of signed frames must not open (the signature covers every byte
  // that matters), except the rare mutation that leaves the frame intact.
  EXPECT_LT(fuzz_opened_count(), seeds.size() + 50);
}

}  // namespace
