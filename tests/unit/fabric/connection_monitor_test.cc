// ConnectionMonitor on real ZeroMQ TCP sockets: a DEALER pointed at a port
// where nothing listens is not "connected" (the false "connected to engine"
// of old); once a ROUTER binds there it is, and losing the peer counts a
// disconnect.
#include "fabric/connection_monitor.h"

#include <gtest/gtest.h>

#include "tests/testing/testing.h"

namespace medic::fabric {
namespace {

using namespace std::chrono_literals;

TEST(ConnectionMonitor, SaysConnectedOnlyOnceThePeerIsReallyThereAndCountsTheLoss) {
  zmq::context_t ctx;
  const std::string endpoint = "tcp://127.0.0.1:" + std::to_string(testing::free_port());
  zmq::socket_t dealer(ctx, zmq::socket_type::dealer);
  dealer.set(zmq::sockopt::reconnect_ivl, 20);
  auto monitor = ConnectionMonitor::start(ctx, dealer, "test");
  ASSERT_OK(monitor);
  ConnectionMonitor& m = **monitor;
  dealer.connect(endpoint);
  // Nothing listens: some retries go by and it never says connected.
  testing::wait_until([&] { m.handle_readable(); return false; }, 300ms);
  EXPECT_FALSE(m.connected());
  EXPECT_EQ(m.connects(), 0u);
  {
    zmq::socket_t router(ctx, zmq::socket_type::router);
    router.bind(endpoint);
    ASSERT_TRUE(testing::wait_until([&] { m.handle_readable(); return m.connected(); }, 10s));
    EXPECT_EQ(m.connects(), 1u);
    router.set(zmq::sockopt::linger, 0);
  }  // the peer goes away
  ASSERT_TRUE(testing::wait_until([&] { m.handle_readable(); return !m.connected(); }, 10s));
  EXPECT_EQ(m.disconnects(), 1u);
  dealer.set(zmq::sockopt::linger, 0);
}

}  // namespace
}  // namespace medic::fabric
