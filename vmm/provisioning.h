// Checks every provisioning backend (sim, qmp, vmadm) applies to a CloneSpec
// before it makes anything, and the wording of their refusals, so the three
// answer a bad request alike. Not a public header: the contract is
// Hypervisor::begin_clone's (vmm/hypervisor.h).
#pragma once

#include <string>
#include <vector>

#include "core/status.h"
#include "vmm/hypervisor.h"

namespace medic::vmm {

// (A clone's name is one core/text.h is_vm_name accepts: a safe directory
// name too.)

// 8-4-4-4-12 hex digits (either case).
bool is_uuid(const std::string& id);

// kInvalidArgument naming the field for a malformed id or name; ok otherwise.
// The template's existence is the backend's to check.
Status check_clone_spec(const CloneSpec& spec);

// kNotFound "no template T on host H (templates: a, b)" or "(it has none)".
Status unknown_template(const std::string& host, const std::string& name,
                        const std::vector<std::string>& templates);

}  // namespace medic::vmm
