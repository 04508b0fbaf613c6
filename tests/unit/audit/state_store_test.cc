// The StateStore in the engine's SQLite file: rows survive a reopen, units
// commit with their audit rows, and a store that cannot write degrades,
// retries and recovers without losing or duplicating a row.
#include <sys/mount.h>
#include <unistd.h>

#include <cstdio>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

#include "audit/log.h"
#include "audit/sqlite_db.h"
#include "tests/testing/testing.h"
#include "tests/unit/audit/fixture.h"

namespace medic::audit {
namespace {

using test::at_ms;
using test::decision;
using test::Keys;
using namespace std::chrono_literals;

class StateStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = dir_.file("audit.db");
    open();
  }
  void open() {
    auto s = open_sqlite_store(path_, clock_, keys_.engine, test::fast_options());
    ASSERT_OK(s);
    store_ = std::move(*s);
  }
  void reopen() {
    ASSERT_OK(store_->close());
    store_.reset();
    open();
  }
  Seq evidence() {
    auto ev = store_->append_evidence({at_ms(0), keys_.panic_batch("web-1", at_ms(0)), "host-a"});
    EXPECT_OK(ev);
    return ev.ok() ? *ev : 0;
  }

  VirtualClock clock_;
  testing::TempDir dir_;
  std::string path_;
  Keys keys_;
  AuditStorePtr store_;
};

TEST_F(StateStoreTest, RowsSurviveAReopenInTheOrderTheyWereFirstWritten) {
  ASSERT_OK(store_->commit_unit({{StateKind::kVm, "web-2", "b"},
                                 {StateKind::kVm, "web-1", "a"},
                                 {StateKind::kHost, "h1", "x"}}));
  ASSERT_OK(store_->commit_unit({{StateKind::kVm, "web-2", "b2"}}));  // updated in place
  reopen();
  auto rows = store_->load_state();
  ASSERT_OK(rows);
  std::vector<StateRow> want = {{StateKind::kVm, "web-2", "b2"},
                                {StateKind::kVm, "web-1", "a"},
                                {StateKind::kHost, "h1", "x"}};
  EXPECT_EQ(*rows, want);
}

TEST_F(StateStoreTest, AnEmptyValueErasesTheRow) {
  ASSERT_OK(store_->commit_unit({{StateKind::kSilence, "s-1", "x"}, {StateKind::kSilence, "s-2", "y"}}));
  ASSERT_OK(store_->commit_unit({{StateKind::kSilence, "s-1", ""}}));
  reopen();
  auto rows = store_->load_state();
  ASSERT_OK(rows);
  ASSERT_EQ(rows->size(), 1u);
  EXPECT_EQ((*rows)[0].key, "s-2");
}

TEST_F(StateStoreTest, AUnitsAuditRowsWaitForItsCommitAndLandWithItsState) {
  Seq ev = evidence();
  ASSERT_OK(store_->wait_durable(ev));
  store_->begin_unit();
  auto d = store_->append_decision(decision("a-1", "web-1", at_ms(1), ev));
  ASSERT_OK(d);
  // Not taken by the writer while the unit is open.
  EXPECT_EQ(store_->wait_durable(*d, std::chrono::milliseconds(200)).code(), Code::kTimeout);
  ASSERT_OK(store_->commit_unit({{StateKind::kVm, "web-1", "budget spent"}}));
  ASSERT_OK(store_->wait_durable(*d));
  reopen();
  auto rows = store_->load_state();
  ASSERT_OK(rows);
  ASSERT_EQ(rows->size(), 1u);
  EXPECT_EQ((*rows)[0].value, "budget spent");
  EXPECT_EQ(*store_->action_state("a-1"), ActionState::kProposed);
  EXPECT_TRUE(verify_log(path_)->ok);
}

TEST_F(StateStoreTest, InFlightDoesNotWaitForAnOpenUnit) {
  Seq ev = evidence();
  ASSERT_OK(store_->append_decision(decision("a-1", "web-1", at_ms(1), ev)));
  store_->begin_unit();
  ASSERT_OK(store_->append_decision(decision("a-2", "web-2", at_ms(2), ev)));
  auto started = std::chrono::steady_clock::now();
  auto live = store_->in_flight(at_ms(3));
  ASSERT_OK(live);
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(5));
  ASSERT_EQ(live->size(), 1u);
  EXPECT_EQ((*live)[0].action_id, "a-1");
  ASSERT_OK(store_->commit_unit({}));
}

TEST_F(StateStoreTest, AUnitLargerThanTheQueueIsSplitNotDeadlocked) {
  StoreOptions o = test::fast_options();
  o.max_queued = 8;
  ASSERT_OK(store_->close());
  auto s = open_sqlite_store(path_, clock_, keys_.engine, o);
  ASSERT_OK(s);
  store_ = std::move(*s);
  Seq ev = evidence();
  store_->begin_unit();
  Seq last = 0;
  for (int i = 0; i < 40; ++i) {
    auto d = store_->append_decision(decision("a-" + std::to_string(i), "web-1", at_ms(i), ev));
    ASSERT_OK(d);
    last = *d;
  }
  ASSERT_OK(store_->commit_unit({{StateKind::kEngine, "engine", "v"}}));
  ASSERT_OK(store_->wait_durable(last));
  EXPECT_TRUE(verify_log(path_)->ok);
}

TEST_F(StateStoreTest, ALogWithoutAStateTableHasNoState) {
  ASSERT_OK(store_->close());
  store_.reset();
  {
    auto db = internal::Db::open(path_, false);
    ASSERT_OK(db);
    ASSERT_OK(db->exec("DROP TABLE state"));
  }
  open();  // creates it again, empty
  auto rows = store_->load_state();
  ASSERT_OK(rows);
  EXPECT_TRUE(rows->empty());
}

// ---- a store that cannot write: a small tmpfs filled up -------------------

class FullDisk {
 public:
  // Mounts a tmpfs of `bytes` at `dir`; mounted() is false when it could not.
  FullDisk(const std::string& dir, size_t bytes) : dir_(dir) {
    std::filesystem::create_directories(dir);
    mounted_ = ::mount("tmpfs", dir.c_str(), "tmpfs", 0,
                       ("size=" + std::to_string(bytes)).c_str()) == 0;
  }
  ~FullDisk() {
    if (mounted_) ::umount2(dir_.c_str(), MNT_DETACH);
  }
  bool mounted() const { return mounted_; }
  // Fills what is left with a ballast file.
  void fill() {
    std::ofstream f(dir_ + "/ballast", std::ios::binary);
    std::string block(4096, 'x');
    while (f.write(block.data(), block.size())) {
    }
  }
  void free_space() { std::filesystem::remove(dir_ + "/ballast"); }

 private:
  std::string dir_;
  bool mounted_ = false;
};

TEST(StateStoreFull, RefusesToOpenOnAFullDisk) {
  testing::TempDir dir;
  FullDisk disk(dir.file("mnt"), 4 << 20);
  // The tests run as root (CI, make test); without the mount there is no
  // full disk to test, which is a failure, not a reason to skip.
  ASSERT_TRUE(disk.mounted()) << "cannot mount a tmpfs (needs root): " << std::strerror(errno);
  VirtualClock clock;
  Keys keys;
  const std::string path = dir.file("mnt") + "/audit.db";
  {  // a good log first (positive control)
    auto s = open_sqlite_store(path, clock, keys.engine, test::fast_options());
    ASSERT_OK(s);
    ASSERT_OK((*s)->close());
  }
  disk.fill();
  auto s = open_sqlite_store(path, clock, keys.engine, test::fast_options());
  ASSERT_FALSE(s.ok());
  // Refused while opening the WAL, or by the probe write; either way it says so.
  const std::string why = s.status().message();
  EXPECT_TRUE(why.find("cannot be written") != std::string::npos ||
              why.find("disk") != std::string::npos)
      << why;
  disk.free_space();
  EXPECT_OK(open_sqlite_store(path, clock, keys.engine, test::fast_options()));
}

TEST(StateStoreFull, DegradesWhileFullAndWritesEverythingOnceSpaceReturns) {
  testing::TempDir dir;
  FullDisk disk(dir.file("mnt"), 4 << 20);
  // The tests run as root (CI, make test); without the mount there is no
  // full disk to test, which is a failure, not a reason to skip.
  ASSERT_TRUE(disk.mounted()) << "cannot mount a tmpfs (needs root): " << std::strerror(errno);
  VirtualClock clock;
  Keys keys;
  const std::string path = dir.file("mnt") + "/audit.db";
  auto opened = open_sqlite_store(path, clock, keys.engine, test::fast_options());
  ASSERT_OK(opened);
  AuditStorePtr store = std::move(*opened);
  auto ev = store->append_evidence({at_ms(0), keys.panic_batch("web-1", at_ms(0)), "host-a"});
  ASSERT_OK(ev);
  ASSERT_OK(store->wait_durable(*ev));
  EXPECT_OK(store->write_health());
  disk.fill();
  // Rows big enough to need new pages.
  std::string big(64 << 10, 'v');
  Seq last = 0;
  for (int i = 0; i < 20 && store->write_health().ok(); ++i) {
    store->begin_unit();
    auto d = store->append_decision(decision("a-" + std::to_string(i), "web-1", at_ms(i), *ev));
    ASSERT_OK(d);
    last = *d;
    ASSERT_OK(store->commit_unit({{StateKind::kVm, "web-" + std::to_string(i), big}}));
    // The writer's turn (real I/O): the unit is on disk or the store has failed.
    ASSERT_TRUE(::medic::testing::wait_until(
        [&] { return store->durable_seq() >= last || !store->write_health().ok(); }, 10s));
  }
  Status health = store->write_health();
  ASSERT_FALSE(health.ok()) << "the disk never filled";
  EXPECT_NE(health.message().find("full"), std::string::npos) << health.message();
  EXPECT_LT(store->durable_seq(), last);
  EXPECT_EQ(store->wait_durable(last).code(), Code::kUnavailable);
  disk.free_space();
  ASSERT_TRUE(::medic::testing::wait_until([&] { return store->durable_seq() >= last; }, 20s))
      << store->write_health();
  EXPECT_OK(store->write_health());
  ASSERT_OK(store->close());
  auto report = verify_log(path);
  ASSERT_OK(report);
  EXPECT_TRUE(report->ok) << report->text();
  auto reader = AuditReader::open(path);
  ASSERT_OK(reader);
  ListFilter all;
  all.limit = 0;
  auto rows = reader->list(all);
  ASSERT_OK(rows);
  EXPECT_EQ(static_cast<Seq>(rows->size()), (last - *ev) / 2);  // each decision once
}

}  // namespace
}  // namespace medic::audit
