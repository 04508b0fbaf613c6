// Fuzz target: arbitrary bytes as the payload of a CONTROL_REQUEST envelope
// (tests/fuzz/payload_fuzz.h says what is checked). Seeds: the messages of
// tests/unit/fabric/payload_samples.h and tests/fuzz/corpus/control_request/.
#include "tests/fuzz/payload_fuzz.h"

namespace {
constexpr medic::v1::Kind kKind = medic::v1::KIND_CONTROL_REQUEST;
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return medic::fuzz::payload_one_input(kKind, data, size);
}

const char* fuzz_corpus_name() { return "control_request"; }
std::vector<std::string> fuzz_seeds() { return medic::fuzz::payload_seeds(kKind); }
size_t fuzz_opened_count() { return medic::fuzz::payload_fixture().accepted; }
// Mutated payloads carry no signature, so many still pass: no upper bound.
size_t fuzz_max_accepted_mutations(size_t) { return SIZE_MAX; }
