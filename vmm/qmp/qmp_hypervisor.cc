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
#include <filesystem>
#include <fstream>

#include "core/json.h"
#include "vmm/qmp/qmp_vm.h"

namespace medic::vmm::qmp {
namespace {

using std::chrono::milliseconds;

milliseconds left_until(const Clock& clock, Time deadline) {
  auto l = std::chrono::duration_cast<milliseconds>(deadline - clock.now());
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

QmpHypervisor::QmpHypervisor(std::string host, std::vector<VmSpec> specs, Clock& clock,
                             QmpHypervisorOptions opts)
    : host_(std::move(host)), clock_(clock), opts_(opts), agent_(clock, opts.guest_agent) {
  for (auto& s : specs) vms_.push_back(std::make_unique<Vm>(std::move(s), clock_));
  load_clones();
  if (!opts_.state_dir.empty()) {
    std::error_code ec;  // a state_dir that does not exist yet holds no stop
    for (auto& v : vms_) {
      v->kept_stopped = std::filesystem::exists(stop_file(*v), ec);
      if (v->kept_stopped) {
        spdlog::info(
            "qmp: {}: stopped on purpose before the agent started ({}); left stopped "
            "until a start",
            v->spec().name, stop_file(*v));
      }
    }
  }
  status_timer_ = clock_.schedule_after(opts_.status_interval, [this] { status_tick(); });
}

QmpHypervisor::~QmpHypervisor() {
  clock_.cancel(status_timer_);
  for (auto& v : vms_) {
    if (v->verb) v->verb->cancel_timers(clock_);  // its done is not called
  }
  for (auto& v : vms_) {
    if (v->hb_fd >= 0) ::close(v->hb_fd);
  }
  // A clone not yet started is half-made: its qemu-img dies with it.
  for (auto& c : clones_) {
    c->qemu_img.reset();
    std::error_code ec;
    if (!c->finished) std::filesystem::remove_all(c->dir, ec);
  }
  // Each Launcher kills its QEMU as it is destroyed.
}

QmpHypervisor::Vm* QmpHypervisor::find(const std::string& id_or_name) {
  for (auto& v : vms_) {
    if (v->dropped) continue;
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
  for (const auto& c : clones_) {
    if (c->qemu_img) c->qemu_img->append_fds(&out);
  }
  agent_.append_fds(&out);
  if (!completions_.empty() && completions_.fd() >= 0) out.push_back(completions_.fd());
  return out;
}

Status QmpHypervisor::ensure_qmp(Vm& v, milliseconds timeout) {
  if (v.qmp.ready()) return {};
  v.qmp_was_ready = false;  // a handshake still in flight is started over
  v.status_query = 0;
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
  // The guest writes, so it runs, whether or not query-status has said so.
  if (v.state == medic::v1::VM_STATE_BOOTING) v.state = medic::v1::VM_STATE_RUNNING;
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
    if (what == medic::v1::LIFECYCLE_WATCHDOG) detail = watchdog_detail(v, ev.data);
    emit_lifecycle(v, what, std::move(detail));
  }
}

// "action=reset: ..." first, so a rule can tell (event.detail matches
// "^action=reset") whether QEMU already acted on the guest itself.
std::string QmpHypervisor::watchdog_detail(const Vm& v, const Json& data) {
  const std::string* given = json_string_member(data, "action");
  const std::string action = given ? *given : v.spec().watchdog_action;
  if (action == "reset") {
    return "action=reset: WATCHDOG fired and QEMU reset the guest itself";
  }
  if (qemu_acts_on_watchdog(action)) {
    return "action=" + action + ": WATCHDOG fired and QEMU ended the guest itself";
  }
  return "action=" + action + ": WATCHDOG fired; QEMU left the guest as it was";
}

void QmpHypervisor::check_process(Vm& v) {
  if (v.launcher.running()) return;
  auto status = v.launcher.take_exit();
  if (!status) return;  // not started, or this exit was handled already
  // QEMU's last words (SHUTDOWN) may still be in the socket.
  if (v.qmp.connected()) (void)v.qmp.poll();
  drain_qmp_events(v);
  take_replies(v);  // a verb's reply read together with QEMU's exit
  v.qmp.close();
  forget_status(v);
  if (v.hb_fd >= 0) {
    read_heartbeat(v);
    if (v.hb_fd >= 0) ::close(v.hb_fd);
    v.hb_fd = -1;
  }
  if (v.verb && v.verb->launching && !v.stopping) {
    // A QEMU that never came up did not crash: the start failed.
    v.state = medic::v1::VM_STATE_STOPPED;
    const std::string tail = v.launcher.log_tail(1024);
    finish_verb(v, unavailable(exit_text(*status) + " before its QMP socket " +
                               v.spec().qmp_socket + " was ready" +
                               (tail.empty() ? "" : ": " + tail)));
    return;
  }
  const bool ending = v.verb && v.verb->ending_qemu();
  if (!ending) finish_verb(v, unavailable(exit_text(*status) + " before the verb was done"));
  if (v.stopping) {
    v.state = medic::v1::VM_STATE_STOPPED;
    if (ending) on_qemu_ended(v);
    return;
  }
  if (v.guest_powered_off && v.reboot_pending) {
    // The second half of reboot: the guest powered off, start it again.
    relaunch(v, "reboot: guest powered off");
    return;
  }
  if (v.guest_powered_off && v.spec().on_guest_poweroff == OnGuestPoweroff::kRestart) {
    relaunch(v, "on_guest_poweroff: restart: guest powered off");
    return;
  }
  if (v.guest_powered_off) {
    // The guest chose to stop: an intended stop, left alone (restart is
    // refused for it; start brings it back).
    v.state = medic::v1::VM_STATE_STOPPED;
    intended_stop(v, true);
    spdlog::info("qmp: {}: the guest powered itself off: an intended stop, left stopped",
                 v.spec().name);
    emit_lifecycle(v, medic::v1::LIFECYCLE_STOPPED,
                   "guest powered off: intended stop (on_guest_poweroff: stop)");
    return;
  }
  ++stats_.crashes;
  v.state = medic::v1::VM_STATE_CRASHED;
  std::string why = exit_text(*status);
  std::string tail = v.launcher.log_tail(512);
  spdlog::warn("qmp: {}: {}{}", v.spec().name, why, tail.empty() ? "" : ": " + tail);
  emit_lifecycle(v, medic::v1::LIFECYCLE_CRASHED, why);
}

// QEMU is started again after its guest powered off (reboot, or
// on_guest_poweroff: restart), without a verb: the guest boots anew.
void QmpHypervisor::relaunch(Vm& v, const std::string& why) {
  v.reboot_pending = false;
  v.guest_powered_off = false;
  v.heard_since_boot = false;
  Status s = v.launcher.spawn();
  if (s.ok()) {
    ++stats_.launches;
    v.state = medic::v1::VM_STATE_BOOTING;
    emit_lifecycle(v, medic::v1::LIFECYCLE_STARTED, why + ", QEMU started");
    return;
  }
  spdlog::warn("qmp: {}: {}: start failed: {}", v.spec().name, why, s.to_string());
  v.state = medic::v1::VM_STATE_CRASHED;
  emit_lifecycle(v, medic::v1::LIFECYCLE_CRASHED, why + ": start failed: " + s.message());
}

size_t QmpHypervisor::start_desired(Duration timeout) {
  size_t begun = 0;
  for (auto& vp : vms_) {
    Vm& v = *vp;
    if (v.dropped || v.spec().desired != Desired::kRunning || v.launcher.running() || v.verb ||
        v.kept_stopped)
      continue;
    ++begun;
    const std::string name = v.spec().name;
    spdlog::info("qmp: {}: desired running: starting it", name);
    start_verb(v, medic::v1::VERB_START, timeout, [name](Status s) {
      if (s.ok()) {
        spdlog::info("qmp: {}: started (desired running)", name);
      } else {
        spdlog::error("qmp: {}: desired running, but it did not start: {}", name, s.to_string());
      }
    });
  }
  return begun;
}

// QEMU ended as stop, restart or delete asked: stop is done, restart starts
// it again, delete removes the clone.
void QmpHypervisor::on_qemu_ended(Vm& v) {
  if (v.verb->verb == medic::v1::VERB_DELETE) {
    emit_lifecycle(v, medic::v1::LIFECYCLE_STOPPED, "delete: QEMU ended");
    finish_verb(v, Status{});
    delete_now(v);
    return;
  }
  if (v.verb->verb == medic::v1::VERB_RESTART) {
    if (v.verb->kill_timer != 0) clock_.cancel(v.verb->kill_timer);
    v.verb->kill_timer = 0;
    begin_launch(v);
    return;
  }
  intended_stop(v, true);
  emit_lifecycle(v, medic::v1::LIFECYCLE_STOPPED, "stop: QEMU ended");
  finish_verb(v, Status{});
}

std::string QmpHypervisor::stop_file(const Vm& v) const {
  return (std::filesystem::path(opts_.state_dir) / (v.spec().name + ".stopped")).string();
}

void QmpHypervisor::intended_stop(Vm& v, bool stopped) {
  v.stopped_on_purpose = stopped;
  if (opts_.state_dir.empty() || v.kept_stopped == stopped) return;
  v.kept_stopped = stopped;
  const std::string path = stop_file(v);
  std::error_code ec;
  if (!stopped) {
    std::filesystem::remove(path, ec);
  } else {
    std::filesystem::create_directories(opts_.state_dir, ec);
    std::ofstream f(path, std::ios::trunc);
    f << "stopped on purpose at " << to_ns(clock_.now()) << " ns; a start removes this file\n";
    f.flush();
    if (!f) ec = std::make_error_code(std::errc::io_error);
  }
  if (ec) {
    spdlog::warn("qmp: {}: cannot {} {}: {}; an agent restart may {} it", v.spec().name,
                 stopped ? "write" : "remove", path, ec.message(), stopped ? "start" : "not start");
  }
}

void QmpHypervisor::poll() {
  sweep_dropped();
  pump_clones();
  for (auto& vp : vms_) {
    Vm& v = *vp;
    if (v.dropped) continue;
    if (v.qmp.connected()) (void)v.qmp.poll();
    take_replies(v);
    drain_qmp_events(v);
    check_process(v);
    if (!v.launcher.running()) continue;
    pump_status(v);
    connect_heartbeat(v);
    if (v.hb_fd >= 0) read_heartbeat(v);
  }
  agent_.poll();
  completions_.deliver();
  sweep_dropped();
}

VmInfo QmpHypervisor::info(Vm& v) {
  VmInfo i;
  i.id = v.spec().uuid;
  i.name = v.spec().name;
  i.labels = v.spec().labels;
  // What the VM is meant to be (medic vm show; a rule may read it too): the
  // spec's desired state, until the VM stopped on purpose.
  const bool meant_to_run = v.spec().desired == Desired::kRunning && !v.stopped_on_purpose;
  i.labels["desired"] = meant_to_run ? "running" : "stopped";
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
  if (v.missed >= opts_.unresponsive_after) {
    i.state = medic::v1::VM_STATE_UNRESPONSIVE;  // QEMU runs, QMP does not answer
    return i;
  }
  if (i.state == medic::v1::VM_STATE_RUNNING && !v.spec().heartbeat_socket.empty() &&
      !v.heard_since_boot) {
    i.state = medic::v1::VM_STATE_BOOTING;
  }
  return i;
}

Result<std::vector<VmInfo>> QmpHypervisor::list() {
  std::vector<VmInfo> out;
  for (auto& v : vms_) {
    if (!v->dropped) out.push_back(info(*v));
  }
  return out;
}

Result<VmInfo> QmpHypervisor::get(const std::string& vm) {
  Vm* v = find(vm);
  if (!v) return not_found("no VM " + vm + " on host " + host_);
  return info(*v);
}

Result<Json> QmpHypervisor::qmp_command(const std::string& vm, const std::string& command,
                                        milliseconds timeout, const Json& arguments) {
  Vm* v = find(vm);
  if (!v) return not_found("no VM " + vm + " on host " + host_);
  const Time deadline = clock_.now() + timeout;
  MEDIC_RETURN_IF_ERROR(ensure_qmp(*v, timeout));
  return v->qmp.execute(command, left_until(clock_, deadline), arguments);
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
    if (!v->dropped && !v->spec().guest_agent_socket.empty()) return true;
  }
  return false;
}

void QmpHypervisor::register_counters(CounterRegistry& r) {
  const QmpHypervisorStats& q = stats_;
  r.observe(
      "qmp_status_queries_total", {}, [&q] { return q.status_queries; },
      "query-status sent to the QEMUs of this host");
  r.observe("qmp_status_replies_total", {}, [&q] { return q.status_replies; });
  r.observe(
      "qmp_unresponsive_total", {}, [&q] { return q.unresponsive; },
      "times a QEMU stopped answering QMP (reported unresponsive)");
  r.observe("qmp_launches_total", {}, [&q] { return q.launches; });
  r.observe(
      "qmp_crashes_total", {}, [&q] { return q.crashes; }, "QEMU processes that died");
  r.observe("qmp_heartbeats_total", {}, [&q] { return q.heartbeats; });
  r.observe("qmp_bad_heartbeat_lines_total", {}, [&q] { return q.bad_heartbeat_lines; });
  const GuestAgentStats& g = agent_.stats();
  const std::pair<const char*, const uint64_t*> failures[] = {
      {"connect", &g.connect_failures},  {"timeout", &g.timeouts},
      {"error_reply", &g.error_replies}, {"closed", &g.closed},
      {"bad_reply", &g.bad_replies},     {"no_socket", &g.no_socket}};
  for (const auto& [cause, value] : failures) {
    const uint64_t* v = value;
    r.observe(
        "guest_agent_failures_total", {{"cause", cause}}, [v] { return *v; },
        "qemu-guest-agent pings that got no good answer");
  }
  r.observe("guest_agent_pings_total", {}, [&g] { return g.pings; });
}

}  // namespace medic::vmm::qmp
