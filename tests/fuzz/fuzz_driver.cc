// Runs a fuzz target as a bounded, deterministic ctest: the seeds (the
// target's own and the committed corpus in tests/fuzz/corpus/<name>/) first,
// then mutations of them: byte flips, insertions, truncations, splices and
// random protobuf tags, plus pure noise. A crash, an abort (a target's
// oracle failing) or a sanitizer report fails the test; the count of inputs
// the target accepted is checked so the driver cannot silently test nothing.
//
// Bounded by time and count: MEDIC_FUZZ_SECONDS (default 4) and
// MEDIC_FUZZ_MAX_INPUTS (default 200000), at least 2000 inputs whatever the
// clock says. MEDIC_FUZZ_WRITE_CORPUS=DIR writes the target's own seeds to
// DIR (how the committed corpus was made).
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "tests/testing/testing.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);
const char* fuzz_corpus_name();
std::vector<std::string> fuzz_seeds();
size_t fuzz_opened_count();
// How many mutated inputs may be accepted out of `inputs`.
size_t fuzz_max_accepted_mutations(size_t inputs);

namespace {

// A field tag with a random number and wire type, and a small value.
std::string random_field(std::mt19937& rng) {
  std::string out;
  uint64_t tag = (uint64_t{1 + rng() % (rng() % 2 ? 20 : (1u << 29) - 1)} << 3) | (rng() % 8);
  do {
    out.push_back(static_cast<char>((tag & 0x7f) | (tag >= 0x80 ? 0x80 : 0)));
    tag >>= 7;
  } while (tag);
  const size_t n = rng() % 9;
  if (rng() % 2) out.push_back(static_cast<char>(n));  // as if a length
  for (size_t i = 0; i < n; ++i) out.push_back(static_cast<char>(rng()));
  return out;
}

std::string mutate(std::string s, std::mt19937& rng) {
  int ops = 1 + static_cast<int>(rng() % 4);
  for (int i = 0; i < ops; ++i) {
    size_t pos = s.empty() ? 0 : rng() % (s.size() + 1);
    switch (rng() % 5) {
      case 0: if (pos < s.size()) s[pos] = static_cast<char>(rng()); break;
      case 1: s.insert(pos, 1 + rng() % 8, static_cast<char>(rng())); break;
      case 2: s.resize(pos); break;
      case 3:
        if (pos < s.size()) s.replace(pos, std::min<size_t>(4, s.size() - pos), "\xff\xff\xff\x7f");
        break;
      default: s.insert(pos, random_field(rng)); break;
    }
  }
  return s;
}

std::vector<std::string> corpus_files(const std::string& name) {
  std::vector<std::string> out;
  std::filesystem::path dir = std::filesystem::path(medic::testing::source_dir()) / "tests" /
                              "fuzz" / "corpus" / name;
  if (!std::filesystem::is_directory(dir)) return out;
  std::vector<std::filesystem::path> paths;
  for (const auto& e : std::filesystem::directory_iterator(dir)) paths.push_back(e.path());
  std::sort(paths.begin(), paths.end());  // a deterministic order
  for (const auto& p : paths) {
    std::ifstream in(p, std::ios::binary);
    out.emplace_back(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  return out;
}

long env_or(const char* name, long fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::strtol(v, nullptr, 10) : fallback;
}

void run(const std::string& input) {
  LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(input.data()), input.size());
}

TEST(MEDIC_FUZZ_SUITE, MutatedInputsNeverCrashOrBreakTheTargetsOracle) {
  const std::string name = fuzz_corpus_name();
  auto seeds = fuzz_seeds();
  ASSERT_FALSE(seeds.empty());
  if (const char* dir = std::getenv("MEDIC_FUZZ_WRITE_CORPUS")) {
    std::filesystem::create_directories(dir);
    for (size_t i = 0; i < seeds.size(); ++i) {
      std::ofstream(std::string(dir) + "/seed-" + std::to_string(i), std::ios::binary) << seeds[i];
    }
  }
  for (const auto& s : seeds) run(s);
  ASSERT_EQ(fuzz_opened_count(), seeds.size()) << "the target's own seeds must be accepted";
  auto corpus = corpus_files(name);
  EXPECT_FALSE(corpus.empty()) << "no committed corpus in tests/fuzz/corpus/" << name;
  for (const auto& s : corpus) run(s);
  seeds.insert(seeds.end(), corpus.begin(), corpus.end());
  const size_t accepted_seeds = fuzz_opened_count();

  std::mt19937 rng(20261125);
  const auto budget = std::chrono::seconds(env_or("MEDIC_FUZZ_SECONDS", 4));
  const long max_inputs = env_or("MEDIC_FUZZ_MAX_INPUTS", 200000);
  const auto start = std::chrono::steady_clock::now();
  long n = 0;
  for (; n < max_inputs; ++n) {
    if (n >= 2000 && n % 256 == 0 && std::chrono::steady_clock::now() - start > budget) break;
    std::string input = n % 10 == 0 ? std::string(rng() % 256, static_cast<char>(rng()))
                                    : mutate(seeds[rng() % seeds.size()], rng);
    run(input);
  }
  const size_t accepted = fuzz_opened_count() - accepted_seeds;
  std::printf("%s: %ld inputs, %zu accepted\n", name.c_str(), n, accepted);
  EXPECT_LE(accepted, fuzz_max_accepted_mutations(static_cast<size_t>(n)));
}

}  // namespace
