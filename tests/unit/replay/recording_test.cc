// The recording format (replay/recording.h): frames come back as written,
// the bounds hold by age and by bytes, and damage (a torn tail after kill -9,
// a corrupt record, a foreign file) is reported while the rest is read.
#include "replay/recording.h"

#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>

#include "tests/testing/testing.h"

namespace medic::replay {
namespace {

using namespace std::chrono_literals;

const Time kStart = from_ns(1'800'000'000'000'000'000);

RecordedFrame frame_at(Duration at, size_t bytes = 100, bool urgent = false) {
  RecordedFrame f;
  f.received_at = kStart + at;
  f.urgent = urgent;
  f.frame = std::string(bytes, static_cast<char>('a' + (at.count() / 1'000'000'000) % 26));
  return f;
}

std::vector<RecordedFrame> read_all(const std::string& path, std::vector<ReadProblem>* problems) {
  auto reader = RecordingReader::open(path);
  EXPECT_OK(reader);
  std::vector<RecordedFrame> out;
  if (!reader.ok()) return out;
  RecordedFrame f;
  while ((*reader)->next(&f)) out.push_back(f);
  *problems = (*reader)->problems();
  return out;
}

uint64_t dir_bytes(const std::string& dir) {
  uint64_t n = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) n += e.file_size();
  return n;
}

size_t segment_count(const std::string& dir) {
  size_t n = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir))
    n += e.path().extension() == ".mrec";
  return n;
}

TEST(RecordingFormat, TheChecksumIsTheStandardCrc32) {
  EXPECT_EQ(crc32("123456789"), 0xCBF43926u);
  EXPECT_EQ(crc32(""), 0u);
}

TEST(RecordingFormat, FramesReadBackInOrderWithTheirArrivalTimeAndLane) {
  testing::TempDir dir;
  {
    auto w = RecordingWriter::open(dir.path(), {}, kStart);
    ASSERT_OK(w);
    for (int i = 0; i < 50; ++i) ASSERT_OK((*w)->append(frame_at(i * 1s, 10 + i, i % 7 == 0)));
    ASSERT_OK((*w)->close());
    EXPECT_EQ((*w)->stats().frames, 50u);
  }
  std::vector<ReadProblem> problems;
  auto frames = read_all(dir.path(), &problems);
  EXPECT_TRUE(problems.empty()) << problems[0].text();
  ASSERT_EQ(frames.size(), 50u);
  for (int i = 0; i < 50; ++i) {
    const RecordedFrame want = frame_at(i * 1s, 10 + i, i % 7 == 0);
    EXPECT_EQ(frames[i].received_at, want.received_at) << i;
    EXPECT_EQ(frames[i].urgent, want.urgent) << i;
    EXPECT_EQ(frames[i].frame, want.frame) << i;
  }
}

TEST(RecordingFormat, ItKeepsTheLastKeepOfTimeAndDropsWhatIsOlder) {
  testing::TempDir dir;
  RecordingOptions o;
  o.keep = 1h;
  o.segments = 4;  // a segment spans 15 minutes
  auto w = RecordingWriter::open(dir.path(), o, kStart);
  ASSERT_OK(w);
  const Duration end = 5h;
  for (Duration t = 0s; t <= end; t += 30s) ASSERT_OK((*w)->append(frame_at(t)));
  ASSERT_OK((*w)->close());
  std::vector<ReadProblem> problems;
  auto frames = read_all(dir.path(), &problems);
  ASSERT_FALSE(frames.empty());
  EXPECT_TRUE(problems.empty());
  // At least the last hour is there, and nothing older than an hour and a segment.
  EXPECT_LE(frames.front().received_at, kStart + end - o.keep);
  EXPECT_GE(frames.front().received_at, kStart + end - o.keep - o.keep / o.segments);
  EXPECT_EQ(frames.back().received_at, kStart + end);
  EXPECT_LE(segment_count(dir.path()), o.segments + 2);
  EXPECT_GT((*w)->stats().segments_removed, 10u);
}

TEST(RecordingFormat, ItNeverHoldsMoreThanMaxBytesHoweverFastFramesCome) {
  testing::TempDir dir;
  RecordingOptions o;
  o.keep = 24h;
  o.segments = 4;
  o.max_bytes = 4 * (64 << 10);
  auto w = RecordingWriter::open(dir.path(), o, kStart);
  ASSERT_OK(w);
  // 4 MB in ten seconds: the bytes bound, not the age, decides.
  for (int i = 0; i < 4000; ++i) {
    ASSERT_OK((*w)->append(frame_at(i * 2500us, 1000)));
    if (i % 100 == 0) {
      ASSERT_OK((*w)->flush());
      EXPECT_LE(dir_bytes(dir.path()), o.max_bytes) << "after frame " << i;
    }
  }
  ASSERT_OK((*w)->close());
  EXPECT_LE(dir_bytes(dir.path()), o.max_bytes);
  std::vector<ReadProblem> problems;
  auto frames = read_all(dir.path(), &problems);
  ASSERT_FALSE(frames.empty());
  EXPECT_EQ(frames.back().received_at, kStart + 3999 * 2500us) << "the newest frame is kept";
  EXPECT_GT(frames.size(), 150u) << "at least three of four segments' worth is kept";
}

TEST(RecordingFormat, OptionsOutsideTheirBoundsAreRefusedWithTheReason) {
  testing::TempDir dir;
  RecordingOptions o;
  o.segments = 1;
  auto w = RecordingWriter::open(dir.path(), o, kStart);
  ASSERT_FALSE(w.ok());
  EXPECT_NE(w.status().message().find("at least 2 segments"), std::string::npos);
  o.segments = 12;
  o.max_bytes = 1000;
  w = RecordingWriter::open(dir.path(), o, kStart);
  ASSERT_FALSE(w.ok());
  EXPECT_NE(w.status().message().find("64 KiB per segment"), std::string::npos);
}

// What kill -9 in the middle of a write leaves: the last record cut short.
TEST(RecordingFormat, ATornTailIsReportedAndEveryRecordBeforeItIsRead) {
  testing::TempDir dir;
  std::string segment;
  {
    auto w = RecordingWriter::open(dir.path(), {}, kStart);
    ASSERT_OK(w);
    for (int i = 0; i < 10; ++i) ASSERT_OK((*w)->append(frame_at(i * 1s, 200)));
    ASSERT_OK((*w)->flush());
    segment = (*w)->current_segment();
  }
  const uint64_t size = std::filesystem::file_size(segment);
  ASSERT_EQ(::truncate(segment.c_str(), static_cast<off_t>(size - 50)), 0);
  std::vector<ReadProblem> problems;
  auto frames = read_all(dir.path(), &problems);
  ASSERT_EQ(frames.size(), 9u);
  EXPECT_EQ(frames.back().received_at, kStart + 8s);
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_EQ(problems[0].kind, ReadProblem::Kind::kTornTail);
  EXPECT_EQ(problems[0].file, segment);
  EXPECT_EQ(problems[0].offset, kSegmentHeaderBytes + 9 * (kRecordHeaderBytes + 200));
  EXPECT_NE(problems[0].text().find("torn tail: the segment ends inside a record (167 of its 217"),
            std::string::npos)
      << problems[0].text();

  // Cut inside the record header instead: the same report, the same 9 frames.
  ASSERT_EQ(::truncate(segment.c_str(), static_cast<off_t>(problems[0].offset + 5)), 0);
  frames = read_all(dir.path(), &problems);
  EXPECT_EQ(frames.size(), 9u);
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_EQ(problems[0].kind, ReadProblem::Kind::kTornTail);
  EXPECT_NE(problems[0].what.find("inside a record header"), std::string::npos);
}

TEST(RecordingFormat, ARestartedWriterStartsANewSegmentAfterATornOne) {
  testing::TempDir dir;
  std::string first;
  {
    auto w = RecordingWriter::open(dir.path(), {}, kStart);
    ASSERT_OK(w);
    for (int i = 0; i < 5; ++i) ASSERT_OK((*w)->append(frame_at(i * 1s)));
    ASSERT_OK((*w)->flush());
    first = (*w)->current_segment();
  }
  ASSERT_EQ(::truncate(first.c_str(), static_cast<off_t>(std::filesystem::file_size(first) - 1)),
            0);
  auto w = RecordingWriter::open(dir.path(), {}, kStart + 10s);
  ASSERT_OK(w);
  EXPECT_NE((*w)->current_segment(), first);
  for (int i = 10; i < 15; ++i) ASSERT_OK((*w)->append(frame_at(i * 1s)));
  ASSERT_OK((*w)->close());
  std::vector<ReadProblem> problems;
  auto frames = read_all(dir.path(), &problems);
  ASSERT_EQ(frames.size(), 9u);  // 4 whole of the first run, all 5 of the second
  EXPECT_EQ(frames[3].received_at, kStart + 3s);
  EXPECT_EQ(frames[4].received_at, kStart + 10s);
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_EQ(problems[0].file, first);
}

TEST(RecordingFormat, ACorruptRecordSkipsTheRestOfItsSegmentOnly) {
  testing::TempDir dir;
  RecordingOptions o;
  o.keep = 1h;
  o.segments = 4;
  auto w = RecordingWriter::open(dir.path(), o, kStart);
  ASSERT_OK(w);
  std::string first;
  for (int i = 0; i < 20; ++i) {
    ASSERT_OK((*w)->append(frame_at(i * 1min, 100)));
    if (i == 0) first = (*w)->current_segment();
  }
  ASSERT_OK((*w)->close());
  ASSERT_GE(segment_count(dir.path()), 2u);
  // One byte of the third record's frame, in the first segment.
  const uint64_t at = kSegmentHeaderBytes + 2 * (kRecordHeaderBytes + 100);
  {
    std::string bytes = testing::read_file(first);
    bytes[at + kRecordHeaderBytes + 40] ^= 0x01;
    testing::write_file(first, bytes);
  }
  std::vector<ReadProblem> problems;
  auto frames = read_all(dir.path(), &problems);
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_EQ(problems[0].kind, ReadProblem::Kind::kCorrupt);
  EXPECT_EQ(problems[0].offset, at);
  EXPECT_NE(problems[0].what.find("checksum mismatch"), std::string::npos);
  // The first segment holds minutes 0-14; 2 of them are read, then all of the next.
  ASSERT_EQ(frames.size(), 20u - 13u);
  EXPECT_EQ(frames[1].received_at, kStart + 1min);
  EXPECT_EQ(frames[2].received_at, kStart + 15min);
  EXPECT_EQ(frames.back().received_at, kStart + 19min);
}

TEST(RecordingFormat, AFileThatIsNotASegmentIsSkippedWithItsReason) {
  testing::TempDir dir;
  {
    auto w = RecordingWriter::open(dir.path(), {}, kStart);
    ASSERT_OK(w);
    ASSERT_OK((*w)->append(frame_at(1s)));
    ASSERT_OK((*w)->close());
  }
  const std::string foreign =
      dir.write("rec-00000000000000000001.mrec", "not a recording at all\n");
  std::vector<ReadProblem> problems;
  auto frames = read_all(dir.path(), &problems);
  EXPECT_EQ(frames.size(), 1u);
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_EQ(problems[0].kind, ReadProblem::Kind::kBadHeader);
  EXPECT_EQ(problems[0].file, foreign);
}

// A full disk, as RLIMIT_FSIZE makes one: the frames of the failed write are
// lost and counted, none of them half-written; the writer goes on in a new
// segment once writes succeed again.
TEST(RecordingFormat, AFailedWriteLosesOnlyItsFramesAndTheWriterGoesOn) {
  testing::TempDir dir;
  RecordingOptions o;
  o.segments = 2;
  auto w = RecordingWriter::open(dir.path(), o, kStart);
  ASSERT_OK(w);
  struct rlimit old {};
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &old), 0);
  auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
  struct rlimit small = old;
  small.rlim_cur = 50'000;
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &small), 0);
  int appended = 0;
  Status failed;
  for (int i = 0; i < 200 && failed.ok(); ++i) {
    ASSERT_OK((*w)->append(frame_at(i * 1s, 983)));  // 1000-byte records
    ++appended;
    if (i % 7 == 6) failed = (*w)->flush();
  }
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &old), 0);
  std::signal(SIGXFSZ, old_handler);
  ASSERT_FALSE(failed.ok()) << "the file size limit never bit";
  EXPECT_NE(failed.message().find("write"), std::string::npos) << failed;
  EXPECT_EQ((*w)->stats().write_errors, 1u);
  EXPECT_EQ((*w)->stats().frames_lost, 7u);
  for (int i = 200; i < 210; ++i) ASSERT_OK((*w)->append(frame_at(i * 1s, 983)));
  ASSERT_OK((*w)->close());
  EXPECT_EQ((*w)->stats().segments_opened, 2u);
  std::vector<ReadProblem> problems;
  auto frames = read_all(dir.path(), &problems);
  EXPECT_TRUE(problems.empty()) << problems[0].text();
  EXPECT_EQ(frames.size(), static_cast<size_t>(appended - 7 + 10));
  EXPECT_EQ(frames.back().received_at, kStart + 209s);
}

TEST(RecordingFormat, ARecordingThatDoesNotExistIsNotFound) {
  auto r = RecordingReader::open("/nonexistent/recording");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kNotFound);
  EXPECT_NE(r.status().message().find("/nonexistent/recording"), std::string::npos);
}

TEST(RecordingFormat, ASingleSegmentFileReadsOnItsOwn) {
  testing::TempDir dir;
  std::string segment;
  {
    auto w = RecordingWriter::open(dir.path(), {}, kStart);
    ASSERT_OK(w);
    for (int i = 0; i < 3; ++i) ASSERT_OK((*w)->append(frame_at(i * 1s)));
    segment = (*w)->current_segment();
    ASSERT_OK((*w)->close());
  }
  std::vector<ReadProblem> problems;
  EXPECT_EQ(read_all(segment, &problems).size(), 3u);
  EXPECT_TRUE(problems.empty());
}

}  // namespace
}  // namespace medic::replay
