#include "fabric/schema.h"

#include <array>

#include "core/text.h"

#include "medic/v1/actions.pb.h"
#include "medic/v1/control.pb.h"
#include "medic/v1/events.pb.h"

namespace medic::fabric {

// Wire types of the protobuf encoding; kText is a length-delimited `string`
// field, whose bytes must be UTF-8 (the generated parser refuses them
// otherwise, so the walk does too).
enum Wire : uint8_t { kVarint = 0, kFixed64 = 1, kLen = 2, kFixed32 = 5, kText = 0x80 | kLen };

struct FieldSpec {
  uint32_t number;
  const char* name;
  uint8_t wire;
  bool repeated = false;
  const MessageSchema* nested = nullptr;  // for a message-typed field
  uint8_t oneof = 0;                      // 1-based oneof group; 0 for none
};

struct MessageSchema {
  const char* name;
  const FieldSpec* fields;
  size_t count;
};

namespace {

// Field numbers come from the generated code, so a renumbered or removed
// field fails to compile here. A field added to a .proto must be added here
// too, or messages carrying it are refused (loudly: the round-trip tests in
// schema_test.cc set every field). medic has no repeated scalar fields, so
// packed encoding is not accepted.
constexpr size_t kMaxFields = 16;
constexpr int kMaxDepth = 8;

template <size_t N>
constexpr MessageSchema schema(const char* name, const std::array<FieldSpec, N>& fields) {
  static_assert(N <= kMaxFields);
  return {name, fields.data(), N};
}

using medic::v1::Envelope;
constexpr std::array<FieldSpec, 9> kEnvelopeFields = {{
    {Envelope::kKindFieldNumber, "kind", kVarint},
    {Envelope::kSenderFieldNumber, "sender", kLen},
    {Envelope::kEpochFieldNumber, "epoch", kVarint},
    {Envelope::kSeqFieldNumber, "seq", kVarint},
    {Envelope::kSentAtNsFieldNumber, "sent_at_ns", kVarint},
    {Envelope::kHostFieldNumber, "host", kLen},
    {Envelope::kPayloadFieldNumber, "payload", kLen},
    {Envelope::kSignatureFieldNumber, "signature", kLen},
    {Envelope::kStreamFieldNumber, "stream", kVarint},
}};
constexpr MessageSchema kEnvelope = schema("medic.v1.Envelope", kEnvelopeFields);

// ---- events.proto
using medic::v1::Label;
constexpr std::array<FieldSpec, 2> kLabelFields = {{
    {Label::kKeyFieldNumber, "key", kText},
    {Label::kValueFieldNumber, "value", kText},
}};
constexpr MessageSchema kLabel = schema("medic.v1.Label", kLabelFields);

using medic::v1::VmStateReport;
constexpr std::array<FieldSpec, 6> kStateFields = {{
    {VmStateReport::kStateFieldNumber, "state", kVarint},
    {VmStateReport::kLabelsFieldNumber, "labels", kLen, true, &kLabel},
    {VmStateReport::kLastHeartbeatNsFieldNumber, "last_heartbeat_ns", kVarint},
    {VmStateReport::kCpuPercentFieldNumber, "cpu_percent", kFixed64},
    {VmStateReport::kRssBytesFieldNumber, "rss_bytes", kVarint},
    {VmStateReport::kUptimeNsFieldNumber, "uptime_ns", kVarint},
}};
constexpr MessageSchema kState = schema("medic.v1.VmStateReport", kStateFields);

using medic::v1::LifecycleEvent;
constexpr std::array<FieldSpec, 2> kLifecycleFields = {{
    {LifecycleEvent::kWhatFieldNumber, "what", kVarint},
    {LifecycleEvent::kDetailFieldNumber, "detail", kText},
}};
constexpr MessageSchema kLifecycle = schema("medic.v1.LifecycleEvent", kLifecycleFields);

using medic::v1::Heartbeat;
constexpr std::array<FieldSpec, 2> kHeartbeatFields = {{
    {Heartbeat::kCounterFieldNumber, "counter", kVarint},
    {Heartbeat::kSourceFieldNumber, "source", kText},
}};
constexpr MessageSchema kHeartbeat = schema("medic.v1.Heartbeat", kHeartbeatFields);

using medic::v1::ProbeResult;
constexpr std::array<FieldSpec, 5> kProbeFields = {{
    {ProbeResult::kProbeFieldNumber, "probe", kText},
    {ProbeResult::kOkFieldNumber, "ok", kVarint},
    {ProbeResult::kStatusFieldNumber, "status", kVarint},
    {ProbeResult::kLatencyNsFieldNumber, "latency_ns", kVarint},
    {ProbeResult::kReasonFieldNumber, "reason", kText},
}};
constexpr MessageSchema kProbe = schema("medic.v1.ProbeResult", kProbeFields);

using medic::v1::Event;
constexpr std::array<FieldSpec, 7> kEventFields = {{
    {Event::kHostFieldNumber, "host", kText},
    {Event::kVmFieldNumber, "vm", kText},
    {Event::kObservedAtNsFieldNumber, "observed_at_ns", kVarint},
    {Event::kStateFieldNumber, "state", kLen, false, &kState, 1},
    {Event::kLifecycleFieldNumber, "lifecycle", kLen, false, &kLifecycle, 1},
    {Event::kHeartbeatFieldNumber, "heartbeat", kLen, false, &kHeartbeat, 1},
    {Event::kProbeFieldNumber, "probe", kLen, false, &kProbe, 1},
}};
constexpr MessageSchema kEvent = schema("medic.v1.Event", kEventFields);

using medic::v1::EventBatch;
constexpr std::array<FieldSpec, 2> kBatchFields = {{
    {EventBatch::kUrgentFieldNumber, "urgent", kVarint},
    {EventBatch::kEventsFieldNumber, "events", kLen, true, &kEvent},
}};
constexpr MessageSchema kBatch = schema("medic.v1.EventBatch", kBatchFields);

// ---- actions.proto
using medic::v1::Action;
constexpr std::array<FieldSpec, 11> kActionFields = {{
    {Action::kIdFieldNumber, "id", kText},
    {Action::kVerbFieldNumber, "verb", kVarint},
    {Action::kHostFieldNumber, "host", kText},
    {Action::kVmFieldNumber, "vm", kText},
    {Action::kIssuedAtNsFieldNumber, "issued_at_ns", kVarint},
    {Action::kExpiresAtNsFieldNumber, "expires_at_ns", kVarint},
    {Action::kRuleFieldNumber, "rule", kText},
    {Action::kRuleVersionFieldNumber, "rule_version", kText},
    {Action::kAttemptFieldNumber, "attempt", kVarint},
    {Action::kWatchNsFieldNumber, "watch_ns", kVarint},
    {Action::kFaultFieldNumber, "fault", kText},
}};
constexpr MessageSchema kAction = schema("medic.v1.Action", kActionFields);

using medic::v1::ActionAck;
constexpr std::array<FieldSpec, 2> kAckFields = {{
    {ActionAck::kActionIdFieldNumber, "action_id", kText},
    {ActionAck::kWhatFieldNumber, "what", kVarint},
}};
constexpr MessageSchema kAck = schema("medic.v1.ActionAck", kAckFields);

using medic::v1::ActionResult;
constexpr std::array<FieldSpec, 7> kResultFields = {{
    {ActionResult::kActionIdFieldNumber, "action_id", kText},
    {ActionResult::kOutcomeFieldNumber, "outcome", kVarint},
    {ActionResult::kReasonFieldNumber, "reason", kText},
    {ActionResult::kHealedFieldNumber, "healed", kVarint},
    {ActionResult::kExecutedAtNsFieldNumber, "executed_at_ns", kVarint},
    {ActionResult::kFinishedAtNsFieldNumber, "finished_at_ns", kVarint},
    {ActionResult::kOutputFieldNumber, "output", kText},
}};
constexpr MessageSchema kResult = schema("medic.v1.ActionResult", kResultFields);

// ---- control.proto
using medic::v1::Approve;
constexpr std::array<FieldSpec, 2> kApproveFields = {{
    {Approve::kActionIdFieldNumber, "action_id", kText},
    {Approve::kCommentFieldNumber, "comment", kText},
}};
constexpr MessageSchema kApprove = schema("medic.v1.Approve", kApproveFields);

using medic::v1::Deny;
constexpr std::array<FieldSpec, 2> kDenyFields = {{
    {Deny::kActionIdFieldNumber, "action_id", kText},
    {Deny::kReasonFieldNumber, "reason", kText},
}};
constexpr MessageSchema kDeny = schema("medic.v1.Deny", kDenyFields);

using medic::v1::Silence;
constexpr std::array<FieldSpec, 5> kSilenceFields = {{
    {Silence::kScopeFieldNumber, "scope", kVarint},
    {Silence::kValueFieldNumber, "value", kText},
    {Silence::kDurationNsFieldNumber, "duration_ns", kVarint},
    {Silence::kReasonFieldNumber, "reason", kText},
    {Silence::kForceFieldNumber, "force", kVarint},
}};
constexpr MessageSchema kSilence = schema("medic.v1.Silence", kSilenceFields);

using medic::v1::Unsilence;
constexpr std::array<FieldSpec, 1> kUnsilenceFields = {{
    {Unsilence::kSilenceIdFieldNumber, "silence_id", kText},
}};
constexpr MessageSchema kUnsilence = schema("medic.v1.Unsilence", kUnsilenceFields);

constexpr MessageSchema kStatusQuery = {"medic.v1.StatusQuery", nullptr, 0};
constexpr MessageSchema kSilenceList = {"medic.v1.SilenceList", nullptr, 0};
constexpr MessageSchema kIncidentsQuery = {"medic.v1.IncidentsQuery", nullptr, 0};

using medic::v1::HostsQuery;
constexpr std::array<FieldSpec, 1> kHostsQueryFields = {{
    {HostsQuery::kVmsFieldNumber, "vms", kVarint},
}};
constexpr MessageSchema kHostsQuery = schema("medic.v1.HostsQuery", kHostsQueryFields);

using medic::v1::Unfreeze;
constexpr std::array<FieldSpec, 2> kUnfreezeFields = {{
    {Unfreeze::kHostFieldNumber, "host", kText},
    {Unfreeze::kReasonFieldNumber, "reason", kText},
}};
constexpr MessageSchema kUnfreeze = schema("medic.v1.Unfreeze", kUnfreezeFields);

using medic::v1::Inject;
constexpr std::array<FieldSpec, 2> kInjectFields = {{
    {Inject::kVmFieldNumber, "vm", kText},
    {Inject::kFaultFieldNumber, "fault", kText},
}};
constexpr MessageSchema kInject = schema("medic.v1.Inject", kInjectFields);

using medic::v1::ControlRequest;
constexpr std::array<FieldSpec, 11> kRequestFields = {{
    {ControlRequest::kRequestIdFieldNumber, "request_id", kText},
    {ControlRequest::kApproveFieldNumber, "approve", kLen, false, &kApprove, 1},
    {ControlRequest::kDenyFieldNumber, "deny", kLen, false, &kDeny, 1},
    {ControlRequest::kSilenceFieldNumber, "silence", kLen, false, &kSilence, 1},
    {ControlRequest::kStatusFieldNumber, "status", kLen, false, &kStatusQuery, 1},
    {ControlRequest::kUnsilenceFieldNumber, "unsilence", kLen, false, &kUnsilence, 1},
    {ControlRequest::kUnfreezeFieldNumber, "unfreeze", kLen, false, &kUnfreeze, 1},
    {ControlRequest::kSilenceListFieldNumber, "silence_list", kLen, false, &kSilenceList, 1},
    {ControlRequest::kIncidentsFieldNumber, "incidents", kLen, false, &kIncidentsQuery, 1},
    {ControlRequest::kHostsFieldNumber, "hosts", kLen, false, &kHostsQuery, 1},
    {ControlRequest::kInjectFieldNumber, "inject", kLen, false, &kInject, 1},
}};
constexpr MessageSchema kRequest = schema("medic.v1.ControlRequest", kRequestFields);

using medic::v1::ControlReply;
constexpr std::array<FieldSpec, 5> kReplyFields = {{
    {ControlReply::kRequestIdFieldNumber, "request_id", kText},
    {ControlReply::kOkFieldNumber, "ok", kVarint},
    {ControlReply::kErrorFieldNumber, "error", kText},
    {ControlReply::kTextFieldNumber, "text", kText},
    {ControlReply::kJsonFieldNumber, "json", kText},
}};
constexpr MessageSchema kReply = schema("medic.v1.ControlReply", kReplyFields);

using medic::v1::Checkpoint;
constexpr std::array<FieldSpec, 3> kCheckpointFields = {{
    {Checkpoint::kRowIdFieldNumber, "row_id", kVarint},
    {Checkpoint::kRowHashFieldNumber, "row_hash", kLen},
    {Checkpoint::kAtNsFieldNumber, "at_ns", kVarint},
}};
constexpr MessageSchema kCheckpoint = schema("medic.v1.Checkpoint", kCheckpointFields);

// ---- the walk

bool valid_utf8(std::string_view text) {
  for (size_t i = 0; i < text.size();) {
    uint32_t cp = 0;
    const size_t len = decode_utf8(text, i, &cp);
    if (len == 0) return false;
    i += len;
  }
  return true;
}

// A varint of at most `max_bytes` bytes: 10 for a value; 5 for a tag or a
// length, which the parser reads as 32 bits (an overlong 6-byte zero is not
// a length to it).
bool read_varint(const uint8_t*& p, const uint8_t* end, uint64_t* out, int max_bytes = 10) {
  uint64_t v = 0;
  for (int shift = 0; shift < 7 * max_bytes; shift += 7) {
    if (p == end) return false;
    const uint8_t b = *p++;
    if (shift == 63 && b > 1) return false;  // more than 64 bits
    v |= static_cast<uint64_t>(b & 0x7f) << shift;
    if (!(b & 0x80)) {
      *out = v;
      return true;
    }
  }
  return false;
}

const FieldSpec* find_field(const MessageSchema& s, uint32_t number, size_t* index) {
  for (size_t i = 0; i < s.count; ++i) {
    if (s.fields[i].number == number) {
      *index = i;
      return &s.fields[i];
    }
  }
  return nullptr;
}

// Skips the value of a field of wire type `wire`; for kLen, *body is its bytes.
bool skip_value(uint8_t wire, const uint8_t*& p, const uint8_t* end, std::string_view* body) {
  uint64_t v = 0;
  switch (wire) {
    case kVarint:
      return read_varint(p, end, &v);
    case kFixed64:
      if (end - p < 8) return false;
      p += 8;
      return true;
    case kFixed32:
      if (end - p < 4) return false;
      p += 4;
      return true;
    case kLen:
      if (!read_varint(p, end, &v, 5) || v > static_cast<uint64_t>(end - p)) return false;
      *body = std::string_view(reinterpret_cast<const char*>(p), static_cast<size_t>(v));
      p += v;
      return true;
    default:
      return false;
  }
}

std::string describe(uint64_t number, uint64_t wire, const MessageSchema& s) {
  return "field " + std::to_string(number) + " (wire type " + std::to_string(wire) + ") in " +
         s.name;
}

SchemaError walk(const MessageSchema& s, std::string_view bytes, int depth, std::string* where) {
  if (depth > kMaxDepth) {
    *where = std::string("a ") + s.name + " nested " + std::to_string(depth) + " deep";
    return SchemaError::kTooDeep;
  }
  const auto* p = reinterpret_cast<const uint8_t*>(bytes.data());
  const uint8_t* end = p + bytes.size();
  std::array<uint32_t, kMaxFields> seen{};  // occurrences per field
  uint8_t oneof_taken = 0;                  // bit per oneof group
  while (p != end) {
    uint64_t tag = 0;
    if (!read_varint(p, end, &tag, 5) || tag > 0xffffffffu || (tag >> 3) == 0) {
      *where = std::string("a bad field tag in ") + s.name;
      return SchemaError::kMalformed;
    }
    const uint64_t number = tag >> 3;
    const uint8_t wire = static_cast<uint8_t>(tag & 7);
    size_t index = 0;
    const FieldSpec* f = find_field(s, static_cast<uint32_t>(number), &index);
    if (!f) {
      *where = describe(number, wire, s);
      return SchemaError::kUnknownField;
    }
    if (wire != (f->wire & 7)) {
      *where = describe(number, wire, s) + " (\"" + f->name + "\" is wire type " +
               std::to_string(f->wire & 7) + ")";
      return SchemaError::kWrongWireType;
    }
    const uint32_t occurrence = seen[index]++;
    const bool other_member = f->oneof && (oneof_taken & (1u << f->oneof)) && occurrence == 0;
    if ((!f->repeated && occurrence > 0) || other_member) {
      *where = std::string("\"") + f->name + "\" in " + s.name +
               (other_member ? " besides another member of its oneof" : " given twice");
      return SchemaError::kRepeatedSingle;
    }
    if (f->oneof) oneof_taken |= static_cast<uint8_t>(1u << f->oneof);
    std::string_view body;
    if (!skip_value(wire, p, end, &body)) {
      *where = std::string("\"") + f->name + "\" in " + s.name + " is cut short";
      return SchemaError::kMalformed;
    }
    if (f->wire == kText && !valid_utf8(body)) {
      *where = std::string("\"") + f->name + "\" in " + s.name + " is not valid UTF-8";
      return SchemaError::kBadText;
    }
    if (f->nested) {
      SchemaError e = walk(*f->nested, body, depth + 1, where);
      if (e != SchemaError::kOk) {
        *where += std::string(" at ") + f->name +
                  (f->repeated ? "[" + std::to_string(occurrence) + "]" : "");
        return e;
      }
    }
  }
  return SchemaError::kOk;
}

}  // namespace

const MessageSchema& envelope_schema() { return kEnvelope; }

const MessageSchema* payload_schema(medic::v1::Kind kind) {
  switch (kind) {
    case medic::v1::KIND_EVENT_BATCH: return &kBatch;
    case medic::v1::KIND_ACTION: return &kAction;
    case medic::v1::KIND_ACTION_ACK: return &kAck;
    case medic::v1::KIND_ACTION_RESULT: return &kResult;
    case medic::v1::KIND_CONTROL_REQUEST: return &kRequest;
    case medic::v1::KIND_CONTROL_REPLY: return &kReply;
    case medic::v1::KIND_CHECKPOINT: return &kCheckpoint;
    default: return nullptr;
  }
}

const char* schema_name(const MessageSchema& schema) { return schema.name; }

const char* schema_error_name(SchemaError e) {
  switch (e) {
    case SchemaError::kOk: return "ok";
    case SchemaError::kMalformed: return "malformed";
    case SchemaError::kUnknownField: return "unknown_field";
    case SchemaError::kWrongWireType: return "wrong_wire_type";
    case SchemaError::kRepeatedSingle: return "repeated_single";
    case SchemaError::kBadText: return "bad_text";
    case SchemaError::kTooDeep: return "too_deep";
  }
  return "unknown";
}

SchemaCheck check_schema(const MessageSchema& schema, std::string_view bytes) {
  SchemaCheck c;
  c.error = walk(schema, bytes, 0, &c.where);
  return c;
}

}  // namespace medic::fabric
