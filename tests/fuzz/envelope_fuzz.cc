// Fuzz target: arbitrary bytes into Opener::open and, when a frame opens,
// into decode_event_batch. Must never crash, leak or allocate in proportion
// to a size the input merely claims.
//
// With clang: cmake -DMEDIC_FUZZ=ON -DCMAKE_CXX_COMPILER=clang++ builds a
// libFuzzer binary (envelope_fuzz). Otherwise fuzz_driver.cc runs this target
// over a bounded, seeded set of mutations of valid frames as a ctest.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fabric/envelope.h"

namespace {

struct Fixture {
  Fixture() {
    std::array<uint8_t, 32> seed{};
    seed.fill(5);
    collector = std::make_unique<medic::fabric::Identity>(medic::fabric::Identity::from_seed(seed));
    medic::fabric::TrustedNode n;
    n.name = "host-a";
    n.key = collector->public_key();
    n.roles = static_cast<uint8_t>(medic::fabric::Role::kCollector);
    n.hosts = {"host-a"};
    (void)trust.add(n);
  }
  medic::VirtualClock clock;
  medic::fabric::TrustStore trust;
  std::unique_ptr<medic::fabric::Identity> collector;
};

Fixture& fixture() {
  static Fixture f;
  return f;
}

size_t opened_count = 0;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Fixture& f = fixture();
  medic::fabric::OpenLimits limits;
  limits.max_frame_bytes = 64 * 1024;
  medic::fabric::Opener opener(f.trust, f.clock, limits);
  medic::fabric::Opened opened;
  auto e = opener.open(std::string_view(reinterpret_cast<const char*>(data), size), &opened);
  if (e == medic::fabric::OpenError::kOk) {
    ++opened_count;
    medic::v1::EventBatch batch;
    (void)medic::fabric::decode_event_batch(opened, &batch);
  }
  return 0;
}

const char* fuzz_corpus_name() { return "envelope"; }

// Mutations of signed frames must not open (the signature covers every byte
// that matters), except the rare mutation that leaves the frame intact
// (about one in a thousand: a truncation at the very end, say).
size_t fuzz_max_accepted_mutations(size_t inputs) { return 50 + inputs / 200; }

// How many inputs opened so far (the driver checks the harness is live).
size_t fuzz_opened_count() { return opened_count; }

// Valid frames to start mutating from (used by the driver).
std::vector<std::string> fuzz_seeds() {
  Fixture& f = fixture();
  medic::fabric::Sealer sealer(*f.collector);
  std::vector<std::string> out;
  for (int n : {0, 1, 3}) {
    medic::v1::EventBatch b;
    for (int i = 0; i < n; ++i) {
      auto* ev = b.add_events();
      ev->set_host("host-a");
      ev->set_vm("vm-" + std::to_string(i));
      ev->mutable_lifecycle()->set_what(medic::v1::LIFECYCLE_PANICKED);
    }
    out.push_back(sealer.seal(medic::v1::KIND_EVENT_BATCH, "host-a", b.SerializeAsString(),
                              f.clock.now()));
  }
  return out;
}
