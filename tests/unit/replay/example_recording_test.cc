// The recordings docs/rules.md replays (tests/unit/replay/testdata/): ten
// minutes of one host, host-a, with four VMs, signed by a key made from a
// fixed seed. The committed files must be exactly what make_example() writes
// (Ed25519 signatures are deterministic), so the docs' example can be made
// again and cannot drift; MEDIC_REGENERATE_TESTDATA=1 writes them anew.
//   recording/  web-1 panics twice, db-1 once, web-2 hangs from 3m to 5m
//   forged/     the same, with web-2's name changed to web-9 in one signed batch
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>

#include "replay/replay.h"
#include "rules/loader.h"
#include "tests/testing/testing.h"

namespace medic::replay {
namespace {

using namespace std::chrono_literals;

const Time kStart = from_ns(1'798'794'000'000'000'000);  // 2027-01-01 09:00:00Z

fabric::Identity host_a() {
  std::array<uint8_t, 32> seed{};
  seed.fill(0x42);
  return fabric::Identity::from_seed(seed);
}

std::string trust_yaml() {
  return "# The trust store of the example recordings "
         "(tests/unit/replay/example_recording_test.cc).\n"
         "nodes:\n  - name: host-a\n    key: " +
         host_a().id() + "\n    roles: [collector]\n";
}

struct Vm {
  const char* id;
  const char* tier;
};
constexpr Vm kVms[] = {{"web-1", "web"}, {"db-1", "db"}, {"batch-1", "batch"}, {"web-2", "web"}};

void add_event(medic::v1::EventBatch* b, const Vm& vm, Time t) {
  auto* e = b->add_events();
  e->set_host("host-a");
  e->set_vm(vm.id);
  e->set_observed_at_ns(to_ns(t));
  auto* s = e->mutable_state();
  s->set_state(medic::v1::VM_STATE_RUNNING);
  auto* l = s->add_labels();
  l->set_key("tier");
  l->set_value(vm.tier);
}

void add_heartbeat(medic::v1::EventBatch* b, const Vm& vm, Time t) {
  auto* e = b->add_events();
  e->set_host("host-a");
  e->set_vm(vm.id);
  e->set_observed_at_ns(to_ns(t));
  e->mutable_heartbeat()->set_source("serial");
}

void add_panic(medic::v1::EventBatch* b, const char* vm, Time t) {
  auto* e = b->add_events();
  e->set_host("host-a");
  e->set_vm(vm);
  e->set_observed_at_ns(to_ns(t));
  e->mutable_lifecycle()->set_what(medic::v1::LIFECYCLE_PANICKED);
}

// Who sends heartbeats when: a panicked guest is silent until its reset
// brings it back; db-1 waits for an approval that never comes; web-2 hangs
// for two minutes.
bool beats(const std::string& vm, Duration at) {
  auto in = [&](Duration from, Duration until) { return at >= from && at < until; };
  if (vm == "web-1") return !in(62s, 70s) && !in(152s, 160s);
  if (vm == "db-1") return at < 121s;
  if (vm == "web-2") return !in(3min, 5min);
  return true;
}

// Every 5 s a bulk batch with each VM's state and heartbeat (when it
// beats); panics go at once on the urgent lane.
Status make_example(const std::string& dir, bool forged) {
  const fabric::Identity id = host_a();
  fabric::Sealer bulk(id, 0, 1), urgent(id, 1, 1);
  auto w = RecordingWriter::open(dir, {}, kStart);
  if (!w.ok()) return w.status();
  const std::vector<std::pair<Duration, const char*>> panics = {
      {62s, "web-1"}, {121s, "db-1"}, {152s, "web-1"}};
  size_t next_panic = 0;
  for (Duration at = 0s; at <= 10min; at += 5s) {
    while (next_panic < panics.size() && panics[next_panic].first <= at) {
      const Time t = kStart + panics[next_panic].first;
      medic::v1::EventBatch b;
      b.set_urgent(true);
      add_panic(&b, panics[next_panic].second, t);
      ++next_panic;
      MEDIC_RETURN_IF_ERROR((*w)->append(
          {t + 3ms, true,
           urgent.seal(medic::v1::KIND_EVENT_BATCH, "host-a", b.SerializeAsString(), t)}));
    }
    const Time t = kStart + at;
    medic::v1::EventBatch b;
    for (const Vm& vm : kVms) {
      add_event(&b, vm, t);
      if (beats(vm.id, at)) add_heartbeat(&b, vm, t);
    }
    std::string payload = b.SerializeAsString();
    std::string frame = bulk.seal(medic::v1::KIND_EVENT_BATCH, "host-a", payload, t);
    if (forged && at == 4min) {
      // After signing: the bytes of a signed batch changed in the recording.
      const size_t where = frame.find("web-2");
      if (where == std::string::npos) return internal_error("no web-2 in the batch at 4m");
      frame[where + 4] = '9';
    }
    MEDIC_RETURN_IF_ERROR((*w)->append({t + 3ms, false, std::move(frame)}));
  }
  return (*w)->close();
}

std::string testdata() { return testing::source_dir() + "/tests/unit/replay/testdata"; }

std::map<std::string, std::string> files_of(const std::string& dir) {
  std::map<std::string, std::string> out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    out[e.path().filename().string()] = testing::read_file(e.path().string());
  }
  return out;
}

TEST(ExampleRecording, TheCommittedRecordingsAreWhatTheGeneratorMakes) {
  if (std::getenv("MEDIC_REGENERATE_TESTDATA")) {
    std::filesystem::remove_all(testdata() + "/recording");
    std::filesystem::remove_all(testdata() + "/forged");
    ASSERT_OK(make_example(testdata() + "/recording", false));
    ASSERT_OK(make_example(testdata() + "/forged", true));
    testing::write_file(testdata() + "/trust.yaml", trust_yaml());
  }
  for (bool forged : {false, true}) {
    testing::TempDir dir;
    ASSERT_OK(make_example(dir.path(), forged));
    const std::string committed = testdata() + (forged ? "/forged" : "/recording");
    EXPECT_EQ(files_of(dir.path()), files_of(committed))
        << committed << " differs from what make_example() writes: rerun this test with "
        << "MEDIC_REGENERATE_TESTDATA=1 and commit the result";
  }
  EXPECT_EQ(testing::read_file(testdata() + "/trust.yaml"), trust_yaml());
}

ReplayResult replay_example(const std::string& which) {
  auto trust = fabric::TrustStore::load(testdata() + "/trust.yaml");
  EXPECT_OK(trust);
  auto rules = rules::load_rule_files({testing::source_dir() + "/examples/rules/fleet.rules.yaml"});
  EXPECT_OK(rules);
  auto r = replay_recording(testdata() + "/" + which, *trust, rules.rules, {});
  EXPECT_OK(r);
  return r.ok() ? *r : ReplayResult{};
}

TEST(ExampleRecording, TheExampleRulesResetAPanicAskBeforeADbAndClimbTheLadderForAHungVm) {
  const ReplayResult r = replay_example("recording");
  EXPECT_TRUE(r.clean());
  std::vector<std::string> got;
  for (const auto& d : r.decisions) {
    got.push_back(
        d.vm + " " + std::string(rules::step_name(d.step)) + " " +
        std::string(rules::outcome_name(d.outcome)) +
        (d.policy == rules::Policy::kNone ? "" : "/" + std::string(rules::policy_name(d.policy))));
  }
  // web-2's reset brought its heartbeats back at 5m: the ladder stops there.
  EXPECT_EQ(
      got, (std::vector<std::string>{"web-1 reset proposed", "db-1 reset pending_approval/approval",
                                     "web-1 reset suppressed/cooldown", "web-2 reboot proposed",
                                     "web-2 reset proposed"}));
}

TEST(ExampleRecording, TheForgedBatchIsRefusedAndItsEventsAreNotReplayed) {
  const ReplayResult r = replay_example("forged");
  EXPECT_EQ(r.refused, 1u);
  EXPECT_EQ(r.refused_by_cause.at("bad_signature"), 1u);
  // The positive control: every other frame verified.
  EXPECT_EQ(r.batches + 1, r.frames);
}

}  // namespace
}  // namespace medic::replay
