// The recording format's encoding and its writer (replay/recording.h).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "replay/recording.h"

namespace medic::replay {
namespace {

constexpr char kMagic[8] = {'M', 'E', 'D', 'I', 'C', 'R', 'E', 'C'};
constexpr uint32_t kVersion = 1;
constexpr size_t kWriteAt = 1 << 20;  // buffered bytes that trigger a write in append()

// Slicing-by-8 tables: t[0] is the classic byte table, t[k][i] the CRC of
// byte i followed by k zero bytes, so eight bytes are folded per step.
using CrcTables = std::array<std::array<uint32_t, 256>, 8>;
constexpr CrcTables crc_tables() {
  CrcTables t{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    t[0][i] = c;
  }
  for (uint32_t i = 0; i < 256; ++i) {
    for (size_t k = 1; k < 8; ++k) t[k][i] = (t[k - 1][i] >> 8) ^ t[0][t[k - 1][i] & 0xff];
  }
  return t;
}
constexpr CrcTables kCrc = crc_tables();

void put_u32(std::string* out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
void put_u64(std::string* out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

std::string errno_text() { return std::strerror(errno); }

// "rec-<20 digits>.mrec": names sort as their start times do.
std::string segment_name(Time start) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "rec-%020lld.mrec", static_cast<long long>(to_ns(start)));
  return buf;
}

struct Segment {
  std::string path;
  Time start{};
  uint64_t bytes = 0;
};

// The segments of `dir` other than `skip`, oldest first.
std::vector<Segment> list_segments(const std::string& dir, const std::string& skip) {
  std::vector<Segment> out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (name.size() != 29 || name.rfind("rec-", 0) != 0 || e.path().extension() != ".mrec") {
      continue;
    }
    if (e.path().string() == skip) continue;
    Segment s{e.path().string(), from_ns(std::strtoll(name.c_str() + 4, nullptr, 10)), 0};
    s.bytes = e.file_size(ec);
    out.push_back(std::move(s));
  }
  std::sort(out.begin(), out.end(),
            [](const Segment& a, const Segment& b) { return a.path < b.path; });
  return out;
}

}  // namespace

uint32_t crc32(std::string_view data, uint32_t crc) {
  crc = ~crc;
  const auto* p = reinterpret_cast<const unsigned char*>(data.data());
  size_t n = data.size();
  for (; n >= 8; p += 8, n -= 8) {
    const uint32_t lo =
        crc ^ (uint32_t{p[0]} | uint32_t{p[1]} << 8 | uint32_t{p[2]} << 16 | uint32_t{p[3]} << 24);
    crc = kCrc[7][lo & 0xff] ^ kCrc[6][(lo >> 8) & 0xff] ^ kCrc[5][(lo >> 16) & 0xff] ^
          kCrc[4][lo >> 24] ^ kCrc[3][p[4]] ^ kCrc[2][p[5]] ^ kCrc[1][p[6]] ^ kCrc[0][p[7]];
  }
  for (; n > 0; ++p, --n) crc = kCrc[0][(crc ^ *p) & 0xff] ^ (crc >> 8);
  return ~crc;
}

std::string segment_header() {
  std::string h(kMagic, sizeof kMagic);
  put_u32(&h, kVersion);
  put_u32(&h, 0);
  return h;
}

void encode_record(const RecordedFrame& f, std::string* out) {
  std::string body;
  body.reserve(9 + f.frame.size());
  put_u64(&body, static_cast<uint64_t>(to_ns(f.received_at)));
  body.push_back(f.urgent ? 1 : 0);
  std::string len;
  put_u32(&len, static_cast<uint32_t>(f.frame.size()));
  uint32_t crc = crc32(f.frame, crc32(body, crc32(len)));
  out->append(len);
  put_u32(out, crc);
  out->append(body);
  out->append(f.frame);
}

Status check_options(const RecordingOptions& o) {
  if (o.keep <= Duration::zero())
    return invalid_argument("the time to keep must be longer than 0s");
  if (o.segments < 2) return invalid_argument("a recording needs at least 2 segments");
  if (o.max_bytes < uint64_t{o.segments} * (64 << 10)) {
    return invalid_argument("max bytes must be at least 64 KiB per segment (" +
                            std::to_string(uint64_t{o.segments} * (64 << 10)) + " bytes)");
  }
  return {};
}

RecordingWriter::RecordingWriter(std::string dir, RecordingOptions options)
    : dir_(std::move(dir)),
      options_(options),
      segment_span_(options.keep / options.segments),
      segment_bytes_limit_(options.max_bytes / options.segments) {}

RecordingWriter::~RecordingWriter() { (void)close(); }

Result<std::unique_ptr<RecordingWriter>> RecordingWriter::open(const std::string& dir,
                                                               RecordingOptions options, Time now) {
  MEDIC_RETURN_IF_ERROR(check_options(options));
  std::error_code ec;
  const bool created = std::filesystem::create_directories(dir, ec);
  if (ec) return io_error("recording directory " + dir + ": " + ec.message());
  if (created) ::chmod(dir.c_str(), 0750);
  std::unique_ptr<RecordingWriter> w(new RecordingWriter(dir, options));
  MEDIC_RETURN_IF_ERROR(w->open_segment(now));
  MEDIC_RETURN_IF_ERROR(w->prune(now));
  return w;
}

Status RecordingWriter::open_segment(Time start) {
  std::string path = (std::filesystem::path(dir_) / segment_name(start)).string();
  // Two starts in one nanosecond (tests) get the next free name.
  while (std::filesystem::exists(path)) {
    start += Duration(1);
    path = (std::filesystem::path(dir_) / segment_name(start)).string();
  }
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0640);
  if (fd < 0) return io_error("recording segment " + path + ": " + errno_text());
  fd_ = fd;
  current_path_ = path;
  current_start_ = start;
  current_bytes_ = 0;
  ++stats_.segments_opened;
  buffer_ = segment_header();
  return write_buffer();
}

Status RecordingWriter::write_buffer() {
  size_t done = 0;
  while (done < buffer_.size()) {
    ssize_t n = ::write(fd_, buffer_.data() + done, buffer_.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      Status s = io_error("recording segment " + current_path_ + ": write: " + errno_text());
      // Cut what part of the buffer did land, so the segment ends on a whole
      // record and the lost frames are exactly the buffered ones.
      if (::ftruncate(fd_, static_cast<off_t>(current_bytes_)) != 0) {
        s = io_error(s.message() + "; truncating it back: " + errno_text());
      }
      ++stats_.write_errors;
      stats_.frames_lost += buffered_frames_;
      buffer_.clear();
      buffered_frames_ = 0;
      (void)close_segment();
      return s;
    }
    done += static_cast<size_t>(n);
  }
  current_bytes_ += buffer_.size();
  buffer_.clear();
  buffered_frames_ = 0;
  return {};
}

Status RecordingWriter::close_segment() {
  if (fd_ < 0) return {};
  Status s;
  if (::fdatasync(fd_) != 0)
    s = io_error("recording segment " + current_path_ + ": fdatasync: " + errno_text());
  ::close(fd_);
  fd_ = -1;
  current_path_.clear();
  return s;
}

Status RecordingWriter::rotate_if_due(Time now, size_t next_record_bytes) {
  if (fd_ >= 0) {
    const bool by_time = now - current_start_ >= segment_span_;
    const bool by_size =
        current_bytes_ + buffer_.size() + next_record_bytes > segment_bytes_limit_ &&
        current_bytes_ + buffer_.size() > kSegmentHeaderBytes;
    if (!by_time && !by_size) return {};
    MEDIC_RETURN_IF_ERROR(flush());
    MEDIC_RETURN_IF_ERROR(close_segment());
  }
  MEDIC_RETURN_IF_ERROR(open_segment(now));
  return prune(now);
}

// Closed segments go when the segment after them started more than `keep`
// ago (none of their frames is that recent), then the oldest while the
// closed ones hold more than the bytes bound leaves for them.
Status RecordingWriter::prune(Time now) {
  std::vector<Segment> closed = list_segments(dir_, current_path_);
  uint64_t total = 0;
  for (const auto& s : closed) total += s.bytes;
  const uint64_t room = options_.max_bytes - segment_bytes_limit_;
  for (size_t i = 0; i < closed.size(); ++i) {
    const Time next_start = i + 1 < closed.size() ? closed[i + 1].start : current_start_;
    const bool old = now - next_start > options_.keep;
    if (!old && total <= room) break;
    std::error_code ec;
    std::filesystem::remove(closed[i].path, ec);
    if (ec) return io_error("recording segment " + closed[i].path + ": remove: " + ec.message());
    total -= closed[i].bytes;
    ++stats_.segments_removed;
  }
  return {};
}

Status RecordingWriter::append(const RecordedFrame& f) {
  const size_t bytes = kRecordHeaderBytes + f.frame.size();
  MEDIC_RETURN_IF_ERROR(rotate_if_due(f.received_at, bytes));
  encode_record(f, &buffer_);
  ++buffered_frames_;
  ++stats_.frames;
  stats_.bytes += bytes;
  if (buffer_.size() >= kWriteAt) return write_buffer();
  return {};
}

Status RecordingWriter::flush() {
  if (buffer_.empty()) return {};
  if (fd_ < 0) {
    stats_.frames_lost += buffered_frames_;
    buffer_.clear();
    buffered_frames_ = 0;
    return unavailable("no recording segment is open");
  }
  return write_buffer();
}

Status RecordingWriter::tick(Time now) { return rotate_if_due(now, 0); }

Status RecordingWriter::close() {
  Status s = flush();
  Status c = close_segment();
  return s.ok() ? c : s;
}

}  // namespace medic::replay
