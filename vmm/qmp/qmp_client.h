// A QMP (QEMU Machine Protocol) client over a unix socket.
//
// Contract:
// - No threads of its own and no blocking outside the calls that take a
//   timeout: connect()/attach() read the greeting and negotiate
//   capabilities, execute() sends one command with an id and waits for the
//   reply with that id, each bounded by its timeout, measured on the Clock
//   (each wait lasts at most the time the Clock says is left, so on a
//   VirtualClock that nobody advances a wait of the whole timeout ends it).
//   These blocking calls are for tools and tests, never for a daemon's loop.
//   poll() only reads what is ready.
// - The same connection without blocking at all (for an owner's event
//   loop): open() connects and returns; poll() reads the greeting, sends
//   qmp_capabilities itself and marks the connection ready() when its reply
//   comes; send() writes a command and returns its id; the reply, when it
//   comes, is queued for take_replies(). The owner keeps the deadlines (on
//   its Clock): this class never waits in the non-blocking calls.
// - Asynchronous events (GUEST_PANICKED, STOP, ...) may arrive between or
//   before replies; every event read by any call is queued in arrival order
//   for take_events() (the queue is bounded; the oldest are dropped and
//   counted).
// - Robust against the peer: a QEMU that dies mid-command gives kUnavailable
//   at once (never a hang); a JSON line split across reads is reassembled;
//   a line that is not JSON is counted and skipped (the connection stays
//   usable); a line longer than max_line_bytes closes the connection with
//   kUnavailable, because a reply inside it would be lost silently.
// - Replies whose id matches no waiting command (for example the late reply
//   to a command that timed out) are counted and dropped.
// Not thread-safe: one owner thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/clock.h"
#include "core/status.h"
#include "vmm/hypervisor.h"
#include "core/json.h"

namespace medic::vmm::qmp {

using Millis = std::chrono::milliseconds;

struct QmpEvent {
  std::string name;          // "GUEST_PANICKED", "STOP", ...
  Json data;                 // the event's "data" member, null when absent
  int64_t qemu_time_us = 0;  // QEMU's timestamp (seconds*1e6 + microseconds), 0 if none
};

// The reply to a command sent with send(): its "return" value, or the error
// execute() would have returned.
struct QmpReply {
  uint64_t id = 0;
  Result<Json> result = Json();
};

struct QmpClientOptions {
  size_t max_line_bytes = 1 << 20;  // QEMU's replies to our commands are far smaller
  size_t max_queued_events = 4096;
};

struct QmpStats {
  uint64_t garbage_lines = 0;      // not JSON, or JSON of no known QMP shape
  uint64_t unmatched_replies = 0;  // reply with an unknown id (late, or never asked)
  uint64_t dropped_events = 0;     // event queue overflow
  uint64_t events = 0;
  uint64_t commands = 0;
};

class QmpClient {
 public:
  explicit QmpClient(Clock& clock, QmpClientOptions opts = {});
  ~QmpClient();
  QmpClient(const QmpClient&) = delete;
  QmpClient& operator=(const QmpClient&) = delete;

  // Connects to the QMP socket at `path`, reads the greeting and negotiates
  // capabilities. kUnavailable when nothing listens there or the peer goes
  // away, kTimeout when the handshake does not finish in time.
  Status connect(const std::string& path, Millis timeout);
  // The same handshake on an already connected stream socket; takes
  // ownership of `fd` (closed on failure too).
  Status attach(int fd, Millis timeout);

  // Connects without waiting for the greeting; the handshake then runs in
  // poll(). kUnavailable when nothing listens at `path`.
  Status open(const std::string& path);
  // True once the handshake (greeting and qmp_capabilities) is done.
  bool ready() const { return fd_ >= 0 && ready_; }
  // Sends `command` without waiting; returns the id its QmpReply will carry.
  // REQUIRES: ready(). kUnavailable when the connection is gone or the
  // socket cannot take the command at once (then the connection is closed:
  // a half-sent command would desynchronise the stream).
  Result<uint64_t> send(std::string_view command, const Json& arguments = Json());
  // Replies to send() read so far, in arrival order.
  std::vector<QmpReply> take_replies();

  bool connected() const { return fd_ >= 0; }
  // The socket to wait on for readability before poll(); -1 when closed.
  int fd() const { return fd_; }
  void close();
  // Why the connection was closed last, for messages; empty when open.
  const std::string& close_reason() const { return close_reason_; }

  // Sends `command` (with `arguments` when it is an object) and waits for its
  // reply. Returns the reply's "return" value. A QMP error reply becomes
  // kFailedPrecondition "qmp <command>: <class>: <desc>".
  Result<Json> execute(std::string_view command, Millis timeout, const Json& arguments = Json());
  // "running", "paused", "guest-panicked", ... from query-status.
  Result<std::string> query_status(Millis timeout);

  // Reads whatever is ready without blocking and queues the events found.
  // Returns kUnavailable once the connection is gone (then connected() is
  // false).
  Status poll();
  std::vector<QmpEvent> take_events();
  size_t queued_events() const { return events_.size(); }

  const QmpStats& stats() const { return stats_; }
  // The server's greeting ("version" etc.), null before a handshake.
  const Json& greeting() const { return greeting_; }

 private:
  enum class ReadResult { kData, kWouldBlock, kClosed };
  // One read() into the line buffer; frames complete lines into messages.
  ReadResult read_some();
  // Frames and handles the complete lines in buf_; false once closed.
  bool process_buffered();
  // Handles one complete line: queue event, store reply, count garbage.
  void handle_line(std::string_view line);
  // Waits until fd_ is readable or the deadline (on the Clock) passes;
  // false on timeout.
  bool wait_readable(Time deadline);
  Status send_line(const std::string& line, Time deadline);
  Status handshake(Millis timeout);
  Status lost(const std::string& context);
  // Queues the reply to an id from send(); false when `id` is not one.
  bool take_async_reply(uint64_t id, Json&& msg);
  void on_greeting_async();
  Result<uint64_t> send_unchecked(std::string_view command, const Json& arguments);
  // A connected non-blocking stream socket to `path` (after close()).
  Result<int> connect_socket(const std::string& path);

  Clock& clock_;
  QmpClientOptions opts_;
  int fd_ = -1;
  std::string close_reason_;
  std::string buf_;
  uint64_t next_id_ = 1;
  // The id we wait for, and its reply once read (awaiting_ false after).
  uint64_t waiting_id_ = 0;
  bool have_reply_ = false;
  Json reply_;
  bool greeting_pending_ = false;
  bool ready_ = false;
  bool async_handshake_ = false;  // open(): the handshake runs in poll()
  uint64_t capabilities_id_ = 0;  // the async qmp_capabilities in flight
  // (id, command) of send() whose reply has not come.
  std::vector<std::pair<uint64_t, std::string>> async_ids_;
  std::vector<QmpReply> replies_;
  Json greeting_;
  std::deque<QmpEvent> events_;
  QmpStats stats_;
};

// Maps a QMP event name to the lifecycle value medic reports;
// LIFECYCLE_UNSPECIFIED for events medic does not track.
Lifecycle lifecycle_from_event(std::string_view event);
// Maps a query-status "status" to a VM state (unknown strings: UNSPECIFIED).
VmState state_from_qmp_status(std::string_view status);


}  // namespace medic::vmm::qmp
