// Test doubles for the collector: a scripted Hypervisor, a Publisher that
// records frames, a ProcessStats with set figures, and keys/trust for one
// collector and one engine. Header-only, shared by unit and integration tests.
#pragma once

#include <deque>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "collectors/collector.h"
#include "collectors/probes.h"
#include "collectors/process_stats.h"
#include "collectors/publisher.h"
#include "fabric/envelope.h"
#include "fabric/identity.h"
#include "fabric/trust.h"
#include "vmm/hypervisor.h"

namespace medic::testing {

class FakeHypervisor : public vmm::Hypervisor {
 public:
  explicit FakeHypervisor(std::string host) : host_(std::move(host)) {}

  const std::string& host() const override { return host_; }
  Result<std::vector<vmm::VmInfo>> list() override {
    ++list_calls;
    if (!list_error.ok()) return list_error;
    std::vector<vmm::VmInfo> out;
    for (const auto& [id, vm] : vms) out.push_back(vm);
    return out;
  }
  Result<vmm::VmInfo> get(const std::string& vm) override {
    auto it = vms.find(vm);
    if (it == vms.end()) return not_found(vm);
    return it->second;
  }
  void subscribe(EventSink sink) override { sink_ = std::move(sink); }
  void poll() override {
    ++poll_calls;
    if (on_poll) on_poll();
    while (!queued.empty()) {
      vmm::VmEvent e = queued.front();
      queued.pop_front();
      if (sink_) sink_(e);
    }
    while (!completions.empty()) {
      auto c = std::move(completions.front());
      completions.pop_front();
      c();
    }
  }
  // Completes at the next poll().
  void execute(vmm::Verb, const std::string& vm, Duration, VerbDone done) override {
    Status s = vms.count(vm) ? Status() : not_found(vm);
    completions.push_back([done = std::move(done), s] { done(s); });
  }
  std::deque<std::function<void()>> completions;

  // Delivers an event right now, as a backend does from inside execute().
  void emit_now(const vmm::VmEvent& e) {
    if (sink_) sink_(e);
  }
  void add_vm(const std::string& id, vmm::VmState state, int pid = 0,
              std::map<std::string, std::string> labels = {}) {
    vmm::VmInfo vm;
    vm.id = id;
    vm.name = id;
    vm.state = state;
    vm.pid = pid;
    vm.labels = std::move(labels);
    vms[id] = vm;
  }
  bool subscribed() const { return static_cast<bool>(sink_); }

  std::map<std::string, vmm::VmInfo> vms;
  std::deque<vmm::VmEvent> queued;  // delivered by the next poll()
  Status list_error;
  std::function<void()> on_poll;  // runs at the start of each poll()
  int poll_calls = 0;
  int list_calls = 0;

 private:
  std::string host_;
  EventSink sink_;
};

class RecordingPublisher : public collectors::Publisher {
 public:
  void publish(collectors::Lane lane, const std::vector<std::string>& frames) override {
    for (const auto& f : frames) {
      (lane == collectors::Lane::kBulk ? bulk : urgent).push_back(f);
      ++counters_.sent[static_cast<size_t>(lane)];
    }
  }
  collectors::PublisherCounters counters() const override { return counters_; }

  std::vector<std::string> bulk;
  std::vector<std::string> urgent;

 private:
  collectors::PublisherCounters counters_;
};

class FakeProcessStats : public collectors::ProcessStats {
 public:
  Result<collectors::ProcessSample> sample(int pid) override {
    auto it = samples.find(pid);
    if (it == samples.end()) return not_found("no process " + std::to_string(pid));
    return it->second;
  }
  std::map<int, collectors::ProcessSample> samples;
};

inline fabric::Identity identity_from_byte(uint8_t b) {
  std::array<uint8_t, 32> seed{};
  seed.fill(b);
  return fabric::Identity::from_seed(seed);
}

// A collector for host-a, an engine, and the trust store the engine uses.
struct Keys {
  fabric::Identity collector = identity_from_byte(1);
  fabric::Identity engine = identity_from_byte(2);
  fabric::TrustStore trust;

  Keys() {
    fabric::TrustedNode c;
    c.name = "host-a";
    c.key = collector.public_key();
    c.curve_key = collector.curve_public();
    c.roles = static_cast<uint8_t>(fabric::Role::kCollector);
    c.hosts = {"host-a"};
    (void)trust.add(c);
    fabric::TrustedNode e;
    e.name = "engine-1";
    e.key = engine.public_key();
    e.curve_key = engine.curve_public();
    e.roles = static_cast<uint8_t>(fabric::Role::kEngine);
    e.hosts = {"*"};
    (void)trust.add(e);
  }
};

// Opens and decodes one frame as the engine would; returns the status of
// open() (as a Status) or of decode_event_batch().
inline Status open_batch(fabric::Opener& opener, const std::string& frame,
                         medic::v1::EventBatch* batch, medic::v1::Envelope* env = nullptr) {
  fabric::Opened opened;
  std::string detail;
  fabric::OpenError e = opener.open(frame, &opened, &detail);
  if (e != fabric::OpenError::kOk) {
    return permission_denied(std::string(fabric::open_error_name(e)) + ": " + detail);
  }
  if (env) *env = opened.envelope;
  return fabric::decode_event_batch(opened, batch);
}

}  // namespace medic::testing
