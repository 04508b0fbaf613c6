// Strict payloads: whether serialized bytes hold only what the schema of
// their message declares. Internal to fabric/ (Opener::open runs it on every
// envelope and payload it accepts; audit verification runs it on stored
// checkpoints), exposed for tests and fuzz targets.
//
// The lite protobuf runtime keeps fields it does not know as opaque bytes and
// merges repeated occurrences of a singular field, so a signed payload could
// carry bytes nobody reads. This walks the wire format itself, recursively
// through nested messages, and refuses:
//   - a field number the message does not declare, or a known field with
//     another wire type (also groups, which medic never uses);
//   - a singular field given twice, or two members of one oneof (the parser
//     would keep only the last; the first would be signed but unread);
//   - a `string` field that is not valid UTF-8 (the parser refuses those);
//   - bytes that are not well-formed protobuf, or nesting deeper than the
//     schema can produce.
// So the bytes a receiver accepts, signs and stores are exactly the bytes it
// interprets. Each rule has a case in tests/unit/fabric/schema_test.cc.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "medic/v1/envelope.pb.h"

namespace medic::v1 {
class EventBatch;
}

namespace medic::fabric {

struct MessageSchema;

// The schema of the envelope itself, and of the inner message a kind carries
// (nullptr for a kind outside the closed set).
const MessageSchema& envelope_schema();
const MessageSchema* payload_schema(medic::v1::Kind kind);
// "medic.v1.EventBatch" and so on.
const char* schema_name(const MessageSchema& schema);

enum class SchemaError : uint8_t {
  kOk = 0,
  kMalformed,       // not well-formed protobuf (truncated, bad varint, bad length)
  kUnknownField,    // a field number the message does not declare
  kWrongWireType,   // a declared field with another wire type
  kRepeatedSingle,  // a singular field twice, or a second member of a oneof
  kBadText,         // a `string` field that is not valid UTF-8
  kTooDeep,
};
const char* schema_error_name(SchemaError e);

struct SchemaCheck {
  SchemaError error = SchemaError::kOk;
  // On failure: where, e.g. "field 99 (wire type 0) in medic.v1.Event at events[2]".
  std::string where;
  bool ok() const { return error == SchemaError::kOk; }
};

// Walks `bytes` as a serialized message of `schema`. Allocates nothing unless
// it fails (then only the description).
SchemaCheck check_schema(const MessageSchema& schema, std::string_view bytes);

// check_schema for an EventBatch (payload_schema(KIND_EVENT_BATCH)) that
// also fills *out in the same pass, so the generated parser need not run:
// the same refusals and descriptions, and on success the message the parser
// would have made of `bytes` (tests/unit/fabric/batch_fill_test.cc). On
// failure *out holds part of the batch; discard it (or fill it again).
// `out` must be new or filled only by check_and_fill before (it clears no
// unknown fields): then it may hold an earlier batch, whose messages and
// strings are reused in place, so one EventBatch filled batch after batch
// allocates only for a batch bigger than those before it (BatchDecoder).
// *messages, when given, gets the number of sub-messages filled (events,
// bodies, labels), which protobuf keeps allocated for reuse once made.
SchemaCheck check_and_fill(std::string_view bytes, medic::v1::EventBatch* out,
                           size_t* messages = nullptr);

}  // namespace medic::fabric
