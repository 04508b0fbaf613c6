// What `medic demo` shows: the engine's decisions and dispatch events, the
// injected faults and the ground truth of healing, turned into timeline
// lines (app/timeline.h), keyed by VM id and named for people.
#pragma once

#include <functional>
#include <map>
#include <string>

#include "app/timeline.h"
#include "node/engine_node.h"
#include "vmm/sim/sim.h"

namespace medic::app {

class DemoView final : public node::EngineObserver {
 public:
  // `name_of` gives a VM's name for people; `healthy` is the ground truth a
  // fault is healed by (the simulator's, or a real guest's heartbeat).
  DemoView(Timeline& tl, Clock& clock, std::function<std::string(const std::string&)> name_of,
           std::function<bool(const std::string&, Time since)> healthy)
      : tl_(tl), clock_(clock), name_of_(std::move(name_of)), healthy_(std::move(healthy)) {}

  std::string name(const std::string& vm) const { return name_of_(vm); }

  void on_fault(const vmm::sim::InjectedFault& f);
  void fault(Time at, const std::string& vm, const std::string& what);

  void on_batch(const medic::v1::EventBatch& batch, bool urgent) override;
  void on_decision(const rules::Decision& d) override;
  void on_dispatch_event(const actuators::DispatchEvent& e) override;

  // Ground truth: a VM whose fault is gone is healed.
  void check_healed();

  // An action id of this run for the closing hints: one that healed its VM,
  // else the first one decided; empty when there was none.
  const std::string& example_action() const {
    return succeeded_.empty() ? first_action_ : succeeded_;
  }

 private:
  Timeline& tl_;
  Clock& clock_;
  std::function<std::string(const std::string&)> name_of_;
  std::function<bool(const std::string&, Time)> healthy_;
  std::map<std::string, Time> watching_;  // VM -> when its fault began
  std::map<std::string, std::string> names_;
  std::string first_action_;
  std::string succeeded_;
};

}  // namespace medic::app
