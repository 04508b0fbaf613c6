#include "vmm/vmadm/vmadm.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>

#include "core/duration.h"
#include "core/json.h"
#include "core/subprocess.h"
#include "core/text.h"

namespace medic::vmm::vmadm {
namespace {

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

// The VM object of `vmadm get`: tagged medic_clone: true by a clone.
bool tagged_clone(const Json& vm) {
  const Json* tags = json_member(vm, "tags");
  const Json* clone = tags ? json_member(*tags, "medic_clone") : nullptr;
  return clone && clone->is_boolean() && clone->get<bool>();
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
    auto bad = [&](const std::string& why) {
      std::string shown(line.substr(0, 120));
      return internal_error("unexpected vmadm list output, line " + std::to_string(line_no) + ": " +
                            why + ": \"" + shown + "\"");
    };
    // Four fields up to the fourth ':', the alias (which may hold ':') after.
    std::string_view field[4];
    std::string_view rest = line;
    for (auto& f : field) {
      const size_t colon = rest.find(':');
      if (colon == std::string_view::npos) return bad("expected " + std::string(kListFields));
      f = rest.substr(0, colon);
      rest.remove_prefix(colon + 1);
    }
    VmadmEntry e;
    e.uuid = field[0];
    e.state = field[2];
    e.template_name = field[3];
    e.alias = rest;
    if (!is_vm_uuid(e.uuid)) return bad("not a VM uuid");
    if (field[1] != "true" && field[1] != "false") return bad("autoboot is not true or false");
    e.autoboot = field[1] == "true";
    if (!is_state_word(e.state)) return bad("not a state");
    // A tag someone set by hand that names no template: no template label,
    // rather than a listing that fails for every VM of the host.
    if (!is_vm_name(e.template_name)) e.template_name.clear();
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

struct VmadmHypervisor::Job {
  Verb verb = medic::v1::VERB_UNSPECIFIED;
  std::string vm;
  Time deadline{};
  VerbDone done;
  VmadmEntry entry;  // from the lookup
  std::string what() const { return std::string(verb_name(verb)) + " " + vm; }
};

VmadmHypervisor::VmadmHypervisor(Clock& clock, VmadmOptions options)
    : clock_(clock), opts_(std::move(options)) {
  // The first listing starts at the loop's first turn.
  list_timer_ = clock_.schedule_after(Duration::zero(), [this] { list_tick(); });
}

VmadmHypervisor::~VmadmHypervisor() {
  clock_.cancel(list_timer_);
  resets_.clear();
  calls_.clear();  // kills what still runs
}

std::string VmadmHypervisor::qmp_socket_path(const std::string& uuid) const {
  return opts_.zones_root + "/" + uuid + "/root/tmp/vm.qmp";
}

// ------------------------------------------------------------ vmadm calls

Status VmadmHypervisor::interpret(const std::string& cmd, Duration limit,
                                  const RunResult& r) const {
  if (r.timed_out) {
    return timeout_error(cmd + ": no answer within " + format_duration(limit) + ", killed (" +
                         r.kill_reason + "); it said " + quote(r));
  }
  if (r.signal != 0) {
    return io_error(cmd + ": killed by signal " + std::to_string(r.signal) + "; it said " +
                    quote(r));
  }
  if (r.exit_code == 2) {
    return invalid_argument(cmd + ": vmadm rejected the arguments (exit 2): " + quote(r));
  }
  if (r.exit_code != 0) {
    std::string msg = cmd + ": exit " + std::to_string(r.exit_code) + ": " + quote(r);
    return says_unknown_vm(r) ? not_found(msg) : io_error(msg);
  }
  if (r.truncated) {
    return io_error(cmd + ": output exceeded " + std::to_string(opts_.max_output_bytes) +
                    " bytes; refusing a partial answer");
  }
  return {};
}

void VmadmHypervisor::run(const std::vector<std::string>& args, Time deadline, CallDone done) {
  const std::string cmd = join(args);
  const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - clock_.now());
  if (left.count() <= 0) {
    done(timeout_error(cmd + ": no time left to run it"), RunResult{});
    return;
  }
  RunOptions o;
  o.timeout = left;
  o.max_output_bytes = opts_.max_output_bytes;
  std::vector<std::string> argv{opts_.vmadm_path};
  argv.insert(argv.end(), args.begin(), args.end());
  auto child = ChildProcess::start(argv, o, clock_, [this, cmd, left, done](RunResult r) {
    Status s = interpret(cmd, left, r);
    done(std::move(s), std::move(r));
  });
  if (!child.ok()) {
    done(child.status().with_context(cmd), RunResult{});
    return;
  }
  ++stats_.calls;
  calls_.push_back(std::make_unique<Call>(Call{std::move(*child), cmd}));
}

void VmadmHypervisor::run_list(const std::vector<std::string>& extra, Time deadline,
                               std::function<void(Result<std::vector<VmadmEntry>>)> done) {
  std::vector<std::string> args{"list", "-p", "-o", std::string(kListFields)};
  args.insert(args.end(), extra.begin(), extra.end());
  run(args, deadline, [args, done](Status s, RunResult r) {
    if (!s.ok()) {
      done(s);
      return;
    }
    auto parsed = parse_vmadm_list(r.out);
    if (!parsed.ok()) {
      done(parsed.status().with_context(join(args)));
      return;
    }
    done(std::move(parsed));
  });
}

void VmadmHypervisor::lookup(const std::string& uuid, Time deadline, LookupDone done) {
  run_list({"uuid=" + uuid}, deadline,
           [this, uuid, done](Result<std::vector<VmadmEntry>> vms) {
             if (!vms.ok()) {
               done(vms.status());
               return;
             }
             for (auto& e : *vms) {
               if (e.uuid == uuid) {
                 done(std::move(e));
                 return;
               }
             }
             done(not_found("no VM " + uuid + " on host " + opts_.host));
           });
}

void VmadmHypervisor::poll() {
  // Callbacks may start more calls; those are polled next time.
  const size_t n = calls_.size();
  for (size_t i = 0; i < n; ++i) calls_[i]->child->poll();
  std::erase_if(calls_, [](const std::unique_ptr<Call>& c) { return c->child->finished(); });
  const size_t m = resets_.size();
  for (size_t i = 0; i < m; ++i) resets_[i]->poll();
  std::erase_if(resets_, [](const std::unique_ptr<qmp::QmpReset>& r) { return r->finished(); });
  completions_.deliver();
}

std::vector<int> VmadmHypervisor::fds() const {
  std::vector<int> out;
  for (const auto& c : calls_) c->child->append_fds(&out);
  for (const auto& r : resets_) {
    if (r->fd() >= 0) out.push_back(r->fd());
  }
  if (!completions_.empty() && completions_.fd() >= 0) out.push_back(completions_.fd());
  return out;
}

// --------------------------------------------------------------- listing

void VmadmHypervisor::list_tick() {
  list_timer_ = clock_.schedule_after(opts_.list_interval, [this] { list_tick(); });
  if (!listing_) {
    start_listing();
    return;
  }
  ++stats_.missed_intervals;
  if (++missed_ == opts_.unresponsive_after) {
    spdlog::warn("vmadm: {}: no listing has finished for {} list intervals; VM states unknown",
                 opts_.host, missed_);
  }
}

void VmadmHypervisor::refresh() {
  if (listing_) {
    relist_ = true;
    return;
  }
  start_listing();
}

void VmadmHypervisor::start_listing() {
  listing_ = true;
  relist_ = false;
  ++stats_.listings_started;
  run_list({}, clock_.now() + opts_.list_timeout,
           [this](Result<std::vector<VmadmEntry>> r) { on_listing(std::move(r)); });
}

void VmadmHypervisor::on_listing(Result<std::vector<VmadmEntry>> r) {
  listing_ = false;
  missed_ = 0;
  ++stats_.listings_done;
  if (r.ok()) {
    listed_ = std::move(*r);
    have_listing_ = true;
    list_status_ = Status{};
    report_stops();
  } else {
    ++stats_.listing_failures;
    list_status_ = r.status();
    log_limiter_.warn("vmadm list", clock_.now(),
                      "vmadm: " + opts_.host + ": listing failed: " + r.status().message());
  }
  if (relist_) start_listing();
}

namespace {

// Stopped while meant to run (autoboot still true): not a vmadm stop.
bool unintended_stop(const VmadmEntry& e) {
  return e.autoboot && vm_state_from_vmadm(e.state) == medic::v1::VM_STATE_STOPPED;
}

}  // namespace

// Each VM that was running at the last listing and is stopped now: an
// intended stop (autoboot false) or not (header comment).
void VmadmHypervisor::report_stops() {
  std::map<std::string, std::string> now;
  const bool first = !listed_before_;
  listed_before_ = true;
  for (const auto& e : listed_) {
    now[e.uuid] = e.state;
    auto before = last_state_.find(e.uuid);
    // At the first listing, a VM meant to run that is down counts as stopped
    // just now: the engine's rules decide whether to start it.
    const bool was_running =
        first ? unintended_stop(e) : before != last_state_.end() && before->second == "running";
    if (!was_running) continue;
    if (vm_state_from_vmadm(e.state) != medic::v1::VM_STATE_STOPPED || !sink_) continue;
    VmEvent ev;
    ev.vm = e.uuid;
    ev.at = clock_.now();
    if (unintended_stop(e)) {
      ev.what = medic::v1::LIFECYCLE_CRASHED;
      ev.detail =
          "stopped while autoboot=true: not by vmadm stop (QEMU died, or the guest "
          "powered itself off)";
    } else {
      ev.what = medic::v1::LIFECYCLE_STOPPED;
      ev.detail = "stopped by vmadm stop (autoboot=false): an intended stop, left alone";
    }
    sink_(ev);
  }
  last_state_ = std::move(now);
}

VmInfo VmadmHypervisor::info(const VmadmEntry& e) const {
  VmInfo i;
  i.id = e.uuid;
  i.name = e.alias;
  // vmadm has not answered for a while: what it said last is no fact now.
  i.state = missed_ >= opts_.unresponsive_after ? medic::v1::VM_STATE_UNSPECIFIED
            : unintended_stop(e)                ? medic::v1::VM_STATE_CRASHED
                                                : vm_state_from_vmadm(e.state);
  i.labels["vmadm_state"] = e.state;
  i.labels["vmadm_autoboot"] = e.autoboot ? "true" : "false";
  i.labels["desired"] = e.autoboot ? "running" : "stopped";  // as qmp's, for medic vm show
  // A clone's template, from the tag begin_clone gave it (as qmp's and sim's).
  if (!e.template_name.empty()) i.labels["template"] = e.template_name;
  return i;
}

Result<std::vector<VmInfo>> VmadmHypervisor::list() {
  if (!list_status_.ok()) return list_status_;
  std::vector<VmInfo> out;
  out.reserve(listed_.size());
  for (const auto& e : listed_) out.push_back(info(e));
  return out;
}

Result<VmInfo> VmadmHypervisor::get(const std::string& vm) {
  if (!is_vm_uuid(vm)) return invalid_argument("\"" + vm + "\" is not a SmartOS VM uuid");
  if (!list_status_.ok()) return list_status_;
  for (const auto& e : listed_) {
    if (e.uuid == vm) return info(e);
  }
  return not_found("no VM " + vm + " on host " + opts_.host);
}

// ----------------------------------------------------------------- verbs

void VmadmHypervisor::execute(Verb verb, const std::string& vm, Duration timeout,
                              VerbDone done) {
  auto job = std::make_shared<Job>();
  job->verb = verb;
  job->vm = vm;
  job->deadline = clock_.now() + timeout;
  job->done = std::move(done);
  const char* word = verb_name(verb);
  if (!is_vm_uuid(vm)) {
    completions_.push(std::move(job->done),
                      invalid_argument(std::string(word) + " " + vm + ": \"" + vm +
                                       "\" is not a SmartOS VM uuid"));
    return;
  }
  if (verb_from_name(word) == medic::v1::VERB_UNSPECIFIED) {
    completions_.push(std::move(job->done),
                      invalid_argument("unknown verb " + std::to_string(static_cast<int>(verb))));
    return;
  }
  if (auto it = busy_.find(vm); it != busy_.end()) {
    completions_.push(std::move(job->done),
                      failed_precondition("cannot " + job->what() + ": " + verb_name(it->second) +
                                          " " + vm + " is in progress"));
    return;
  }
  busy_[vm] = verb;
  lookup(vm, job->deadline,
         [this, job](Result<VmadmEntry> e) { on_looked_up(job, std::move(e)); });
}

void VmadmHypervisor::on_looked_up(const JobPtr& job, Result<VmadmEntry> e) {
  if (!e.ok()) {
    finish(job, e.status().with_context(job->what()));
    return;
  }
  job->entry = std::move(*e);
  const VmState state = vm_state_from_vmadm(job->entry.state);
  const bool running = state == medic::v1::VM_STATE_RUNNING;
  auto refuse = [&](const std::string& why) {
    finish(job, failed_precondition("cannot " + job->what() + " (" + job->entry.alias +
                                    "): it is " + job->entry.state + why));
  };
  switch (job->verb) {
    case medic::v1::VERB_REBOOT:
      return running ? reboot(job) : refuse("");
    case medic::v1::VERB_RESET:
      return running ? reset(job) : refuse("");
    case medic::v1::VERB_STOP:
      if (state == medic::v1::VM_STATE_STOPPED) return refuse(" already");
      return stop(job, [this, job] { finish(job, Status{}); });
    case medic::v1::VERB_START:
      if (state != medic::v1::VM_STATE_STOPPED) return refuse(" (never start a VM twice)");
      return start(job);
    case medic::v1::VERB_RESTART:
      // A crashed QEMU leaves its zone stopped, so restart of a stopped VM
      // is the start half alone.
      if (state == medic::v1::VM_STATE_STOPPED) return start(job);
      return stop(job, [this, job] { start(job); });
    case medic::v1::VERB_DELETE:
      return remove(job);
    default:
      return finish(job, invalid_argument("unknown verb"));
  }
}

void VmadmHypervisor::reboot(const JobPtr& job) {
  run({"reboot", job->vm}, job->deadline, [this, job](Status s, RunResult r) {
    // vmadm exits 0 when the VM was not running after all.
    if (s.ok() && r.err.find("already not") != std::string::npos) {
      s = failed_precondition("cannot " + job->what() + " (" + job->entry.alias + "): vmadm: " +
                              quote(r));
    }
    finish(job, s);
  });
}

void VmadmHypervisor::reset(const JobPtr& job) {
  const std::string socket = qmp_socket_path(job->vm);
  resets_.push_back(std::make_unique<qmp::QmpReset>(
      clock_, socket, job->deadline - clock_.now(), [this, job, socket](Status s) {
        finish(job, s.ok() ? s : s.with_context(job->what() + " (QMP " + socket + ")"));
      }));
}

void VmadmHypervisor::start(const JobPtr& job) {
  run({"start", job->vm}, job->deadline, [this, job](Status s, RunResult r) {
    // vmadm exits 0 when the VM was already running; that is not a start.
    if (s.ok() && r.err.find("already") != std::string::npos) {
      s = failed_precondition("vmadm start " + job->vm + ": the VM was already running: " +
                              quote(r));
    }
    finish(job, s);
  });
}

void VmadmHypervisor::stop(const JobPtr& job, std::function<void()> then) {
  std::vector<std::string> args{"stop", job->vm};
  if (opts_.force_stop) args.push_back("-F");
  run(args, job->deadline, [this, job, then](Status s, RunResult) {
    if (!s.ok()) {
      finish(job, s);
      return;
    }
    then();
  });
}

// delete: only a VM medic cloned (tag medic_clone: true), by vmadm delete.
void VmadmHypervisor::remove(const JobPtr& job) {
  run({"get", job->vm}, job->deadline, [this, job](Status s, RunResult r) {
    if (!s.ok()) {
      finish(job, s);
      return;
    }
    auto vm = parse_json(r.out, JsonLimits{opts_.max_output_bytes, 64});
    if (!vm.ok()) {
      finish(job, vm.status().with_context("vmadm get " + job->vm));
      return;
    }
    if (!tagged_clone(*vm)) {
      finish(job, failed_precondition("cannot " + job->what() + " (" + job->entry.alias +
                                      "): its tags do not say medic_clone: true, so medic did "
                                      "not clone it; only clones are deleted"));
      return;
    }
    run({"delete", job->vm}, job->deadline, [this, job](Status ds, RunResult) { finish(job, ds); });
  });
}

void VmadmHypervisor::finish(const JobPtr& job, Status s) {
  busy_.erase(job->vm);
  completions_.push(std::move(job->done), std::move(s));
  // What the verb changed shows in the next listing: start it now.
  if (!job->entry.uuid.empty()) refresh();
}

}  // namespace medic::vmm::vmadm
