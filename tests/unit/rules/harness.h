// Shared by the engine and scenario tests: an engine on a VirtualClock, a
// recording sink, and builders for decoded events.
#pragma once

#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "core/clock.h"
#include "rules/engine.h"
#include "rules/loader.h"

namespace medic::rules::testing {

class RecordingSink : public DecisionSink {
 public:
  void on_decision(const Decision& d) override { decisions.push_back(d); }
  void on_heal_verdict(const HealVerdict& v) override { verdicts.push_back(v); }
  std::vector<Decision> decisions;
  std::vector<HealVerdict> verdicts;
};

inline medic::v1::Event heartbeat(const std::string& host, const std::string& vm) {
  medic::v1::Event e;
  e.set_host(host);
  e.set_vm(vm);
  e.mutable_heartbeat()->set_source("sim");
  return e;
}

inline medic::v1::Event lifecycle(const std::string& host, const std::string& vm,
                                  medic::v1::Lifecycle what) {
  medic::v1::Event e;
  e.set_host(host);
  e.set_vm(vm);
  e.mutable_lifecycle()->set_what(what);
  return e;
}

inline medic::v1::Event state(const std::string& host, const std::string& vm, medic::v1::VmState s,
                              std::vector<std::pair<std::string, std::string>> labels = {}) {
  medic::v1::Event e;
  e.set_host(host);
  e.set_vm(vm);
  e.mutable_state()->set_state(s);
  for (auto& [k, v] : labels) {
    auto* l = e.mutable_state()->add_labels();
    l->set_key(k);
    l->set_value(v);
  }
  return e;
}

inline medic::v1::Event probe(const std::string& host, const std::string& vm,
                              const std::string& name, bool ok) {
  medic::v1::Event e;
  e.set_host(host);
  e.set_vm(vm);
  e.mutable_probe()->set_probe(name);
  e.mutable_probe()->set_ok(ok);
  e.mutable_probe()->set_status(ok ? 200 : 503);
  return e;
}

inline std::shared_ptr<const RuleSet> must_load(const std::string& yaml) {
  auto r = load_rule_text(yaml, "test.yaml");
  EXPECT_TRUE(r.ok()) << r.text();
  return r.rules ? r.rules : std::make_shared<const RuleSet>();
}

struct Harness {
  explicit Harness(const std::string& yaml, EngineOptions opt = {})
      : engine(clock, must_load(yaml), std::move(opt), sink), start(clock.now()) {}

  // Hosts that sent an event keep reporting through advance() (as live
  // collectors do) until go_silent() says otherwise.
  void send(const medic::v1::Event& e, EvidenceRef ref = 0) {
    alive.insert(e.host());
    engine.ingest(e, ref);
  }
  void go_silent(const std::string& host) { alive.erase(host); }
  // Every VM in `vms` sends a heartbeat every `every` until `until` from now;
  // hosts are kept seen too.
  // The listed VMs heartbeat and the listed hosts report, every `every`,
  // for `total`; the first round is sent at once.
  void run(Duration total, Duration every,
           const std::vector<std::pair<std::string, std::string>>& beating,
           const std::vector<std::string>& hosts_alive) {
    Time end = clock.now() + total;
    while (clock.now() < end) {
      for (const auto& h : hosts_alive) engine.host_seen(h, clock.now());
      for (const auto& [h, v] : beating) send(heartbeat(h, v));
      clock.advance(std::min<Duration>(every, end - clock.now()));
    }
  }
  void advance(Duration d) {
    Time end = clock.now() + d;
    while (clock.now() < end) {
      for (const auto& h : alive) engine.host_seen(h, clock.now());
      clock.advance(std::min<Duration>(std::chrono::seconds(5), end - clock.now()));
    }
  }
  Duration elapsed() const { return clock.now() - start; }

  std::vector<Decision> take() {
    auto out = std::move(sink.decisions);
    sink.decisions.clear();
    return out;
  }
  std::vector<Decision> with(Outcome o) const {
    std::vector<Decision> out;
    for (const auto& d : sink.decisions) {
      if (d.outcome == o) out.push_back(d);
    }
    return out;
  }
  size_t count(Step s, Outcome o) const {
    size_t n = 0;
    for (const auto& d : sink.decisions) n += d.step == s && d.outcome == o;
    return n;
  }

  VirtualClock clock;
  RecordingSink sink;
  Engine engine;
  Time start;
  std::set<std::string> alive;
};

}  // namespace medic::rules::testing
