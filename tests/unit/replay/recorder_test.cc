// The recorder (replay/recorder.h) on real CurveZMQ sockets: a collector's
// frames that open are recorded byte for byte with their lane; one signed
// by a key outside the trust store is refused, counted, and not recorded.
#include "replay/recorder.h"

#include <gtest/gtest.h>

#include "tests/testing/testing.h"
#include "tests/unit/fabric/fabric_test_util.h"

namespace medic::replay {
namespace {

using namespace std::chrono_literals;
using fabric::test::identity_for;

class RecorderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK(
        trust_.add(fabric::test::node("host-a", host_, fabric::test::kCollector, {"host-a"})));
    auto ctx = fabric::Context::create(trust_);
    ASSERT_OK(ctx);
    ctx_ = std::move(*ctx);
    RecorderConfig c;
    c.listen = {"tcp://127.0.0.1:*", "tcp://127.0.0.1:*"};
    c.dir = dir_.file("recording");
    auto r = Recorder::create(c, {*ctx_, recorder_id_, trust_, clock_});
    ASSERT_OK(r);
    recorder_ = std::move(*r);
    // The collector's side: it pins the recorder's key, as an engines: entry does.
    auto bulk = ctx_->connect(zmq::socket_type::pub, recorder_->events_endpoint(), host_,
                              recorder_id_.public_key());
    auto urgent = ctx_->connect(zmq::socket_type::pub, recorder_->urgent_endpoint(), host_,
                                recorder_id_.public_key());
    ASSERT_TRUE(bulk.ok() && urgent.ok());
    bulk_ = std::move(*bulk);
    urgent_ = std::move(*urgent);
    // Probes (malformed, so never recorded) until both lanes have their subscriber.
    ASSERT_TRUE(testing::wait_until(
        [&] {
          bulk_.send(zmq::str_buffer("probe"), zmq::send_flags::dontwait);
          urgent_.send(zmq::str_buffer("probe"), zmq::send_flags::dontwait);
          recorder_->run_once(1ms);
          return recorder_->receiver().rejections(false).get(fabric::OpenError::kMalformed) > 0 &&
                 recorder_->receiver().rejections(true).get(fabric::OpenError::kMalformed) > 0;
        },
        10s));
  }

  std::string batch(fabric::Sealer& s, const std::string& vm) {
    medic::v1::EventBatch b;
    auto* e = b.add_events();
    e->set_host("host-a");
    e->set_vm(vm);
    e->mutable_heartbeat()->set_source("sim");
    return s.seal(medic::v1::KIND_EVENT_BATCH, "host-a", b.SerializeAsString(), clock_.now());
  }

  testing::TempDir dir_;
  SystemClock clock_;
  fabric::TrustStore trust_;
  fabric::Identity recorder_id_ = identity_for(41);
  fabric::Identity host_ = identity_for(42);
  std::unique_ptr<fabric::Context> ctx_;
  std::unique_ptr<Recorder> recorder_;
  zmq::socket_t bulk_, urgent_;
};

TEST_F(RecorderTest, RecordsWhatOpensByteForByteAndRefusesAStrangersFrame) {
  fabric::Sealer bulk_sealer(host_, 0), urgent_sealer(host_, 1);
  fabric::Identity stranger = identity_for(43);
  fabric::Sealer forger(stranger);
  const std::string genuine_bulk = batch(bulk_sealer, "vm-1");
  const std::string genuine_urgent = batch(urgent_sealer, "vm-2");
  const std::string forged = batch(forger, "vm-3");
  bulk_.send(zmq::buffer(genuine_bulk));
  bulk_.send(zmq::buffer(forged));
  urgent_.send(zmq::buffer(genuine_urgent));
  ASSERT_TRUE(testing::wait_until(
      [&] {
        recorder_->run_once(1ms);
        return recorder_->receiver().accepted_batches() == 2 &&
               recorder_->receiver().rejections().get(fabric::OpenError::kUnknownSender) == 1;
      },
      10s));
  EXPECT_NE(recorder_->summary().find("2 frames recorded"), std::string::npos)
      << recorder_->summary();
  EXPECT_NE(recorder_->summary().find("1 unknown_sender"), std::string::npos)
      << recorder_->summary();
  ASSERT_OK(recorder_->close());

  auto reader = RecordingReader::open(dir_.file("recording"));
  ASSERT_OK(reader);
  std::vector<RecordedFrame> frames;
  RecordedFrame f;
  while ((*reader)->next(&f)) frames.push_back(f);
  EXPECT_TRUE((*reader)->problems().empty());
  ASSERT_EQ(frames.size(), 2u);
  // Whichever lane was read first, each frame is kept with its own lane.
  for (const auto& r : frames) {
    EXPECT_EQ(r.frame, r.urgent ? genuine_urgent : genuine_bulk);
    EXPECT_LE(r.received_at, clock_.now());
  }
  EXPECT_NE(frames[0].urgent, frames[1].urgent);
}

}  // namespace
}  // namespace medic::replay
