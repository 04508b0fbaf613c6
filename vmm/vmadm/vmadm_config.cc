#include "vmm/vmadm/vmadm.h"

#include <yaml-cpp/yaml.h>

namespace medic::vmm::vmadm {

VmadmOptions read_vmadm_options(ConfigReader& r, const YAML::Node& map) {
  VmadmOptions o;
  if (!r.expect_map(map, "vmadm")) return o;
  r.check_keys(map, {"host", "vmadm_path", "zones_root", "list_timeout", "list_interval",
                     "max_output_bytes", "force_stop", "templates_dir"});
  if (auto v = r.string(map, "host", false)) o.host = *v;
  if (auto v = r.string(map, "vmadm_path", false)) {
    if (v->empty() || (*v)[0] != '/') {
      r.error(map["vmadm_path"], "\"vmadm_path\" must be an absolute path (no $PATH lookup)");
    } else {
      o.vmadm_path = *v;
    }
  }
  if (auto v = r.string(map, "zones_root", false)) o.zones_root = *v;
  if (auto v = r.duration(map, "list_timeout", false)) {
    if (*v <= Duration::zero()) {
      r.error(map["list_timeout"], "\"list_timeout\" must be longer than 0");
    } else {
      o.list_timeout = *v;
    }
  }
  if (auto v = r.duration(map, "list_interval", false)) {
    if (*v <= Duration::zero()) {
      r.error(map["list_interval"], "\"list_interval\" must be longer than 0");
    } else {
      o.list_interval = *v;
    }
  }
  if (auto v = r.integer(map, "max_output_bytes", false, 1024, int64_t{1} << 30)) {
    o.max_output_bytes = static_cast<size_t>(*v);
  }
  if (auto v = r.boolean(map, "force_stop", false)) o.force_stop = *v;
  if (auto v = r.string(map, "templates_dir", false)) {
    if (v->empty() || (*v)[0] != '/') {
      r.error(map["templates_dir"], "\"templates_dir\" must be an absolute path");
    } else {
      o.templates_dir = *v;
    }
  }
  return o;
}

}  // namespace medic::vmm::vmadm
