// Party: who a component is on the fabric and what it runs on — the ZeroMQ
// context (with its ZAP handler), its own signing identity, the trust store
// it checks senders against, and the Clock.
//
// The one way components take their dependencies (docs/architecture.md,
// "Creating a component"): every part that binds or connects a fabric socket
// is made by
//     static Result<std::unique_ptr<T>> create(Options, const fabric::Party&,
//                                              collaborators...);
// its options first (a value it keeps), then the Party, then the parts it
// works with (a hypervisor, a sink, a loop), required ones as references and
// optional ones as pointers at the end. The referenced objects outlive the
// component; a Party is a handful of references, cheap to copy, and a
// component may keep its own copy.
#pragma once

#include "core/clock.h"
#include "fabric/identity.h"
#include "fabric/transport.h"
#include "fabric/trust.h"

namespace medic::fabric {

struct Party {
  Context& ctx;
  const Identity& identity;
  const TrustStore& trust;
  Clock& clock;
};

}  // namespace medic::fabric
