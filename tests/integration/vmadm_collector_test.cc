// The collector on the vmadm backend, as `medic agent` runs them: one
// EventLoop, a VirtualClock, real vmadm processes (tests/fakes/vmadm). A verb
// that takes 30 s must not delay the collector's state reports, because
// every vmadm call runs on the loop instead of inside it.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <optional>

#include "collectors/collector.h"
#include "core/event_loop.h"
#include "tests/testing/testing.h"
#include "tests/unit/collectors/fakes.h"
#include "vmm/vmadm/vmadm.h"

namespace medic {
namespace {

using namespace std::chrono_literals;
constexpr char kWeb[] = "11111111-2222-4333-8444-000000000001";
constexpr char kDb[] = "11111111-2222-4333-8444-000000000002";

class VmadmCollector : public ::testing::Test {
 protected:
  void SetUp() override {
    std::filesystem::copy_file(testing::source_dir() + "/tests/fakes/vmadm", dir_.file("vmadm"));
    std::filesystem::permissions(dir_.file("vmadm"), std::filesystem::perms::owner_all);
    dir_.write("vms", std::string(kWeb) + "\trunning\tweb-01\n" + kDb + "\tstopped\tdb-01\n");
    // stop waits until the test writes a line into the `release` fifo.
    ASSERT_EQ(::mkfifo(dir_.file("release").c_str(), 0600), 0);
    std::string slow = dir_.write("vmadm-slow",
                                  "#!/bin/sh\n"
                                  "d=$(dirname \"$0\")\n"
                                  "if [ \"$1\" = stop ]; then\n"
                                  "  echo waiting >> \"$d/stop-waiting\"\n"
                                  "  read line < \"$d/release\"\n"
                                  "fi\n"
                                  "exec \"$d/vmadm\" \"$@\"\n",
                                  0755);
    vmm::vmadm::VmadmOptions o;
    o.host = "host-a";
    o.vmadm_path = slow;
    o.list_interval = 1s;
    o.list_timeout = 120s;
    hv_ = std::make_unique<vmm::vmadm::VmadmHypervisor>(clock_, o);

    collectors::CollectorDeps cd;
    cd.hypervisor = hv_.get();
    cd.clock = &clock_;
    cd.identity = &keys_.collector;
    cd.publisher = &pub_;
    cd.loop = &loop_;
    collectors::CollectorOptions co;
    co.host = "host-a";
    co.interval = 1s;
    auto c = collectors::Collector::create(co, cd);
    ASSERT_TRUE(c.ok()) << c.status();
    collector_ = std::move(c).value();
    collector_->start();
  }

  // Turns the loop, waiting on vmadm's pipes and exits (never on time),
  // until `cond` holds.
  bool run_until(const std::function<bool()>& cond) {
    return testing::wait_until([&] {
      loop_.run_once(20ms);
      return cond();
    });
  }

  struct Report {
    Time at{};
    size_t states = 0;
  };
  std::vector<Report> reports(size_t from) {
    fabric::Opener opener(keys_.trust, clock_);
    std::vector<Report> out;
    for (size_t i = 0; i < pub_.bulk.size(); ++i) {
      medic::v1::EventBatch b;
      medic::v1::Envelope env;
      Status s = testing::open_batch(opener, pub_.bulk[i], &b, &env);
      EXPECT_TRUE(s.ok()) << s;
      if (i < from) continue;
      Report r;
      for (const auto& e : b.events()) {
        if (!e.has_state()) continue;
        ++r.states;
        r.at = from_ns(e.observed_at_ns());
      }
      out.push_back(r);
    }
    return out;
  }

  VirtualClock clock_;
  EventLoop loop_{clock_};
  testing::TempDir dir_;
  testing::Keys keys_;
  testing::RecordingPublisher pub_;
  std::unique_ptr<vmm::vmadm::VmadmHypervisor> hv_;
  std::unique_ptr<collectors::Collector> collector_;
};

TEST_F(VmadmCollector, StateReportsKeepTheirCadenceWhileAThirtySecondVmadmVerbRuns) {
  ASSERT_TRUE(run_until([&] { return hv_->stats().listings_done >= 1; }));
  std::optional<Status> stopped;
  hv_->execute(medic::v1::VERB_STOP, kWeb, 60s, [&](Status s) { stopped = s; });
  ASSERT_TRUE(run_until([&] { return std::filesystem::exists(dir_.file("stop-waiting")); }));
  const Time verb_started = clock_.now();
  const size_t before = pub_.bulk.size();

  // 30 s of the verb, in steps of 100 ms.
  for (int i = 0; i < 300; ++i) {
    clock_.advance(100ms);
    loop_.run_once(2ms);
  }
  EXPECT_FALSE(stopped.has_value()) << "the verb should still wait for vmadm";
  auto during = reports(before);
  ASSERT_EQ(during.size(), 30u) << "one report a second while the verb ran";
  for (size_t i = 0; i < during.size(); ++i) {
    EXPECT_EQ(during[i].states, 2u) << "report " << i;
    EXPECT_GT(during[i].at, verb_started);
    EXPECT_LE(during[i].at, verb_started + 30s);
    if (i > 0) {
      EXPECT_EQ(during[i].at - during[i - 1].at, Duration(1s)) << "report " << i;
    }
  }
  EXPECT_GE(hv_->stats().listings_started, 2u) << "the listing went on during the verb";

  // vmadm answers at 30 s; the verb ends and the next listing shows it.
  int fd = ::open(dir_.file("release").c_str(), O_WRONLY | O_NONBLOCK);
  ASSERT_GE(fd, 0) << "the stop is not waiting on the fifo";
  ASSERT_EQ(::write(fd, "go\n", 3), 3);
  ::close(fd);
  ASSERT_TRUE(run_until([&] { return stopped.has_value(); }));
  EXPECT_TRUE(stopped->ok()) << *stopped;
  ASSERT_TRUE(run_until([&] {
    auto vm = hv_->get(kWeb);
    return vm.ok() && vm->state == medic::v1::VM_STATE_STOPPED;
  }));
}

}  // namespace
}  // namespace medic
