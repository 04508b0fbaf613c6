#include "vmm/qmp/qmp_client.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace medic::vmm::qmp {
namespace {

int millis_left(const Clock& clock, Time deadline) {
  auto left = std::chrono::ceil<Millis>(deadline - clock.now()).count();
  if (left <= 0) return 0;
  return left > 60'000 ? 60'000 : static_cast<int>(left);
}

std::string ms_text(Millis m) { return std::to_string(m.count()) + " ms"; }

// A reply message as execute() returns it: "return", or the error.
Result<Json> reply_result(const std::string& cmd, const Json& reply) {
  if (const Json* err = json_member(reply, "error")) {
    const std::string* cls = json_string_member(*err, "class");
    const std::string* desc = json_string_member(*err, "desc");
    return failed_precondition("qmp " + cmd + ": " + (cls ? *cls : "error") + ": " +
                               (desc ? *desc : "(no description)"));
  }
  const Json* ret = json_member(reply, "return");
  return ret ? *ret : Json();
}

}  // namespace

QmpClient::QmpClient(Clock& clock, QmpClientOptions opts) : clock_(clock), opts_(opts) {}

QmpClient::~QmpClient() { close(); }

void QmpClient::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  buf_.clear();
  waiting_id_ = 0;
  have_reply_ = false;
  greeting_pending_ = false;
  ready_ = false;
  async_handshake_ = false;
  capabilities_id_ = 0;
  async_ids_.clear();
}

Status QmpClient::lost(const std::string& context) {
  close();
  close_reason_ = context;
  return unavailable("QMP connection lost: " + context);
}

Status QmpClient::connect(const std::string& path, Millis timeout) {
  auto fd = connect_socket(path);
  if (!fd.ok()) return fd.status();
  return attach(*fd, timeout).with_context(path);
}

Status QmpClient::open(const std::string& path) {
  auto fd = connect_socket(path);
  if (!fd.ok()) return fd.status();
  close_reason_.clear();
  fd_ = *fd;
  greeting_ = Json();
  replies_.clear();
  async_handshake_ = true;
  return {};
}

Result<int> QmpClient::connect_socket(const std::string& path) {
  close();
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof addr.sun_path) {
    return invalid_argument("QMP socket path '" + path + "' is empty or longer than " +
                            std::to_string(sizeof addr.sun_path - 1) + " bytes");
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return io_error(std::string("socket: ") + std::strerror(errno));
  int rc;
  do {
    rc = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  } while (rc < 0 && errno == EINTR);
  if (rc < 0) {
    int e = errno;
    ::close(fd);
    return unavailable("cannot connect to QMP socket " + path + ": " + std::strerror(e));
  }
  return fd;
}

Status QmpClient::attach(int fd, Millis timeout) {
  close();
  close_reason_.clear();
  int flags = fcntl(fd, F_GETFL);
  if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
    int e = errno;
    ::close(fd);
    return io_error(std::string("fcntl: ") + std::strerror(e));
  }
  fd_ = fd;
  greeting_ = Json();
  return handshake(timeout);
}

Status QmpClient::handshake(Millis timeout) {
  const Time deadline = clock_.now() + timeout;
  greeting_pending_ = true;
  while (greeting_.is_null()) {
    if (!wait_readable(deadline)) {
      close();
      close_reason_ = "no greeting";
      return timeout_error("no QMP greeting within " + ms_text(timeout));
    }
    if (read_some() == ReadResult::kClosed)
      return lost(close_reason_.empty() ? "closed before the greeting" : close_reason_);
  }
  greeting_pending_ = false;
  auto left = std::chrono::duration_cast<Millis>(deadline - clock_.now());
  auto r = execute("qmp_capabilities", left < Millis(1) ? Millis(1) : left);
  if (!r.ok()) {
    close();
    return r.status().with_context("qmp_capabilities");
  }
  ready_ = true;
  return {};
}

void QmpClient::on_greeting_async() {
  async_handshake_ = false;
  auto id = send_unchecked("qmp_capabilities", Json());
  if (id.ok()) capabilities_id_ = *id;
}

Result<uint64_t> QmpClient::send(std::string_view command, const Json& arguments) {
  if (!ready()) {
    return unavailable("qmp " + std::string(command) + ": not ready" +
                       (close_reason_.empty() ? "" : " (" + close_reason_ + ")"));
  }
  return send_unchecked(command, arguments);
}

Result<uint64_t> QmpClient::send_unchecked(std::string_view command, const Json& arguments) {
  const uint64_t id = next_id_++;
  Json req = {{"execute", std::string(command)}};
  if (arguments.is_object()) req["arguments"] = arguments;
  req["id"] = id;
  std::string line = dump_json(req);
  line.push_back('\n');
  ++stats_.commands;
  // A deadline of now: the socket takes a short command at once or never.
  MEDIC_RETURN_IF_ERROR(send_line(line, clock_.now()).with_context("qmp " + std::string(command)));
  async_ids_.emplace_back(id, std::string(command));
  return id;
}

bool QmpClient::take_async_reply(uint64_t id, Json&& msg) {
  auto it = std::find_if(async_ids_.begin(), async_ids_.end(),
                         [&](const auto& p) { return p.first == id; });
  if (it == async_ids_.end()) return false;
  std::string cmd = std::move(it->second);
  async_ids_.erase(it);
  if (id == capabilities_id_) {
    capabilities_id_ = 0;
    auto r = reply_result(cmd, msg);
    if (r.ok()) {
      ready_ = true;
    } else {
      close();
      close_reason_ = r.status().message();
    }
    return true;
  }
  replies_.push_back(QmpReply{id, reply_result(cmd, msg)});
  return true;
}

std::vector<QmpReply> QmpClient::take_replies() {
  std::vector<QmpReply> out;
  out.swap(replies_);
  return out;
}

bool QmpClient::wait_readable(Time deadline) {
  while (true) {
    pollfd p{fd_, POLLIN, 0};
    int n = ::poll(&p, 1, millis_left(clock_, deadline));
    if (n > 0) return true;  // readable, or hung up: read() tells which
    if (n < 0 && errno == EINTR) continue;
    // A wait of all the time left is the end, whether or not the Clock moved.
    if (n == 0) return false;
    return true;  // let read() report the error
  }
}

Status QmpClient::send_line(const std::string& line, Time deadline) {
  size_t off = 0;
  while (off < line.size()) {
    ssize_t w = ::send(fd_, line.data() + off, line.size() - off, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w > 0) {
      off += static_cast<size_t>(w);
      continue;
    }
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      pollfd p{fd_, POLLOUT, 0};
      int n = ::poll(&p, 1, millis_left(clock_, deadline));
      if (n == 0) {
        // A half-sent command would desynchronise the stream: give up on it.
        return lost("send timed out");
      }
      continue;
    }
    return lost(std::string("send: ") + std::strerror(errno));
  }
  return {};
}

QmpClient::ReadResult QmpClient::read_some() {
  char chunk[16384];
  ssize_t n;
  do {
    n = ::read(fd_, chunk, sizeof chunk);
  } while (n < 0 && errno == EINTR);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return ReadResult::kWouldBlock;
  if (n <= 0) {
    std::string why = n == 0 ? "closed by peer" : std::string("read: ") + std::strerror(errno);
    close();
    close_reason_ = why;
    return ReadResult::kClosed;
  }
  buf_.append(chunk, static_cast<size_t>(n));
  return process_buffered() ? ReadResult::kData : ReadResult::kClosed;
}

bool QmpClient::process_buffered() {
  size_t start = 0;
  while (fd_ >= 0) {
    // Lines after the greeting wait until the handshake asks for them, so a
    // capabilities reply read together with the greeting is not lost.
    if (greeting_pending_ && !greeting_.is_null()) break;
    size_t nl = buf_.find('\n', start);
    if (nl == std::string::npos || nl - start > opts_.max_line_bytes) break;
    handle_line(std::string_view(buf_).substr(start, nl - start));
    start = nl + 1;
  }
  if (fd_ < 0) return false;
  buf_.erase(0, start);
  size_t pending = buf_.find('\n');
  if ((pending == std::string::npos ? buf_.size() : pending) > opts_.max_line_bytes) {
    close();
    close_reason_ = "a line longer than " + std::to_string(opts_.max_line_bytes) + " bytes";
    return false;
  }
  return true;
}

void QmpClient::handle_line(std::string_view line) {
  while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.remove_suffix(1);
  if (line.empty()) return;
  auto parsed = parse_json(line);
  if (!parsed.ok() || !parsed->is_object()) {
    ++stats_.garbage_lines;
    return;
  }
  Json& msg = *parsed;
  if (const std::string* name = json_string_member(msg, "event")) {
    QmpEvent ev;
    ev.name = *name;
    if (const Json* d = json_member(msg, "data")) ev.data = *d;
    if (const Json* ts = json_member(msg, "timestamp")) {
      const Json* s = json_member(*ts, "seconds");
      const Json* us = json_member(*ts, "microseconds");
      if (s && us && s->is_number() && us->is_number()) {
        ev.qemu_time_us = static_cast<int64_t>(s->get<double>()) * 1'000'000 +
                          static_cast<int64_t>(us->get<double>());
      }
    }
    ++stats_.events;
    if (events_.size() >= opts_.max_queued_events) {
      events_.pop_front();
      ++stats_.dropped_events;
    }
    events_.push_back(std::move(ev));
    return;
  }
  if (json_member(msg, "return") || json_member(msg, "error")) {
    const Json* id = json_member(msg, "id");
    if (waiting_id_ != 0 && id && id->is_number() && *id == waiting_id_) {
      reply_ = std::move(msg);
      have_reply_ = true;
      waiting_id_ = 0;
    } else if (id && id->is_number_unsigned() && take_async_reply(id->get<uint64_t>(), std::move(msg))) {
      // queued for take_replies(), or the handshake moved on
    } else {
      ++stats_.unmatched_replies;
    }
    return;
  }
  if (const Json* qmp = json_member(msg, "QMP");
      qmp && (greeting_pending_ || async_handshake_) && greeting_.is_null()) {
    greeting_ = *qmp;
    if (async_handshake_) on_greeting_async();
    return;
  }
  ++stats_.garbage_lines;
}

Result<Json> QmpClient::execute(std::string_view command, Millis timeout, const Json& arguments) {
  const std::string cmd(command);
  if (!connected()) {
    return unavailable("qmp " + cmd + ": not connected" +
                       (close_reason_.empty() ? "" : " (" + close_reason_ + ")"));
  }
  const Time deadline = clock_.now() + timeout;
  const uint64_t id = next_id_++;
  Json req = {{"execute", cmd}};
  if (arguments.is_object()) req["arguments"] = arguments;
  req["id"] = id;
  std::string line = dump_json(req);
  line.push_back('\n');
  ++stats_.commands;
  waiting_id_ = id;
  have_reply_ = false;
  if (Status s = send_line(line, deadline); !s.ok()) return s.with_context("qmp " + cmd);
  if (!process_buffered()) {
    return unavailable("qmp " + cmd + ": QMP connection lost (" + close_reason_ + ")");
  }
  while (!have_reply_) {
    if (!wait_readable(deadline)) {
      waiting_id_ = 0;
      return timeout_error("qmp " + cmd + ": no reply within " + ms_text(timeout));
    }
    if (read_some() == ReadResult::kClosed) {
      return unavailable("qmp " + cmd + ": QMP connection lost while waiting for the reply (" +
                         close_reason_ + ")");
    }
  }
  have_reply_ = false;
  Json reply = std::move(reply_);
  reply_ = Json();
  return reply_result(cmd, reply);
}

Result<std::string> QmpClient::query_status(Millis timeout) {
  auto r = execute("query-status", timeout);
  if (!r.ok()) return r.status();
  const std::string* status = json_string_member(*r, "status");
  if (!status) return internal_error("qmp query-status: reply has no \"status\" string");
  return *status;
}

Status QmpClient::poll() {
  if (!connected()) {
    return unavailable("QMP not connected" +
                       (close_reason_.empty() ? "" : " (" + close_reason_ + ")"));
  }
  // Bounded so that a peer flooding us cannot keep the owner's loop here.
  for (int i = 0; i < 64; ++i) {
    switch (read_some()) {
      case ReadResult::kWouldBlock:
        return {};
      case ReadResult::kClosed:
        return unavailable("QMP connection lost: " + close_reason_);
      case ReadResult::kData:
        break;
    }
  }
  return {};
}

std::vector<QmpEvent> QmpClient::take_events() {
  std::vector<QmpEvent> out(std::make_move_iterator(events_.begin()),
                            std::make_move_iterator(events_.end()));
  events_.clear();
  return out;
}

Lifecycle lifecycle_from_event(std::string_view event) {
  if (event == "GUEST_PANICKED") return medic::v1::LIFECYCLE_PANICKED;
  if (event == "WATCHDOG") return medic::v1::LIFECYCLE_WATCHDOG;
  if (event == "STOP") return medic::v1::LIFECYCLE_STOPPED;
  if (event == "RESUME") return medic::v1::LIFECYCLE_RESUMED;
  if (event == "SHUTDOWN") return medic::v1::LIFECYCLE_SHUTDOWN;
  if (event == "RESET") return medic::v1::LIFECYCLE_RESET;
  return medic::v1::LIFECYCLE_UNSPECIFIED;
}

VmState state_from_qmp_status(std::string_view s) {
  if (s == "running" || s == "colo") return medic::v1::VM_STATE_RUNNING;
  if (s == "guest-panicked") return medic::v1::VM_STATE_PANICKED;
  if (s == "prelaunch" || s == "inmigrate") return medic::v1::VM_STATE_BOOTING;
  // With shutdown=pause QEMU keeps a powered-off guest in "shutdown".
  if (s == "shutdown") return medic::v1::VM_STATE_STOPPED;
  if (s == "paused" || s == "suspended" || s == "debug" || s == "watchdog" || s == "io-error" ||
      s == "internal-error" || s == "finish-migrate" || s == "postmigrate" || s == "save-vm" ||
      s == "restore-vm") {
    return medic::v1::VM_STATE_PAUSED;
  }
  return medic::v1::VM_STATE_UNSPECIFIED;
}

}  // namespace medic::vmm::qmp
