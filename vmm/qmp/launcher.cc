#include "vmm/qmp/launcher.h"

#include <fcntl.h>
#include <linux/kvm.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>

#include <spdlog/spdlog.h>

#include <yaml-cpp/yaml.h>

#include "core/config.h"
#include "core/subprocess.h"

namespace medic::vmm::qmp {
namespace {

namespace fs = std::filesystem;

bool valid_name(const std::string& s) {
  if (s.empty() || s.size() > 64) return false;
  for (char c : s) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-')) {
      return false;
    }
  }
  return true;
}

bool valid_uuid(const std::string& s) {
  if (s.size() != 36) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash ? s[i] != '-' : !std::isxdigit(static_cast<unsigned char>(s[i]))) return false;
  }
  return true;
}

// "256", "256M", "256MiB", "1G", "1GiB" -> MiB.
std::optional<int64_t> parse_memory_mib(const std::string& s) {
  size_t i = 0;
  int64_t n = 0;
  while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) {
    if (n > (int64_t{1} << 40)) return std::nullopt;
    n = n * 10 + (s[i++] - '0');
  }
  if (i == 0) return std::nullopt;
  std::string unit = s.substr(i);
  if (unit.empty() || unit == "M" || unit == "MiB") return n;
  if (unit == "G" || unit == "GiB") return n * 1024;
  return std::nullopt;
}

// QEMU splits option values at ',' unless it is doubled.
std::string qemu_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    out.push_back(c);
    if (c == ',') out.push_back(',');
  }
  return out;
}

std::string resolve(const std::string& p, const std::string& base_dir) {
  if (p.empty() || p[0] == '/' || base_dir.empty()) return p;
  return (fs::path(base_dir) / p).lexically_normal().string();
}

// A VM's spec, or a template's: a template has no uuid (each clone gets its
// own) and its socket and log paths only say which of them its clones have
// (they live in the clone's directory), so none of them is required.
enum class SpecKind { kVm, kTemplate };

class SpecReader {
 public:
  SpecReader(ConfigReader& r, std::string base_dir, SpecKind kind = SpecKind::kVm)
      : r_(r), base_(std::move(base_dir)), kind_(kind) {}

  std::optional<VmSpec> read(const YAML::Node& n) {
    if (!r_.expect_map(n, "a VM spec")) return std::nullopt;
    r_.check_keys(
        n, {"name", "uuid", "memory", "cpus", "machine", "accel", "kernel", "initrd", "append",
            "disk", "disk_format", "qmp_socket", "heartbeat_socket", "guest_agent_socket",
            "console_log", "console_keep", "console_max_size", "qemu_log", "devices", "qemu",
            "labels", "desired",
            "on_guest_poweroff", "watchdog_action"});
    VmSpec s;
    size_t errors_before = error_count();
    read_identity(n, s);
    read_machine(n, s);
    read_boot(n, s);
    read_sockets(n, s);
    read_extras(n, s);
    read_lifecycle(n, s);
    if (error_count() != errors_before) return std::nullopt;
    return s;
  }

  // name and uuid.
  void read_identity(const YAML::Node& n, VmSpec& s) {
    s.name = r_.string(n, "name", true).value_or("");
    if (!s.name.empty() && !valid_name(s.name)) {
      r_.error(n["name"], "name '" + s.name + "' must be 1-64 letters, digits, '.', '_' or '-'");
    }
    if (kind_ == SpecKind::kTemplate) {
      if (n["uuid"]) r_.error(n["uuid"], "a template has no uuid: each clone is given its own");
      return;
    }
    s.uuid = r_.string(n, "uuid", true).value_or("");
    if (!s.uuid.empty() && !valid_uuid(s.uuid)) {
      r_.error(n["uuid"], "uuid '" + s.uuid + "' is not of the form 8-4-4-4-12 hex digits");
    }
  }

  // memory, cpus, machine type and accelerator.
  void read_machine(const YAML::Node& n, VmSpec& s) {
    if (auto m = r_.string(n, "memory", false)) {
      auto mib = parse_memory_mib(*m);
      if (!mib || *mib < 16) {
        r_.error(n["memory"], "memory '" + *m + "' must be at least 16M, like 256M or 1G");
      } else {
        s.memory_mib = *mib;
      }
    }
    s.cpus = r_.integer(n, "cpus", false, 1, 64).value_or(1);
    s.machine = r_.string(n, "machine", false).value_or("q35");
    if (auto a = r_.string(n, "accel", false)) {
      if (*a == "auto")
        s.accel = Accel::kAuto;
      else if (*a == "kvm")
        s.accel = Accel::kKvm;
      else if (*a == "tcg")
        s.accel = Accel::kTcg;
      else
        r_.error(n["accel"], "accel '" + *a + "' must be auto, kvm or tcg");
    }
  }

  // what it boots: a kernel (with initrd and append) or a disk.
  void read_boot(const YAML::Node& n, VmSpec& s) {
    s.kernel = path(n, "kernel");
    s.initrd = path(n, "initrd");
    s.append = r_.string(n, "append", false).value_or("");
    s.disk = path(n, "disk");
    s.disk_format = r_.string(n, "disk_format", false).value_or("raw");
    // Both: the kernel boots and the disk is attached as a data disk.
    if (s.kernel.empty() && s.disk.empty()) r_.error(n, "a VM spec needs a kernel or a disk");
    if (s.kernel.empty() && (!s.initrd.empty() || !s.append.empty())) {
      r_.error(n, "initrd and append need a kernel");
    }
  }

  // QMP, heartbeat and guest-agent sockets, and the logs.
  void read_sockets(const YAML::Node& n, VmSpec& s) {
    s.qmp_socket = path(n, "qmp_socket", kind_ == SpecKind::kVm);
    s.heartbeat_socket = path(n, "heartbeat_socket");
    s.guest_agent_socket = path(n, "guest_agent_socket");
    s.console_log = path(n, "console_log");
    s.console_keep = static_cast<int>(r_.integer(n, "console_keep", false, 0, 100).value_or(5));
    if (auto m = r_.string(n, "console_max_size", false)) {
      auto mib = parse_memory_mib(*m);
      if (!mib || *mib < 1) {
        r_.error(n["console_max_size"],
                 "console_max_size '" + *m + "' must be at least 1M, like 1M or 16M");
      } else {
        s.console_max_bytes = static_cast<uint64_t>(*mib) << 20;
      }
    }
    s.qemu_log = path(n, "qemu_log");
    if (kind_ == SpecKind::kTemplate) return;  // a clone's paths are its own
    for (const auto& [key, value] : {std::pair{"qmp_socket", &s.qmp_socket},
                                     std::pair{"heartbeat_socket", &s.heartbeat_socket},
                                     std::pair{"guest_agent_socket", &s.guest_agent_socket}}) {
      if (value->size() >= sizeof(sockaddr_un{}.sun_path)) {
        r_.error(n[key], std::string(key) + " is longer than a unix socket path may be (" +
                             std::to_string(sizeof(sockaddr_un{}.sun_path) - 1) + " bytes)");
      }
    }
  }

  // extra devices, the QEMU binary and labels.
  void read_extras(const YAML::Node& n, VmSpec& s) {
    if (auto d = r_.string_list(n, "devices", false)) {
      for (const auto& dev : *d) {
        if (dev.empty() || dev[0] == '-') {
          r_.error(n["devices"], "device '" + dev + "' must be a -device value like pvpanic");
        }
      }
      s.devices = *d;
    }
    if (auto q = r_.string(n, "qemu", false)) {
      s.qemu = q->find('/') == std::string::npos ? *q : resolve(*q, base_);
    }
    if (n["labels"]) {
      const YAML::Node& l = n["labels"];
      if (!l.IsMap()) {
        r_.error(l, "labels must be a map of names to strings");
      } else {
        for (const auto& kv : l) {
          if (!kv.second.IsScalar()) {
            r_.error(kv.second, "label values must be strings");
            continue;
          }
          s.labels[kv.first.as<std::string>()] = kv.second.Scalar();
        }
      }
    }
  }

  // desired state, what a guest power-off means, QEMU's watchdog action.
  void read_lifecycle(const YAML::Node& n, VmSpec& s) {
    if (auto d = r_.string(n, "desired", false)) {
      if (*d == "running")
        s.desired = Desired::kRunning;
      else if (*d == "stopped")
        s.desired = Desired::kStopped;
      else
        r_.error(n["desired"], "desired '" + *d + "' must be running or stopped");
    }
    if (auto o = r_.string(n, "on_guest_poweroff", false)) {
      if (*o == "stop")
        s.on_guest_poweroff = OnGuestPoweroff::kStop;
      else if (*o == "restart")
        s.on_guest_poweroff = OnGuestPoweroff::kRestart;
      else
        r_.error(n["on_guest_poweroff"], "on_guest_poweroff '" + *o + "' must be stop or restart");
    }
    if (auto w = r_.string(n, "watchdog_action", false)) {
      static const char* const kActions[] = {"reset", "shutdown", "poweroff", "pause",
                                             "debug", "none",     "inject-nmi"};
      bool known = false;
      for (const char* a : kActions) known = known || *w == a;
      if (!known) {
        r_.error(n["watchdog_action"],
                 "watchdog_action '" + *w +
                     "' must be reset, shutdown, poweroff, pause, debug, none or inject-nmi");
      } else {
        s.watchdog_action = *w;
      }
    }
  }

  size_t error_count() const {
    size_t n = 0;
    for (const auto& d : r_.diagnostics()) n += d.warning ? 0 : 1;
    return n;
  }

 private:
  std::string path(const YAML::Node& n, const std::string& key, bool required = false) {
    return resolve(r_.string(n, key, required).value_or(""), base_);
  }

  ConfigReader& r_;
  std::string base_;
  SpecKind kind_;
};

Result<std::vector<VmSpec>> read_specs(const YAML::Node& root, const std::string& name,
                                       const std::string& base_dir) {
  ConfigReader r(name);
  std::vector<VmSpec> out;
  if (!r.expect_map(root, "a VM spec file")) return r.status();
  r.check_keys(root, {"vms"});
  const YAML::Node& vms = root["vms"];
  if (!vms || !vms.IsSequence()) {
    r.error(vms ? vms : root, "expected 'vms:', a list of VM specs");
    return r.status();
  }
  SpecReader reader(r, base_dir);
  std::set<std::string> names, uuids, sockets;
  for (const auto& n : vms) {
    auto s = reader.read(n);
    if (!s) continue;
    if (!names.insert(s->name).second) r.error(n["name"], "a second VM named '" + s->name + "'");
    if (!uuids.insert(s->uuid).second) r.error(n["uuid"], "a second VM with uuid " + s->uuid);
    if (!sockets.insert(s->qmp_socket).second) {
      r.error(n["qmp_socket"], "a second VM on QMP socket " + s->qmp_socket);
    }
    if (!s->heartbeat_socket.empty() && !sockets.insert(s->heartbeat_socket).second) {
      r.error(n["heartbeat_socket"],
              "heartbeat_socket " + s->heartbeat_socket + " is already the QMP socket of a VM");
    }
    if (!s->guest_agent_socket.empty() && !sockets.insert(s->guest_agent_socket).second) {
      r.error(n["guest_agent_socket"],
              "guest_agent_socket " + s->guest_agent_socket +
                  " is already the QMP, heartbeat or guest-agent socket of a VM");
    }
    out.push_back(std::move(*s));
  }
  if (!r.ok()) return r.status();
  return out;
}

// `templates:`, a list of specs of kind kTemplate with distinct names.
Result<std::vector<VmSpec>> read_templates(const YAML::Node& root, const std::string& name,
                                           const std::string& base_dir) {
  ConfigReader r(name);
  std::vector<VmSpec> out;
  if (!r.expect_map(root, "a template file")) return r.status();
  r.check_keys(root, {"templates"});
  const YAML::Node& list = root["templates"];
  if (!list || !list.IsSequence()) {
    r.error(list ? list : root, "expected 'templates:', a list of VM specs without uuid");
    return r.status();
  }
  SpecReader reader(r, base_dir, SpecKind::kTemplate);
  std::set<std::string> names;
  for (const auto& n : list) {
    auto s = reader.read(n);
    if (!s) continue;
    if (!names.insert(s->name).second) {
      r.error(n["name"], "a second template named '" + s->name + "'");
    }
    out.push_back(std::move(*s));
  }
  if (!r.ok()) return r.status();
  return out;
}

}  // namespace

Result<std::vector<VmSpec>> load_vm_templates(const std::string& path) {
  auto root = load_yaml_file(path);
  if (!root.ok()) return root.status();
  std::string base = fs::absolute(fs::path(path)).parent_path().string();
  return read_templates(*root, path, base);
}

Result<std::vector<VmSpec>> parse_vm_templates(const std::string& yaml, const std::string& name,
                                               const std::string& base_dir) {
  auto root = load_yaml_string(yaml, name);
  if (!root.ok()) return root.status();
  return read_templates(*root, name, base_dir);
}

Result<std::vector<VmSpec>> parse_vm_specs(const std::string& yaml, const std::string& name,
                                           const std::string& base_dir) {
  auto root = load_yaml_string(yaml, name);
  if (!root.ok()) return root.status();
  return read_specs(*root, name, base_dir);
}

Result<std::vector<VmSpec>> load_vm_specs(const std::string& path) {
  auto root = load_yaml_file(path);
  if (!root.ok()) return root.status();
  std::string base = fs::absolute(fs::path(path)).parent_path().string();
  return read_specs(*root, path, base);
}

bool kvm_usable() {
  int fd = ::open("/dev/kvm", O_RDWR | O_CLOEXEC);
  if (fd < 0) return false;
  int version = ::ioctl(fd, KVM_GET_API_VERSION, 0);
  ::close(fd);
  return version == KVM_API_VERSION;
}

Accel resolve_accel(Accel requested) {
  if (requested != Accel::kAuto) return requested;
  return kvm_usable() ? Accel::kKvm : Accel::kTcg;
}

const char* accel_name(Accel a) {
  switch (a) {
    case Accel::kKvm:
      return "kvm";
    case Accel::kTcg:
      return "tcg";
    default:
      return "auto";
  }
}

std::vector<std::string> qemu_argv(const VmSpec& s, Accel accel) {
  std::vector<std::string> a{s.qemu};
  auto add = [&a](std::initializer_list<std::string> xs) { a.insert(a.end(), xs); };
  add({"-name", "guest=" + qemu_escape(s.name)});
  add({"-uuid", s.uuid});
  add({"-nodefaults", "-no-user-config", "-display", "none"});
  add({"-machine", qemu_escape(s.machine)});
  add({"-accel", accel == Accel::kKvm ? "kvm" : "tcg"});
  if (accel == Accel::kKvm) add({"-cpu", "host"});
  add({"-m", std::to_string(s.memory_mib) + "M"});
  add({"-smp", std::to_string(s.cpus)});
  add({"-qmp", "unix:" + qemu_escape(s.qmp_socket) + ",server=on,wait=off"});
  if (!s.kernel.empty()) {
    add({"-kernel", s.kernel});
    if (!s.initrd.empty()) add({"-initrd", s.initrd});
    if (!s.append.empty()) add({"-append", s.append});
  }
  if (!s.disk.empty()) {
    add({"-drive",
         "file=" + qemu_escape(s.disk) + ",format=" + qemu_escape(s.disk_format) + ",if=virtio"});
  }
  // The console is always the first serial port, so the heartbeat channel is
  // always the guest's ttyS1.
  if (!s.console_log.empty()) {
    // append=on: a log cut to zero while QEMU runs is written on from 0.
    add({"-chardev", "file,id=console,path=" + qemu_escape(s.console_log) + ",append=on"});
    add({"-serial", "chardev:console"});
  } else {
    add({"-serial", "null"});
  }
  if (!s.heartbeat_socket.empty()) {
    add({"-chardev",
         "socket,id=heartbeat,path=" + qemu_escape(s.heartbeat_socket) + ",server=on,wait=off"});
    add({"-serial", "chardev:heartbeat"});
  }
  // The port name is the one qemu-ga in the guest looks for
  // (/dev/virtio-ports/org.qemu.guest_agent.0).
  if (!s.guest_agent_socket.empty()) {
    add({"-device", "virtio-serial"});
    add({"-chardev", "socket,id=guest_agent,path=" + qemu_escape(s.guest_agent_socket) +
                         ",server=on,wait=off"});
    add({"-device", "virtserialport,chardev=guest_agent,name=org.qemu.guest_agent.0"});
  }
  // Keep a panicked guest for a reset instead of letting QEMU power it off.
  // Never -no-reboot: it turns system_reset into an exit.
  add({"-action", "panic=pause"});
  add({"-action", "watchdog=" + s.watchdog_action});
  for (const auto& d : s.devices) add({"-device", d});
  return a;
}

bool qemu_acts_on_watchdog(const std::string& action) {
  return action == "reset" || action == "shutdown" || action == "poweroff";
}

bool unix_socket_listening(const std::string& path) {
  sockaddr_un addr{};
  if (path.empty() || path.size() >= sizeof addr.sun_path) return false;
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return false;
  int rc = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  ::close(fd);
  return rc == 0;
}

Launcher::Launcher(VmSpec spec)
    : spec_(std::move(spec)),
      console_(spec_.console_log, spec_.console_keep, spec_.console_max_bytes) {}

Launcher::~Launcher() { (void)kill(std::chrono::seconds(5)); }

Status Launcher::spawn() {
  if (running()) {
    return failed_precondition("QEMU of " + spec_.name + " is already running (pid " +
                               std::to_string(pid_) + ")");
  }
  // A socket someone still serves means a QEMU we do not own runs this VM.
  for (const std::string* p :
       {&spec_.qmp_socket, &spec_.heartbeat_socket, &spec_.guest_agent_socket}) {
    if (p->empty()) continue;
    if (unix_socket_listening(*p)) {
      return failed_precondition("another process already serves " + *p + " for " + spec_.name +
                                 "; refusing to start a second QEMU");
    }
    std::error_code ec;
    fs::create_directories(fs::path(*p).parent_path(), ec);
    fs::remove(*p, ec);  // stale, from a QEMU that died
  }
  for (const std::string* p : {&spec_.console_log, &spec_.qemu_log}) {
    std::error_code ec;
    if (!p->empty()) fs::create_directories(fs::path(*p).parent_path(), ec);
  }
  if (Status s = console_.rotate(); !s.ok()) {
    spdlog::warn("qmp: {}: {}", spec_.name, s.message());
  }
  argv_ = qemu_argv(spec_, resolve_accel(spec_.accel));
  auto pid = spawn_process(argv_, spec_.qemu_log, spec_.qemu.find('/') == std::string::npos);
  if (!pid.ok()) return pid.status().with_context("start " + spec_.name);
  pid_ = *pid;
  exit_status_.reset();
  pidfd_ = open_pidfd(pid_);
  return {};
}

void Launcher::forget_process(int status) {
  exit_status_ = status;
  pid_ = 0;
  if (pidfd_ >= 0) ::close(pidfd_);
  pidfd_ = -1;
}

bool Launcher::running() {
  if (pid_ <= 0) return false;
  int status = 0;
  if (reap(pid_, &status)) {
    forget_process(status);
    return false;
  }
  return true;
}

std::optional<int> Launcher::take_exit() {
  if (running()) return std::nullopt;
  auto s = exit_status_;
  exit_status_.reset();
  return s;
}

Status Launcher::kill(std::chrono::milliseconds limit) {
  if (!running()) return {};
  pid_t pid = pid_;
  if (!kill_and_reap(pid, limit)) {
    return timeout_error("QEMU of " + spec_.name + " (pid " + std::to_string(pid) +
                         ") did not go away within " + std::to_string(limit.count()) + " ms");
  }
  forget_process(-SIGKILL);
  return {};
}

void Launcher::send_kill() {
  if (!running()) return;
  ::kill(-pid_, SIGKILL);
  ::kill(pid_, SIGKILL);
}

std::string Launcher::log_tail(size_t max_bytes) const {
  if (spec_.qemu_log.empty()) return "";
  std::ifstream in(spec_.qemu_log, std::ios::binary);
  if (!in) return "";
  in.seekg(0, std::ios::end);
  auto size = static_cast<size_t>(in.tellg());
  size_t from = size > max_bytes ? size - max_bytes : 0;
  in.seekg(static_cast<std::streamoff>(from));
  std::string out(size - from, '\0');
  in.read(out.data(), static_cast<std::streamsize>(out.size()));
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  return out;
}

}  // namespace medic::vmm::qmp
