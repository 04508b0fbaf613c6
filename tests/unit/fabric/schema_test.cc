#include "fabric/schema.h"

#include <gtest/gtest.h>

#include <random>

#include "fabric/envelope.h"
#include "tests/unit/fabric/fabric_test_util.h"
#include "tests/unit/fabric/payload_samples.h"

namespace medic::fabric {
namespace {

using medic::v1::Kind;
using test::identity_for;
using test::node;

std::string varint(uint64_t v) {
  std::string out;
  while (v >= 0x80) {
    out.push_back(static_cast<char>(v | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
  return out;
}

std::string tag(uint64_t number, int wire) { return varint(number << 3 | static_cast<uint64_t>(wire)); }

// One encoded field: a random well-formed value of the given wire type.
std::string field(uint64_t number, int wire, std::mt19937& rng) {
  std::string out = tag(number, wire);
  switch (wire) {
    case 0: out += varint(rng() % 2 ? rng() % 128 : (uint64_t{rng()} << 32 | rng())); break;
    case 1: for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>(rng())); break;
    case 5: for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>(rng())); break;
    default: {
      std::string body(rng() % 6, '\0');
      for (auto& c : body) c = static_cast<char>(rng() % 3 ? 'a' + rng() % 26 : rng());
      out += varint(body.size()) + body;
    }
  }
  return out;
}

const MessageSchema& schema_of(Kind k) { return *payload_schema(k); }

TEST(Schema, EveryInnerMessageWithEveryFieldSetIsInsideItsSchema) {
  for (Kind k : test::kInnerKinds) {
    for (const std::string& p : test::full_payloads(k, "host-a")) {
      SchemaCheck c = check_schema(schema_of(k), p);
      EXPECT_TRUE(c.ok()) << kind_tag(k) << ": " << schema_error_name(c.error) << " " << c.where;
      test::ParserView v = test::parser_view(k, p);
      EXPECT_TRUE(v.parsed && !v.unknown_fields) << kind_tag(k);
    }
  }
  EXPECT_TRUE(check_schema(schema_of(medic::v1::KIND_ACTION), "").ok());  // all defaults
}

TEST(Schema, AnUnknownFieldIsRefusedAtEveryDepthAndItsPlaceNamed) {
  const std::string extra = "\xf8\x07\x01";  // field 127, varint 1
  auto check = [&](medic::v1::EventBatch b) {
    return check_schema(schema_of(medic::v1::KIND_EVENT_BATCH), b.SerializeAsString());
  };
  auto b = test::full_batch("host-a");
  test::add_unknown(&b, extra);
  EXPECT_EQ(check(b).error, SchemaError::kUnknownField);
  EXPECT_EQ(check(b).where, "field 127 (wire type 0) in medic.v1.EventBatch");

  b = test::full_batch("host-a");
  test::add_unknown(b.mutable_events(2), extra);
  EXPECT_EQ(check(b).where, "field 127 (wire type 0) in medic.v1.Event at events[2]");

  b = test::full_batch("host-a");
  test::add_unknown(b.mutable_events(0)->mutable_state(), extra);
  EXPECT_EQ(check(b).where,
            "field 127 (wire type 0) in medic.v1.VmStateReport at state at events[0]");

  b = test::full_batch("host-a");
  test::add_unknown(b.mutable_events(0)->mutable_state()->mutable_labels(1), extra);
  SchemaCheck deep = check(b);
  EXPECT_EQ(deep.error, SchemaError::kUnknownField);
  EXPECT_EQ(deep.where,
            "field 127 (wire type 0) in medic.v1.Label at labels[1] at state at events[0]");

  auto q = test::full_request(2);
  test::add_unknown(q.mutable_silence(), extra);
  EXPECT_EQ(check_schema(schema_of(medic::v1::KIND_CONTROL_REQUEST), q.SerializeAsString()).where,
            "field 127 (wire type 0) in medic.v1.Silence at silence");
}

TEST(Schema, AKnownFieldWithAnotherWireTypeIsRefused) {
  // Action.attempt (9) is a varint; sent as 4 fixed bytes.
  std::string p = test::full_action("host-a").SerializeAsString() + tag(9, 5) + "abcd";
  SchemaCheck c = check_schema(schema_of(medic::v1::KIND_ACTION), p);
  EXPECT_EQ(c.error, SchemaError::kWrongWireType);
  EXPECT_NE(c.where.find("\"attempt\" is wire type 0"), std::string::npos) << c.where;
  // A group (wire type 3), which medic never uses.
  std::string g = tag(3, 3) + tag(3, 4);
  EXPECT_EQ(check_schema(schema_of(medic::v1::KIND_ACTION_ACK), g).error,
            SchemaError::kUnknownField);
  EXPECT_EQ(check_schema(schema_of(medic::v1::KIND_ACTION_ACK), tag(2, 3)).error,
            SchemaError::kWrongWireType);
}

TEST(Schema, ASingularFieldTwiceOrTwoMembersOfAOneofAreRefused) {
  // The parser keeps the last id: the first would be signed but never read.
  std::string twice = tag(1, 2) + varint(3) + "a-0" + test::full_action("h").SerializeAsString();
  SchemaCheck c = check_schema(schema_of(medic::v1::KIND_ACTION), twice);
  EXPECT_EQ(c.error, SchemaError::kRepeatedSingle);
  EXPECT_EQ(c.where, "\"id\" in medic.v1.Action given twice");

  std::string both =
      test::full_request(0).SerializeAsString() + test::full_request(1).SerializeAsString();
  c = check_schema(schema_of(medic::v1::KIND_CONTROL_REQUEST), both);
  EXPECT_EQ(c.error, SchemaError::kRepeatedSingle);  // request_id twice comes first
  std::string approve_then_deny = test::full_request(0).SerializeAsString() + tag(11, 2) + varint(0);
  c = check_schema(schema_of(medic::v1::KIND_CONTROL_REQUEST), approve_then_deny);
  EXPECT_EQ(c.error, SchemaError::kRepeatedSingle);
  EXPECT_NE(c.where.find("besides another member of its oneof"), std::string::npos) << c.where;
  // Positive control: a repeated field may come as often as it likes.
  std::string more_events = test::full_batch("h").SerializeAsString() + tag(2, 2) + varint(0);
  EXPECT_TRUE(check_schema(schema_of(medic::v1::KIND_EVENT_BATCH), more_events).ok());
}

TEST(Schema, BytesThatAreNotProtobufAreMalformed) {
  const MessageSchema& s = schema_of(medic::v1::KIND_ACTION_RESULT);
  EXPECT_EQ(check_schema(s, "\xff\xff\xff").error, SchemaError::kMalformed);
  EXPECT_EQ(check_schema(s, tag(3, 2) + varint(100) + "short").error, SchemaError::kMalformed);
  EXPECT_EQ(check_schema(s, std::string("\x00", 1)).error, SchemaError::kMalformed);  // field 0
  EXPECT_EQ(check_schema(s, tag(2, 0) + std::string(11, '\xff')).error, SchemaError::kMalformed);
}

// Property: for random field numbers and wire types added at the top level
// or inside nested messages, the schema walk agrees with the generated lite
// parser: whatever the walk accepts parses with no unknown field anywhere,
// and whatever parses with none, serialized again by the generated code, the
// walk accepts (so the table declares every field the code writes). Numbers
// no message declares are always refused.
TEST(Schema, RandomFieldNumbersAndWireTypesAgreeWithTheGeneratedParser) {
  std::mt19937 rng(20261201);
  constexpr int kWires[] = {0, 1, 2, 5};
  test::quiet_protobuf_log();  // the parser logs every invalid UTF-8 string it refuses
  for (Kind k : test::kInnerKinds) {
    auto samples = test::full_payloads(k, "host-a");
    samples.push_back("");  // every field at its default: room for a declared field
    int accepted = 0, refused = 0;
    for (int i = 0; i < 3000; ++i) {
      const uint64_t number = rng() % 2 ? 1 + rng() % 16 : 1 + rng() % ((1u << 29) - 1);
      const int wire = kWires[rng() % 4];
      std::string extra = field(number, wire, rng);
      std::string p;
      if (k == medic::v1::KIND_EVENT_BATCH && rng() % 2) {
        auto b = test::full_batch("host-a");
        auto* e = b.mutable_events(static_cast<int>(rng() % 4));
        switch (rng() % 3) {
          case 0: test::add_unknown(e, extra); break;
          case 1: test::add_unknown(b.mutable_events(0)->mutable_state(), extra); break;
          default:
            test::add_unknown(b.mutable_events(0)->mutable_state()->mutable_labels(0), extra);
        }
        p = b.SerializeAsString();
      } else {
        p = samples[rng() % samples.size()];
        p.insert(rng() % 2 ? p.size() : 0, extra);
      }
      SchemaCheck c = check_schema(schema_of(k), p);
      test::ParserView v = test::parser_view(k, p);
      if (c.ok()) {
        ++accepted;
        EXPECT_TRUE(v.parsed && !v.unknown_fields)
            << kind_tag(k) << " accepted field " << number << " wire " << wire;
      } else {
        ++refused;
      }
      if (v.parsed && !v.unknown_fields) {
        // What the generated code writes is always inside the schema.
        SchemaCheck again = check_schema(schema_of(k), v.reserialized);
        EXPECT_TRUE(again.ok()) << kind_tag(k) << " field " << number << " wire " << wire << ": "
                                << again.where;
      }
      if (number > 16) {
        EXPECT_EQ(c.error, SchemaError::kUnknownField) << kind_tag(k) << " field " << number;
      }
    }
    // Both outcomes occur, so neither half of the property is vacuous.
    EXPECT_GT(accepted, 0) << kind_tag(k);
    EXPECT_GT(refused, 1000) << kind_tag(k);
  }
}

// Through Opener::open: each kind, sealed by a sender with the right role,
// is refused with kOutsideSchema when it carries an unknown field, and opens
// without it.
class StrictPayloadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(trust_.add(node("host-a", collector_, test::kCollector | test::kActuator,
                                {"host-a", "hôte-ä"}))
                    .ok());
    ASSERT_TRUE(trust_.add(node("engine", engine_, test::kEngine, {"*"})).ok());
    ASSERT_TRUE(trust_.add(node("alice", operator_, test::kOperator, {"*"})).ok());
  }
  const Identity& signer_for(Kind k) {
    switch (k) {
      case medic::v1::KIND_EVENT_BATCH:
      case medic::v1::KIND_ACTION_RESULT: return collector_;
      case medic::v1::KIND_CONTROL_REQUEST: return operator_;
      default: return engine_;
    }
  }

  VirtualClock clock_;
  TrustStore trust_;
  Identity collector_ = identity_for(1);
  Identity engine_ = identity_for(2);
  Identity operator_ = identity_for(3);
};

TEST_F(StrictPayloadTest, EveryKindWithAFieldOutsideItsSchemaIsRefusedAndCounted) {
  Opener opener(trust_, clock_);
  uint64_t n = 0;
  uint32_t stream = 0;
  for (Kind k : test::kInnerKinds) {
    Sealer sealer(signer_for(k), ++stream);
    const std::string good = test::full_payloads(k, "host-a")[0];
    Opened o;
    std::string why;
    ASSERT_EQ(opener.open(sealer.seal(k, "host-a", good, clock_.now()), &o, &why), OpenError::kOk)
        << kind_tag(k) << ": " << why;
    EXPECT_EQ(opener.open(sealer.seal(k, "host-a", good + "\xf8\x07\x01", clock_.now()), &o, &why),
              OpenError::kOutsideSchema)
        << kind_tag(k);
    EXPECT_NE(why.find("unknown_field: field 127"), std::string::npos) << why;
    EXPECT_EQ(opener.counters().get(OpenError::kOutsideSchema), ++n);
  }
}

// The adversary's case: 500 batches with unknown fields, all refused.
TEST_F(StrictPayloadTest, FiveHundredBatchesWithUnknownFieldsAreAllRefused) {
  Opener opener(trust_, clock_);
  Sealer sealer(collector_);
  std::mt19937 rng(500);
  for (int i = 0; i < 500; ++i) {
    auto b = test::full_batch("host-a");
    test::add_unknown(b.mutable_events(static_cast<int>(rng() % 4)),
                      field(17 + rng() % 1000, 0, rng));
    Opened o;
    ASSERT_EQ(opener.open(sealer.seal(medic::v1::KIND_EVENT_BATCH, "host-a", b.SerializeAsString(),
                                      clock_.now()),
                          &o),
              OpenError::kOutsideSchema);
  }
  EXPECT_EQ(opener.counters().get(OpenError::kOutsideSchema), 500u);
  EXPECT_EQ(opener.accepted(), 0u);
}

TEST_F(StrictPayloadTest, AnEnvelopeFieldGivenTwiceIsMalformed) {
  // An unsigned payload put in front of the signed one: the parser keeps the
  // last, the signature verifies, and the stored frame would carry bytes
  // nobody signed.
  Sealer sealer(collector_);
  std::string frame = sealer.seal(medic::v1::KIND_EVENT_BATCH, "host-a",
                                  test::full_batch("host-a").SerializeAsString(), clock_.now());
  std::string forged = tag(7, 2) + varint(4) + "evil" + frame;
  Opener opener(trust_, clock_);
  Opened o;
  std::string why;
  EXPECT_EQ(opener.open(forged, &o, &why), OpenError::kMalformed);
  EXPECT_NE(why.find("\"payload\" in medic.v1.Envelope given twice"), std::string::npos) << why;
  EXPECT_EQ(opener.open(frame, &o), OpenError::kOk);
}

TEST_F(StrictPayloadTest, HostNamesMustBeUtf8WithoutControlCharacters) {
  Opener opener(trust_, clock_);
  Sealer sealer(collector_);
  auto open_for = [&](const std::string& host, std::string* why) {
    Opened o;
    return opener.open(sealer.seal(medic::v1::KIND_EVENT_BATCH, host,
                                   test::full_batch("host-a").SerializeAsString(), clock_.now()),
                       &o, why);
  };
  std::string why;
  EXPECT_EQ(open_for("host-\xff\xfe", &why), OpenError::kMalformed);
  EXPECT_EQ(why, "host name is not valid UTF-8 (byte 5)");
  EXPECT_EQ(why.find('\xff'), std::string::npos);  // the raw bytes never reach a log line
  EXPECT_EQ(open_for("host-\xc0\xae", &why), OpenError::kMalformed);      // overlong '.'
  EXPECT_EQ(open_for("host-\xed\xa0\x80", &why), OpenError::kMalformed);  // a surrogate
  EXPECT_EQ(open_for("host-a\n", &why), OpenError::kMalformed);
  EXPECT_EQ(why, "host name has a control character (byte 6)");
  EXPECT_EQ(open_for("host-\xc2\x85", &why), OpenError::kMalformed);      // C1: NEL
  EXPECT_EQ(open_for("host-\xe2\x80\xae" "a", &why), OpenError::kMalformed);  // RIGHT-TO-LEFT OVERRIDE
  EXPECT_EQ(open_for(std::string(256, 'h'), &why), OpenError::kMalformed);
  EXPECT_EQ(opener.counters().get(OpenError::kOutOfScope), 0u);
  // Positive controls: UTF-8 beyond ASCII is a host name like any other.
  EXPECT_EQ(open_for("hôte-ä", &why), OpenError::kOk) << why;
  EXPECT_EQ(open_for("host-a", &why), OpenError::kOk) << why;
}

}  // namespace
}  // namespace medic::fabric
