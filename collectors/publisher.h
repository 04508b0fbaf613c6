// Publishing sealed event batches to the engines, on two lanes. Each engine
// gets its own PUB socket per lane, so a slow or absent engine never holds
// back another, and the urgent lane never waits behind state reports.
//
// Back-pressure (see docs/collectors.md, "Back-pressure"):
// - bulk: the ZMQ queue per engine is tiny (send HWM `kBulkHwm`). Frames an
//   engine cannot take wait in one slot per engine; the next bulk publish
//   replaces them (counted as dropped). State is level-triggered, so the
//   newest report is the only one worth sending. Memory: at most HWM frames
//   in ZMQ plus one flush's worth per engine.
// - urgent: a larger HWM; a frame an engine cannot take is dropped and
//   counted, never waited for (the next state report carries the state).
// Sends never block. Reconnects back off from reconnect_ivl to
// reconnect_ivl_max.
#pragma once

#include <array>
#include <memory>
#include <string>
#include <vector>
#include <zmq.hpp>

#include "collectors/config.h"
#include "core/status.h"
#include "fabric/connection_monitor.h"
#include "fabric/identity.h"
#include "fabric/party.h"
#include "fabric/transport.h"

namespace medic::collectors {

enum class Lane : uint8_t { kBulk = 0, kUrgent = 1 };

struct PublisherCounters {
  // Per lane, indexed by Lane, summed over engines.
  std::array<uint64_t, 2> sent{};
  std::array<uint64_t, 2> dropped{};
  uint64_t waiting_bulk_frames = 0;  // frames held in the per-engine slots now
};

class Publisher {
 public:
  virtual ~Publisher() = default;
  // Sends the frames of one flush on `lane` to every engine, never blocking.
  virtual void publish(Lane lane, const std::vector<std::string>& frames) = 0;
  // Retries bulk frames waiting for an engine; call every loop iteration.
  virtual void pump() {}
  // True when bulk frames wait, so the owner should come back soon.
  virtual bool has_waiting() const { return false; }
  // Engines whose urgent lane has finished its handshake (a PUB socket
  // drops what it sends before that): learnt in pump().
  virtual size_t connected_engines() const { return 0; }
  virtual PublisherCounters counters() const = 0;
};

using PublisherPtr = std::unique_ptr<Publisher>;

class ZmqPublisher final : public Publisher {
 public:
  static constexpr int kBulkHwm = 2;

  // Connects a bulk and an urgent PUB socket to every engine (CurveZMQ on
  // tcp://, authenticating as the party's identity to the engine's key).
  // Connecting does not wait for the engine to be up.
  static Result<std::unique_ptr<ZmqPublisher>> create(const std::vector<EngineEndpoint>& engines,
                                                      const LaneConfig& lanes,
                                                      const fabric::Party& party);
  ~ZmqPublisher() override;

  void publish(Lane lane, const std::vector<std::string>& frames) override;
  void pump() override;
  bool has_waiting() const override;
  size_t connected_engines() const override;
  PublisherCounters counters() const override;

 private:
  struct Engine {
    std::string name;
    zmq::socket_t bulk;
    zmq::socket_t urgent;
    std::vector<std::string> waiting;  // bulk frames not yet taken, oldest first
    size_t next = 0;                   // index of the first frame in `waiting` not sent
    // The urgent socket's handshakes and disconnects; after the sockets, and
    // reset first (the destructor): a monitor goes before its socket.
    std::unique_ptr<fabric::ConnectionMonitor> watch;
  };
  ZmqPublisher() = default;
  // Sends without blocking; false when the engine's queue is full.
  bool try_send(zmq::socket_t& s, const std::string& frame);
  void drain(Engine& e);

  std::vector<Engine> engines_;
  PublisherCounters counters_;
};

}  // namespace medic::collectors
