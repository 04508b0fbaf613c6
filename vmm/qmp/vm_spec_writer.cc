// format_vm_specs (vmm/qmp/launcher.h): a VmSpec back to the YAML that the
// spec reader reads, for the clones the backend keeps on disk.
#include <yaml-cpp/yaml.h>

#include "vmm/qmp/launcher.h"

namespace medic::vmm::qmp {
namespace {

void put(YAML::Emitter& e, const char* key, const std::string& value) {
  if (value.empty()) return;
  e << YAML::Key << key << YAML::Value << YAML::DoubleQuoted << value;
}

void put_number(YAML::Emitter& e, const char* key, int64_t value) {
  e << YAML::Key << key << YAML::Value << value;
}

void put_machine(YAML::Emitter& e, const VmSpec& s) {
  put(e, "memory", std::to_string(s.memory_mib) + "M");
  put_number(e, "cpus", s.cpus);
  put(e, "machine", s.machine);
  put(e, "accel", accel_name(s.accel));
  put(e, "kernel", s.kernel);
  put(e, "initrd", s.initrd);
  put(e, "append", s.append);
  put(e, "disk", s.disk);
  if (!s.disk.empty()) put(e, "disk_format", s.disk_format);
}

void put_sockets(YAML::Emitter& e, const VmSpec& s) {
  put(e, "qmp_socket", s.qmp_socket);
  put(e, "heartbeat_socket", s.heartbeat_socket);
  put(e, "guest_agent_socket", s.guest_agent_socket);
  put(e, "console_log", s.console_log);
  put_number(e, "console_keep", s.console_keep);
  put(e, "console_max_size",
      std::to_string(std::max<uint64_t>(s.console_max_bytes >> 20, 1)) + "M");
  put(e, "qemu_log", s.qemu_log);
}

void put_extras(YAML::Emitter& e, const VmSpec& s) {
  if (!s.devices.empty()) {
    e << YAML::Key << "devices" << YAML::Value << YAML::BeginSeq;
    for (const auto& d : s.devices) e << YAML::DoubleQuoted << d;
    e << YAML::EndSeq;
  }
  put(e, "qemu", s.qemu);
  if (!s.labels.empty()) {
    e << YAML::Key << "labels" << YAML::Value << YAML::BeginMap;
    for (const auto& [k, v] : s.labels) {
      e << YAML::Key << YAML::DoubleQuoted << k << YAML::Value << YAML::DoubleQuoted << v;
    }
    e << YAML::EndMap;
  }
  put(e, "desired", s.desired == Desired::kRunning ? "running" : "stopped");
  put(e, "on_guest_poweroff",
      s.on_guest_poweroff == OnGuestPoweroff::kRestart ? "restart" : "stop");
  put(e, "watchdog_action", s.watchdog_action);
}

}  // namespace

std::string format_vm_specs(const std::vector<VmSpec>& specs) {
  YAML::Emitter e;
  e << YAML::BeginMap << YAML::Key << "vms" << YAML::Value << YAML::BeginSeq;
  for (const auto& s : specs) {
    e << YAML::BeginMap;
    put(e, "name", s.name);
    put(e, "uuid", s.uuid);
    put_machine(e, s);
    put_sockets(e, s);
    put_extras(e, s);
    e << YAML::EndMap;
  }
  e << YAML::EndSeq << YAML::EndMap;
  return std::string(e.c_str()) + "\n";
}

}  // namespace medic::vmm::qmp
