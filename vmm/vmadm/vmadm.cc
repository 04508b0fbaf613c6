#include "vmm/vmadm/vmadm.h"

#include <algorithm>
#include <cctype>

#include "core/duration.h"
#include "core/subprocess.h"

namespace medic::vmm::vmadm {
namespace {

using SteadyClock = std::chrono::steady_clock;
constexpr size_t kQuoteLimit = 512;  // how much of vmadm's output an error quotes

std::string join(const std::vector<std::string>& args) {
  std::string out = "vmadm";
  for (const auto& a : args) out += " " + a;
  return out;
}

// vmadm's own words for an error, trimmed and bounded.
std::string quote(const RunResult& r) {
  std::string text = r.err.empty() ? r.out : r.err;
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.pop_back();
  if (text.empty()) return "(no output)";
  if (text.size() > kQuoteLimit) text = text.substr(0, kQuoteLimit) + "... (truncated)";
  return "\"" + text + "\"";
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

bool says_unknown_vm(const RunResult& r) {
  std::string e = lower(r.err);
  // Narrow on purpose: "command not found" from a broken host is not an unknown VM.
  return e.find("does not exist") != std::string::npos ||
         e.find("no such zone") != std::string::npos || e.find("no such vm") != std::string::npos;
}

bool is_state_word(std::string_view s) {
  if (s.empty()) return false;
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return (c >= 'a' && c <= 'z') || c == '_' || c == '-'; });
}

}  // namespace

bool is_vm_uuid(std::string_view s) {
  if (s.size() != 36) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (s[i] != '-') return false;
    } else if (!std::isxdigit(static_cast<unsigned char>(s[i]))) {
      return false;
    }
  }
  return true;
}

Result<std::vector<VmadmEntry>> parse_vmadm_list(std::string_view out) {
  std::vector<VmadmEntry> vms;
  size_t line_no = 0;
  while (!out.empty()) {
    size_t nl = out.find('\n');
    std::string_view line = out.substr(0, nl);
    out = nl == std::string_view::npos ? std::string_view() : out.substr(nl + 1);
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) continue;
    size_t first = line.find(':');
    size_t last = line.rfind(':');
    auto bad = [&](const std::string& why) {
      std::string shown(line.substr(0, 120));
      return internal_error("unexpected vmadm list output, line " + std::to_string(line_no) + ": " +
                            why + ": \"" + shown + "\"");
    };
    if (first == std::string_view::npos || first == last) {
      return bad("expected uuid:alias:state");
    }
    VmadmEntry e;
    e.uuid = line.substr(0, first);
    e.alias = line.substr(first + 1, last - first - 1);
    e.state = line.substr(last + 1);
    if (!is_vm_uuid(e.uuid)) return bad("not a VM uuid");
    if (!is_state_word(e.state)) return bad("not a state");
    vms.push_back(std::move(e));
  }
  return vms;
}

VmState vm_state_from_vmadm(std::string_view s) {
  if (s == "running") return medic::v1::VM_STATE_RUNNING;
  if (s == "stopped" || s == "down" || s == "installed" || s == "configured" || s == "off") {
    return medic::v1::VM_STATE_STOPPED;
  }
  if (s == "stopping" || s == "shutting_down") return medic::v1::VM_STATE_SHUTTING_DOWN;
  if (s == "provisioning" || s == "ready" || s == "booting") return medic::v1::VM_STATE_BOOTING;
  return medic::v1::VM_STATE_UNSPECIFIED;
}

VmadmHypervisor::VmadmHypervisor(VmadmOptions options) : opts_(std::move(options)) {}

std::string VmadmHypervisor::qmp_socket_path(const std::string& uuid) const {
  return opts_.zones_root + "/" + uuid + "/root/tmp/vm.qmp";
}

Status VmadmHypervisor::run(const std::vector<std::string>& args, Deadline deadline,
                            RunResult* result) {
  const std::string cmd = join(args);
  auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - SteadyClock::now());
  if (left.count() <= 0) return timeout_error(cmd + ": no time left to run it");
  RunOptions o;
  o.timeout = left;
  o.max_output_bytes = opts_.max_output_bytes;
  std::vector<std::string> argv{opts_.vmadm_path};
  argv.insert(argv.end(), args.begin(), args.end());
  auto r = run_process(argv, o);
  if (!r.ok()) return r.status().with_context(cmd);
  if (r->timed_out) {
    return timeout_error(cmd + ": no answer within " + format_duration(left) +
                         ", killed; it said " + quote(*r));
  }
  if (r->signal != 0) {
    return io_error(cmd + ": killed by signal " + std::to_string(r->signal) + "; it said " +
                    quote(*r));
  }
  if (r->exit_code == 2) {
    return invalid_argument(cmd + ": vmadm rejected the arguments (exit 2): " + quote(*r));
  }
  if (r->exit_code != 0) {
    std::string msg = cmd + ": exit " + std::to_string(r->exit_code) + ": " + quote(*r);
    return says_unknown_vm(*r) ? not_found(msg) : io_error(msg);
  }
  if (r->truncated) {
    return io_error(cmd + ": output exceeded " + std::to_string(opts_.max_output_bytes) +
                    " bytes; refusing a partial answer");
  }
  if (result) *result = std::move(*r);
  return {};
}

Result<std::vector<VmadmEntry>> VmadmHypervisor::run_list(const std::vector<std::string>& extra,
                                                          Deadline deadline) {
  std::vector<std::string> args{"list", "-p", "-o", "uuid,alias,state"};
  args.insert(args.end(), extra.begin(), extra.end());
  RunResult r;
  MEDIC_RETURN_IF_ERROR(run(args, deadline, &r));
  auto parsed = parse_vmadm_list(r.out);
  if (!parsed.ok()) return parsed.status().with_context(join(args));
  return parsed;
}

Result<VmadmEntry> VmadmHypervisor::lookup(const std::string& uuid, Deadline deadline) {
  if (!is_vm_uuid(uuid)) return invalid_argument("\"" + uuid + "\" is not a SmartOS VM uuid");
  auto vms = run_list({"uuid=" + uuid}, deadline);
  if (!vms.ok()) return vms.status();
  for (auto& e : *vms) {
    if (e.uuid == uuid) return std::move(e);
  }
  return not_found("no VM " + uuid + " on host " + opts_.host);
}

Result<std::vector<VmInfo>> VmadmHypervisor::list() {
  auto vms = run_list({}, SteadyClock::now() + opts_.list_timeout);
  if (!vms.ok()) return vms.status();
  std::vector<VmInfo> out;
  out.reserve(vms->size());
  for (auto& e : *vms) {
    VmInfo i;
    i.id = std::move(e.uuid);
    i.name = std::move(e.alias);
    i.state = vm_state_from_vmadm(e.state);
    i.labels["vmadm_state"] = e.state;
    out.push_back(std::move(i));
  }
  return out;
}

Result<VmInfo> VmadmHypervisor::get(const std::string& vm) {
  auto e = lookup(vm, SteadyClock::now() + opts_.list_timeout);
  if (!e.ok()) return e.status();
  VmInfo i;
  i.id = e->uuid;
  i.name = e->alias;
  i.state = vm_state_from_vmadm(e->state);
  i.labels["vmadm_state"] = e->state;
  return i;
}

Status VmadmHypervisor::start(const std::string& uuid, Deadline deadline) {
  RunResult r;
  MEDIC_RETURN_IF_ERROR(run({"start", uuid}, deadline, &r));
  // vmadm exits 0 when the VM was already running; that is not a start.
  if (r.err.find("already") != std::string::npos) {
    return failed_precondition("vmadm start " + uuid + ": the VM was already running: " + quote(r));
  }
  return {};
}

Status VmadmHypervisor::stop(const std::string& uuid, Deadline deadline) {
  std::vector<std::string> args{"stop", uuid};
  if (opts_.force_stop) args.push_back("-F");
  return run(args, deadline);
}

std::vector<int> VmadmHypervisor::fds() const {
  if (completions_.empty() || completions_.fd() < 0) return {};
  return {completions_.fd()};
}

void VmadmHypervisor::execute(Verb verb, const std::string& vm, Duration timeout,
                              VerbDone done) {
  completions_.push(std::move(done), run_verb(verb, vm, timeout));
}

Status VmadmHypervisor::run_verb(Verb verb, const std::string& vm, Duration timeout) {
  const Deadline deadline =
      SteadyClock::now() + std::chrono::duration_cast<SteadyClock::duration>(timeout);
  const char* verb_word = verb_name(verb);
  auto e = lookup(vm, deadline);
  if (!e.ok()) return e.status().with_context(std::string(verb_word) + " " + vm);
  const VmState state = vm_state_from_vmadm(e->state);
  const bool running = state == medic::v1::VM_STATE_RUNNING;
  auto refuse = [&](const std::string& why) {
    return failed_precondition(std::string("cannot ") + verb_word + " " + vm + " (" + e->alias +
                               "): it is " + e->state + why);
  };
  switch (verb) {
    case medic::v1::VERB_REBOOT: {
      if (!running) return refuse("");
      RunResult r;
      MEDIC_RETURN_IF_ERROR(run({"reboot", vm}, deadline, &r));
      if (r.err.find("already not") != std::string::npos) return refuse(", vmadm: " + quote(r));
      return {};
    }
    case medic::v1::VERB_RESET:
      if (!running) return refuse("");
      if (!opts_.qmp_reset) {
        return failed_precondition("reset of " + vm + " needs QMP (system_reset on " +
                                   qmp_socket_path(vm) +
                                   "), and no QMP client is wired into the vmadm backend");
      }
      return opts_.qmp_reset(qmp_socket_path(vm), timeout);
    case medic::v1::VERB_STOP:
      if (state == medic::v1::VM_STATE_STOPPED) return refuse(" already");
      return stop(vm, deadline);
    case medic::v1::VERB_START:
      if (state != medic::v1::VM_STATE_STOPPED) return refuse(" (never start a VM twice)");
      return start(vm, deadline);
    case medic::v1::VERB_RESTART:
      // A crashed QEMU leaves its zone stopped, so restart of a stopped VM
      // is the start half alone.
      if (state != medic::v1::VM_STATE_STOPPED) MEDIC_RETURN_IF_ERROR(stop(vm, deadline));
      return start(vm, deadline);
    default:
      return invalid_argument("unknown verb " + std::to_string(static_cast<int>(verb)));
  }
}

}  // namespace medic::vmm::vmadm
