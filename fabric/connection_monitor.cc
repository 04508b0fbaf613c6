#include "fabric/connection_monitor.h"

#include <spdlog/spdlog.h>

#include <cstring>

namespace medic::fabric {
namespace {

std::atomic<uint64_t> next_monitor{1};

constexpr int kEvents = ZMQ_EVENT_CONNECTED | ZMQ_EVENT_DISCONNECTED |
                        ZMQ_EVENT_CONNECT_RETRIED | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH |
                        ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_SUCCEEDED;

}  // namespace

Result<std::unique_ptr<ConnectionMonitor>> ConnectionMonitor::start(zmq::context_t& ctx,
                                                                    zmq::socket_t& monitored,
                                                                    std::string what) {
  std::unique_ptr<ConnectionMonitor> m(new ConnectionMonitor(monitored, std::move(what)));
  const std::string address = "inproc://medic-monitor-" + std::to_string(next_monitor++);
  if (zmq_socket_monitor(monitored.handle(), address.c_str(), kEvents) != 0) {
    return unavailable("socket monitor: " + std::string(zmq_strerror(zmq_errno())));
  }
  try {
    m->pair_ = zmq::socket_t(ctx, zmq::socket_type::pair);
    m->pair_.connect(address);
  } catch (const zmq::error_t& e) {
    return unavailable("socket monitor: " + std::string(e.what()));
  }
  return m;
}

ConnectionMonitor::~ConnectionMonitor() {
  zmq_socket_monitor(monitored_.handle(), nullptr, 0);
}

void ConnectionMonitor::handle_readable() {
  while (true) {
    zmq::message_t head, address;
    auto got = pair_.recv(head, zmq::recv_flags::dontwait);
    if (!got) return;
    if (!head.more() || !pair_.recv(address, zmq::recv_flags::dontwait)) return;
    if (head.size() < 6) continue;
    uint16_t event = 0;
    std::memcpy(&event, head.data(), sizeof event);
    on_event(event, address.to_string());
  }
}

void ConnectionMonitor::on_event(uint16_t event, const std::string& endpoint) {
  switch (event) {
    case ZMQ_EVENT_HANDSHAKE_SUCCEEDED:
      if (connected_) return;
      connected_ = true;
      retry_logged_ = false;
      ++connects_;
      spdlog::info("{}: connected to {}", what_, endpoint);
      return;
    case ZMQ_EVENT_CONNECTED:
      return;  // TCP is up; the CURVE handshake says whether the peer is ours
    case ZMQ_EVENT_DISCONNECTED:
      if (!connected_) return;
      connected_ = false;
      ++disconnects_;
      spdlog::warn("{}: disconnected from {} (reconnecting)", what_, endpoint);
      return;
    case ZMQ_EVENT_CONNECT_RETRIED:
      if (retry_logged_) return;
      retry_logged_ = true;
      spdlog::warn("{}: {} refused or unreachable, retrying", what_, endpoint);
      return;
    case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH:
    case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
      spdlog::warn("{}: handshake with {} failed (wrong engine key, or this key is not trusted)",
                   what_, endpoint);
      return;
    default:
      return;
  }
}

}  // namespace medic::fabric
