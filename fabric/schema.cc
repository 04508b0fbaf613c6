#include "fabric/schema.h"

#include <array>
#include <bit>
#include <cstring>

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

namespace {

// Field numbers come from the generated code, so a renumbered or removed
// field fails to compile here. A field added to a .proto must be added here
// too, or messages carrying it are refused (loudly: the round-trip tests in
// schema_test.cc set every field). medic has no repeated scalar fields, so
// packed encoding is not accepted.
constexpr size_t kMaxFields = 16;
constexpr uint32_t kMaxNumber = 31;  // the largest field number any table may declare
constexpr int kMaxDepth = 8;

}  // namespace

struct MessageSchema {
  const char* name;
  const FieldSpec* fields;
  size_t count;
  // The index in `fields` of each field number, -1 for a number not declared.
  std::array<int8_t, kMaxNumber + 1> slot;
  // The same for each one-byte tag (field numbers up to 15) with the field's
  // own wire type, -1 for any other byte: the walk's common case, one load.
  std::array<int8_t, 0x80> by_tag;
  // Per field index, the fields that may not have come before it: itself
  // and the other members of its oneof for a singular field, none for a
  // repeated one. The walk keeps a bit per singular field it has seen.
  std::array<uint32_t, kMaxFields> once;
};

namespace {

template <const auto& kFields>
constexpr MessageSchema schema(const char* name) {
  static_assert(kFields.size() <= kMaxFields);
  MessageSchema s{name, kFields.data(), kFields.size(), {}, {}, {}};
  s.slot.fill(-1);
  s.by_tag.fill(-1);
  for (size_t i = 0; i < kFields.size(); ++i) {
    for (size_t j = 0; j < kFields.size() && !kFields[i].repeated; ++j) {
      const bool sibling = kFields[i].oneof && kFields[j].oneof == kFields[i].oneof;
      if (i == j || sibling) s.once[i] |= 1u << j;
    }
    // Out of range fails to compile (an array write past the end is not a constant).
    s.slot.at(kFields[i].number) = static_cast<int8_t>(i);
    const uint32_t tag = kFields[i].number << 3 | (kFields[i].wire & 7u);
    if (tag < 0x80) s.by_tag[tag] = static_cast<int8_t>(i);
  }
  return s;
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
constexpr MessageSchema kEnvelope = schema<kEnvelopeFields>("medic.v1.Envelope");

// ---- events.proto
using medic::v1::Label;
constexpr std::array<FieldSpec, 2> kLabelFields = {{
    {Label::kKeyFieldNumber, "key", kText},
    {Label::kValueFieldNumber, "value", kText},
}};
constexpr MessageSchema kLabel = schema<kLabelFields>("medic.v1.Label");

using medic::v1::VmStateReport;
constexpr std::array<FieldSpec, 6> kStateFields = {{
    {VmStateReport::kStateFieldNumber, "state", kVarint},
    {VmStateReport::kLabelsFieldNumber, "labels", kLen, true, &kLabel},
    {VmStateReport::kLastHeartbeatNsFieldNumber, "last_heartbeat_ns", kVarint},
    {VmStateReport::kCpuPercentFieldNumber, "cpu_percent", kFixed64},
    {VmStateReport::kRssBytesFieldNumber, "rss_bytes", kVarint},
    {VmStateReport::kUptimeNsFieldNumber, "uptime_ns", kVarint},
}};
constexpr MessageSchema kState = schema<kStateFields>("medic.v1.VmStateReport");

using medic::v1::LifecycleEvent;
constexpr std::array<FieldSpec, 3> kLifecycleFields = {{
    {LifecycleEvent::kWhatFieldNumber, "what", kVarint},
    {LifecycleEvent::kDetailFieldNumber, "detail", kText},
    {LifecycleEvent::kVmNameFieldNumber, "vm_name", kText},
}};
constexpr MessageSchema kLifecycle = schema<kLifecycleFields>("medic.v1.LifecycleEvent");

using medic::v1::Heartbeat;
constexpr std::array<FieldSpec, 2> kHeartbeatFields = {{
    {Heartbeat::kCounterFieldNumber, "counter", kVarint},
    {Heartbeat::kSourceFieldNumber, "source", kText},
}};
constexpr MessageSchema kHeartbeat = schema<kHeartbeatFields>("medic.v1.Heartbeat");

using medic::v1::GuestPing;
constexpr std::array<FieldSpec, 1> kGuestPingFields = {{
    {GuestPing::kLatencyNsFieldNumber, "latency_ns", kVarint},
}};
constexpr MessageSchema kGuestPing = schema<kGuestPingFields>("medic.v1.GuestPing");

using medic::v1::ProbeResult;
constexpr std::array<FieldSpec, 5> kProbeFields = {{
    {ProbeResult::kProbeFieldNumber, "probe", kText},
    {ProbeResult::kOkFieldNumber, "ok", kVarint},
    {ProbeResult::kStatusFieldNumber, "status", kVarint},
    {ProbeResult::kLatencyNsFieldNumber, "latency_ns", kVarint},
    {ProbeResult::kReasonFieldNumber, "reason", kText},
}};
constexpr MessageSchema kProbe = schema<kProbeFields>("medic.v1.ProbeResult");

using medic::v1::Alert;
constexpr std::array<FieldSpec, 8> kAlertFields = {{
    {Alert::kFiringFieldNumber, "firing", kVarint},
    {Alert::kNameFieldNumber, "name", kText},
    {Alert::kLabelsFieldNumber, "labels", kLen, true, &kLabel},
    {Alert::kAnnotationsFieldNumber, "annotations", kLen, true, &kLabel},
    {Alert::kFingerprintFieldNumber, "fingerprint", kText},
    {Alert::kStartsAtNsFieldNumber, "starts_at_ns", kVarint},
    {Alert::kGeneratorUrlFieldNumber, "generator_url", kText},
    {Alert::kReceiverFieldNumber, "receiver", kText},
}};
constexpr MessageSchema kAlert = schema<kAlertFields>("medic.v1.Alert");

using medic::v1::Event;
constexpr std::array<FieldSpec, 9> kEventFields = {{
    {Event::kHostFieldNumber, "host", kText},
    {Event::kVmFieldNumber, "vm", kText},
    {Event::kObservedAtNsFieldNumber, "observed_at_ns", kVarint},
    {Event::kStateFieldNumber, "state", kLen, false, &kState, 1},
    {Event::kLifecycleFieldNumber, "lifecycle", kLen, false, &kLifecycle, 1},
    {Event::kHeartbeatFieldNumber, "heartbeat", kLen, false, &kHeartbeat, 1},
    {Event::kProbeFieldNumber, "probe", kLen, false, &kProbe, 1},
    {Event::kGuestPingFieldNumber, "guest_ping", kLen, false, &kGuestPing, 1},
    {Event::kAlertFieldNumber, "alert", kLen, false, &kAlert, 1},
}};
constexpr MessageSchema kEvent = schema<kEventFields>("medic.v1.Event");

using medic::v1::EventBatch;
constexpr std::array<FieldSpec, 2> kBatchFields = {{
    {EventBatch::kUrgentFieldNumber, "urgent", kVarint},
    {EventBatch::kEventsFieldNumber, "events", kLen, true, &kEvent},
}};
constexpr MessageSchema kBatch = schema<kBatchFields>("medic.v1.EventBatch");

// ---- actions.proto
using medic::v1::Action;
constexpr std::array<FieldSpec, 13> kActionFields = {{
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
    {Action::kTemplateNameFieldNumber, "template_name", kText},
    {Action::kVmNameFieldNumber, "vm_name", kText},
}};
constexpr MessageSchema kAction = schema<kActionFields>("medic.v1.Action");

using medic::v1::ActionAck;
constexpr std::array<FieldSpec, 2> kAckFields = {{
    {ActionAck::kActionIdFieldNumber, "action_id", kText},
    {ActionAck::kWhatFieldNumber, "what", kVarint},
}};
constexpr MessageSchema kAck = schema<kAckFields>("medic.v1.ActionAck");

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
constexpr MessageSchema kResult = schema<kResultFields>("medic.v1.ActionResult");

// ---- control.proto
using medic::v1::Approve;
constexpr std::array<FieldSpec, 2> kApproveFields = {{
    {Approve::kActionIdFieldNumber, "action_id", kText},
    {Approve::kCommentFieldNumber, "comment", kText},
}};
constexpr MessageSchema kApprove = schema<kApproveFields>("medic.v1.Approve");

using medic::v1::Deny;
constexpr std::array<FieldSpec, 2> kDenyFields = {{
    {Deny::kActionIdFieldNumber, "action_id", kText},
    {Deny::kReasonFieldNumber, "reason", kText},
}};
constexpr MessageSchema kDeny = schema<kDenyFields>("medic.v1.Deny");

using medic::v1::Silence;
constexpr std::array<FieldSpec, 5> kSilenceFields = {{
    {Silence::kScopeFieldNumber, "scope", kVarint},
    {Silence::kValueFieldNumber, "value", kText},
    {Silence::kDurationNsFieldNumber, "duration_ns", kVarint},
    {Silence::kReasonFieldNumber, "reason", kText},
    {Silence::kForceFieldNumber, "force", kVarint},
}};
constexpr MessageSchema kSilence = schema<kSilenceFields>("medic.v1.Silence");

using medic::v1::Unsilence;
constexpr std::array<FieldSpec, 1> kUnsilenceFields = {{
    {Unsilence::kSilenceIdFieldNumber, "silence_id", kText},
}};
constexpr MessageSchema kUnsilence = schema<kUnsilenceFields>("medic.v1.Unsilence");

constexpr std::array<FieldSpec, 0> kStatusQueryFields = {};
constexpr MessageSchema kStatusQuery = schema<kStatusQueryFields>("medic.v1.StatusQuery");
constexpr MessageSchema kSilenceList = schema<kStatusQueryFields>("medic.v1.SilenceList");
constexpr MessageSchema kIncidentsQuery = schema<kStatusQueryFields>("medic.v1.IncidentsQuery");

using medic::v1::HostsQuery;
constexpr std::array<FieldSpec, 1> kHostsQueryFields = {{
    {HostsQuery::kVmsFieldNumber, "vms", kVarint},
}};
constexpr MessageSchema kHostsQuery = schema<kHostsQueryFields>("medic.v1.HostsQuery");

using medic::v1::VmQuery;
constexpr std::array<FieldSpec, 1> kVmQueryFields = {{
    {VmQuery::kVmFieldNumber, "vm", kText},
}};
constexpr MessageSchema kVmQuery = schema<kVmQueryFields>("medic.v1.VmQuery");

using medic::v1::VmAction;
constexpr std::array<FieldSpec, 3> kVmActionFields = {{
    {VmAction::kVmFieldNumber, "vm", kText},
    {VmAction::kVerbFieldNumber, "verb", kVarint},
    {VmAction::kReasonFieldNumber, "reason", kText},
}};
constexpr MessageSchema kVmAction = schema<kVmActionFields>("medic.v1.VmAction");

using medic::v1::ActionRequest;
constexpr std::array<FieldSpec, 8> kActionRequestFields = {{
    {ActionRequest::kVerbFieldNumber, "verb", kVarint},
    {ActionRequest::kVmFieldNumber, "vm", kText},
    {ActionRequest::kLabelFieldNumber, "label", kText},
    {ActionRequest::kReasonFieldNumber, "reason", kText},
    {ActionRequest::kFollowFieldNumber, "follow", kVarint},
    {ActionRequest::kTemplateNameFieldNumber, "template_name", kText},
    {ActionRequest::kHostFieldNumber, "host", kText},
    {ActionRequest::kVmNameFieldNumber, "vm_name", kText},
}};
constexpr MessageSchema kActionRequest = schema<kActionRequestFields>("medic.v1.ActionRequest");

using medic::v1::Unfreeze;
constexpr std::array<FieldSpec, 2> kUnfreezeFields = {{
    {Unfreeze::kHostFieldNumber, "host", kText},
    {Unfreeze::kReasonFieldNumber, "reason", kText},
}};
constexpr MessageSchema kUnfreeze = schema<kUnfreezeFields>("medic.v1.Unfreeze");

using medic::v1::Inject;
constexpr std::array<FieldSpec, 2> kInjectFields = {{
    {Inject::kVmFieldNumber, "vm", kText},
    {Inject::kFaultFieldNumber, "fault", kText},
}};
constexpr MessageSchema kInject = schema<kInjectFields>("medic.v1.Inject");

using medic::v1::ControlRequest;
constexpr std::array<FieldSpec, 14> kRequestFields = {{
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
    {ControlRequest::kVmFieldNumber, "vm", kLen, false, &kVmQuery, 1},
    {ControlRequest::kVmActionFieldNumber, "vm_action", kLen, false, &kVmAction, 1},
    {ControlRequest::kRequestFieldNumber, "request", kLen, false, &kActionRequest, 1},
}};
constexpr MessageSchema kRequest = schema<kRequestFields>("medic.v1.ControlRequest");

using medic::v1::ControlReply;
constexpr std::array<FieldSpec, 9> kReplyFields = {{
    {ControlReply::kRequestIdFieldNumber, "request_id", kText},
    {ControlReply::kOkFieldNumber, "ok", kVarint},
    {ControlReply::kErrorFieldNumber, "error", kText},
    {ControlReply::kTextFieldNumber, "text", kText},
    {ControlReply::kJsonFieldNumber, "json", kText},
    {ControlReply::kStageFieldNumber, "stage", kVarint},
    {ControlReply::kVmFieldNumber, "vm", kText},
    {ControlReply::kDecisionIdFieldNumber, "decision_id", kText},
    {ControlReply::kDoneFieldNumber, "done", kVarint},
}};
constexpr MessageSchema kReply = schema<kReplyFields>("medic.v1.ControlReply");

using medic::v1::Checkpoint;
constexpr std::array<FieldSpec, 3> kCheckpointFields = {{
    {Checkpoint::kRowIdFieldNumber, "row_id", kVarint},
    {Checkpoint::kRowHashFieldNumber, "row_hash", kLen},
    {Checkpoint::kAtNsFieldNumber, "at_ns", kVarint},
}};
constexpr MessageSchema kCheckpoint = schema<kCheckpointFields>("medic.v1.Checkpoint");

// ---- the walk
//
// One pass over the bytes, one loop per message. The hot path (a field the
// table declares, once, with its wire type, and ASCII text) is a few loads
// and compares per field; describing a refusal is left to the cold
// functions below it, which run only once the walk has failed.

// Valid UTF-8. Text is almost always ASCII: its bytes are or-ed together a
// word at a time (reading up to 7 bytes past it, which `limit`, the end of
// the whole buffer, allows) and only text with a byte of 0x80 or above is
// decoded code point by code point.
bool valid_utf8(std::string_view text, const uint8_t* limit) {
  const auto* p = reinterpret_cast<const uint8_t*>(text.data());
  const size_t n = text.size();
  uint64_t any = 0;
  size_t i = 0;
  for (uint64_t word; i + 8 <= n; i += 8) {
    std::memcpy(&word, p + i, 8);
    any |= word;
  }
  if (i < n && limit - (p + i) >= 8) {
    uint64_t word;
    std::memcpy(&word, p + i, 8);
    any |= word & ((uint64_t{1} << (8 * (n - i))) - 1);  // little-endian: the text's bytes are low
  } else {
    for (; i < n; ++i) any |= p[i];
  }
  if (!(any & 0x8080808080808080u)) return true;
  for (i = 0; i < n;) {
    uint32_t cp = 0;
    const size_t len = decode_utf8(text, i, &cp);
    if (len == 0) return false;
    i += len;
  }
  return true;
}

// A tag or a length: a varint of at most 5 bytes, which the parser reads as
// 32 bits (an overlong 6-byte zero is not a length to it).
inline bool read_varint32(const uint8_t*& p, const uint8_t* end, uint64_t* out) {
  if (p != end && *p < 0x80) {
    *out = *p++;
    return true;
  }
  uint64_t v = 0;
  for (int shift = 0; shift < 35; shift += 7) {
    if (p == end) return false;
    const uint8_t b = *p++;
    v |= static_cast<uint64_t>(b & 0x7f) << shift;
    if (!(b & 0x80)) {
      *out = v;
      return true;
    }
  }
  return false;
}

// Steps over a value varint: at most 10 bytes, and no bits beyond 64. With 8
// bytes left before `limit`, the end of a varint of up to 8 bytes is found in
// one word.
inline bool skip_varint(const uint8_t*& p, const uint8_t* end, const uint8_t* limit) {
  if (limit - p >= 8) {
    uint64_t word;
    std::memcpy(&word, p, 8);
    const uint64_t last = ~word & 0x8080808080808080u;  // bytes without a continuation bit
    if (last) {
      static_assert(std::endian::native == std::endian::little);  // p[0] is the lowest byte
      const size_t len = static_cast<size_t>(std::countr_zero(last)) / 8 + 1;
      if (len > static_cast<size_t>(end - p)) return false;  // cut short
      p += len;
      return true;
    }
  }
  for (int i = 0; i < 10 && p != end; ++i) {
    const uint8_t b = *p++;
    if (!(b & 0x80)) return i < 9 || b <= 1;
  }
  return false;
}

// Skips the value of a field of wire type `wire`; for kLen, *body is its bytes.
[[gnu::always_inline]] inline bool skip_value(uint8_t wire, const uint8_t*& p, const uint8_t* end,
                                              const uint8_t* limit, std::string_view* body) {
  uint64_t len = 0;
  switch (wire) {
    case kVarint:
      return skip_varint(p, end, limit);
    case kFixed64:
      if (end - p < 8) return false;
      p += 8;
      return true;
    case kFixed32:
      if (end - p < 4) return false;
      p += 4;
      return true;
    case kLen:
      if (!read_varint32(p, end, &len) || len > static_cast<uint64_t>(end - p)) return false;
      *body = std::string_view(reinterpret_cast<const char*>(p), static_cast<size_t>(len));
      p += len;
      return true;
    default:
      return false;
  }
}

[[gnu::cold]] SchemaError fail(SchemaCheck* fault, SchemaError e, std::string where) {
  fault->error = e;
  fault->where = std::move(where);
  return e;
}

[[gnu::cold]] SchemaError fail_field(SchemaCheck* fault, SchemaError e, const MessageSchema& s,
                                     uint64_t number, uint64_t wire, const FieldSpec* f,
                                     bool other_member) {
  const std::string quoted = f ? std::string("\"") + f->name + "\" in " + s.name : "";
  switch (e) {
    case SchemaError::kUnknownField:
      return fail(fault, e, "field " + std::to_string(number) + " (wire type " +
                                std::to_string(wire) + ") in " + s.name);
    case SchemaError::kWrongWireType:
      return fail(fault, e, "field " + std::to_string(number) + " (wire type " +
                                std::to_string(wire) + ") in " + s.name + " (\"" + f->name +
                                "\" is wire type " + std::to_string(f->wire & 7) + ")");
    case SchemaError::kRepeatedSingle:
      return fail(fault, e, quoted + (other_member ? " besides another member of its oneof"
                                                   : " given twice"));
    case SchemaError::kBadText:
      return fail(fault, e, quoted + " is not valid UTF-8");
    default:
      return fail(fault, e, quoted.empty() ? std::string("a bad field tag in ") + s.name
                                           : quoted + " is cut short");
  }
}

// Names the field whose nested message failed; for a repeated field, which
// occurrence, counted again over the (well-formed) bytes before it.
[[gnu::cold]] SchemaError nested_fault(SchemaCheck* fault, const FieldSpec& f, const uint8_t* p,
                                       const uint8_t* field_start, const uint8_t* limit) {
  uint32_t occurrence = 0;
  while (f.repeated && p < field_start) {
    uint64_t tag = 0;
    std::string_view body;
    if (!read_varint32(p, field_start, &tag) ||
        !skip_value(static_cast<uint8_t>(tag & 7), p, field_start, limit, &body)) {
      break;
    }
    if ((tag >> 3) == f.number) ++occurrence;
  }
  fault->where += std::string(" at ") + f.name +
                  (f.repeated ? "[" + std::to_string(occurrence) + "]" : "");
  return fault->error;
}

// The field of a tag the one-byte lookup did not find: a longer tag, or one
// that is malformed, undeclared or of another wire type (then -1 and *fault).
int field_of_tag(const MessageSchema& s, const uint8_t*& p, const uint8_t* end,
                 SchemaCheck* fault) {
  uint64_t tag = 0;
  if (!read_varint32(p, end, &tag) || tag > 0xffffffffu || (tag >> 3) == 0) {
    fail_field(fault, SchemaError::kMalformed, s, 0, 0, nullptr, false);
    return -1;
  }
  const uint64_t number = tag >> 3;
  const uint8_t wire = static_cast<uint8_t>(tag & 7);
  const int index = number <= kMaxNumber ? s.slot[number] : -1;
  if (index < 0) {
    fail_field(fault, SchemaError::kUnknownField, s, number, wire, nullptr, false);
  } else if (wire != (s.fields[index].wire & 7)) {
    fail_field(fault, SchemaError::kWrongWireType, s, number, wire, &s.fields[index], false);
    return -1;
  }
  return index;
}

// The value of a varint skip_varint has accepted (at most 10 bytes).
inline uint64_t varint_value(const uint8_t* p) {
  uint64_t v = 0;
  for (int shift = 0;; shift += 7, ++p) {
    v |= static_cast<uint64_t>(*p & 0x7f) << shift;
    if (!(*p & 0x80)) return v;
  }
}

// What the walk does with the fields it accepts: nothing (a check), or fill
// a message (BatchFill below). `value` gets a scalar's first byte or a text
// field's bytes; `nested` gives the Fill of a sub-message field.
struct NoFill {
  NoFill nested(const MessageSchema&, const FieldSpec&) const { return {}; }
  void value(const MessageSchema&, const FieldSpec&, const uint8_t*, std::string_view) const {}
};

// Walks one message; `limit` is the end of the whole buffer (see valid_utf8).
template <class Fill>
SchemaError walk(const MessageSchema& s, std::string_view bytes, const uint8_t* limit, int depth,
                 SchemaCheck* fault, Fill fill) {
  if (depth > kMaxDepth) {
    return fail(fault, SchemaError::kTooDeep,
                std::string("a ") + s.name + " nested " + std::to_string(depth) + " deep");
  }
  const auto* begin = reinterpret_cast<const uint8_t*>(bytes.data());
  const uint8_t* end = begin + bytes.size();
  uint32_t seen = 0;  // bit per singular field index
  for (const uint8_t* p = begin; p != end;) {
    const uint8_t* field_start = p;
    int index = *p < 0x80 ? s.by_tag[*p] : -1;
    if (index >= 0) {
      ++p;
    } else if ((index = field_of_tag(s, p, end, fault)) < 0) {
      return fault->error;
    }
    const FieldSpec& f = s.fields[index];
    const uint8_t wire = f.wire & 7;
    if (seen & s.once[index]) {
      return fail_field(fault, SchemaError::kRepeatedSingle, s, f.number, wire, &f,
                        !(seen & (1u << index)));
    }
    seen |= s.once[index] & (1u << index);
    const uint8_t* value = p;
    std::string_view body;
    if (!skip_value(wire, p, end, limit, &body)) {
      return fail_field(fault, SchemaError::kMalformed, s, f.number, wire, &f, false);
    }
    if (f.wire == kText && !valid_utf8(body, limit)) {
      return fail_field(fault, SchemaError::kBadText, s, f.number, wire, &f, false);
    }
    if (!f.nested) {
      fill.value(s, f, value, body);
    } else if (walk(*f.nested, body, limit, depth + 1, fault, fill.nested(s, f)) !=
               SchemaError::kOk) {
      return nested_fault(fault, f, begin, field_start, limit);
    }
  }
  return SchemaError::kOk;
}

// A text field's value into its message: assign reuses the capacity of a
// string kept from the last batch (set_x(data, size) would build a
// temporary std::string first).
void put(std::string* field, std::string_view text) { field->assign(text.data(), text.size()); }

// What the fill of one batch keeps between the calls of its walk: how many
// events it has filled, and the event being filled. Messages of the batch
// the target held before are reused in place (their strings keep their
// capacity), so a receiver that fills one EventBatch batch after batch
// allocates only when a batch is bigger than any before it.
struct Refill {
  medic::v1::EventBatch* batch;
  int events = 0;
  size_t messages = 0;  // sub-messages filled (made or reused): events, bodies, labels
  medic::v1::Event* open = nullptr;
  // The open event's body as the last batch left it, until a body field
  // comes: then it is reused if of the same member.
  medic::v1::Event::BodyCase kept = medic::v1::Event::BODY_NOT_SET;

  medic::v1::Event* next_event() {
    finish_event();
    using medic::v1::Event;
    Event* e = events < batch->events_size() ? batch->mutable_events(events) : batch->add_events();
    ++events;
    // Every field of Event but its body (which the body's field settles).
    e->clear_host();
    e->clear_vm();
    e->clear_observed_at_ns();
    kept = e->body_case();
    open = e;
    return e;
  }
  // An event without a body field has no body, whatever it held before.
  void finish_event() {
    if (open && kept != medic::v1::Event::BODY_NOT_SET) open->clear_body();
    open = nullptr;
  }
  // The events the last batch had beyond this one's go (kept for reuse).
  void finish_batch() {
    finish_event();
    while (batch->events_size() > events) batch->mutable_events()->RemoveLast();
  }
  // The body field `number` came: the member to fill, cleared if reused.
  template <class M>
  M* body(M* member, uint64_t number) {
    const bool reused = kept == static_cast<medic::v1::Event::BodyCase>(number);
    kept = medic::v1::Event::BODY_NOT_SET;
    if (reused) member->Clear();
    return member;
  }
};

// Fills the EventBatch messages (EventBatch, Event and its bodies, Label)
// as the walk accepts their fields, with the values the generated parser
// would give them: open enums and int64 from the varint's low bits, bool as
// nonzero, double from the fixed64 bits. `msg` is the message of the schema
// being walked.
struct BatchFill {
  void* msg;
  Refill* refill;

  BatchFill nested(const MessageSchema& s, const FieldSpec& f) const {
    using namespace medic::v1;
    ++refill->messages;
    if (&s == &kBatch) return {refill->next_event(), refill};
    if (&s == &kState) return {static_cast<VmStateReport*>(msg)->add_labels(), refill};
    if (&s == &kAlert) {
      auto* a = static_cast<Alert*>(msg);
      return {f.number == Alert::kLabelsFieldNumber ? a->add_labels() : a->add_annotations(),
              refill};
    }
    auto* e = static_cast<Event*>(msg);  // the only other message with sub-messages
    return {body_member(e, f.number), refill};
  }

  void* body_member(medic::v1::Event* e, uint64_t number) const {
    using medic::v1::Event;
    switch (number) {
      case Event::kStateFieldNumber:
        return refill->body(e->mutable_state(), number);
      case Event::kLifecycleFieldNumber:
        return refill->body(e->mutable_lifecycle(), number);
      case Event::kHeartbeatFieldNumber:
        return refill->body(e->mutable_heartbeat(), number);
      case Event::kGuestPingFieldNumber:
        return refill->body(e->mutable_guest_ping(), number);
      case Event::kAlertFieldNumber:
        return refill->body(e->mutable_alert(), number);
      default:
        return refill->body(e->mutable_probe(), number);
    }
  }

  void value(const MessageSchema& s, const FieldSpec& f, const uint8_t* v,
             std::string_view text) const {
    using namespace medic::v1;
    const uint64_t x = f.wire == kVarint ? varint_value(v) : 0;
    if (&s == &kEvent) {
      auto* e = static_cast<Event*>(msg);
      if (f.number == Event::kHostFieldNumber) put(e->mutable_host(), text);
      if (f.number == Event::kVmFieldNumber) put(e->mutable_vm(), text);
      if (f.number == Event::kObservedAtNsFieldNumber) e->set_observed_at_ns(int64_t(x));
    } else if (&s == &kState) {
      state(f, v, x);
    } else if (&s == &kLabel) {
      auto* l = static_cast<Label*>(msg);
      if (f.number == Label::kKeyFieldNumber) put(l->mutable_key(), text);
      if (f.number == Label::kValueFieldNumber) put(l->mutable_value(), text);
    } else if (&s == &kBatch) {
      static_cast<EventBatch*>(msg)->set_urgent(x != 0);
    } else {
      other_body(s, f, x, text);
    }
  }

  void state(const FieldSpec& f, const uint8_t* v, uint64_t x) const {
    using medic::v1::VmStateReport;
    auto* r = static_cast<VmStateReport*>(msg);
    switch (f.number) {
      case VmStateReport::kStateFieldNumber:
        r->set_state(static_cast<medic::v1::VmState>(static_cast<int32_t>(x)));
        break;
      case VmStateReport::kLastHeartbeatNsFieldNumber: r->set_last_heartbeat_ns(int64_t(x)); break;
      case VmStateReport::kCpuPercentFieldNumber: {
        double d;
        std::memcpy(&d, v, 8);
        r->set_cpu_percent(d);
        break;
      }
      case VmStateReport::kRssBytesFieldNumber: r->set_rss_bytes(x); break;
      default: r->set_uptime_ns(int64_t(x)); break;
    }
  }

  void alert(const FieldSpec& f, uint64_t x, std::string_view text) const {
    using medic::v1::Alert;
    auto* a = static_cast<Alert*>(msg);
    switch (f.number) {
      case Alert::kFiringFieldNumber:
        a->set_firing(x != 0);
        break;
      case Alert::kNameFieldNumber:
        put(a->mutable_name(), text);
        break;
      case Alert::kFingerprintFieldNumber:
        put(a->mutable_fingerprint(), text);
        break;
      case Alert::kStartsAtNsFieldNumber:
        a->set_starts_at_ns(int64_t(x));
        break;
      case Alert::kGeneratorUrlFieldNumber:
        put(a->mutable_generator_url(), text);
        break;
      default:
        put(a->mutable_receiver(), text);
        break;
    }
  }

  // LifecycleEvent, Heartbeat, GuestPing, Alert and ProbeResult: the rarer bodies.
  void other_body(const MessageSchema& s, const FieldSpec& f, uint64_t x,
                  std::string_view text) const {
    using namespace medic::v1;
    if (&s == &kLifecycle) {
      auto* l = static_cast<LifecycleEvent*>(msg);
      if (f.number == LifecycleEvent::kWhatFieldNumber) {
        l->set_what(static_cast<Lifecycle>(static_cast<int32_t>(x)));
      } else if (f.number == LifecycleEvent::kVmNameFieldNumber) {
        put(l->mutable_vm_name(), text);
      } else {
        put(l->mutable_detail(), text);
      }
    } else if (&s == &kHeartbeat) {
      auto* h = static_cast<Heartbeat*>(msg);
      if (f.number == Heartbeat::kCounterFieldNumber) h->set_counter(x);
      if (f.number == Heartbeat::kSourceFieldNumber) put(h->mutable_source(), text);
    } else if (&s == &kGuestPing) {
      static_cast<GuestPing*>(msg)->set_latency_ns(int64_t(x));
    } else if (&s == &kAlert) {
      alert(f, x, text);
    } else {
      auto* p = static_cast<ProbeResult*>(msg);
      switch (f.number) {
        case ProbeResult::kProbeFieldNumber:
          put(p->mutable_probe(), text);
          break;
        case ProbeResult::kOkFieldNumber: p->set_ok(x != 0); break;
        case ProbeResult::kStatusFieldNumber: p->set_status(static_cast<uint32_t>(x)); break;
        case ProbeResult::kLatencyNsFieldNumber: p->set_latency_ns(int64_t(x)); break;
        default:
          put(p->mutable_reason(), text);
          break;
      }
    }
  }
};

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
  const auto* limit = reinterpret_cast<const uint8_t*>(bytes.data()) + bytes.size();
  (void)walk(schema, bytes, limit, 0, &c, NoFill{});
  return c;
}

SchemaCheck check_and_fill(std::string_view bytes, medic::v1::EventBatch* out, size_t* messages) {
  SchemaCheck c;
  const auto* limit = reinterpret_cast<const uint8_t*>(bytes.data()) + bytes.size();
  Refill refill{out};
  out->clear_urgent();  // every field of EventBatch but its events (which Refill settles)
  (void)walk(kBatch, bytes, limit, 0, &c, BatchFill{out, &refill});
  refill.finish_batch();
  if (messages) *messages = refill.messages;
  return c;
}

}  // namespace medic::fabric
