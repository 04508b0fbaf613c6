// The fleet table: every VM and host the engine has heard of, the facts rules
// read about each VM, and when each host last spoke.
//
// Contract:
// - VMs and hosts get dense indices (uint32_t) in the order they were first
//   heard of; indices are never reused or removed, so the engine's other parts
//   key their per-VM and per-host state by them.
// - Looking a known VM up by id allocates nothing (an open-addressing index
//   over the table; the ids live once, in the table).
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
};

struct HostEntry {
  std::string name;
  int64_t last_seen_ns = 0;
  std::vector<uint32_t> vms;
  bool silence_noticed = false;  // one notice per silent spell
};

class Fleet {
 public:
  // A host silent for longer than `host_silent_after` is silent; a VM not heard
  // of for longer than `forget_vm_after` is forgotten (no longer watched).
  Fleet(Duration host_silent_after, Duration forget_vm_after);
  Fleet(const Fleet&) = delete;
  Fleet& operator=(const Fleet&) = delete;

  // The index of host `name`, adding it if new.
  uint32_t host(const std::string& name);
  std::optional<uint32_t> find_host(const std::string& name) const;
  // The index of VM `id`, adding it if new (then *created is set), and moving
  // it to host `h` if it was elsewhere.
  uint32_t vm(const std::string& id, uint32_t h, bool* created);
  std::optional<uint32_t> find_vm(std::string_view id) const;

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
  // VM id -> index into vms_, open addressing over 32-bit slots. A node-based
  // map would store each id twice and spend ~70 bytes per VM on nodes.
  class VmIndex {
   public:
    static constexpr uint32_t kNone = std::numeric_limits<uint32_t>::max();
    explicit VmIndex(const std::vector<VmEntry>& vms) : vms_(vms), slots_(16, kNone) {}
    uint32_t find(std::string_view id) const;
    // REQUIRES: vms_[v] holds an id not yet indexed.
    void insert(uint32_t v);

   private:
    static size_t hash(std::string_view s) { return std::hash<std::string_view>{}(s); }
    void place(uint32_t v);
    void grow();
    const std::vector<VmEntry>& vms_;
    std::vector<uint32_t> slots_;
    size_t size_ = 0;
  };

  void move_vm(uint32_t v, uint32_t h);

  Duration host_silent_after_;
  Duration forget_vm_after_;
  std::vector<VmEntry> vms_;
  VmIndex vm_index_{vms_};
  std::unordered_map<std::string, uint32_t> host_index_;
  std::deque<HostEntry> hosts_;
};

}  // namespace medic::rules
