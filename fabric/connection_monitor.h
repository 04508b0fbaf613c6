// What a connecting socket really does, from ZeroMQ's socket monitor: a
// TCP connection made, lost, or being retried. ZeroMQ connects in the
// background, so "connect()" returning says nothing about the peer; this
// does. Each event is logged as it happens:
//   WHAT: connected to ENDPOINT
//   WHAT: disconnected from ENDPOINT (reconnecting)
//   WHAT: ENDPOINT refused or unreachable, retrying   (once per outage)
//   WHAT: handshake with ENDPOINT failed (wrong engine key, or not trusted)
//
// Contract: the monitor's PAIR socket belongs to the thread of the loop it
// is watched on; call handle_readable() when socket() is readable. The
// monitored socket must outlive the monitor.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include <zmq.hpp>

#include "core/status.h"

namespace medic::fabric {

class ConnectionMonitor {
 public:
  static Result<std::unique_ptr<ConnectionMonitor>> start(zmq::context_t& ctx,
                                                          zmq::socket_t& monitored,
                                                          std::string what);
  ~ConnectionMonitor();

  zmq::socket_t& socket() { return pair_; }
  void handle_readable();

  bool connected() const { return connected_; }
  uint64_t connects() const { return connects_; }
  uint64_t disconnects() const { return disconnects_; }

 private:
  ConnectionMonitor(zmq::socket_t& monitored, std::string what)
      : monitored_(monitored), what_(std::move(what)) {}
  void on_event(uint16_t event, const std::string& endpoint);

  zmq::socket_t& monitored_;
  std::string what_;
  zmq::socket_t pair_;
  bool connected_ = false;
  bool retry_logged_ = false;
  uint64_t connects_ = 0;
  uint64_t disconnects_ = 0;
};

}  // namespace medic::fabric
