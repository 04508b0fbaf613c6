#include "fabric/envelope.h"

#include <gtest/gtest.h>

#include <random>
#include <set>

#include "medic/v1/actions.pb.h"
#include "tests/unit/fabric/fabric_test_util.h"
#include "tests/testing/testing.h"

namespace medic::fabric {
namespace {

using namespace std::chrono_literals;
using test::batch_of;
using test::identity_for;
using test::node;

class EnvelopeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK(trust_.add(node("host-a", collector_, test::kCollector, {"host-a"})));
    ASSERT_OK(trust_.add(node("engine", engine_, test::kEngine, {"*"})));
    ASSERT_OK(trust_.add(node("alice", operator_, test::kOperator, {"*"})));
  }

  std::string sealed_batch(Sealer& s, const std::string& host, int n, Time at) {
    return s.seal(medic::v1::KIND_EVENT_BATCH, host, batch_of(host, n).SerializeAsString(), at);
  }

  VirtualClock clock_;
  TrustStore trust_;
  Identity collector_ = identity_for(1);
  Identity engine_ = identity_for(2);
  Identity operator_ = identity_for(3);
  Identity stranger_ = identity_for(9);
};

TEST_F(EnvelopeTest, SealThenOpenRoundTripsEveryField) {
  Sealer sealer(collector_, 3, 42);
  std::string frame = sealed_batch(sealer, "host-a", 5, clock_.now());
  Opener opener(trust_, clock_);
  Opened o;
  std::string why;
  ASSERT_EQ(opener.open(frame, &o, &why), OpenError::kOk) << why;
  EXPECT_EQ(o.sender->name, "host-a");
  EXPECT_EQ(o.envelope.epoch(), 42u);
  EXPECT_EQ(o.envelope.seq(), 1u);
  EXPECT_EQ(o.envelope.stream(), 3u);
  EXPECT_EQ(o.envelope.sent_at_ns(), to_ns(clock_.now()));
  medic::v1::EventBatch batch;
  ASSERT_OK(decode_event_batch(o, &batch));
  ASSERT_EQ(batch.events_size(), 5);
  EXPECT_EQ(batch.events(4).vm(), "vm-4");
  EXPECT_EQ(opener.accepted(), 1u);
  EXPECT_EQ(opener.counters().rejected(), 0u);
}

TEST_F(EnvelopeTest, EverySingleBitFlipIsRejected) {
  Sealer sealer(collector_, 0, 7);
  std::string frame = sealed_batch(sealer, "host-a", 2, clock_.now());
  Opener opener(trust_, clock_);
  size_t rejected = 0;
  for (size_t byte = 0; byte < frame.size(); ++byte) {
    for (int bit = 0; bit < 8; ++bit) {
      std::string bad = frame;
      bad[byte] = static_cast<char>(bad[byte] ^ (1 << bit));
      Opened o;
      OpenError e = opener.open(bad, &o);
      ASSERT_NE(e, OpenError::kOk) << "flip at byte " << byte << " bit " << bit << " was accepted";
      ++rejected;
    }
  }
  EXPECT_EQ(rejected, frame.size() * 8);
  // The original still opens: no flipped frame advanced the replay state.
  Opened o;
  EXPECT_EQ(opener.open(frame, &o), OpenError::kOk);
}

TEST_F(EnvelopeTest, UnknownSenderIsRejected) {
  Sealer sealer(stranger_);
  Opener opener(trust_, clock_);
  Opened o;
  EXPECT_EQ(opener.open(sealed_batch(sealer, "host-a", 1, clock_.now()), &o),
            OpenError::kUnknownSender);
  EXPECT_EQ(opener.counters().get(OpenError::kUnknownSender), 1u);
}

TEST_F(EnvelopeTest, SenderWithoutTheRoleForTheKindIsRejected) {
  Opener opener(trust_, clock_);
  Opened o;
  Sealer as_collector(collector_);
  medic::v1::Action a;
  a.set_id("a1");
  EXPECT_EQ(opener.open(as_collector.seal(medic::v1::KIND_ACTION, "host-a", a.SerializeAsString(),
                                          clock_.now()),
                        &o),
            OpenError::kRoleNotAllowed);
  Sealer as_engine(engine_);
  EXPECT_EQ(opener.open(sealed_batch(as_engine, "host-a", 1, clock_.now()), &o),
            OpenError::kRoleNotAllowed);
  Sealer as_operator(operator_);
  EXPECT_EQ(
      opener.open(as_operator.seal(medic::v1::KIND_CONTROL_REQUEST, "", "", clock_.now()), &o),
      OpenError::kOk);
  EXPECT_EQ(opener.counters().get(OpenError::kRoleNotAllowed), 2u);
}

TEST_F(EnvelopeTest, HostOutsideTheSendersScopeIsRejected) {
  Sealer sealer(collector_);
  Opener opener(trust_, clock_);
  Opened o;
  EXPECT_EQ(opener.open(sealed_batch(sealer, "host-b", 1, clock_.now()), &o),
            OpenError::kOutOfScope);
}

TEST_F(EnvelopeTest, ActuatorRejectsEnvelopesAddressedToAnotherHost) {
  Sealer sealer(engine_);
  Opener opener(trust_, clock_);
  opener.expect_host("host-a");
  Opened o;
  EXPECT_EQ(opener.open(sealer.seal(medic::v1::KIND_ACTION, "host-b", "", clock_.now()), &o),
            OpenError::kOutOfScope);
  EXPECT_EQ(opener.open(sealer.seal(medic::v1::KIND_ACTION, "host-a", "", clock_.now()), &o),
            OpenError::kOk);
}

TEST_F(EnvelopeTest, KindsNotExpectedOnThisSocketAreRejected) {
  Sealer sealer(collector_);
  Opener opener(trust_, clock_);
  opener.expect_kinds({medic::v1::KIND_ACTION});
  Opened o;
  EXPECT_EQ(opener.open(sealed_batch(sealer, "host-a", 1, clock_.now()), &o),
            OpenError::kUnknownKind);
  // A kind number outside the closed set.
  medic::v1::Envelope env;
  env.set_kind(static_cast<medic::v1::Kind>(99));
  env.set_sender(std::string(32, 'a'));
  env.set_signature(std::string(64, 'b'));
  Opener any(trust_, clock_);
  EXPECT_EQ(any.open(env.SerializeAsString(), &o), OpenError::kUnknownKind);
}

TEST_F(EnvelopeTest, ReplayedAndReorderedMessagesAreRejected) {
  Sealer sealer(collector_, 0, 5);
  std::string first = sealed_batch(sealer, "host-a", 1, clock_.now());
  std::string second = sealed_batch(sealer, "host-a", 1, clock_.now());
  Opener opener(trust_, clock_);
  Opened o;
  ASSERT_EQ(opener.open(second, &o), OpenError::kOk);
  EXPECT_EQ(opener.open(first, &o), OpenError::kReplayed);   // reordered
  EXPECT_EQ(opener.open(second, &o), OpenError::kReplayed);  // replayed
  EXPECT_EQ(opener.counters().get(OpenError::kReplayed), 2u);
}

TEST_F(EnvelopeTest, NewEpochAfterRestartIsAcceptedOldEpochIsNot) {
  Opener opener(trust_, clock_);
  Opened o;
  Sealer before(collector_, 0, 100);
  for (int i = 0; i < 3; ++i)
    ASSERT_EQ(opener.open(sealed_batch(before, "host-a", 1, clock_.now()), &o), OpenError::kOk);
  Sealer after(collector_, 0, 101);  // restarted: seq starts again at 1
  EXPECT_EQ(opener.open(sealed_batch(after, "host-a", 1, clock_.now()), &o), OpenError::kOk);
  EXPECT_EQ(opener.open(sealed_batch(before, "host-a", 1, clock_.now()), &o), OpenError::kReplayed);
}

TEST_F(EnvelopeTest, TheDefaultEpochIsTheFirstSealsClockTimeInMilliseconds) {
  Opener opener(trust_, clock_);
  Opened o;
  Sealer before(collector_);
  ASSERT_EQ(opener.open(sealed_batch(before, "host-a", 1, clock_.now()), &o), OpenError::kOk);
  const uint64_t first_ms = static_cast<uint64_t>(to_ns(clock_.now()) / 1'000'000);
  EXPECT_EQ(o.envelope.epoch(), first_ms);
  clock_.advance(std::chrono::seconds(1));
  ASSERT_EQ(opener.open(sealed_batch(before, "host-a", 1, clock_.now()), &o), OpenError::kOk);
  EXPECT_EQ(o.envelope.epoch(), first_ms) << "the epoch is fixed at the first seal";
  // A sender restarted later on the same clock gets a newer epoch: accepted.
  Sealer after(collector_);
  ASSERT_EQ(opener.open(sealed_batch(after, "host-a", 1, clock_.now()), &o), OpenError::kOk);
  EXPECT_EQ(o.envelope.epoch(), first_ms + 1000);
}

TEST_F(EnvelopeTest, StreamsAreOrderedIndependently) {
  Opener opener(trust_, clock_);
  Opened o;
  Sealer bulk(collector_, 0, 9);
  Sealer urgent(collector_, 1, 9);
  std::string b1 = sealed_batch(bulk, "host-a", 1, clock_.now());
  std::string b2 = sealed_batch(bulk, "host-a", 1, clock_.now());
  std::string u1 = sealed_batch(urgent, "host-a", 1, clock_.now());
  EXPECT_EQ(opener.open(b2, &o), OpenError::kOk);
  EXPECT_EQ(opener.open(u1, &o), OpenError::kOk);  // seq 1 on its own stream
  EXPECT_EQ(opener.open(b1, &o), OpenError::kReplayed);
}

TEST_F(EnvelopeTest, StaleAndFarFutureMessagesAreRejected) {
  OpenLimits limits;
  limits.max_skew = 30s;
  Opener opener(trust_, clock_, limits);
  Sealer sealer(collector_);
  Opened o;
  std::string why;
  EXPECT_EQ(opener.open(sealed_batch(sealer, "host-a", 1, clock_.now() - 31s), &o, &why),
            OpenError::kStale);
  EXPECT_NE(why.find("31000 ms ago"), std::string::npos) << why;
  EXPECT_EQ(opener.open(sealed_batch(sealer, "host-a", 1, clock_.now() + 31s), &o),
            OpenError::kFromFuture);
  EXPECT_EQ(opener.open(sealed_batch(sealer, "host-a", 1, clock_.now() + 29s), &o), OpenError::kOk);
}

TEST_F(EnvelopeTest, TruncatedGarbageAndOversizedFramesAreRejectedWithoutCrash) {
  Sealer sealer(collector_);
  std::string frame = sealed_batch(sealer, "host-a", 3, clock_.now());
  OpenLimits limits;
  limits.max_frame_bytes = 64 * 1024;
  Opener opener(trust_, clock_, limits);
  Opened o;
  for (size_t len = 0; len < frame.size(); ++len) {
    EXPECT_NE(opener.open(std::string_view(frame).substr(0, len), &o), OpenError::kOk) << len;
  }
  std::mt19937 rng(1234);
  for (int i = 0; i < 2000; ++i) {
    std::string junk(rng() % 512, '\0');
    for (auto& c : junk) c = static_cast<char>(rng());
    EXPECT_NE(opener.open(junk, &o), OpenError::kOk);
  }
  // A length prefix that claims far more than the frame holds.
  std::string liar = "\x3a\xff\xff\xff\xff\x0f" + std::string(10, 'x');
  EXPECT_EQ(opener.open(liar, &o), OpenError::kMalformed);
  std::string big(limits.max_frame_bytes + 1, 'x');
  EXPECT_EQ(opener.open(big, &o), OpenError::kOversized);
  EXPECT_EQ(opener.counters().get(OpenError::kOversized), 1u);
  EXPECT_EQ(opener.open(frame, &o), OpenError::kOk);
}

TEST_F(EnvelopeTest, FieldsOutsideTheSchemaAreRejected) {
  Sealer sealer(collector_);
  std::string frame = sealed_batch(sealer, "host-a", 1, clock_.now());
  frame += std::string("\xf8\x07\x01", 3);  // field 127, varint 1: unknown to the schema
  Opener opener(trust_, clock_);
  Opened o;
  std::string why;
  EXPECT_EQ(opener.open(frame, &o, &why), OpenError::kMalformed);
  EXPECT_NE(why.find("outside the schema"), std::string::npos);
  // A known field number with another wire type is outside the schema too:
  // field 9 (stream, a varint) sent as bytes.
  std::string retyped = sealed_batch(sealer, "host-a", 2, clock_.now());
  retyped += std::string("\x4a\x01\x00", 3);
  EXPECT_EQ(opener.open(retyped, &o, &why), OpenError::kMalformed);
  EXPECT_EQ(opener.counters().get(OpenError::kMalformed), 2u);
  // The well-formed frames still open.
  EXPECT_EQ(opener.open(sealed_batch(sealer, "host-a", 3, clock_.now()), &o), OpenError::kOk);
}

TEST_F(EnvelopeTest, HostWithControlCharactersIsMalformed) {
  Sealer sealer(collector_);
  Opener opener(trust_, clock_);
  Opened o;
  EXPECT_EQ(opener.open(sealed_batch(sealer, std::string("host-a\n", 7), 1, clock_.now()), &o),
            OpenError::kMalformed);
  EXPECT_EQ(opener.open(sealed_batch(sealer, std::string(300, 'h'), 1, clock_.now()), &o),
            OpenError::kMalformed);
}

TEST_F(EnvelopeTest, SignatureForOneKindDoesNotPassAsAnother) {
  Sealer sealer(engine_);
  std::string frame = sealer.seal(medic::v1::KIND_CONTROL_REPLY, "", "payload", clock_.now());
  medic::v1::Envelope env;
  ASSERT_TRUE(env.ParseFromString(frame));
  env.set_kind(medic::v1::KIND_ACTION);
  Opener opener(trust_, clock_);
  Opened o;
  EXPECT_EQ(opener.open(env.SerializeAsString(), &o), OpenError::kBadSignature);
}

TEST_F(EnvelopeTest, BatchCarryingAnotherHostsVmIsRejectedOnDecode) {
  medic::v1::EventBatch b = batch_of("host-a", 2);
  b.mutable_events(1)->set_host("host-b");
  Sealer sealer(collector_);
  Opener opener(trust_, clock_);
  Opened o;
  ASSERT_EQ(opener.open(sealer.seal(medic::v1::KIND_EVENT_BATCH, "host-a", b.SerializeAsString(),
                                    clock_.now()),
                        &o),
            OpenError::kOk);
  medic::v1::EventBatch out;
  Status s = decode_event_batch(o, &out);
  EXPECT_EQ(s.code(), Code::kPermissionDenied);
  EXPECT_NE(s.message().find("host-b"), std::string::npos);
}

TEST_F(EnvelopeTest, UndecodablePayloadIsRefusedByOpenAndAnErrorOfDecode) {
  Sealer sealer(collector_);
  Opener opener(trust_, clock_);
  Opened o;
  std::string why;
  EXPECT_EQ(
      opener.open(sealer.seal(medic::v1::KIND_EVENT_BATCH, "host-a", "\xff\xff\xff", clock_.now()),
                  &o, &why),
      OpenError::kOutsideSchema);
  EXPECT_NE(why.find("malformed"), std::string::npos) << why;
  // decode_event_batch still refuses such bytes on its own.
  ASSERT_EQ(opener.open(sealed_batch(sealer, "host-a", 1, clock_.now()), &o), OpenError::kOk);
  o.envelope.set_payload("\xff\xff\xff");
  medic::v1::EventBatch out;
  EXPECT_EQ(decode_event_batch(o, &out).code(), Code::kInvalidArgument);
}

TEST_F(EnvelopeTest, BatchDecoderDecodesBatchAfterBatchPastWhatItKeeps) {
  Sealer sealer(collector_);
  Opener opener(trust_, clock_);
  // Keeps 4 KiB of what was filled and 100 events: the 2000-event batch is
  // past both, so the batch after it is filled into new messages; the
  // others reuse the messages before them.
  BatchDecoder decoder(4096, 100);
  const std::vector<std::pair<int, bool>> steps = {{3, true}, {3, false}, {2000, false},
                                                   {1, true}, {5, false}, {5, false}};
  for (auto [n, anew] : steps) {
    Opened o;
    ASSERT_EQ(opener.open(sealed_batch(sealer, "host-a", n, clock_.now()), &o), OpenError::kOk);
    auto b = decoder.decode(o);
    ASSERT_OK(b);
    ASSERT_EQ((*b)->events_size(), n);
    EXPECT_EQ((*b)->events(n - 1).vm(), "vm-" + std::to_string(n - 1));
    EXPECT_EQ((*b)->events(0).host(), "host-a");
    EXPECT_EQ(decoder.started_anew(), anew) << n << " events";
  }
}

// An empty label is 2 bytes on the wire but a message protobuf keeps for
// reuse: labels count toward what the decoder keeps, not only bytes.
TEST_F(EnvelopeTest, BatchDecoderStartsAnewAfterABatchOfManyLabels) {
  Sealer sealer(collector_);
  Opener opener(trust_, clock_);
  BatchDecoder decoder(16384, 100);
  auto decode = [&](const medic::v1::EventBatch& b) -> const medic::v1::EventBatch* {
    Opened o;
    EXPECT_EQ(opener.open(sealer.seal(medic::v1::KIND_EVENT_BATCH, "host-a", b.SerializeAsString(),
                                      clock_.now()),
                          &o),
              OpenError::kOk);
    auto r = decoder.decode(o);
    EXPECT_OK(r);
    return r.ok() ? *r : nullptr;
  };
  ASSERT_TRUE(decode(batch_of("host-a", 3)));
  EXPECT_TRUE(decoder.started_anew());
  ASSERT_TRUE(decode(batch_of("host-a", 3)));
  EXPECT_FALSE(decoder.started_anew());
  medic::v1::EventBatch many = batch_of("host-a", 1);
  for (int i = 0; i < 1000; ++i) many.mutable_events(0)->mutable_state()->add_labels();
  ASSERT_LT(many.ByteSizeLong(), 16384u / 4);  // the bytes alone are well within the bound
  const medic::v1::EventBatch* b = decode(many);
  ASSERT_TRUE(b);
  EXPECT_EQ(b->events(0).state().labels_size(), 1001);
  EXPECT_FALSE(decoder.started_anew());
  b = decode(batch_of("host-a", 3));
  ASSERT_TRUE(b);
  EXPECT_TRUE(decoder.started_anew());
  EXPECT_EQ(b->events(2).state().labels_size(), 1);
}

TEST_F(EnvelopeTest, BatchDecoderReportsTheErrorsOfDecodeAndKeepsWorking) {
  Sealer sealer(collector_);
  Opener opener(trust_, clock_);
  BatchDecoder decoder;
  medic::v1::EventBatch b = batch_of("host-a", 2);
  b.mutable_events(1)->set_host("host-b");
  Opened o;
  ASSERT_EQ(opener.open(sealer.seal(medic::v1::KIND_EVENT_BATCH, "host-a", b.SerializeAsString(),
                                    clock_.now()),
                        &o),
            OpenError::kOk);
  EXPECT_EQ(decoder.decode(o).status().code(), Code::kPermissionDenied);
  o.envelope.set_payload("\xff\xff\xff");  // open() would refuse it; decode must too
  EXPECT_EQ(decoder.decode(o).status().code(), Code::kInvalidArgument);
  ASSERT_EQ(opener.open(sealed_batch(sealer, "host-a", 4, clock_.now()), &o), OpenError::kOk);
  auto ok = decoder.decode(o);
  ASSERT_OK(ok);
  EXPECT_EQ((*ok)->events_size(), 4);
}

TEST(OpenErrorNames, EveryCauseHasADistinctName) {
  std::set<std::string> names;
  for (int i = 0; i < static_cast<int>(OpenError::kCount); ++i) {
    names.insert(open_error_name(static_cast<OpenError>(i)));
  }
  EXPECT_EQ(names.size(), static_cast<size_t>(OpenError::kCount));
  EXPECT_EQ(names.count("unknown"), 0u);
}

}  // namespace
}  // namespace medic::fabric
