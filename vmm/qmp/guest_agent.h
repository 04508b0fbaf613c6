// Guest liveness through the QEMU guest agent (qemu-ga): `guest-ping` over
// the unix socket where QEMU exposes the guest's org.qemu.guest_agent.0 port
// (VmSpec::guest_agent_socket).
//
// Protocol. QGA has no greeting and no capabilities negotiation, and the
// stream may hold replies meant for an earlier client that gave up. Each ping
// therefore opens a fresh connection and sends
//   0xFF                                              resets the agent's JSON
//                                                     parser (a half-sent
//                                                     request of an earlier
//                                                     client is dropped)
//   {"execute":"guest-sync","arguments":{"id":N}}     N fresh and random
//   {"execute":"guest-ping"}
// Every line before {"return":N} is stale (late replies, the agent's
// complaint about the 0xFF) and is skipped; the line after it must be
// {"return":{}}. Anything else fails the ping with a counted cause.
//
// Contract:
// - No threads and no blocking: ping() only connects (a non-blocking unix
//   connect) and writes; poll() reads what is ready. append_fds() gives the
//   sockets of the pings in flight, for the owner's poll(). QEMU's chardev
//   and qemu-ga serve one client at a time: while the socket is busy
//   (backlog full) the connect is tried again at each poll() until the
//   deadline.
// - `done` runs exactly once per ping, never inside ping(): from poll() when
//   the exchange ends, or from a Clock timer — at the deadline (kTimeout),
//   or due at once for a ping that failed before any exchange (no socket,
//   nothing listening). A pinger destroyed first drops its pings in flight
//   without running their `done`.
// - Bounded: a reply line longer than max_line_bytes, or more than
//   max_stale_bytes skipped before the sync reply, fails the ping
//   (kBadReply) instead of growing a buffer.
// Not thread-safe: one owner thread, the one that runs the Clock's timers.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.h"

namespace medic::vmm::qmp {

// Why a ping failed; kNone when it succeeded.
enum class GuestPingFailure {
  kNone,
  kUnknownVm,   // the backend has no such VM
  kNoSocket,    // the VM has no guest_agent_socket
  kConnect,     // nothing listens on the socket (or it is gone)
  kTimeout,     // no complete answer before the deadline
  kErrorReply,  // the agent answered guest-ping with {"error": ...}
  kClosed,      // the connection ended mid-exchange
  kBadReply,    // a reply that is not the expected one, or too long
};
const char* guest_ping_failure_name(GuestPingFailure f);  // "timeout", "error_reply", ...

struct GuestPingResult {
  GuestPingFailure failure = GuestPingFailure::kNone;
  std::string detail;  // for people: what was wrong, empty on success
  Duration latency{};  // ping() to the end of the exchange, by the Clock
  bool ok() const { return failure == GuestPingFailure::kNone; }
};

struct GuestAgentStats {
  uint64_t pings = 0;
  uint64_t answered = 0;
  uint64_t unknown_vm = 0;
  uint64_t no_socket = 0;
  uint64_t connect_failures = 0;
  uint64_t timeouts = 0;
  uint64_t error_replies = 0;
  uint64_t closed = 0;
  uint64_t bad_replies = 0;
  uint64_t stale_lines = 0;      // skipped before a sync reply (not failures)
  uint64_t connect_retries = 0;  // the socket was busy (backlog full); tried again
};

struct GuestAgentOptions {
  size_t max_line_bytes = 4096;       // QGA's answers to sync and ping are a few bytes
  size_t max_stale_bytes = 64 << 10;  // skipped before the sync reply, per ping
  uint64_t seed = 0;                  // of the sync ids; 0: from std::random_device
};

class GuestAgentPinger {
 public:
  using Done = std::function<void(const GuestPingResult&)>;

  explicit GuestAgentPinger(Clock& clock, GuestAgentOptions opts = {});
  ~GuestAgentPinger();
  GuestAgentPinger(const GuestAgentPinger&) = delete;
  GuestAgentPinger& operator=(const GuestAgentPinger&) = delete;

  // Starts a ping of the agent at `socket_path`, answered within `timeout`.
  // An empty path fails with kNoSocket.
  void ping(const std::string& socket_path, Duration timeout, Done done);
  // Fails a ping that cannot start (for example kUnknownVm) the same way a
  // failed ping() does: counted, `done` from a timer due now.
  void reject(GuestPingFailure why, std::string detail, Done done);

  // Reads every in-flight socket that has data and ends the exchanges that
  // are decided. Never blocks.
  void poll();
  // Appends the sockets of the pings in flight.
  void append_fds(std::vector<int>* out) const;
  size_t in_flight() const { return exchanges_.size(); }

  const GuestAgentStats& stats() const { return stats_; }

 private:
  struct Exchange {
    std::string path;  // while set and fd < 0: still to connect
    int fd = -1;
    std::string request;  // what is still to be written
    std::string input;    // read, not yet a complete line
    uint64_t sync_id = 0;
    bool synced = false;  // the sync reply came: the next line answers the ping
    size_t stale_bytes = 0;
    Time started{};
    TimerId timer = 0;
    // What the timer reports when it fires: kTimeout at the deadline, or the
    // cause of a failure found before any exchange.
    GuestPingFailure on_timer = GuestPingFailure::kTimeout;
    std::string on_timer_detail;
    Done done;
  };
  enum class Step { kMore, kDone };

  // Decides the exchange from what is buffered; kDone sets *result.
  Step read_replies(Exchange& x, GuestPingResult* result);
  Step handle_line(Exchange& x, std::string_view line, GuestPingResult* result);
  Step flush_request(Exchange& x, GuestPingResult* result);
  // Ends the exchange `serial` with `result`: closes, counts, runs done.
  void finish(uint64_t serial, GuestPingResult result);
  // Closes the exchange's socket and moves its timer to now, to fail with
  // `why` promptly.
  void fail_soon(uint64_t serial, GuestPingFailure why, std::string detail);
  uint64_t start_exchange(Duration timeout, Done done);
  void arm_timer(uint64_t serial, Time at);
  // Connects and sends the request; false when not connected (yet).
  bool try_connect(uint64_t serial, Exchange& x);
  void count(const GuestPingResult& r);

  Clock& clock_;
  GuestAgentOptions opts_;
  std::mt19937_64 ids_;
  uint64_t next_serial_ = 1;
  std::map<uint64_t, Exchange> exchanges_;
  GuestAgentStats stats_;
};

}  // namespace medic::vmm::qmp
