// The fleet table: every VM and host the engine has heard of, the facts rules
// read about each VM, and when each host last spoke.
//
// Contract:
// - A VM is a (host, VM id) pair: the same id reported by two hosts is two
//   entries, each with its own facts, so whatever one host says of an id
//   never changes what the engine knows of another host's VM of that id.
// - Each VM id has one owner: the host whose report of it came first. A
//   report from another host is a conflicting claim (claim() says so) until
//   the owner lets go: its VM was not heard of for forget_vm_after, or its
//   last state report said stopped (the VM left, e.g. migrated). Then the
//   next host to report the id owns it.
// - VMs and hosts get dense indices (uint32_t) in the order they were first
//   heard of; indices are never reused or removed, so the engine's other parts
//   key their per-VM and per-host state by them.
// - Looking a known VM up by (host, id) allocates nothing (an open-addressing
//   index over the table; the ids live once, in the table).
// - A VmFacts::host is a view of its host's name, which lives as long as the
//   table (hosts sit in a deque).
// - It holds no clock: callers pass `now` (ns since epoch).
#pragma once

#include <cstdint>
#include <deque>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/clock.h"
#include "medic/v1/events.pb.h"
#include "rules/decision.h"
#include "rules/event_types.h"
#include "rules/expr.h"

namespace medic::rules {

constexpr uint32_t kNoHost = std::numeric_limits<uint32_t>::max();

struct VmEntry {
  VmFacts facts;
  uint32_t host = kNoHost;
  uint16_t open = 0;  // open incidents on this VM
  int64_t last_seen_ns = 0;
  EvidenceRef last_ref = 0;  // the last event heard of it
  bool owner = false;             // its host owns the VM id
  bool claim_noticed = false;     // a conflicting claim: noticed once
  bool retired = false;           // deleted (or a clone that never was): its events are dropped
  uint32_t at_host = 0;           // its place in its host's `vms`
};

// What a report of a VM means for its id's ownership.
enum class Claim : uint8_t {
  kOwner,          // from the owner
  kTakenOver,      // the owner had let go; this host owns the id now
  kConflict,       // another host owns the id (claim_noticed was already set)
  kFirstConflict,  // likewise, the first report of this spell (notice it)
};

struct HostEntry {
  std::string name;
  int64_t last_seen_ns = 0;
  std::vector<uint32_t> vms;
  uint32_t retired = 0;          // of vms
  bool silence_noticed = false;  // one notice per silent spell
  uint32_t last_found = 0;       // the place in `vms` of the VM Fleet::vm found last
  uint32_t live_vms() const { return static_cast<uint32_t>(vms.size()) - retired; }
};

class Fleet {
 public:
  // A host silent for longer than `host_silent_after` is silent; a VM not heard
  // of for longer than `forget_vm_after` is forgotten (no longer watched).
  Fleet(Duration host_silent_after, Duration forget_vm_after);
  Fleet(const Fleet&) = delete;
  Fleet& operator=(const Fleet&) = delete;

  // The index of host `name`, adding it (and setting *created) if new.
  uint32_t host(const std::string& name, bool* created = nullptr);
  std::optional<uint32_t> find_host(const std::string& name) const;
  // The index of VM `id` on host `h`, adding it if new (then *created is
  // set). A new entry owns the id when no other host does.
  uint32_t vm(const std::string& id, uint32_t h, bool* created);
  std::optional<uint32_t> find_vm(uint32_t h, std::string_view id) const;
  // The entry of the host that owns VM id `id`.
  std::optional<uint32_t> owner_of(std::string_view id) const;
  // VM `v` was just reported at `now`: whether its host owns the id, takes it
  // over from an owner that let go, or claims it against the owner.
  Claim claim(uint32_t v, int64_t now);
  // Makes `v` the owner of its id (restoring a snapshot).
  void make_owner(uint32_t v);
  // VM `v` is gone for good (deleted, or a clone that was never made): it is
  // forgotten, its host let it go, and it no longer counts among the live
  // VMs the storm guard's fractions are of. Its entry stays (indices are
  // never reused); the engine drops events for it.
  void retire(uint32_t v);
  // VMs that are not retired, fleet-wide.
  size_t live_vm_count() const { return vms_.size() - retired_; }
  // Whether the owner `v` has let go of its id as of `now`.
  bool let_go(const VmEntry& owner, int64_t now) const;

  // Host `h` spoke at `at`. Returns true when it had been silent before.
  bool mark_seen(uint32_t h, int64_t at);
  bool host_silent(uint32_t h, int64_t now) const;
  // Nothing was heard of the VM for longer than forget_vm_after (or ever).
  bool forgotten(const VmEntry& vm, int64_t now) const;
  // Keeps the facts rules read (heartbeat time, state, resources, labels).
  static void update_facts(VmEntry& vm, EventType type, const medic::v1::Event& e, int64_t now);

  VmEntry& vm_at(uint32_t v) { return vms_[v]; }
  const VmEntry& vm_at(uint32_t v) const { return vms_[v]; }
  HostEntry& host_at(uint32_t h) { return hosts_[h]; }
  const HostEntry& host_at(uint32_t h) const { return hosts_[h]; }
  HostEntry& host_of(uint32_t v) { return hosts_[vms_[v].host]; }
  size_t vm_count() const { return vms_.size(); }
  size_t host_count() const { return hosts_.size(); }
  Duration host_silent_after() const { return host_silent_after_; }

 private:
  // (host, VM id) -> index into vms_, or, `by_id_only`, VM id -> one entry
  // of it; open addressing over 32-bit slots. A node-based map would store
  // each id twice and spend ~70 bytes per VM on nodes.
  class VmIndex {
   public:
    static constexpr uint32_t kNone = std::numeric_limits<uint32_t>::max();
    VmIndex(const std::vector<VmEntry>& vms, bool by_id_only)
        : vms_(vms), by_id_only_(by_id_only), slots_(16, kNone) {}
    uint32_t find(uint32_t h, std::string_view id) const { return slots_[slot(h, id)]; }
    // REQUIRES: vms_[v]'s key is not yet indexed.
    void insert(uint32_t v);
    // REQUIRES: by_id_only, and an entry of vms_[v]'s id is indexed: v takes its place.
    void replace(uint32_t v) { slots_[slot(0, vms_[v].facts.id)] = v; }

   private:
    size_t hash(uint32_t h, std::string_view id) const;
    // The slot holding the key, or the empty slot where it would go.
    size_t slot(uint32_t h, std::string_view id) const;
    void grow();
    const std::vector<VmEntry>& vms_;
    bool by_id_only_;
    std::vector<uint32_t> slots_;
    size_t size_ = 0;
  };

  Duration host_silent_after_;
  Duration forget_vm_after_;
  std::vector<VmEntry> vms_;
  size_t retired_ = 0;
  VmIndex vm_index_{vms_, false};
  VmIndex owner_index_{vms_, true};  // VM id -> its owner's entry
  std::unordered_map<std::string, uint32_t> host_index_;
  std::deque<HostEntry> hosts_;
  // The host last looked up: a batch's events all name its one host.
  uint32_t last_host_ = 0;
  const std::string* last_name_ = nullptr;
};

}  // namespace medic::rules
