// check_and_fill, the one pass that checks an EventBatch and decodes it,
// against the two passes it replaces: check_schema, then the generated
// parser. On random valid batches both make the same message; on random
// damaged ones both refuse the same bytes, with the same description.
#include <gtest/gtest.h>

#include <random>

#include "fabric/envelope.h"
#include "fabric/schema.h"
#include "tests/testing/testing.h"
#include "tests/unit/fabric/fabric_test_util.h"
#include "tests/unit/fabric/payload_samples.h"

namespace medic::fabric {
namespace {

using medic::v1::EventBatch;

std::string random_text(std::mt19937& rng) {
  static const char* const kPieces[] = {"a", "vm-7", "host-b", "\xc3\xa9", "\xe2\x82\xac",
                                        "\xf0\x9f\x98\x80", " ", "z1", ""};
  std::string out;
  for (int n = static_cast<int>(rng() % 4); n > 0; --n) out += kPieces[rng() % 9];
  return out;
}

int64_t random_int(std::mt19937& rng) {
  switch (rng() % 4) {
    case 0: return 0;
    case 1: return -static_cast<int64_t>(rng());
    case 2: return static_cast<int64_t>(rng() % 200);
    default: return static_cast<int64_t>(uint64_t{rng()} << 32 | rng());
  }
}

// An event's body: one of the six members, or none.
void random_body(medic::v1::Event* e, std::mt19937& rng) {
  switch (rng() % 7) {
    case 0: {
      auto* s = e->mutable_state();
      s->set_state(static_cast<medic::v1::VmState>(rng() % 9));
      s->set_last_heartbeat_ns(random_int(rng));
      s->set_cpu_percent(rng() % 2 ? 0.0 : static_cast<double>(rng()) / 7.0);
      s->set_rss_bytes(static_cast<uint64_t>(random_int(rng)));
      s->set_uptime_ns(random_int(rng));
      for (int n = static_cast<int>(rng() % 4); n > 0; --n) {
        auto* l = s->add_labels();
        l->set_key(random_text(rng));
        l->set_value(random_text(rng));
      }
      break;
    }
    case 1:
      e->mutable_lifecycle()->set_what(static_cast<medic::v1::Lifecycle>(rng() % 10));
      e->mutable_lifecycle()->set_detail(random_text(rng));
      break;
    case 2:
      e->mutable_heartbeat()->set_counter(static_cast<uint64_t>(random_int(rng)));
      e->mutable_heartbeat()->set_source(random_text(rng));
      break;
    case 3: {
      auto* p = e->mutable_probe();
      p->set_probe(random_text(rng));
      p->set_ok(rng() % 2);
      p->set_status(rng());
      p->set_latency_ns(random_int(rng));
      p->set_reason(random_text(rng));
      break;
    }
    case 4:
      e->mutable_guest_ping()->set_latency_ns(random_int(rng));
      break;
    case 5: {
      auto* a = e->mutable_alert();
      a->set_firing(rng() % 2);
      a->set_name(random_text(rng));
      for (int n = static_cast<int>(rng() % 3); n > 0; --n) {
        auto* l = rng() % 2 ? a->add_labels() : a->add_annotations();
        l->set_key(random_text(rng));
        l->set_value(random_text(rng));
      }
      a->set_fingerprint(random_text(rng));
      a->set_starts_at_ns(random_int(rng));
      a->set_generator_url(random_text(rng));
      a->set_receiver(random_text(rng));
      break;
    }
    default: break;
  }
}

std::string tag_and_length(uint32_t number, size_t len) {
  std::string out(1, static_cast<char>(number << 3 | 2));
  for (; len >= 0x80; len >>= 7) out.push_back(static_cast<char>(len | 0x80));
  out.push_back(static_cast<char>(len));
  return out;
}

// A random valid batch, serialized; an event's fields are sometimes written
// body first (two serialized halves concatenated: no field twice).
std::string random_batch(std::mt19937& rng) {
  EventBatch b;
  b.set_urgent(rng() % 2);
  std::string bytes = b.SerializeAsString();
  for (int n = static_cast<int>(rng() % 6); n > 0; --n) {
    medic::v1::Event head;
    head.set_host(random_text(rng));
    head.set_vm(random_text(rng));
    head.set_observed_at_ns(random_int(rng));
    medic::v1::Event body;
    random_body(&body, rng);
    const std::string event = rng() % 2 ? body.SerializeAsString() + head.SerializeAsString()
                                        : head.SerializeAsString() + body.SerializeAsString();
    bytes += tag_and_length(medic::v1::EventBatch::kEventsFieldNumber, event.size()) + event;
  }
  return bytes;
}

// The two-pass verdict: the walk, then the generated parser.
struct TwoPass {
  SchemaCheck check;
  bool parsed = false;
  EventBatch batch;
};

TwoPass two_pass(const std::string& bytes) {
  TwoPass t;
  t.check = check_schema(*payload_schema(medic::v1::KIND_EVENT_BATCH), bytes);
  t.parsed = t.check.ok() && t.batch.ParseFromString(bytes);
  return t;
}

// Each batch is filled twice: into a new message, and into one message that
// has held every batch before it (whose events, bodies and labels are
// reused in place): both must be the parser's message.
TEST(BatchFillTest, RandomValidBatchesDecodeToTheParsersMessageByteForByte) {
  std::mt19937 rng(20261202);
  EventBatch reused;
  for (int i = 0; i < 3000; ++i) {
    const std::string bytes = random_batch(rng);
    TwoPass t = two_pass(bytes);
    ASSERT_TRUE(t.parsed) << "case " << i << ": " << t.check.where;
    EventBatch filled;
    SchemaCheck c = check_and_fill(bytes, &filled);
    ASSERT_TRUE(c.ok()) << "case " << i << ": " << c.where;
    ASSERT_EQ(filled.SerializeAsString(), t.batch.SerializeAsString()) << "case " << i;
    ASSERT_EQ(filled.events_size(), t.batch.events_size());
    ASSERT_TRUE(check_and_fill(bytes, &reused).ok()) << "case " << i;
    ASSERT_EQ(reused.SerializeAsString(), t.batch.SerializeAsString()) << "case " << i;
    ASSERT_EQ(reused.events_size(), t.batch.events_size());
  }
}

// What a reused message held must not show through: a body where the new
// event has none, a body of another member, labels, the urgent flag, events
// beyond the new batch's.
TEST(BatchFillTest, AReusedBatchKeepsNothingOfTheBatchBefore) {
  EventBatch before;
  before.set_urgent(true);
  for (int i = 0; i < 3; ++i) {
    auto* e = before.add_events();
    e->set_host("host-a");
    e->set_vm("vm-" + std::to_string(i));
    e->set_observed_at_ns(7);
    auto* l = e->mutable_state()->add_labels();
    l->set_key("tier");
    l->set_value("gold");
  }
  EventBatch after;
  after.add_events()->set_vm("vm-9");                           // no body, no host
  after.add_events()->mutable_lifecycle()->set_detail("boom");  // another member
  EventBatch reused;
  ASSERT_TRUE(check_and_fill(before.SerializeAsString(), &reused).ok());
  ASSERT_EQ(reused.SerializeAsString(), before.SerializeAsString());
  ASSERT_TRUE(check_and_fill(after.SerializeAsString(), &reused).ok());
  EXPECT_FALSE(reused.urgent());
  ASSERT_EQ(reused.events_size(), 2);
  EXPECT_EQ(reused.events(0).body_case(), medic::v1::Event::BODY_NOT_SET);
  EXPECT_EQ(reused.events(0).host(), "");
  EXPECT_EQ(reused.events(0).observed_at_ns(), 0);
  EXPECT_EQ(reused.events(1).lifecycle().detail(), "boom");
  EXPECT_EQ(reused.SerializeAsString(), after.SerializeAsString());
  // And back: a state body again, on an event that held none.
  ASSERT_TRUE(check_and_fill(before.SerializeAsString(), &reused).ok());
  EXPECT_EQ(reused.SerializeAsString(), before.SerializeAsString());
  EXPECT_EQ(reused.events(1).state().labels(0).value(), "gold");
}

TEST(BatchFillTest, RandomDamagedBatchesAreRefusedExactlyWhenTheTwoPassesRefuseThem) {
  test::quiet_protobuf_log();
  std::mt19937 rng(7);
  int refused = 0, accepted = 0;
  EventBatch reused;
  for (int i = 0; i < 6000; ++i) {
    std::string bytes = random_batch(rng);
    if (bytes.empty()) continue;
    switch (rng() % 4) {
      case 0: bytes[rng() % bytes.size()] = static_cast<char>(rng()); break;  // any byte
      case 1: bytes[rng() % bytes.size()] ^= static_cast<char>(1u << (rng() % 8)); break;
      case 2: bytes.resize(rng() % bytes.size()); break;  // cut short
      default: bytes.insert(rng() % (bytes.size() + 1), 1, static_cast<char>(rng())); break;
    }
    TwoPass t = two_pass(bytes);
    EventBatch filled;
    SchemaCheck c = check_and_fill(bytes, &filled);
    ASSERT_EQ(c.ok(), t.parsed) << "case " << i << ": " << c.where << " / " << t.check.where;
    // A message reused after refusals and partial fills decodes the same.
    ASSERT_EQ(check_and_fill(bytes, &reused).ok(), c.ok()) << "case " << i;
    if (c.ok()) {
      ASSERT_EQ(reused.SerializeAsString(), t.batch.SerializeAsString()) << "case " << i;
    }
    ASSERT_EQ(c.error, t.check.error) << "case " << i;
    ASSERT_EQ(c.where, t.check.where) << "case " << i;
    if (c.ok()) {
      ++accepted;
      ASSERT_EQ(filled.SerializeAsString(), t.batch.SerializeAsString()) << "case " << i;
    } else {
      ++refused;
    }
  }
  // Both outcomes were exercised.
  EXPECT_GT(refused, 1000);
  EXPECT_GT(accepted, 300);
}

class BatchFillOpenTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK(trust_.add(test::node("host-a", collector_, test::kCollector, {"host-a"})));
  }
  std::string seal(const EventBatch& b) {
    return sealer_.seal(medic::v1::KIND_EVENT_BATCH, "host-a", b.SerializeAsString(), clock_.now());
  }

  VirtualClock clock_;
  TrustStore trust_;
  Identity collector_ = test::identity_for(1);
  Sealer sealer_{collector_};
};

TEST_F(BatchFillOpenTest, AnOpenerThatFillsRefusesWhatTheWalkRefusesAndDecodesTheRest) {
  BatchDecoder decoder;
  Opener opener(trust_, clock_);
  opener.fill_batches(&decoder);
  Opened opened;
  std::string why;
  ASSERT_EQ(opener.open(seal(test::batch_of("host-a", 3)), &opened, &why), OpenError::kOk) << why;
  auto batch = decoder.decode(opened);
  ASSERT_OK(batch.status());
  EXPECT_EQ((*batch)->SerializeAsString(), test::batch_of("host-a", 3).SerializeAsString());

  EventBatch extra = test::batch_of("host-a", 1);
  test::add_unknown(extra.mutable_events(0), std::string("\xa0\x06\x01", 3));  // field 100
  EXPECT_EQ(opener.open(seal(extra), &opened, &why), OpenError::kOutsideSchema);
  EXPECT_NE(why.find("field 100 (wire type 0) in medic.v1.Event at events[0]"), std::string::npos)
      << why;
}

TEST_F(BatchFillOpenTest, ABatchFilledForALaterFrameIsNotReturnedForAnEarlierOne) {
  BatchDecoder decoder;
  Opener opener(trust_, clock_);
  opener.fill_batches(&decoder);
  Opened first, second;
  const std::string early = seal(test::batch_of("host-a", 2));
  ASSERT_EQ(opener.open(seal(test::batch_of("host-a", 5)), &first), OpenError::kOk);
  // An older frame: walked and filled (replacing the first's batch), then
  // refused by the replay guard.
  ASSERT_EQ(opener.open(early, &second), OpenError::kReplayed);
  auto batch = decoder.decode(first);
  ASSERT_OK(batch.status());
  EXPECT_EQ((*batch)->SerializeAsString(), test::batch_of("host-a", 5).SerializeAsString());
}

}  // namespace
}  // namespace medic::fabric
