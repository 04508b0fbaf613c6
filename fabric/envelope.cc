#include "fabric/envelope.h"

#include <algorithm>
#include <cstring>

#include "core/text.h"
#include "fabric/schema.h"

namespace medic::fabric {
namespace {

// A host name is a short line of UTF-8 text without control characters
// (C0, DEL, C1) or bidirectional overrides, so it can go into a log line or
// a terminal as it is.
bool valid_host_name(std::string_view host, std::string* why) {
  if (host.size() > 255) {
    *why = "host name is longer than 255 bytes";
    return false;
  }
  for (size_t i = 0; i < host.size();) {
    uint32_t cp = 0;
    size_t len = decode_utf8(host, i, &cp);
    if (len == 0) {
      *why = "host name is not valid UTF-8 (byte " + std::to_string(i) + ")";
      return false;
    }
    const bool control = cp < 0x20 || (cp >= 0x7f && cp <= 0x9f);
    const bool bidi = (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069);
    if (control || bidi) {
      *why = "host name has a control character (byte " + std::to_string(i) + ")";
      return false;
    }
    i += len;
  }
  return true;
}


void put_u32(std::string* out, uint32_t v) {
  char b[4];
  for (int i = 0; i < 4; ++i) b[i] = static_cast<char>(v >> (8 * i));
  out->append(b, 4);
}

void put_u64(std::string* out, uint64_t v) {
  char b[8];
  for (int i = 0; i < 8; ++i) b[i] = static_cast<char>(v >> (8 * i));
  out->append(b, 8);
}

}  // namespace

std::string_view kind_tag(Kind kind) {
  switch (kind) {
    case medic::v1::KIND_EVENT_BATCH:
      return "medic/v1/event_batch";
    case medic::v1::KIND_ACTION:
      return "medic/v1/action";
    case medic::v1::KIND_ACTION_ACK:
      return "medic/v1/action_ack";
    case medic::v1::KIND_ACTION_RESULT:
      return "medic/v1/action_result";
    case medic::v1::KIND_CONTROL_REQUEST:
      return "medic/v1/control_request";
    case medic::v1::KIND_CONTROL_REPLY:
      return "medic/v1/control_reply";
    case medic::v1::KIND_CHECKPOINT:
      return "medic/v1/checkpoint";
    default:
      return {};
  }
}

bool role_may_send(const TrustedNode& node, Kind kind) {
  switch (kind) {
    case medic::v1::KIND_EVENT_BATCH:
      return node.has_role(Role::kCollector);
    case medic::v1::KIND_ACTION:
      return node.has_role(Role::kEngine);
    case medic::v1::KIND_ACTION_ACK:
      return node.has_role(Role::kActuator) || node.has_role(Role::kEngine);
    case medic::v1::KIND_ACTION_RESULT:
      return node.has_role(Role::kActuator);
    case medic::v1::KIND_CONTROL_REQUEST:
      // A requester may send only action requests (node/engine_requests.cc).
      return node.has_role(Role::kOperator) || node.has_role(Role::kRequester);
    case medic::v1::KIND_CONTROL_REPLY:
      return node.has_role(Role::kEngine);
    case medic::v1::KIND_CHECKPOINT:
      return node.has_role(Role::kEngine);
    default:
      return false;
  }
}

void signing_input(const medic::v1::Envelope& env, std::string* out) {
  std::string_view tag = kind_tag(env.kind());
  out->append(tag);
  out->push_back('\0');
  put_u32(out, static_cast<uint32_t>(env.kind()));
  out->append(env.sender());
  put_u64(out, env.epoch());
  put_u64(out, env.seq());
  put_u32(out, env.stream());
  put_u64(out, static_cast<uint64_t>(env.sent_at_ns()));
  put_u32(out, static_cast<uint32_t>(env.host().size()));
  out->append(env.host());
  put_u64(out, env.payload().size());
  out->append(env.payload());
}

Sealer::Sealer(const Identity& identity, uint32_t stream, uint64_t epoch)
    : identity_(identity), stream_(stream), epoch_(epoch) {}

std::string Sealer::seal(Kind kind, const std::string& host, std::string_view payload, Time now) {
  medic::v1::Envelope env;
  env.set_kind(kind);
  env.set_sender(identity_.public_key().data(), identity_.public_key().size());
  if (epoch_ == 0) epoch_ = static_cast<uint64_t>(to_ns(now) / 1'000'000);
  env.set_epoch(epoch_);
  env.set_seq(++seq_);
  env.set_stream(stream_);
  env.set_sent_at_ns(to_ns(now));
  env.set_host(host);
  env.set_payload(payload.data(), payload.size());
  signing_buf_.clear();
  signing_input(env, &signing_buf_);
  auto sig =
      identity_.sign(reinterpret_cast<const uint8_t*>(signing_buf_.data()), signing_buf_.size());
  env.set_signature(sig.data(), sig.size());
  return env.SerializeAsString();
}

const char* open_error_name(OpenError e) {
  switch (e) {
    case OpenError::kOk:
      return "ok";
    case OpenError::kOversized:
      return "oversized";
    case OpenError::kMalformed:
      return "malformed";
    case OpenError::kUnknownKind:
      return "unknown_kind";
    case OpenError::kUnknownSender:
      return "unknown_sender";
    case OpenError::kRoleNotAllowed:
      return "role_not_allowed";
    case OpenError::kUnpinnedSender:
      return "unpinned_sender";
    case OpenError::kOutOfScope:
      return "out_of_scope";
    case OpenError::kBadSignature:
      return "bad_signature";
    case OpenError::kOutsideSchema:
      return "outside_schema";
    case OpenError::kStale:
      return "stale";
    case OpenError::kFromFuture:
      return "from_future";
    case OpenError::kReplayed:
      return "replayed";
    case OpenError::kCount:
      break;
  }
  return "unknown";
}

uint64_t OpenCounters::rejected() const {
  uint64_t n = 0;
  for (size_t i = 1; i < counts_.size(); ++i) n += counts_[i].load(std::memory_order_relaxed);
  return n;
}

Opener::Opener(const TrustStore& trust, const Clock& clock, OpenLimits limits)
    : trust_(trust), clock_(clock), limits_(limits) {
  crypto_ready();
}

void Opener::expect_kinds(std::initializer_list<Kind> kinds) {
  allowed_kinds_ = 0;
  for (Kind k : kinds) allowed_kinds_ |= 1u << static_cast<uint32_t>(k);
}

OpenError Opener::fail(OpenError e, std::string* detail, std::string why) {
  counters_.add(e);
  if (detail) *detail = std::move(why);
  return e;
}

OpenError Opener::open(std::string_view frame, Opened* out, std::string* detail) {
  medic::v1::Envelope& env = out->envelope;
  if (OpenError e = check_form(frame, &env, detail); e != OpenError::kOk) return e;
  PublicKey pk;
  std::memcpy(pk.data(), env.sender().data(), 32);
  const TrustedNode* node = nullptr;
  if (OpenError e = check_sender(env, pk, &node, detail); e != OpenError::kOk) return e;
  if (OpenError e = check_authentic(env, pk, *node, detail); e != OpenError::kOk) return e;
  OpenError e = check_fresh(env, *node, detail);
  if (e == OpenError::kOk) e = check_and_record_sequence(env, *node, detail);
  if (e != OpenError::kOk) {
    if (batches_) batches_->filled_from_ = nullptr;  // a refused frame's batch is not decoded
    return e;
  }
  out->sender = node;
  ++accepted_;
  return OpenError::kOk;
}

OpenError Opener::check_form(std::string_view frame, medic::v1::Envelope* out,
                             std::string* detail) {
  if (frame.size() > limits_.max_frame_bytes) {
    return fail(OpenError::kOversized, detail,
                "frame of " + std::to_string(frame.size()) + " bytes exceeds the limit of " +
                    std::to_string(limits_.max_frame_bytes));
  }
  medic::v1::Envelope& env = *out;
  // Parsing the envelope allocates at most the frame size, which is bounded.
  if (!env.ParseFromArray(frame.data(), static_cast<int>(frame.size()))) {
    return fail(OpenError::kMalformed, detail, "not a medic envelope");
  }
  // Fields outside the schema are not covered by the signature: refuse them,
  // so the bytes kept as evidence are exactly the bytes that were signed.
  if (SchemaCheck c = check_schema(envelope_schema(), frame); !c.ok()) {
    return fail(OpenError::kMalformed, detail,
                "envelope carries fields outside the schema: " + c.where);
  }
  // Checked before any message quotes the host name.
  if (std::string why; !valid_host_name(env.host(), &why)) {
    return fail(OpenError::kMalformed, detail, why);
  }
  if (env.sender().size() != 32 || env.signature().size() != 64) {
    return fail(OpenError::kMalformed, detail, "sender key or signature has the wrong length");
  }
  const uint32_t kind = static_cast<uint32_t>(env.kind());
  if (kind_tag(env.kind()).empty() || kind >= 32 || !(allowed_kinds_ & (1u << kind))) {
    return fail(OpenError::kUnknownKind, detail,
                "kind " + std::to_string(kind) + " is not accepted here");
  }
  return OpenError::kOk;
}

OpenError Opener::check_sender(const medic::v1::Envelope& env, const PublicKey& pk,
                               const TrustedNode** out, std::string* detail) {
  const TrustedNode* node = trust_.find(pk);
  if (!node) {
    return fail(OpenError::kUnknownSender, detail,
                "sender " + short_key_id(pk) + " is not in the trust store");
  }
  if (!role_may_send(*node, env.kind())) {
    return fail(OpenError::kRoleNotAllowed, detail,
                "\"" + node->name + "\" may not send " + std::string(kind_tag(env.kind())));
  }
  if (!senders_.empty() && std::find(senders_.begin(), senders_.end(), pk) == senders_.end()) {
    return fail(OpenError::kUnpinnedSender, detail,
                "\"" + node->name + "\" (key " + short_key_id(pk) +
                    ") is not one of the keys configured for this socket");
  }
  // A control request addresses the engine, not a host (host empty): a
  // requester's scope is checked for each VM it names instead.
  const bool to_engine = env.kind() == medic::v1::KIND_CONTROL_REQUEST && env.host().empty();
  if (!to_engine && !node->covers_host(env.host())) {
    return fail(OpenError::kOutOfScope, detail,
                "\"" + node->name + "\" may not speak for host \"" + env.host() + "\"");
  }
  if (!my_host_.empty() && env.host() != my_host_) {
    return fail(OpenError::kOutOfScope, detail,
                "addressed to host \"" + env.host() + "\", this is \"" + my_host_ + "\"");
  }
  *out = node;
  return OpenError::kOk;
}

OpenError Opener::check_authentic(const medic::v1::Envelope& env, const PublicKey& pk,
                                  const TrustedNode& node, std::string* detail) {
  signing_buf_.clear();
  signing_input(env, &signing_buf_);
  if (!verify_signature(pk, reinterpret_cast<const uint8_t*>(signing_buf_.data()),
                        signing_buf_.size(),
                        reinterpret_cast<const uint8_t*>(env.signature().data()))) {
    return fail(OpenError::kBadSignature, detail,
                "signature from \"" + node.name + "\" does not verify");
  }
  // Only now, for an authentic frame: the payload holds nothing the schema
  // of its kind does not declare, so the evidence kept is what is read.
  // An EventBatch is decoded by the same walk when a decoder is given.
  SchemaCheck c;
  if (batches_ && env.kind() == medic::v1::KIND_EVENT_BATCH) {
    c = batches_->fill(env.payload());
  } else {
    c = check_schema(*payload_schema(env.kind()), env.payload());
  }
  if (!c.ok()) {
    return fail(OpenError::kOutsideSchema, detail,
                std::string(kind_tag(env.kind())) + " from \"" + node.name + "\": " +
                    schema_error_name(c.error) + ": " + c.where);
  }
  return OpenError::kOk;
}

OpenError Opener::check_fresh(const medic::v1::Envelope& env, const TrustedNode& node,
                              std::string* detail) {
  const int64_t now = to_ns(clock_.now());
  const int64_t skew = limits_.max_skew.count();
  if (env.sent_at_ns() < now - skew) {
    return fail(OpenError::kStale, detail,
                "sent " + std::to_string((now - env.sent_at_ns()) / 1'000'000) + " ms ago by \"" +
                    node.name + "\", beyond the skew bound");
  }
  if (env.sent_at_ns() > now + skew) {
    return fail(OpenError::kFromFuture, detail,
                "sent " + std::to_string((env.sent_at_ns() - now) / 1'000'000) +
                    " ms in the future by \"" + node.name + "\", beyond the skew bound");
  }
  return OpenError::kOk;
}

OpenError Opener::check_and_record_sequence(const medic::v1::Envelope& env,
                                            const TrustedNode& node, std::string* detail) {
  std::string stream_key(env.sender());
  put_u32(&stream_key, env.stream());
  Last& last = last_[stream_key];
  if (env.epoch() < last.epoch || (env.epoch() == last.epoch && env.seq() <= last.seq)) {
    return fail(OpenError::kReplayed, detail,
                "(epoch " + std::to_string(env.epoch()) + ", seq " + std::to_string(env.seq()) +
                    ") from \"" + node.name + "\" is not newer than (" +
                    std::to_string(last.epoch) + ", " + std::to_string(last.seq) + ")");
  }
  last.epoch = env.epoch();
  last.seq = env.seq();
  if (!last.moved) {
    last.moved = true;
    moved_.push_back(std::move(stream_key));
  }
  return OpenError::kOk;
}

std::vector<Opener::ReplayMark> Opener::take_moved_marks() {
  std::vector<ReplayMark> out;
  out.reserve(moved_.size());
  for (const std::string& key : moved_) {
    Last& last = last_[key];
    last.moved = false;
    uint32_t stream = 0;
    for (int i = 0; i < 4; ++i) {  // put_u32: little-endian
      stream |= uint32_t{static_cast<uint8_t>(key[key.size() - 4 + i])} << (8 * i);
    }
    out.push_back({key.substr(0, key.size() - 4), stream, last.epoch, last.seq});
  }
  moved_.clear();
  return out;
}

void Opener::restore_marks(const std::vector<ReplayMark>& marks) {
  for (const ReplayMark& m : marks) {
    std::string key = m.sender;
    put_u32(&key, m.stream);
    Last& last = last_[key];
    if (m.epoch > last.epoch || (m.epoch == last.epoch && m.seq > last.seq)) {
      last.epoch = m.epoch;
      last.seq = m.seq;
    }
  }
}

namespace {

// Every event of a decoded batch is for the envelope's host.
Status check_hosts(const Opened& opened, const medic::v1::EventBatch& batch) {
  const auto& env = opened.envelope;
  for (const auto& e : batch.events()) {
    if (e.host() != env.host()) {
      return permission_denied("\"" + opened.sender->name + "\" reported VM \"" + e.vm() +
                               "\" of host \"" + e.host() + "\" in a batch for \"" + env.host() +
                               "\"");
    }
  }
  return {};
}

Status refuse_undecodable(const Opened& opened, const SchemaCheck& c) {
  return invalid_argument("event batch from \"" + opened.sender->name +
                          "\" does not decode: " + schema_error_name(c.error) + ": " + c.where);
}

}  // namespace

Status decode_event_batch(const Opened& opened, medic::v1::EventBatch* batch) {
  if (opened.envelope.kind() != medic::v1::KIND_EVENT_BATCH) {
    return invalid_argument("not an event batch");
  }
  batch->Clear();
  if (SchemaCheck c = check_and_fill(opened.envelope.payload(), batch); !c.ok()) {
    return refuse_undecodable(opened, c);
  }
  return check_hosts(opened, *batch);
}

BatchDecoder::BatchDecoder(size_t keep_bytes, int keep_events)
    : keep_bytes_(keep_bytes), keep_events_(keep_events) {}

BatchDecoder::~BatchDecoder() = default;

SchemaCheck BatchDecoder::fill(const std::string& payload) {
  started_anew_ = !batch_ || filled_bytes_ > keep_bytes_ || batch_->events_size() > keep_events_;
  if (started_anew_) {
    batch_ = std::make_unique<medic::v1::EventBatch>();
    filled_bytes_ = 0;
  }
  size_t messages = 0;
  SchemaCheck c = check_and_fill(payload, batch_.get(), &messages);
  filled_bytes_ += payload.size() + kBytesPerMessage * messages;
  filled_from_ = c.ok() ? payload.data() : nullptr;
  return c;
}

Result<const medic::v1::EventBatch*> BatchDecoder::decode(const Opened& opened) {
  const std::string& payload = opened.envelope.payload();
  if (opened.envelope.kind() != medic::v1::KIND_EVENT_BATCH) {
    return invalid_argument("not an event batch");
  }
  const bool filled = filled_from_ == payload.data();
  filled_from_ = nullptr;
  if (!filled) {
    if (SchemaCheck c = fill(payload); !c.ok()) return refuse_undecodable(opened, c);
    filled_from_ = nullptr;
  }
  if (Status s = check_hosts(opened, *batch_); !s.ok()) return s;
  return batch_.get();
}

}  // namespace medic::fabric
