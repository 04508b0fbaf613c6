#include "core/event_loop.h"

#include <zmq.h>

#include <algorithm>
#include <cerrno>

namespace medic {
namespace {

int timeout_ms(Duration d) {
  if (d <= Duration::zero()) return 0;
  auto ms = std::chrono::ceil<std::chrono::milliseconds>(d).count();
  return static_cast<int>(std::min<int64_t>(ms, 60'000));
}

short to_zmq_events(short poll_events) {
  short e = 0;
  if (poll_events & POLLIN) e |= ZMQ_POLLIN;
  if (poll_events & POLLOUT) e |= ZMQ_POLLOUT;
  return e;
}

short from_zmq_events(short zmq_events) {
  short e = 0;
  if (zmq_events & ZMQ_POLLIN) e |= POLLIN;
  if (zmq_events & ZMQ_POLLOUT) e |= POLLOUT;
  if (zmq_events & ZMQ_POLLERR) e |= POLLERR;
  return e;
}

}  // namespace

EventLoop::EventLoop(Clock& clock, Duration timer_slack) : clock_(clock), slack_(timer_slack) {}

EventLoop::WatchId EventLoop::add(Entry e) {
  e.id = next_id_++;
  if (e.socket) ++sockets_;
  entries_.push_back(std::make_unique<Entry>(std::move(e)));
  return entries_.back()->id;
}

EventLoop::WatchId EventLoop::watch_fd(int fd, Handler on_readable) {
  Entry e;
  e.fd = fd;
  e.handler = std::move(on_readable);
  return add(std::move(e));
}

EventLoop::WatchId EventLoop::watch_socket(void* zmq_socket, Handler on_readable) {
  Entry e;
  e.socket = zmq_socket;
  e.handler = std::move(on_readable);
  return add(std::move(e));
}

EventLoop::WatchId EventLoop::add_source(EventSource* source) {
  Entry e;
  e.source = source;
  return add(std::move(e));
}

void EventLoop::remove(WatchId id) {
  for (auto& e : entries_) {
    if (e->id != id || e->removed) continue;
    e->removed = true;
    if (e->socket) --sockets_;
    dirty_ = true;
  }
}

void EventLoop::compact() {
  if (!dirty_) return;
  entries_.erase(std::remove_if(entries_.begin(), entries_.end(),
                                [](const std::unique_ptr<Entry>& e) { return e->removed; }),
                 entries_.end());
  dirty_ = false;
}

Duration EventLoop::compute_wait(Duration max_wait) const {
  Duration w = max_wait;
  if (auto next = clock_.next_deadline()) w = std::min(w, *next - clock_.now() + slack_);
  return std::max(w, Duration::zero());
}

// Lists every entry's descriptors in pollfds_, in registration order.
void EventLoop::collect(Duration* wait) {
  pollfds_.clear();
  poll_sockets_.clear();
  for (auto& e : entries_) {
    e->first = pollfds_.size();
    e->count = 0;
    if (e->removed) continue;
    if (e->source) {
      e->source->prepare(&pollfds_, wait);
    } else {
      pollfds_.push_back(pollfd{e->socket ? -1 : e->fd, POLLIN, 0});
    }
    e->count = pollfds_.size() - e->first;
    poll_sockets_.resize(pollfds_.size(), e->socket);
  }
}

void EventLoop::wait(Duration d) {
  const int ms = timeout_ms(d);
  int rc;
  if (sockets_ == 0) {
    rc = ::poll(pollfds_.data(), pollfds_.size(), ms);
  } else {
    std::vector<zmq_pollitem_t> items(pollfds_.size());
    for (size_t i = 0; i < items.size(); ++i) {
      items[i] = {poll_sockets_[i], poll_sockets_[i] ? 0 : pollfds_[i].fd,
                  to_zmq_events(pollfds_[i].events), 0};
    }
    rc = zmq_poll(items.data(), static_cast<int>(items.size()), ms);
    for (size_t i = 0; i < items.size(); ++i) pollfds_[i].revents = from_zmq_events(items[i].revents);
  }
  if (rc < 0 && errno != EINTR) ++poll_errors_;
  if (rc < 0) {
    for (auto& p : pollfds_) p.revents = 0;
  }
}

size_t EventLoop::run_once(Duration max_wait) {
  ++iterations_;
  compact();
  Duration w = compute_wait(max_wait);
  collect(&w);
  if (woken_) w = Duration::zero();
  woken_ = false;
  wait(w);
  // Entries added by a callback wait for the next iteration.
  const size_t n = entries_.size();
  for (size_t i = 0; i < n; ++i) {
    Entry& e = *entries_[i];
    if (e.source && !e.removed) e.source->dispatch(pollfds_.data() + e.first, e.count);
  }
  for (size_t i = 0; i < n; ++i) {
    Entry& e = *entries_[i];
    if (e.source || e.removed || e.count == 0) continue;
    if (pollfds_[e.first].revents & (POLLIN | POLLERR | POLLHUP)) e.handler();
  }
  const size_t ran = clock_.run_due();
  for (size_t i = 0; i < n; ++i) {
    Entry& e = *entries_[i];
    if (e.source && !e.removed) e.source->after_timers(ran);
  }
  return ran;
}

void EventLoop::run(const std::atomic<bool>& stop, Duration check_every) {
  while (!stop.load(std::memory_order_relaxed)) run_once(check_every);
}

}  // namespace medic
