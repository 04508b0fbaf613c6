// A recording: the signed event envelopes an engine receives, each with the
// time it arrived and its lane, kept by `medic record` for `medic rules
// replay` (replay/replay.h). The envelopes are the exact bytes that arrived,
// so a replay verifies every collector signature again: a recording is
// evidence, and a byte changed in it is refused on replay.
//
// On disk: a directory of segment files, `rec-<start ns, 20 digits>.mrec`,
// oldest first by name. A segment is a 16-byte header ("MEDICREC", u32
// version = 1, u32 zero) and then records, integers little-endian:
//   u32 frame length | u32 CRC-32 (IEEE) of everything after it |
//   i64 received_at ns | u8 flags (bit 0: urgent lane) | frame bytes
// The checksum tells a damaged or half-written record from a whole one; it is
// not a security mechanism (the envelope signature is).
//
// Bounds (RecordingWriter): a segment is closed once it spans keep/segments
// of time or holds max_bytes/segments bytes, and a new one is opened; closed
// segments are removed once a later segment started more than `keep` ago, and
// the oldest go first whenever the closed ones hold more than
// max_bytes - max_bytes/segments. So the directory holds at least the last
// `keep` (while max_bytes allows it) and at most max_bytes plus one frame.
//
// Crash safety: records are written whole with write(2) after each loop turn
// (flush()), and a segment is fdatasync'ed when it is closed. A recorder
// killed mid-write (kill -9) leaves at most one torn record at the end of its
// last segment; the reader reports it (file, offset, bytes) and reads every
// record before it. A restarted recorder always starts a new segment, so it
// never appends after a torn tail.
#pragma once

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.h"
#include "core/status.h"

namespace medic::replay {

// One envelope as it arrived.
struct RecordedFrame {
  Time received_at{};
  bool urgent = false;
  std::string frame;  // the serialized medic.v1.Envelope, exactly as received
};

struct RecordingOptions {
  Duration keep = std::chrono::hours(6);
  uint64_t max_bytes = uint64_t{8} << 30;
  uint32_t segments = 12;  // how finely the bound is kept: a segment is keep/segments long
};

// Validates options (keep > 0, segments >= 2, max_bytes >= segments * 64 KiB).
Status check_options(const RecordingOptions& o);

inline constexpr size_t kSegmentHeaderBytes = 16;
inline constexpr size_t kRecordHeaderBytes = 17;
// A record longer than this is damage, not a frame (frames are at most 4 MiB).
inline constexpr uint32_t kMaxRecordFrameBytes = 16u << 20;

// The record bytes of `f` (header and frame), appended to *out.
void encode_record(const RecordedFrame& f, std::string* out);
// The 16-byte segment header.
std::string segment_header();
// CRC-32 (IEEE 802.3, reflected, as zlib's crc32) of `data`, continuing `crc`.
uint32_t crc32(std::string_view data, uint32_t crc = 0);

struct WriterStats {
  uint64_t frames = 0;
  uint64_t bytes = 0;  // record bytes written
  uint64_t segments_opened = 0;
  uint64_t segments_removed = 0;  // by age or by bytes
  uint64_t write_errors = 0;      // failed writes; their frames are lost (frames_lost)
  uint64_t frames_lost = 0;
};

// Writes a recording directory. Not thread-safe; one writer per directory.
class RecordingWriter {
 public:
  // Creates `dir` if needed (then with mode 0750; an existing directory
  // keeps its mode), removes what the bounds already
  // exclude, and opens a new segment starting at `now`.
  static Result<std::unique_ptr<RecordingWriter>> open(const std::string& dir,
                                                       RecordingOptions options, Time now);
  ~RecordingWriter();
  RecordingWriter(const RecordingWriter&) = delete;
  RecordingWriter& operator=(const RecordingWriter&) = delete;

  // Buffers one record; rotates first when the segment is due (by the
  // frame's time or size). Never blocks on the network; writes only when the
  // buffer is large (flush() writes the rest).
  Status append(const RecordedFrame& f);
  // Writes what is buffered. On a failed write (disk full) the segment is
  // cut back to its last whole record, the buffered frames are counted lost,
  // and the segment is closed; the next append opens a new one.
  Status flush();
  // Rotates and prunes by age when due at `now` though no frame came.
  Status tick(Time now);
  // Flushes and closes the segment (fdatasync). Idempotent.
  Status close();

  const WriterStats& stats() const { return stats_; }
  const std::string& dir() const { return dir_; }
  // The segment being written ("" when none is open).
  const std::string& current_segment() const { return current_path_; }

 private:
  RecordingWriter(std::string dir, RecordingOptions options);
  Status open_segment(Time start);
  Status close_segment();
  Status rotate_if_due(Time now, size_t next_record_bytes);
  Status prune(Time now);
  Status write_buffer();

  std::string dir_;
  RecordingOptions options_;
  Duration segment_span_;
  uint64_t segment_bytes_limit_;
  int fd_ = -1;
  std::string current_path_;
  Time current_start_{};
  uint64_t current_bytes_ = 0;
  std::string buffer_;
  uint64_t buffered_frames_ = 0;
  WriterStats stats_;
};

// What the reader found wrong in a segment.
struct ReadProblem {
  enum class Kind : uint8_t {
    kTornTail,    // the segment ends inside a record: a writer stopped mid-write
    kCorrupt,     // a checksum mismatch or an impossible length: the rest of the segment is skipped
    kBadHeader,   // not a segment of this format: the whole file is skipped
    kUnreadable,  // cannot be opened or read
  };
  Kind kind = Kind::kCorrupt;
  std::string file;
  uint64_t offset = 0;  // of the record (or header) in question
  std::string what;     // a sentence

  std::string text() const;  // "FILE@OFFSET: torn tail: ..."
};
const char* read_problem_name(ReadProblem::Kind k);

// Reads a recording: a directory of segments (in name order) or one segment
// file. Damage is reported in problems(), never fatal: every whole record
// before it is returned.
class RecordingReader {
 public:
  // Fails only when `path` is neither a readable directory nor a file.
  static Result<std::unique_ptr<RecordingReader>> open(const std::string& path);
  ~RecordingReader();
  RecordingReader(const RecordingReader&) = delete;
  RecordingReader& operator=(const RecordingReader&) = delete;

  // The next record, in file order; false at the end of the last segment.
  bool next(RecordedFrame* out);
  // "FILE@OFFSET" of the record next() last returned.
  std::string where() const;

  const std::vector<std::string>& segments() const { return segments_; }
  const std::vector<ReadProblem>& problems() const { return problems_; }
  uint64_t records() const { return records_; }

 private:
  explicit RecordingReader(std::vector<std::string> segments);
  bool open_next_segment();
  void end_segment();
  // Reads one record of the open segment into *out; false at its end or damage.
  bool read_record(RecordedFrame* out);
  void problem(ReadProblem::Kind kind, uint64_t offset, std::string what);

  std::vector<std::string> segments_;
  size_t next_segment_ = 0;
  std::FILE* file_ = nullptr;
  std::string file_name_;
  uint64_t file_size_ = 0;
  uint64_t offset_ = 0;       // of the next record in the open segment
  uint64_t last_offset_ = 0;  // of the record last returned
  std::string last_file_;
  std::vector<ReadProblem> problems_;
  uint64_t records_ = 0;
};

}  // namespace medic::replay
