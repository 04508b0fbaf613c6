#include "vmm/qmp/qmp_hypervisor.h"

#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>

namespace medic::vmm::qmp {
namespace {

using SteadyClock = std::chrono::steady_clock;
using std::chrono::milliseconds;

milliseconds left_until(SteadyClock::time_point deadline) {
  auto l = std::chrono::duration_cast<milliseconds>(deadline - SteadyClock::now());
  return l < milliseconds(1) ? milliseconds(1) : l;
}

bool alive_state(VmState s) {
  return s != medic::v1::VM_STATE_STOPPED && s != medic::v1::VM_STATE_CRASHED;
}

std::string exit_text(int status) {
  return status < 0 ? "QEMU was killed by signal " + std::to_string(-status)
                    : "QEMU exited with status " + std::to_string(status);
}

int connect_unix_nonblocking(const std::string& path) {
  sockaddr_un addr{};
  if (path.empty() || path.size() >= sizeof addr.sun_path) return -1;
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return -1;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

}  // namespace

struct QmpHypervisor::Vm {
  explicit Vm(VmSpec s) : launcher(std::move(s)) {}
  const VmSpec& spec() const { return launcher.spec(); }

  Launcher launcher;
  QmpClient qmp;
  int hb_fd = -1;
  std::string hb_buf;
  bool hb_discarding = false;  // inside an over-long line, until its newline

  VmState state = medic::v1::VM_STATE_STOPPED;
  bool stopped_on_purpose = true;  // never started, or stopped by a verb
  bool stopping = false;           // we asked QEMU to go: its exit is no crash
  bool guest_powered_off = false;  // SHUTDOWN from the guest: its exit is no crash
  bool reboot_pending = false;     // reboot verb: start again after the power-off
  bool heard_since_boot = false;
  Time last_heartbeat{};
};

QmpHypervisor::QmpHypervisor(std::string host, std::vector<VmSpec> specs, Clock& clock,
                             QmpHypervisorOptions opts)
    : host_(std::move(host)), clock_(clock), opts_(opts), agent_(clock, opts.guest_agent) {
  for (auto& s : specs) vms_.push_back(std::make_unique<Vm>(std::move(s)));
}

QmpHypervisor::~QmpHypervisor() {
  for (auto& v : vms_) {
    if (v->hb_fd >= 0) ::close(v->hb_fd);
  }
  // Each Launcher kills its QEMU as it is destroyed.
}

QmpHypervisor::Vm* QmpHypervisor::find(const std::string& id_or_name) {
  for (auto& v : vms_) {
    if (v->spec().uuid == id_or_name || v->spec().name == id_or_name) return v.get();
  }
  return nullptr;
}

void QmpHypervisor::emit_lifecycle(Vm& v, Lifecycle what, std::string detail) {
  if (!sink_) return;
  VmEvent e;
  e.type = VmEvent::Type::kLifecycle;
  e.vm = v.spec().uuid;
  e.what = what;
  e.detail = std::move(detail);
  e.at = clock_.now();
  sink_(e);
}

std::vector<int> QmpHypervisor::fds() const {
  std::vector<int> out;
  for (const auto& v : vms_) {
    if (v->qmp.fd() >= 0) out.push_back(v->qmp.fd());
    if (v->hb_fd >= 0) out.push_back(v->hb_fd);
    if (v->launcher.exit_fd() >= 0) out.push_back(v->launcher.exit_fd());
  }
  agent_.append_fds(&out);
  if (!completions_.empty() && completions_.fd() >= 0) out.push_back(completions_.fd());
  return out;
}

Status QmpHypervisor::ensure_qmp(Vm& v, milliseconds timeout) {
  if (v.qmp.connected()) return {};
  if (!v.launcher.running()) {
    return unavailable("QEMU of " + v.spec().name + " is not running");
  }
  return v.qmp.connect(v.spec().qmp_socket, timeout);
}

void QmpHypervisor::connect_heartbeat(Vm& v) {
  if (v.hb_fd >= 0 || v.spec().heartbeat_socket.empty()) return;
  v.hb_fd = connect_unix_nonblocking(v.spec().heartbeat_socket);
  v.hb_buf.clear();
  v.hb_discarding = false;
}

void QmpHypervisor::handle_heartbeat_line(Vm& v, std::string_view line) {
  while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.remove_suffix(1);
  while (!line.empty() && (line.front() == '\r' || line.front() == ' ')) line.remove_prefix(1);
  if (line.empty()) return;
  uint64_t counter = 0;
  const char* begin = line.data() + 3;
  const char* end = line.data() + line.size();
  if (line.size() < 4 || line.substr(0, 3) != "hb " ||
      std::from_chars(begin, end, counter).ptr != end) {
    ++stats_.bad_heartbeat_lines;
    return;
  }
  ++stats_.heartbeats;
  v.heard_since_boot = true;
  v.last_heartbeat = clock_.now();
  if (!sink_) return;
  VmEvent e;
  e.type = VmEvent::Type::kHeartbeat;
  e.vm = v.spec().uuid;
  e.counter = counter;
  e.at = v.last_heartbeat;
  sink_(e);
}

void QmpHypervisor::read_heartbeat(Vm& v) {
  char chunk[4096];
  for (int i = 0; i < 64 && v.hb_fd >= 0; ++i) {
    ssize_t n = ::read(v.hb_fd, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    if (n <= 0) {  // QEMU went away or closed the channel
      ::close(v.hb_fd);
      v.hb_fd = -1;
      return;
    }
    for (ssize_t k = 0; k < n; ++k) {
      char c = chunk[k];
      if (c == '\n') {
        if (!v.hb_discarding) handle_heartbeat_line(v, v.hb_buf);
        v.hb_buf.clear();
        v.hb_discarding = false;
      } else if (!v.hb_discarding) {
        v.hb_buf.push_back(c);
        if (v.hb_buf.size() > opts_.max_heartbeat_line) {
          ++stats_.bad_heartbeat_lines;
          v.hb_buf.clear();
          v.hb_discarding = true;
        }
      }
    }
  }
}

void QmpHypervisor::drain_qmp_events(Vm& v) {
  for (auto& ev : v.qmp.take_events()) {
    Lifecycle what = lifecycle_from_event(ev.name);
    if (what == medic::v1::LIFECYCLE_UNSPECIFIED) continue;
    switch (what) {
      case medic::v1::LIFECYCLE_PANICKED:
        v.state = medic::v1::VM_STATE_PANICKED;
        break;
      case medic::v1::LIFECYCLE_STOPPED:
        if (v.state != medic::v1::VM_STATE_PANICKED) v.state = medic::v1::VM_STATE_PAUSED;
        break;
      case medic::v1::LIFECYCLE_RESUMED:
        v.state = medic::v1::VM_STATE_RUNNING;
        break;
      case medic::v1::LIFECYCLE_RESET:
        v.heard_since_boot = false;
        v.state = medic::v1::VM_STATE_BOOTING;
        break;
      case medic::v1::LIFECYCLE_SHUTDOWN: {
        const Json* guest = json_member(ev.data, "guest");
        if (guest && guest->is_boolean() && guest->get<bool>()) v.guest_powered_off = true;
        v.state = medic::v1::VM_STATE_SHUTTING_DOWN;
        break;
      }
      default:
        break;
    }
    std::string detail = ev.name;
    if (!ev.data.is_null()) detail += " " + ev.data.dump().substr(0, 240);
    emit_lifecycle(v, what, std::move(detail));
  }
}

void QmpHypervisor::check_process(Vm& v) {
  if (v.launcher.running()) return;
  auto status = v.launcher.take_exit();
  if (!status) return;  // not started, or this exit was handled already
  // QEMU's last words (SHUTDOWN) may still be in the socket.
  if (v.qmp.connected()) (void)v.qmp.poll();
  drain_qmp_events(v);
  v.qmp.close();
  if (v.hb_fd >= 0) {
    read_heartbeat(v);
    if (v.hb_fd >= 0) ::close(v.hb_fd);
    v.hb_fd = -1;
  }
  if (v.stopping) {
    v.state = medic::v1::VM_STATE_STOPPED;
    return;
  }
  if (v.guest_powered_off && v.reboot_pending) {
    // The second half of reboot: the guest powered off, start it again.
    v.reboot_pending = false;
    v.guest_powered_off = false;
    v.heard_since_boot = false;
    Status s = v.launcher.spawn();
    if (s.ok()) {
      ++stats_.launches;
      v.state = medic::v1::VM_STATE_BOOTING;
      emit_lifecycle(v, medic::v1::LIFECYCLE_STARTED, "reboot: guest powered off, QEMU started");
    } else {
      spdlog::warn("qmp: {}: start after reboot failed: {}", v.spec().name, s.to_string());
      v.state = medic::v1::VM_STATE_CRASHED;
      emit_lifecycle(v, medic::v1::LIFECYCLE_CRASHED, "reboot: start failed: " + s.message());
    }
    return;
  }
  if (v.guest_powered_off) {
    v.state = medic::v1::VM_STATE_STOPPED;
    v.stopped_on_purpose = true;
    return;
  }
  ++stats_.crashes;
  v.state = medic::v1::VM_STATE_CRASHED;
  std::string why = exit_text(*status);
  std::string tail = v.launcher.log_tail(512);
  spdlog::warn("qmp: {}: {}{}", v.spec().name, why, tail.empty() ? "" : ": " + tail);
  emit_lifecycle(v, medic::v1::LIFECYCLE_CRASHED, why);
}

void QmpHypervisor::poll() {
  for (auto& vp : vms_) {
    Vm& v = *vp;
    if (v.qmp.connected()) (void)v.qmp.poll();
    drain_qmp_events(v);
    check_process(v);
    if (!v.launcher.running()) continue;
    // A QEMU we started but could not reach yet (reboot, or a slow start).
    // QEMU greets at once on accept, so a short handshake keeps poll() quick.
    if (!v.qmp.connected() && unix_socket_listening(v.spec().qmp_socket)) {
      if (Status s = ensure_qmp(v, std::min(opts_.qmp_timeout, milliseconds(250))); !s.ok()) {
        spdlog::debug("qmp: {}: {}", v.spec().name, s.to_string());
      }
    }
    connect_heartbeat(v);
    if (v.hb_fd >= 0) read_heartbeat(v);
  }
  agent_.poll();
  completions_.deliver();
}

VmInfo QmpHypervisor::info(Vm& v) {
  VmInfo i;
  i.id = v.spec().uuid;
  i.name = v.spec().name;
  i.labels = v.spec().labels;
  i.last_heartbeat = v.last_heartbeat;
  i.pid = v.launcher.pid();
  if (!v.launcher.running()) {
    i.pid = 0;
    if (!alive_state(v.state)) {
      i.state = v.state;
    } else if (v.stopping || v.guest_powered_off) {
      i.state = v.reboot_pending ? medic::v1::VM_STATE_BOOTING : medic::v1::VM_STATE_STOPPED;
    } else {
      i.state = medic::v1::VM_STATE_CRASHED;  // poll() will report the crash
    }
    return i;
  }
  i.state = v.state;
  if (ensure_qmp(v, opts_.qmp_timeout).ok()) {
    auto status = v.qmp.query_status(opts_.qmp_timeout);
    if (status.ok()) {
      VmState s = state_from_qmp_status(*status);
      if (s != medic::v1::VM_STATE_UNSPECIFIED) i.state = s;
    }
  }
  if (i.state == medic::v1::VM_STATE_RUNNING && !v.spec().heartbeat_socket.empty() &&
      !v.heard_since_boot) {
    i.state = medic::v1::VM_STATE_BOOTING;
  }
  return i;
}

Result<std::vector<VmInfo>> QmpHypervisor::list() {
  std::vector<VmInfo> out;
  for (auto& v : vms_) out.push_back(info(*v));
  return out;
}

Result<VmInfo> QmpHypervisor::get(const std::string& vm) {
  Vm* v = find(vm);
  if (!v) return not_found("no VM " + vm + " on host " + host_);
  return info(*v);
}

Status QmpHypervisor::launch(Vm& v, SteadyClock::time_point deadline, const std::string& why) {
  (void)v.launcher.take_exit();  // an earlier exit is history now
  v.qmp.close();
  if (v.hb_fd >= 0) ::close(v.hb_fd);
  v.hb_fd = -1;
  v.stopping = false;
  v.guest_powered_off = false;
  v.reboot_pending = false;
  v.heard_since_boot = false;
  if (Status s = v.launcher.start(left_until(deadline)); !s.ok()) {
    (void)v.launcher.take_exit();  // a QEMU that never came up did not crash
    return s;
  }
  ++stats_.launches;
  v.stopped_on_purpose = false;
  v.state = medic::v1::VM_STATE_BOOTING;
  emit_lifecycle(v, medic::v1::LIFECYCLE_STARTED, why);
  connect_heartbeat(v);
  return ensure_qmp(v, left_until(deadline));
}

Status QmpHypervisor::stop_process(Vm& v, SteadyClock::time_point deadline) {
  v.stopping = true;
  if (v.launcher.running()) {
    // Ask politely with half the time, then SIGKILL with what is left.
    auto polite = SteadyClock::now() + (deadline - SteadyClock::now()) / 2;
    if (ensure_qmp(v, left_until(polite)).ok()) {
      auto r = v.qmp.execute("quit", left_until(polite));
      // QEMU may close the socket before its reply arrives: that is a yes.
      if (r.ok() || r.status().code() == Code::kUnavailable) {
        while (v.launcher.running() && SteadyClock::now() < polite) {
          pollfd p{v.launcher.exit_fd(), POLLIN, 0};
          ::poll(&p, p.fd >= 0 ? 1 : 0,
                 static_cast<int>(std::min<int64_t>(left_until(polite).count(), 20)));
        }
      }
    }
    if (v.launcher.running()) MEDIC_RETURN_IF_ERROR(v.launcher.kill(left_until(deadline)));
  }
  check_process(v);  // collects the exit and closes the channels
  v.state = medic::v1::VM_STATE_STOPPED;
  return {};
}

void QmpHypervisor::execute(Verb verb, const std::string& vm, Duration timeout, VerbDone done) {
  completions_.push(std::move(done), run_verb(verb, vm, timeout));
}

Status QmpHypervisor::run_verb(Verb verb, const std::string& vm, Duration timeout) {
  Vm* vp = find(vm);
  if (!vp) return not_found("no VM " + vm + " on host " + host_);
  Vm& v = *vp;
  const auto deadline =
      SteadyClock::now() + std::chrono::duration_cast<SteadyClock::duration>(timeout);
  // Report what happened before this verb first, so the sink sees order.
  if (v.qmp.connected()) (void)v.qmp.poll();
  drain_qmp_events(v);
  check_process(v);
  const bool running = v.launcher.running();
  const std::string what = std::string(verb_name(verb)) + " " + v.spec().name;
  auto refuse = [&](const std::string& why) {
    return failed_precondition("cannot " + what + ": " + why);
  };
  auto no_process = [&] {
    return refuse(std::string("it is ") + state_name(v.state) + " (no QEMU process)");
  };
  switch (verb) {
    case medic::v1::VERB_RESET: {
      if (!running) return no_process();
      MEDIC_RETURN_IF_ERROR(ensure_qmp(v, left_until(deadline)).with_context(what));
      auto before = v.qmp.query_status(left_until(deadline));
      if (!before.ok()) return before.status().with_context(what);
      auto r = v.qmp.execute("system_reset", left_until(deadline));
      if (!r.ok()) return r.status().with_context(what);
      v.heard_since_boot = false;
      v.reboot_pending = false;  // a reboot the guest ignored is superseded
      if (*before != "running") {
        auto c = v.qmp.execute("cont", left_until(deadline));
        if (!c.ok()) return c.status().with_context(what);
      }
      drain_qmp_events(v);
      return {};
    }
    case medic::v1::VERB_REBOOT: {
      if (!running) return no_process();
      MEDIC_RETURN_IF_ERROR(ensure_qmp(v, left_until(deadline)).with_context(what));
      auto r = v.qmp.execute("system_powerdown", left_until(deadline));
      if (!r.ok()) return r.status().with_context(what);
      v.reboot_pending = true;
      drain_qmp_events(v);
      return {};
    }
    case medic::v1::VERB_STOP: {
      if (!running && v.state == medic::v1::VM_STATE_STOPPED)
        return refuse("it is already stopped");
      MEDIC_RETURN_IF_ERROR(stop_process(v, deadline).with_context(what));
      v.stopped_on_purpose = true;
      emit_lifecycle(v, medic::v1::LIFECYCLE_STOPPED, "stop: QEMU ended");
      return {};
    }
    case medic::v1::VERB_START: {
      if (running) {
        return refuse("its QEMU is running (pid " + std::to_string(v.launcher.pid()) +
                      "); a VM is never started twice");
      }
      return launch(v, deadline, "start").with_context(what);
    }
    case medic::v1::VERB_RESTART: {
      if (!running && v.stopped_on_purpose) return refuse("it was stopped on purpose; use start");
      if (running) MEDIC_RETURN_IF_ERROR(stop_process(v, deadline).with_context(what));
      return launch(v, deadline, "restart").with_context(what);
    }
    default:
      return invalid_argument("unknown verb " + std::to_string(static_cast<int>(verb)));
  }
}

Result<Json> QmpHypervisor::qmp_command(const std::string& vm, const std::string& command,
                                        milliseconds timeout, const Json& arguments) {
  Vm* v = find(vm);
  if (!v) return not_found("no VM " + vm + " on host " + host_);
  const auto deadline = SteadyClock::now() + timeout;
  MEDIC_RETURN_IF_ERROR(ensure_qmp(*v, timeout));
  return v->qmp.execute(command, left_until(deadline), arguments);
}

Status QmpHypervisor::send_to_guest(const std::string& vm, const std::string& line) {
  Vm* v = find(vm);
  if (!v) return not_found("no VM " + vm + " on host " + host_);
  connect_heartbeat(*v);
  if (v->hb_fd < 0) return unavailable("heartbeat channel of " + v->spec().name + " not connected");
  std::string data = line + "\n";
  ssize_t w = ::send(v->hb_fd, data.data(), data.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  if (w != static_cast<ssize_t>(data.size())) {
    return unavailable("write to the heartbeat channel of " + v->spec().name + " failed");
  }
  return {};
}

void QmpHypervisor::ping_guest_agent(const std::string& vm, Duration timeout,
                                     GuestAgentPinger::Done done) {
  Vm* v = find(vm);
  if (!v) {
    agent_.reject(GuestPingFailure::kUnknownVm, "no VM " + vm + " on host " + host_,
                  std::move(done));
    return;
  }
  const std::string& path = v->spec().guest_agent_socket;
  if (path.empty()) {
    log_limiter_.warn("guest-agent-socket " + v->spec().name, clock_.now(),
                      "qmp: " + v->spec().name +
                          ": guest ping asked for, but its spec has no guest_agent_socket");
    agent_.reject(GuestPingFailure::kNoSocket, v->spec().name + " has no guest_agent_socket",
                  std::move(done));
    return;
  }
  agent_.ping(path, timeout, std::move(done));
}

bool QmpHypervisor::has_guest_agent(const std::string& vm) {
  Vm* v = find(vm);
  return v && !v->spec().guest_agent_socket.empty();
}

bool QmpHypervisor::has_guest_agent() const {
  for (const auto& v : vms_) {
    if (!v->spec().guest_agent_socket.empty()) return true;
  }
  return false;
}

}  // namespace medic::vmm::qmp
