// Shared body of the inner-message fuzz targets (event_batch_fuzz.cc,
// action_fuzz.cc, ...): arbitrary bytes as the payload of one kind.
//
// Each input goes through the strict-payload walk (fabric/schema.h) and the
// generated lite parser, which must agree: bytes the walk accepts parse with
// no unknown field at any depth, and a message that parses with none, written
// out again by the generated code, is accepted by the walk. A disagreement
// aborts, which the gtest driver and libFuzzer both report. Every 16th
// accepted input is also sealed by a sender with the kind's role and opened
// (Opener::open must accept it), and an event batch is decoded as the
// engine's receiver does.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "fabric/envelope.h"
#include "fabric/schema.h"
#include "tests/unit/fabric/payload_samples.h"

namespace medic::fuzz {

struct PayloadFixture {
  PayloadFixture() {
    fabric::test::quiet_protobuf_log();
    std::array<uint8_t, 32> seed{};
    seed.fill(7);
    sender = std::make_unique<fabric::Identity>(fabric::Identity::from_seed(seed));
    fabric::TrustedNode n;
    n.name = "any-role";
    n.key = sender->public_key();
    n.roles = 0xf;  // every role, so each kind may be sent
    n.hosts = {"*"};
    (void)trust.add(n);
    sealer = std::make_unique<fabric::Sealer>(*sender);
    opener = std::make_unique<fabric::Opener>(trust, clock);
  }
  VirtualClock clock;
  fabric::TrustStore trust;
  std::unique_ptr<fabric::Identity> sender;
  std::unique_ptr<fabric::Sealer> sealer;
  std::unique_ptr<fabric::Opener> opener;
  size_t accepted = 0;
};

inline PayloadFixture& payload_fixture() {
  static PayloadFixture f;
  return f;
}

[[noreturn]] inline void disagree(medic::v1::Kind kind, std::string_view input, const char* what,
                                  const std::string& where) {
  std::fprintf(stderr, "%s: %s (%s); input:", std::string(fabric::kind_tag(kind)).c_str(), what,
               where.c_str());
  for (unsigned char c : input.substr(0, 256)) std::fprintf(stderr, " %02x", c);
  std::fprintf(stderr, "\n");
  std::abort();
}

inline void seal_and_open(medic::v1::Kind kind, std::string_view payload) {
  PayloadFixture& f = payload_fixture();
  std::string frame = f.sealer->seal(kind, "host-a", payload, f.clock.now());
  fabric::Opened opened;
  std::string why;
  if (f.opener->open(frame, &opened, &why) != fabric::OpenError::kOk) {
    disagree(kind, payload, "a payload the walk accepts was refused by open()", why);
  }
  if (kind == medic::v1::KIND_EVENT_BATCH) {
    medic::v1::EventBatch batch;
    Status s = fabric::decode_event_batch(opened, &batch);
    if (!s.ok() && s.code() != Code::kPermissionDenied) {  // another host's VM is refused
      disagree(kind, payload, "an accepted batch does not decode", s.message());
    }
  }
}

inline int payload_one_input(medic::v1::Kind kind, const uint8_t* data, size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  fabric::SchemaCheck c = fabric::check_schema(*fabric::payload_schema(kind), bytes);
  fabric::test::ParserView v = fabric::test::parser_view(kind, bytes);
  const bool parser_clean = v.parsed && !v.unknown_fields;
  if (c.ok() && !parser_clean) {
    disagree(kind, bytes, v.parsed ? "accepted, but the parser finds unknown fields"
                            : "accepted, but the parser refuses it",
             "");
  }
  if (parser_clean) {
    fabric::SchemaCheck again = fabric::check_schema(*fabric::payload_schema(kind), v.reserialized);
    if (!again.ok()) disagree(kind, bytes, "the generated code writes what the walk refuses", again.where);
  }
  if (c.ok() && payload_fixture().accepted++ % 16 == 0) seal_and_open(kind, bytes);
  return 0;
}

inline std::vector<std::string> payload_seeds(medic::v1::Kind kind) {
  std::vector<std::string> out = fabric::test::full_payloads(kind, "host-a");
  out.push_back("");  // every field at its default
  return out;
}

}  // namespace medic::fuzz
