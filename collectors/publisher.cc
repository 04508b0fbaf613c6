#include "collectors/publisher.h"

#include <spdlog/spdlog.h>

#include "fabric/connection_monitor.h"

namespace medic::collectors {
namespace {

int to_ms(Duration d) {
  return static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(d).count());
}

}  // namespace

Result<std::unique_ptr<ZmqPublisher>> ZmqPublisher::create(
    const std::vector<EngineEndpoint>& engines, const LaneConfig& lanes,
    const fabric::Party& party) {
  fabric::Context& ctx = party.ctx;
  const fabric::Identity& self = party.identity;
  std::unique_ptr<ZmqPublisher> pub(new ZmqPublisher());
  fabric::SocketOptions opts;
  opts.reconnect_ivl_ms = to_ms(lanes.reconnect_ivl);
  opts.reconnect_ivl_max_ms = to_ms(lanes.reconnect_ivl_max);
  opts.pub_nodrop = true;  // so a full queue is seen (EAGAIN) and counted
  opts.linger_ms = 0;
  // Each monitor holds a reference to its socket: the sockets never move.
  pub->engines_.reserve(engines.size());
  for (const auto& e : engines) {
    fabric::SocketOptions bulk = opts;
    bulk.send_hwm = kBulkHwm;
    auto b = ctx.connect(zmq::socket_type::pub, e.events, self, e.key, bulk);
    if (!b.ok()) return b.status().with_context("engine " + e.name + " events");
    fabric::SocketOptions urgent = opts;
    urgent.send_hwm = lanes.urgent_hwm;
    // A lifecycle event queued at shutdown still gets a moment to leave.
    urgent.linger_ms = 200;
    auto u = ctx.connect(zmq::socket_type::pub, e.urgent, self, e.key, urgent);
    if (!u.ok()) return u.status().with_context("engine " + e.name + " urgent");
    pub->engines_.push_back(Engine{e.name, std::move(*b), std::move(*u), {}, 0, nullptr});
    auto watch = fabric::ConnectionMonitor::start(ctx.zmq(), pub->engines_.back().urgent,
                                                  "collector: urgent lane to " + e.name);
    if (!watch.ok()) return watch.status().with_context("engine " + e.name + " urgent");
    pub->engines_.back().watch = std::move(*watch);
  }
  return pub;
}

ZmqPublisher::~ZmqPublisher() {
  for (auto& e : engines_) e.watch.reset();  // a monitor goes before its socket
}

size_t ZmqPublisher::connected_engines() const {
  size_t n = 0;
  for (const auto& e : engines_) n += e.watch && e.watch->connected();
  return n;
}

bool ZmqPublisher::try_send(zmq::socket_t& s, const std::string& frame) {
  try {
    auto r = s.send(zmq::buffer(frame), zmq::send_flags::dontwait);
    return r.has_value();
  } catch (const zmq::error_t& e) {
    spdlog::warn("collector: send failed: {}", e.what());
    return false;
  }
}

void ZmqPublisher::drain(Engine& e) {
  while (e.next < e.waiting.size()) {
    if (!try_send(e.bulk, e.waiting[e.next])) return;
    ++counters_.sent[0];
    ++e.next;
  }
  e.waiting.clear();
  e.next = 0;
}

void ZmqPublisher::publish(Lane lane, const std::vector<std::string>& frames) {
  for (auto& e : engines_) {
    if (lane == Lane::kUrgent) {
      for (const auto& f : frames) {
        if (try_send(e.urgent, f)) {
          ++counters_.sent[1];
        } else {
          ++counters_.dropped[1];
        }
      }
      continue;
    }
    // Newest state wins: whatever the engine has not taken of the previous
    // flush is replaced.
    counters_.dropped[0] += e.waiting.size() - e.next;
    e.waiting = frames;
    e.next = 0;
    drain(e);
  }
}

void ZmqPublisher::pump() {
  for (auto& e : engines_) {
    if (!e.waiting.empty()) drain(e);
    if (e.watch) e.watch->handle_readable();  // reads without waiting
  }
}

bool ZmqPublisher::has_waiting() const {
  for (const auto& e : engines_) {
    if (!e.waiting.empty()) return true;
  }
  return false;
}

PublisherCounters ZmqPublisher::counters() const {
  PublisherCounters c = counters_;
  c.waiting_bulk_frames = 0;
  for (const auto& e : engines_) c.waiting_bulk_frames += e.waiting.size() - e.next;
  return c;
}

}  // namespace medic::collectors
