// Sealing and opening signed envelopes: the only way bytes enter or leave a
// medic process. seal() signs; open() decides whether a frame is authentic,
// allowed and fresh before anything looks inside its payload.
//
// The Ed25519 signature covers this signing input, all integers little-endian:
//   "medic/v1/" <kind name> 0x00
//   u32 kind | 32 bytes sender | u64 epoch | u64 seq | u32 stream |
//   i64 sent_at_ns | u32 len(host) host | u64 len(payload) payload
// so no header field can be changed, and a signature for one kind can never
// pass as another. The payload is signed as the exact bytes carried.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/clock.h"
#include "fabric/identity.h"
#include "fabric/schema.h"
#include "fabric/trust.h"
#include "medic/v1/envelope.pb.h"
#include "medic/v1/events.pb.h"

namespace medic::fabric {

using Kind = medic::v1::Kind;

// The domain-separation tag for a kind, e.g. "medic/v1/event_batch"; empty
// for a kind outside the closed set.
std::string_view kind_tag(Kind kind);
// The role a sender must have to send this kind.
bool role_may_send(const TrustedNode& node, Kind kind);

// Seals messages as one identity. Not thread-safe: one Sealer per sending
// thread, each with its own stream number so receivers order them apart.
class Sealer {
 public:
  // `epoch` must grow across restarts of the sender. 0 (the default) means
  // "the milliseconds of the first seal's `now`": the time comes from the
  // caller's Clock, never from the wall clock here.
  Sealer(const Identity& identity, uint32_t stream = 0, uint64_t epoch = 0);

  // Returns the serialized envelope, ready to send as one frame. `now` is the
  // caller's Clock time; it is the envelope's sent_at (and the epoch, above).
  std::string seal(Kind kind, const std::string& host, std::string_view payload, Time now);

 private:
  const Identity& identity_;
  uint32_t stream_;
  uint64_t epoch_;
  uint64_t seq_ = 0;
  std::string signing_buf_;
};

// Why open() refused a frame. Each cause is counted separately.
enum class OpenError : uint8_t {
  kOk = 0,
  kOversized,       // frame larger than the limit; nothing was parsed
  kMalformed,       // not an envelope, or a header field out of range
  kUnknownKind,     // kind outside the closed set, or not one this socket expects
  kUnknownSender,   // key not in the trust store
  kRoleNotAllowed,  // sender lacks the role for this kind
  kUnpinnedSender,  // trusted, with the role, but not one of the keys this socket accepts
  kOutOfScope,      // host not covered by the sender's scope, or not ours
  kBadSignature,
  kOutsideSchema,  // authentic, but the payload holds fields its kind's schema does not
                   // declare, or is not well-formed (fabric/schema.h)
  kStale,       // sent longer ago than the skew bound
  kFromFuture,  // sent further ahead than the skew bound
  kReplayed,    // (epoch, seq) not newer than the last accepted from this sender
  kCount,
};
const char* open_error_name(OpenError e);

struct OpenLimits {
  size_t max_frame_bytes = 4 << 20;
  Duration max_skew = std::chrono::seconds(30);
};

// A verified envelope. `envelope.payload()` holds the signed payload bytes;
// parse it only through the typed helpers below or after this check.
struct Opened {
  medic::v1::Envelope envelope;
  const TrustedNode* sender = nullptr;  // points into the TrustStore
};

// Per-cause rejection counters; safe to read from another thread.
class OpenCounters {
 public:
  void add(OpenError e) { counts_[static_cast<size_t>(e)].fetch_add(1, std::memory_order_relaxed); }
  uint64_t get(OpenError e) const {
    return counts_[static_cast<size_t>(e)].load(std::memory_order_relaxed);
  }
  uint64_t rejected() const;

 private:
  std::array<std::atomic<uint64_t>, static_cast<size_t>(OpenError::kCount)> counts_{};
};

class BatchDecoder;

// Opens envelopes for one receiving process. Holds the replay state, so use
// one Opener per receiving thread. Walks the payload's wire format against
// its kind's schema (fabric/schema.h); never runs the protobuf parser on it,
// and fills a message from the walk only for an EventBatch when given a
// BatchDecoder (fill_batches); never updates replay state for a frame that
// is rejected.
class Opener {
 public:
  Opener(const TrustStore& trust, const Clock& clock, OpenLimits limits = {});

  // Accepts only kinds in `allowed` (bit per Kind value) and, when `my_host`
  // is not empty, only envelopes whose host is `my_host` (actuators).
  void expect_kinds(std::initializer_list<Kind> kinds);
  void expect_host(std::string host) { my_host_ = std::move(host); }
  // When `keys` is not empty, accepts only envelopes signed by one of them
  // (an actuator accepts its configured engine keys, not every engine-role
  // key of the trust store). Checked after the role, before the signature.
  void expect_senders(std::vector<PublicKey> keys) { senders_ = std::move(keys); }
  // The walk of an EventBatch's payload also fills `decoder`'s batch, which
  // its next decode() of the Opened then returns (one pass over the bytes).
  // `decoder` must outlive this Opener's use, or be unset with nullptr. Each
  // EventBatch opened ends the life of the batch the decoder last returned.
  void fill_batches(BatchDecoder* decoder) { batches_ = decoder; }

  // On success fills *out and returns kOk. On failure returns the cause and,
  // when `detail` is given, a sentence for the log.
  OpenError open(std::string_view frame, Opened* out, std::string* detail = nullptr);

  const OpenCounters& counters() const { return counters_; }
  uint64_t accepted() const { return accepted_; }

  // The replay guard's high-water mark of one (sender, stream), so that a
  // restarted receiver keeps refusing what it accepted before.
  struct ReplayMark {
    std::string sender;  // the sender's key bytes
    uint32_t stream = 0;
    uint64_t epoch = 0;
    uint64_t seq = 0;
    bool operator==(const ReplayMark&) const = default;
  };
  // The marks that moved since the last call (each once, newest value).
  std::vector<ReplayMark> take_moved_marks();
  // Takes stored marks; a mark only rises (an older one is ignored).
  void restore_marks(const std::vector<ReplayMark>& marks);

 private:
  struct Last {
    uint64_t epoch = 0;
    uint64_t seq = 0;
    bool moved = false;  // listed in moved_
  };
  OpenError fail(OpenError e, std::string* detail, std::string why);
  // The steps of open(), in order; each returns kOk or the refusal it counted.
  OpenError check_form(std::string_view frame, medic::v1::Envelope* out, std::string* detail);
  OpenError check_sender(const medic::v1::Envelope& env, const PublicKey& pk,
                         const TrustedNode** out, std::string* detail);
  OpenError check_authentic(const medic::v1::Envelope& env, const PublicKey& pk,
                            const TrustedNode& node, std::string* detail);
  OpenError check_fresh(const medic::v1::Envelope& env, const TrustedNode& node,
                        std::string* detail);
  // Refuses a (epoch, seq) not newer than the last on its stream, else records it.
  OpenError check_and_record_sequence(const medic::v1::Envelope& env, const TrustedNode& node,
                                      std::string* detail);

  const TrustStore& trust_;
  const Clock& clock_;
  OpenLimits limits_;
  uint32_t allowed_kinds_ = ~0u;
  std::string my_host_;
  std::vector<PublicKey> senders_;
  BatchDecoder* batches_ = nullptr;
  OpenCounters counters_;
  uint64_t accepted_ = 0;
  std::string signing_buf_;
  // Keyed by sender key bytes and stream.
  std::unordered_map<std::string, Last> last_;
  std::vector<std::string> moved_;  // keys of last_ moved since take_moved_marks()
};

// Appends the signing input for `env` (without signature) to *out.
void signing_input(const medic::v1::Envelope& env, std::string* out);

// Decodes an opened EventBatch and checks that every event is for the
// envelope's host, so a collector can only speak for its own VMs. Decodes
// with the strict walk (check_and_fill, fabric/schema.h), not the generated
// parser: the same message, and the walk's refusals.
Status decode_event_batch(const Opened& opened, medic::v1::EventBatch* batch);

// decode_event_batch for a receiver that decodes batch after batch into one
// EventBatch whose messages and strings are reused from batch to batch
// (check_and_fill), so a steady flood of state reports allocates nothing.
// Not thread-safe.
class BatchDecoder {
 public:
  // What it keeps for reuse is bounded: once what was filled since its
  // messages were made exceeds `keep_bytes`, or a batch had more than
  // `keep_events` events, the next decode() frees them and starts anew.
  // What was filled counts the payloads' bytes (a bound on what the reused
  // strings hold) and kBytesPerMessage for every sub-message filled (a
  // bound on the events, bodies and labels protobuf keeps for reuse: an
  // empty label is 2 bytes on the wire and about 56 on the heap).
  static constexpr size_t kBytesPerMessage = 64;
  explicit BatchDecoder(size_t keep_bytes = 32 << 20, int keep_events = 4096);
  // Whether the last decode() filled messages made anew (tests).
  bool started_anew() const { return started_anew_; }
  ~BatchDecoder();
  BatchDecoder(const BatchDecoder&) = delete;
  BatchDecoder& operator=(const BatchDecoder&) = delete;

  // The decoded batch, valid until the next decode() or the decoder's end;
  // the errors of decode_event_batch. When the Opener that opened `opened`
  // fills this decoder (Opener::fill_batches), returns the batch its walk
  // filled instead of walking the payload again.
  Result<const medic::v1::EventBatch*> decode(const Opened& opened);

 private:
  friend class Opener;
  // Walks `payload` into the batch (reused, or made anew); the walk's
  // verdict. On success the batch is kept for decode() of that payload.
  SchemaCheck fill(const std::string& payload);

  size_t keep_bytes_;
  int keep_events_;
  size_t filled_bytes_ = 0;  // what was filled into batch_'s messages since they were made
  bool started_anew_ = false;
  std::unique_ptr<medic::v1::EventBatch> batch_;
  const char* filled_from_ = nullptr;  // the payload bytes batch_ holds, until decode() takes it
};

}  // namespace medic::fabric
