// Provisioning in the vmadm backend: clone = vmadm create -f with a
// template's payload, delete = vmadm delete of a VM whose tags say medic
// cloned it (see the header comment of vmadm.h).
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/json.h"
#include "core/text.h"
#include "vmm/provisioning.h"
#include "vmm/vmadm/vmadm.h"

namespace medic::vmm::vmadm {
namespace {

namespace fs = std::filesystem;
constexpr size_t kMaxTemplateBytes = 1 << 20;  // a vmadm payload is a few KiB

Result<std::string> read_template(const std::string& path) {
  std::error_code ec;
  const auto size = fs::file_size(path, ec);
  if (ec) return failed_precondition("cannot read template " + path + ": " + ec.message());
  if (size > kMaxTemplateBytes) {
    return failed_precondition("template " + path + " is larger than " +
                               std::to_string(kMaxTemplateBytes) + " bytes");
  }
  std::ifstream in(path, std::ios::binary);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (!in && !in.eof()) return failed_precondition("cannot read template " + path);
  return text;
}

// Writes `text` to a new private file in the temporary directory.
Result<std::string> write_temp(const std::string& stem, const std::string& text) {
  std::string path = (fs::temp_directory_path() / ("medic-" + stem + "-XXXXXX")).string();
  int fd = ::mkostemp(path.data(), O_CLOEXEC);
  if (fd < 0) return io_error("cannot create a payload file: " + std::string(std::strerror(errno)));
  size_t off = 0;
  while (off < text.size()) {
    ssize_t n = ::write(fd, text.data() + off, text.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    off += static_cast<size_t>(n);
  }
  ::close(fd);
  if (off != text.size()) {
    ::unlink(path.c_str());
    return io_error("cannot write payload file " + path);
  }
  return path;
}

}  // namespace

std::vector<std::string> VmadmHypervisor::templates() const {
  std::vector<std::string> out;
  if (opts_.templates_dir.empty()) return out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(opts_.templates_dir, ec)) {
    const fs::path& p = e.path();
    if (p.extension() != ".json" || !e.is_regular_file(ec)) continue;
    if (is_vm_name(p.stem().string())) out.push_back(p.stem().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

Status VmadmHypervisor::check_clone_free(const CloneSpec& spec) const {
  if (busy_.count(spec.id)) return already_exists("VM " + spec.id + " has a verb in progress");
  for (const auto& [uuid, alias] : creating_) {
    if (alias == spec.name) return already_exists("VM " + alias + " is being cloned");
  }
  for (const auto& e : listed_) {
    if (e.uuid == spec.id) return already_exists("a VM with uuid " + spec.id + " exists");
    if (e.alias == spec.name) return already_exists("a VM with alias " + spec.name + " exists");
  }
  return {};
}

// The template's payload with the clone's uuid, alias and medic's tags.
Result<Json> VmadmHypervisor::clone_payload(const CloneSpec& spec) const {
  const std::string path =
      (fs::path(opts_.templates_dir) / (spec.template_name + ".json")).string();
  auto text = read_template(path);
  if (!text.ok()) return text.status();
  auto payload = parse_json(*text, JsonLimits{kMaxTemplateBytes, 32});
  if (!payload.ok())
    return failed_precondition("template " + path + ": " + payload.status().message());
  if (!payload->is_object())
    return failed_precondition("template " + path + " is not a JSON object");
  Json& p = *payload;
  p["uuid"] = spec.id;
  p["alias"] = spec.name;
  const Json* had = json_member(p, "tags");
  Json tags = had && had->is_object() ? *had : Json::object();
  tags["medic_template"] = spec.template_name;
  tags["medic_clone"] = true;
  p["tags"] = std::move(tags);
  return payload;
}

Status VmadmHypervisor::begin_clone(const CloneSpec& spec, Duration timeout, VerbDone done) {
  MEDIC_RETURN_IF_ERROR(check_clone_spec(spec));
  if (opts_.templates_dir.empty()) {
    return failed_precondition("host " + opts_.host + " has no templates_dir: it does not clone");
  }
  const auto names = templates();
  if (!std::binary_search(names.begin(), names.end(), spec.template_name)) {
    return unknown_template(opts_.host, spec.template_name, names);
  }
  MEDIC_RETURN_IF_ERROR(check_clone_free(spec));
  auto payload = clone_payload(spec);
  if (!payload.ok()) return payload.status();
  const std::string what = "clone " + spec.name + " from template " + spec.template_name;
  auto file = write_temp("vmadm-create", dump_json(*payload) + "\n");
  if (!file.ok()) {
    completions_.push(std::move(done), file.status().with_context(what));
    return {};
  }
  busy_[spec.id] = medic::v1::VERB_CLONE;
  creating_[spec.id] = spec.name;
  const std::string id = spec.id;
  const std::string path = *file;
  run({"create", "-f", path}, clock_.now() + timeout,
      [this, id, path, what, done](Status s, RunResult) {
        ::unlink(path.c_str());
        busy_.erase(id);
        creating_.erase(id);
        if (!s.ok()) spdlog::warn("vmadm: {}: {} failed: {}", opts_.host, what, s.to_string());
        completions_.push(done, s.ok() ? s : s.with_context(what));
        refresh();
      });
  return {};
}

}  // namespace medic::vmm::vmadm
