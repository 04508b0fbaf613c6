#include "rules/rule.h"

namespace medic::rules {
namespace {

constexpr std::array<std::string_view, 6> kSteps = {"reboot", "reset", "restart",
                                                    "stop",   "start", "notify"};

}  // namespace

std::string_view step_name(Step s) { return kSteps[static_cast<size_t>(s)]; }

std::optional<Step> step_from_name(std::string_view name) {
  for (size_t i = 0; i < kSteps.size(); ++i) {
    if (kSteps[i] == name) return static_cast<Step>(i);
  }
  return std::nullopt;
}

medic::v1::Verb step_verb(Step s) {
  switch (s) {
    case Step::kReboot:
      return medic::v1::VERB_REBOOT;
    case Step::kReset:
      return medic::v1::VERB_RESET;
    case Step::kRestart:
      return medic::v1::VERB_RESTART;
    case Step::kStop:
      return medic::v1::VERB_STOP;
    case Step::kStart:
      return medic::v1::VERB_START;
    case Step::kNotify:
      return medic::v1::VERB_UNSPECIFIED;
  }
  return medic::v1::VERB_UNSPECIFIED;
}

RuleSet::RuleSet(std::vector<RulePtr> rules) : rules_(std::move(rules)) {
  for (uint32_t i = 0; i < rules_.size(); ++i) {
    const Rule& r = *rules_[i];
    if (r.trigger == TriggerKind::kAbsent) {
      absent_[idx(r.event)].push_back(i);
      all_absent_.push_back(i);
    } else {
      on_[idx(r.event)].push_back(i);
    }
  }
}

const Rule* RuleSet::find(std::string_view name) const {
  for (const auto& r : rules_) {
    if (r->name == name) return r.get();
  }
  return nullptr;
}

}  // namespace medic::rules
