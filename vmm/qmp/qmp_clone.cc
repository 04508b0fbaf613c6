// Provisioning in the qmp backend (see "Provisioning" in qmp_hypervisor.h):
// a clone's directory, its qcow2 overlay made by qemu-img as a ChildProcess
// on the loop, its spec kept on disk, its start by the start verb's steps;
// and the delete verb's removal of a clone.
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "core/duration.h"
#include "vmm/provisioning.h"
#include "vmm/qmp/qmp_hypervisor.h"
#include "vmm/qmp/qmp_vm.h"

namespace medic::vmm::qmp {
namespace {

namespace fs = std::filesystem;
constexpr const char* kSpecFile = "vm.yaml";

// The template's spec with the clone's identity and its own paths in `dir`
// (absolute), for each socket and log the template has.
VmSpec spec_of_clone(const VmSpec& t, const CloneSpec& c, const std::string& dir) {
  VmSpec s = t;
  s.uuid = c.id;
  s.name = c.name;
  s.labels["template"] = c.template_name;
  auto in_dir = [&dir](const char* file) { return (fs::path(dir) / file).string(); };
  s.qmp_socket = in_dir("qmp.sock");
  if (!t.heartbeat_socket.empty()) s.heartbeat_socket = in_dir("hb.sock");
  if (!t.guest_agent_socket.empty()) s.guest_agent_socket = in_dir("qga.sock");
  if (!t.console_log.empty()) s.console_log = in_dir("console.log");
  if (!t.qemu_log.empty()) s.qemu_log = in_dir("qemu.log");
  if (!t.disk.empty()) {
    s.disk = in_dir("disk.qcow2");
    s.disk_format = "qcow2";
  }
  return s;
}

Status check_socket_paths(const VmSpec& s) {
  const size_t limit = sizeof(sockaddr_un{}.sun_path) - 1;
  for (const std::string* p : {&s.qmp_socket, &s.heartbeat_socket, &s.guest_agent_socket}) {
    if (p->size() > limit) {
      return invalid_argument("socket " + *p + " of clone " + s.name + " is longer than " +
                              std::to_string(limit) + " bytes: use a shorter name or clone_dir");
    }
  }
  return {};
}

// Writes `text` to `path` through a temporary file and a rename, so a reader
// (an agent that starts) sees the old file or the whole new one.
Status write_atomically(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return io_error("cannot create " + tmp + ": " + std::strerror(errno));
  size_t off = 0;
  while (off < text.size()) {
    ssize_t n = ::write(fd, text.data() + off, text.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    off += static_cast<size_t>(n);
  }
  const bool written = off == text.size() && ::fsync(fd) == 0;
  const int saved = errno;
  ::close(fd);
  if (!written || ::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string why = std::strerror(written ? errno : saved);
    ::unlink(tmp.c_str());
    return io_error("cannot write " + path + ": " + why);
  }
  return {};
}

void remove_dir(const std::string& dir) {
  std::error_code ec;
  fs::remove_all(dir, ec);
  if (ec) spdlog::warn("qmp: cannot remove {}: {}", dir, ec.message());
}

std::string qemu_img_failure(const RunResult& r, const std::string& overlay) {
  std::string err = r.err;
  while (!err.empty() && (err.back() == '\n' || err.back() == ' ')) err.pop_back();
  if (err.size() > 1024) err = err.substr(err.size() - 1024);
  return "qemu-img create " + overlay + " failed (" + describe_end(r) + ")" +
         (err.empty() ? "" : ": " + err);
}

}  // namespace

const VmSpec* QmpHypervisor::find_template(const std::string& name) const {
  for (const auto& t : opts_.templates) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

std::vector<std::string> QmpHypervisor::templates() const {
  std::vector<std::string> out;
  for (const auto& t : opts_.templates) out.push_back(t.name);
  std::sort(out.begin(), out.end());
  return out;
}

Status QmpHypervisor::check_clone_free(const CloneSpec& spec) const {
  for (const auto& v : vms_) {
    if (v->dropped) continue;
    if (v->spec().uuid == spec.id) return already_exists("a VM with id " + spec.id + " exists");
    if (v->spec().name == spec.name) return already_exists("a VM named " + spec.name + " exists");
  }
  for (const auto& c : clones_) {
    if (!c->finished && (c->request.id == spec.id || c->request.name == spec.name)) {
      return already_exists("VM " + c->request.name + " (" + c->request.id + ") is being cloned");
    }
  }
  return {};
}

Status QmpHypervisor::begin_clone(const CloneSpec& spec, Duration timeout, VerbDone done) {
  MEDIC_RETURN_IF_ERROR(check_clone_spec(spec));
  if (opts_.clone_dir.empty()) {
    return failed_precondition("host " + host_ + " has no clone_dir: it does not create VMs");
  }
  const VmSpec* t = find_template(spec.template_name);
  if (!t) return unknown_template(host_, spec.template_name, templates());
  MEDIC_RETURN_IF_ERROR(check_clone_free(spec));
  const std::string dir = (fs::absolute(opts_.clone_dir) / spec.name).string();
  std::error_code ec;
  if (fs::exists(dir, ec)) return already_exists(dir + " exists (not a VM of this backend)");
  auto c = std::make_unique<PendingClone>();
  c->request = spec;
  c->dir = dir;
  c->spec = spec_of_clone(*t, spec, dir);
  MEDIC_RETURN_IF_ERROR(check_socket_paths(c->spec));
  c->done = std::move(done);
  c->deadline = clock_.now() + timeout;
  PendingClone& p = *c;
  clones_.push_back(std::move(c));
  if (!fs::create_directories(dir, ec) || ec) {
    fail_clone(p, io_error("cannot create " + dir + ": " + ec.message()));
    return {};
  }
  if (t->disk.empty()) {
    commit_clone(p);
  } else {
    start_overlay(p, *t, timeout);
  }
  return {};
}

// qemu-img create on the loop; pump_clones() takes its end.
void QmpHypervisor::start_overlay(PendingClone& p, const VmSpec& t, Duration timeout) {
  RunOptions ro;
  ro.timeout = std::max(std::chrono::duration_cast<std::chrono::milliseconds>(timeout),
                        std::chrono::milliseconds(1));
  ro.search_path = opts_.qemu_img.find('/') == std::string::npos;
  ro.max_output_bytes = 16 * 1024;
  const std::vector<std::string> argv = {
      opts_.qemu_img, "create",      "-f", "qcow2",
      "-F",           t.disk_format, "-b", fs::absolute(t.disk).string(),
      p.spec.disk};
  PendingClone* pp = &p;
  auto child = ChildProcess::start(argv, ro, clock_, [pp](RunResult r) { pp->img_result = r; });
  if (!child.ok()) {
    fail_clone(p, child.status());
    return;
  }
  p.qemu_img = std::move(*child);
}

// Moves qemu-img on; a clone whose overlay is done goes on to its start.
void QmpHypervisor::pump_clones() {
  for (size_t i = 0; i < clones_.size(); ++i) {
    PendingClone& c = *clones_[i];
    if (c.finished) continue;
    if (c.qemu_img && !c.img_result) c.qemu_img->poll();
    if (c.img_result) overlay_made(c);
  }
  std::erase_if(clones_, [](const auto& c) { return c->finished; });
}

void QmpHypervisor::overlay_made(PendingClone& c) {
  RunResult r = std::move(*c.img_result);
  c.img_result.reset();
  c.qemu_img.reset();
  if (r.exit_code != 0 || r.timed_out) {
    const std::string why = qemu_img_failure(r, c.spec.disk);
    fail_clone(c, r.timed_out ? timeout_error(why) : io_error(why));
    return;
  }
  commit_clone(c);
}

// The overlay is there (or not needed): keep the spec, add the VM, start it.
void QmpHypervisor::commit_clone(PendingClone& c) {
  const std::string spec_path = (fs::path(c.dir) / kSpecFile).string();
  if (Status w = write_atomically(spec_path, format_vm_specs({c.spec})); !w.ok()) {
    fail_clone(c, w);
    return;
  }
  const Duration left = c.deadline - clock_.now();
  if (left <= Duration::zero()) {
    fail_clone(c, timeout_error("the overlay took the whole timeout; the clone was not started"));
    return;
  }
  c.finished = true;
  auto v = std::make_unique<Vm>(c.spec, clock_);
  v->clone_dir = c.dir;
  Vm& ref = *v;
  vms_.push_back(std::move(v));
  spdlog::info("qmp: {}: cloned from template {} into {}; starting it", c.spec.name,
               c.request.template_name, c.dir);
  const std::string id = c.spec.uuid;
  const std::string what = "clone " + c.spec.name;
  start_verb(ref, medic::v1::VERB_START, left,
             [this, id, what, done = std::move(c.done)](Status s) mutable {
               on_clone_started(id, what, std::move(done), std::move(s));
             });
}

void QmpHypervisor::on_clone_started(const std::string& id, const std::string& what, VerbDone done,
                                     Status s) {
  if (!s.ok()) {
    if (Vm* v = find(id)) drop_vm(*v);
    done(s.with_context(what));
    return;
  }
  done(std::move(s));
}

void QmpHypervisor::fail_clone(PendingClone& c, Status s) {
  c.finished = true;
  c.qemu_img.reset();
  remove_dir(c.dir);
  spdlog::warn("qmp: clone {} from template {} failed: {}", c.request.name, c.request.template_name,
               s.to_string());
  completions_.push(std::move(c.done), s.with_context("clone " + c.request.name));
}

// At construction: each clone_dir/NAME/vm.yaml is a clone of this backend.
void QmpHypervisor::load_clones() {
  if (opts_.clone_dir.empty()) return;
  std::error_code ec;
  std::vector<fs::path> dirs;
  for (const auto& e : fs::directory_iterator(opts_.clone_dir, ec)) {
    if (e.is_directory(ec)) dirs.push_back(e.path());
  }
  std::sort(dirs.begin(), dirs.end());
  for (const auto& d : dirs) {
    const std::string spec_path = (d / kSpecFile).string();
    if (!fs::exists(spec_path, ec)) {
      spdlog::warn("qmp: {} has no {}: a clone that never finished; removing it", d.string(),
                   kSpecFile);
      remove_dir(d.string());
      continue;
    }
    auto specs = load_vm_specs(spec_path);
    std::string why;
    if (!specs.ok()) {
      why = specs.status().to_string();
    } else if (specs->size() != 1 || specs->front().name != d.filename().string()) {
      why = "expected one VM named " + d.filename().string();
    } else if (find(specs->front().uuid) || find(specs->front().name)) {
      why = "its id or name is taken by another VM";
    }
    if (!why.empty()) {
      spdlog::error("qmp: clone in {} left out: {}", d.string(), why);
      continue;
    }
    auto v = std::make_unique<Vm>(std::move(specs->front()), clock_);
    v->clone_dir = d.string();
    vms_.push_back(std::move(v));
  }
}

bool QmpHypervisor::refuse_delete(Vm& v, VerbDone& done) {
  if (!v.clone_dir.empty()) return false;
  const std::string where = opts_.vms_file.empty() ? "the host's VM specs" : opts_.vms_file;
  completions_.push(std::move(done), failed_precondition("cannot delete " + v.spec().name +
                                                         ": it is configured in " + where +
                                                         ", not a clone; only clones are deleted"));
  return true;
}

void QmpHypervisor::delete_now(Vm& v) {
  spdlog::info("qmp: {}: deleted; removing {}", v.spec().name, v.clone_dir);
  if (!opts_.state_dir.empty()) {
    std::error_code ec;
    fs::remove(stop_file(v), ec);
  }
  drop_vm(v);
}

void QmpHypervisor::drop_vm(Vm& v) {
  if (v.verb) finish_verb(v, unavailable(v.spec().name + " was deleted"));
  v.qmp.close();
  forget_status(v);
  if (v.hb_fd >= 0) ::close(v.hb_fd);
  v.hb_fd = -1;
  v.dropped = true;
  if (!v.clone_dir.empty()) remove_dir(v.clone_dir);
}

void QmpHypervisor::sweep_dropped() {
  // A dropped VM's QEMU has exited or was sent SIGKILL: its Launcher reaps it.
  std::erase_if(vms_, [](const auto& v) { return v->dropped; });
}

}  // namespace medic::vmm::qmp
