// Reading a recording back (replay/recording.h): segment after segment,
// reporting damage instead of stopping at it.
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "replay/recording.h"

namespace medic::replay {
namespace {

uint32_t get_u32(const unsigned char* p) {
  return uint32_t{p[0]} | uint32_t{p[1]} << 8 | uint32_t{p[2]} << 16 | uint32_t{p[3]} << 24;
}
uint64_t get_u64(const unsigned char* p) {
  return uint64_t{get_u32(p)} | uint64_t{get_u32(p + 4)} << 32;
}

}  // namespace

const char* read_problem_name(ReadProblem::Kind k) {
  switch (k) {
    case ReadProblem::Kind::kTornTail:
      return "torn tail";
    case ReadProblem::Kind::kCorrupt:
      return "corrupt record";
    case ReadProblem::Kind::kBadHeader:
      return "not a recording segment";
    case ReadProblem::Kind::kUnreadable:
      return "unreadable";
  }
  return "?";
}

std::string ReadProblem::text() const {
  return file + "@" + std::to_string(offset) + ": " + read_problem_name(kind) + ": " + what;
}

Result<std::unique_ptr<RecordingReader>> RecordingReader::open(const std::string& path) {
  std::error_code ec;
  std::vector<std::string> segments;
  if (std::filesystem::is_directory(path, ec)) {
    for (const auto& e : std::filesystem::directory_iterator(path, ec)) {
      if (e.path().extension() == ".mrec") segments.push_back(e.path().string());
    }
    if (ec) return io_error("recording " + path + ": " + ec.message());
    std::sort(segments.begin(), segments.end());
  } else if (std::filesystem::is_regular_file(path, ec)) {
    segments.push_back(path);
  } else {
    return not_found("recording " + path + ": no such directory or segment file");
  }
  return std::unique_ptr<RecordingReader>(new RecordingReader(std::move(segments)));
}

RecordingReader::RecordingReader(std::vector<std::string> segments)
    : segments_(std::move(segments)) {}

RecordingReader::~RecordingReader() { end_segment(); }

void RecordingReader::problem(ReadProblem::Kind kind, uint64_t offset, std::string what) {
  problems_.push_back({kind, file_name_, offset, std::move(what)});
}

void RecordingReader::end_segment() {
  if (file_) std::fclose(file_);
  file_ = nullptr;
}

bool RecordingReader::open_next_segment() {
  while (next_segment_ < segments_.size()) {
    file_name_ = segments_[next_segment_++];
    file_ = std::fopen(file_name_.c_str(), "rb");
    if (!file_) {
      problem(ReadProblem::Kind::kUnreadable, 0, std::strerror(errno));
      continue;
    }
    struct stat st {};
    file_size_ = ::fstat(::fileno(file_), &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
    const std::string want = segment_header();
    std::string got(want.size(), '\0');
    if (std::fread(got.data(), 1, got.size(), file_) != got.size()) {
      // A segment cut inside its header: a recorder killed as it opened it.
      if (file_size_ < want.size() && want.compare(0, file_size_, got, 0, file_size_) == 0) {
        problem(ReadProblem::Kind::kTornTail, 0,
                "the segment ends inside its header (" + std::to_string(file_size_) + " bytes)");
      } else {
        problem(ReadProblem::Kind::kBadHeader, 0, "shorter than a segment header");
      }
      end_segment();
      continue;
    }
    if (got != want) {
      problem(ReadProblem::Kind::kBadHeader, 0,
              "the header is not \"MEDICREC\" version 1; the file is skipped");
      end_segment();
      continue;
    }
    offset_ = want.size();
    return true;
  }
  return false;
}

bool RecordingReader::read_record(RecordedFrame* out) {
  unsigned char h[kRecordHeaderBytes];
  const size_t got = std::fread(h, 1, sizeof h, file_);
  if (got == 0 && offset_ == file_size_) return false;  // a clean end
  const uint64_t left = file_size_ - offset_;
  if (got < sizeof h) {
    problem(ReadProblem::Kind::kTornTail, offset_,
            "the segment ends inside a record header (" + std::to_string(left) +
                " bytes after the last whole record); every record before it was read");
    return false;
  }
  const uint32_t len = get_u32(h);
  if (len > kMaxRecordFrameBytes) {
    problem(ReadProblem::Kind::kCorrupt, offset_,
            "a record claims " + std::to_string(len) + " bytes (at most " +
                std::to_string(kMaxRecordFrameBytes) + "); the rest of the segment is skipped");
    return false;
  }
  if (uint64_t{len} + sizeof h > left) {
    problem(ReadProblem::Kind::kTornTail, offset_,
            "the segment ends inside a record (" + std::to_string(left) + " of its " +
                std::to_string(len + sizeof h) +
                " bytes are there); every record before it was read");
    return false;
  }
  out->frame.resize(len);
  if (len > 0 && std::fread(out->frame.data(), 1, len, file_) != len) {
    problem(ReadProblem::Kind::kUnreadable, offset_, std::strerror(errno));
    return false;
  }
  const std::string_view head(reinterpret_cast<const char*>(h), sizeof h);
  uint32_t crc = crc32(out->frame, crc32(head.substr(8), crc32(head.substr(0, 4))));
  if (crc != get_u32(h + 4)) {
    problem(ReadProblem::Kind::kCorrupt, offset_,
            "checksum mismatch in a record of " + std::to_string(len) +
                " bytes; the rest of the segment is skipped");
    return false;
  }
  out->received_at = from_ns(static_cast<int64_t>(get_u64(h + 8)));
  out->urgent = (h[16] & 1) != 0;
  last_offset_ = offset_;
  last_file_ = file_name_;
  offset_ += sizeof h + len;
  return true;
}

bool RecordingReader::next(RecordedFrame* out) {
  for (;;) {
    if (!file_ && !open_next_segment()) return false;
    if (read_record(out)) {
      ++records_;
      return true;
    }
    end_segment();
  }
}

std::string RecordingReader::where() const {
  return last_file_ + "@" + std::to_string(last_offset_);
}

}  // namespace medic::replay
