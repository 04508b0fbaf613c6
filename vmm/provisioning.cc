#include "vmm/provisioning.h"

#include <cctype>

#include "core/text.h"

namespace medic::vmm {

bool is_uuid(const std::string& id) {
  if (id.size() != 36) return false;
  for (size_t i = 0; i < id.size(); ++i) {
    const bool dash_here = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash_here != (id[i] == '-')) return false;
    if (!dash_here && !std::isxdigit(static_cast<unsigned char>(id[i]))) return false;
  }
  return true;
}

Status check_clone_spec(const CloneSpec& spec) {
  if (!is_uuid(spec.id)) {
    return invalid_argument("clone id '" + spec.id + "' is not a uuid (8-4-4-4-12 hex digits)");
  }
  if (!is_vm_name(spec.name)) {
    return invalid_argument("clone name '" + spec.name +
                            "' must be 1-63 letters, digits, '.', '_' or '-' (not . or ..)");
  }
  if (spec.template_name.empty())
    return invalid_argument("clone of " + spec.name + ": no template named");
  return {};
}

Status unknown_template(const std::string& host, const std::string& name,
                        const std::vector<std::string>& templates) {
  std::string there;
  for (const auto& t : templates) there += (there.empty() ? "" : ", ") + t;
  return not_found("no template '" + name + "' on host " + host +
                   (there.empty() ? " (it has none)" : " (templates: " + there + ")"));
}

}  // namespace medic::vmm
