#include "vmm/qmp/guest_agent.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "core/duration.h"
#include "core/json.h"

namespace medic::vmm::qmp {
namespace {

// One ping's replies are tiny; more than this per poll() is a peer flooding
// us, which the line bounds end soon after.
constexpr int kReadsPerPoll = 16;

std::string clip(std::string_view s, size_t max = 120) {
  if (s.size() <= max) return std::string(s);
  return std::string(s.substr(0, max)) + "...";
}

// Connects without blocking: the socket, or -1 with *err set to the errno
// (EAGAIN: the listener's backlog is full; a unix connect is never in
// progress).
int connect_unix(const std::string& path, int* err) {
  sockaddr_un addr{};
  if (path.size() >= sizeof addr.sun_path) {
    *err = ENAMETOOLONG;
    return -1;
  }
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    *err = errno;
    return -1;
  }
  int rc;
  do {
    rc = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  } while (rc != 0 && errno == EINTR);
  if (rc != 0) {
    *err = errno;
    ::close(fd);
    return -1;
  }
  return fd;
}

}  // namespace

const char* guest_ping_failure_name(GuestPingFailure f) {
  switch (f) {
    case GuestPingFailure::kNone:
      return "ok";
    case GuestPingFailure::kUnknownVm:
      return "unknown_vm";
    case GuestPingFailure::kNoSocket:
      return "no_socket";
    case GuestPingFailure::kConnect:
      return "connect";
    case GuestPingFailure::kTimeout:
      return "timeout";
    case GuestPingFailure::kErrorReply:
      return "error_reply";
    case GuestPingFailure::kClosed:
      return "closed";
    case GuestPingFailure::kBadReply:
      return "bad_reply";
  }
  return "unknown";
}

GuestAgentPinger::GuestAgentPinger(Clock& clock, GuestAgentOptions opts)
    : clock_(clock), opts_(opts), ids_(opts.seed != 0 ? opts.seed : std::random_device{}()) {}

GuestAgentPinger::~GuestAgentPinger() {
  for (auto& [serial, x] : exchanges_) {
    if (x.timer) clock_.cancel(x.timer);
    if (x.fd >= 0) ::close(x.fd);
  }
}

uint64_t GuestAgentPinger::start_exchange(Duration timeout, Done done) {
  ++stats_.pings;
  const uint64_t serial = next_serial_++;
  Exchange& x = exchanges_[serial];
  x.started = clock_.now();
  x.done = std::move(done);
  x.on_timer_detail = "no answer within " + format_duration(timeout);
  arm_timer(serial, x.started + timeout);
  return serial;
}

void GuestAgentPinger::arm_timer(uint64_t serial, Time at) {
  Exchange& x = exchanges_.at(serial);
  if (x.timer) clock_.cancel(x.timer);
  x.timer = clock_.schedule_at(at, [this, serial] {
    auto it = exchanges_.find(serial);
    if (it == exchanges_.end()) return;
    it->second.timer = 0;
    finish(serial, {it->second.on_timer, it->second.on_timer_detail, {}});
  });
}

void GuestAgentPinger::fail_soon(uint64_t serial, GuestPingFailure why, std::string detail) {
  Exchange& x = exchanges_.at(serial);
  if (x.fd >= 0) ::close(x.fd);
  x.fd = -1;
  x.path.clear();  // no more connection attempts
  x.on_timer = why;
  x.on_timer_detail = std::move(detail);
  // A timer due now, so `done` still never runs inside ping().
  arm_timer(serial, clock_.now());
}

void GuestAgentPinger::reject(GuestPingFailure why, std::string detail, Done done) {
  const uint64_t serial = start_exchange(Duration::zero(), std::move(done));
  Exchange& x = exchanges_.at(serial);
  x.on_timer = why;
  x.on_timer_detail = std::move(detail);
}

void GuestAgentPinger::ping(const std::string& socket_path, Duration timeout, Done done) {
  if (socket_path.empty()) {
    reject(GuestPingFailure::kNoSocket, "no guest agent socket", std::move(done));
    return;
  }
  const uint64_t serial = start_exchange(timeout, std::move(done));
  Exchange& x = exchanges_.at(serial);
  x.path = socket_path;
  x.sync_id = std::uniform_int_distribution<uint64_t>(1, (uint64_t{1} << 31) - 1)(ids_);
  const Json sync = {{"execute", "guest-sync"}, {"arguments", {{"id", x.sync_id}}}};
  const Json ping = {{"execute", "guest-ping"}};
  x.request = "\xff" + dump_json(sync) + "\n" + dump_json(ping) + "\n";
  try_connect(serial, x);
}

bool GuestAgentPinger::try_connect(uint64_t serial, Exchange& x) {
  int err = 0;
  x.fd = connect_unix(x.path, &err);
  if (x.fd < 0) {
    // QEMU's chardev and qemu-ga serve one client at a time, with a backlog
    // of one: a busy socket is tried again from poll() until the deadline.
    if (err == EAGAIN) {
      ++stats_.connect_retries;
      return false;
    }
    fail_soon(serial, GuestPingFailure::kConnect,
              "guest agent at " + x.path + ": connect: " + std::strerror(err));
    return false;
  }
  GuestPingResult failed;
  if (flush_request(x, &failed) == Step::kDone) {
    fail_soon(serial, failed.failure, failed.detail);
    return false;
  }
  return true;
}

GuestAgentPinger::Step GuestAgentPinger::flush_request(Exchange& x, GuestPingResult* result) {
  while (!x.request.empty()) {
    ssize_t n = ::send(x.fd, x.request.data(), x.request.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    // A full socket buffer: the rest goes out from a later poll().
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return Step::kMore;
    if (n < 0) {
      *result = {GuestPingFailure::kClosed,
                 std::string("sending the request: ") + std::strerror(errno),
                 {}};
      return Step::kDone;
    }
    x.request.erase(0, static_cast<size_t>(n));
  }
  return Step::kMore;
}

GuestAgentPinger::Step GuestAgentPinger::handle_line(Exchange& x, std::string_view line,
                                                     GuestPingResult* result) {
  while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.remove_suffix(1);
  if (line.empty()) return Step::kMore;
  auto reply = parse_json(line);
  if (!x.synced) {
    const Json* ret = reply.ok() ? json_member(*reply, "return") : nullptr;
    if (ret && ret->is_number() && *ret == x.sync_id) {
      x.synced = true;
      return Step::kMore;
    }
    ++stats_.stale_lines;
    x.stale_bytes += line.size() + 1;
    if (x.stale_bytes > opts_.max_stale_bytes) {
      *result = {GuestPingFailure::kBadReply,
                 "more than " + std::to_string(opts_.max_stale_bytes) +
                     " bytes before the guest-sync reply",
                 {}};
      return Step::kDone;
    }
    return Step::kMore;
  }
  if (!reply.ok() || !reply->is_object()) {
    *result = {
        GuestPingFailure::kBadReply, "reply to guest-ping is not a JSON object: " + clip(line), {}};
    return Step::kDone;
  }
  if (const Json* err = json_member(*reply, "error")) {
    const std::string* cls = json_string_member(*err, "class");
    const std::string* desc = json_string_member(*err, "desc");
    *result = {GuestPingFailure::kErrorReply,
               "guest-ping: " + (cls ? *cls : std::string("error")) + ": " +
                   (desc ? clip(*desc) : std::string("(no description)")),
               {}};
    return Step::kDone;
  }
  const Json* ret = json_member(*reply, "return");
  if (ret && ret->is_object() && ret->empty()) {
    *result = {};
    return Step::kDone;
  }
  *result = {GuestPingFailure::kBadReply, "unexpected reply to guest-ping: " + clip(line), {}};
  return Step::kDone;
}

GuestAgentPinger::Step GuestAgentPinger::read_replies(Exchange& x, GuestPingResult* result) {
  size_t nl;
  while ((nl = x.input.find('\n')) != std::string::npos) {
    std::string line = x.input.substr(0, nl);
    x.input.erase(0, nl + 1);
    if (line.size() > opts_.max_line_bytes) break;  // reported below
    if (handle_line(x, line, result) == Step::kDone) return Step::kDone;
  }
  if (x.input.size() > opts_.max_line_bytes || nl != std::string::npos) {
    *result = {GuestPingFailure::kBadReply,
               "a reply line longer than " + std::to_string(opts_.max_line_bytes) + " bytes",
               {}};
    return Step::kDone;
  }
  return Step::kMore;
}

void GuestAgentPinger::poll() {
  std::vector<std::pair<uint64_t, GuestPingResult>> decided;
  char chunk[4096];
  for (auto& [serial, x] : exchanges_) {
    if (x.fd < 0 && (x.path.empty() || !try_connect(serial, x))) continue;
    GuestPingResult r;
    Step step = flush_request(x, &r);
    for (int i = 0; i < kReadsPerPoll && step == Step::kMore; ++i) {
      ssize_t n = ::recv(x.fd, chunk, sizeof chunk, MSG_DONTWAIT);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
      if (n <= 0) {
        r = {GuestPingFailure::kClosed,
             n == 0 ? std::string(x.synced ? "the agent closed the connection after guest-sync"
                                           : "the agent closed the connection before guest-sync")
                    : std::string("reading: ") + std::strerror(errno),
             {}};
        step = Step::kDone;
        break;
      }
      x.input.append(chunk, static_cast<size_t>(n));
      step = read_replies(x, &r);
    }
    if (step == Step::kDone) decided.emplace_back(serial, std::move(r));
  }
  for (auto& [serial, r] : decided) finish(serial, std::move(r));
}

void GuestAgentPinger::finish(uint64_t serial, GuestPingResult result) {
  auto node = exchanges_.extract(serial);
  if (node.empty()) return;
  Exchange& x = node.mapped();
  if (x.timer) clock_.cancel(x.timer);
  if (x.fd >= 0) ::close(x.fd);
  result.latency = clock_.now() - x.started;
  count(result);
  // The exchange is out of the table first, so `done` may start new pings.
  if (x.done) x.done(result);
}

void GuestAgentPinger::append_fds(std::vector<int>* out) const {
  for (const auto& [serial, x] : exchanges_) {
    if (x.fd >= 0) out->push_back(x.fd);
  }
}

void GuestAgentPinger::count(const GuestPingResult& r) {
  switch (r.failure) {
    case GuestPingFailure::kNone:
      ++stats_.answered;
      break;
    case GuestPingFailure::kUnknownVm:
      ++stats_.unknown_vm;
      break;
    case GuestPingFailure::kNoSocket:
      ++stats_.no_socket;
      break;
    case GuestPingFailure::kConnect:
      ++stats_.connect_failures;
      break;
    case GuestPingFailure::kTimeout:
      ++stats_.timeouts;
      break;
    case GuestPingFailure::kErrorReply:
      ++stats_.error_replies;
      break;
    case GuestPingFailure::kClosed:
      ++stats_.closed;
      break;
    case GuestPingFailure::kBadReply:
      ++stats_.bad_replies;
      break;
  }
}

}  // namespace medic::vmm::qmp
