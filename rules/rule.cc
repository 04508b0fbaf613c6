#include "rules/rule.h"

#include <algorithm>

namespace medic::rules {
namespace {

constexpr std::array<std::string_view, 8> kSteps = {"reboot", "reset",  "restart", "stop",
                                                    "start",  "notify", "clone",   "delete"};

}  // namespace

std::string_view step_name(Step s) { return kSteps[static_cast<size_t>(s)]; }

const std::array<std::string_view, 8>& step_names() { return kSteps; }

std::vector<std::string_view> rule_step_names() {
  std::vector<std::string_view> out;
  for (size_t i = 0; i < kSteps.size(); ++i) {
    if (!request_only(static_cast<Step>(i))) out.push_back(kSteps[i]);
  }
  return out;
}

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
    case Step::kClone:
      return medic::v1::VERB_CLONE;
    case Step::kDelete:
      return medic::v1::VERB_DELETE;
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
      add_to_index(i);
    }
  }
}

void RuleSet::add_to_index(uint32_t i) {
  const Rule& r = *rules_[i];
  TypeIndex& t = index_[idx(r.event)];
  auto req = r.where.empty() ? std::nullopt : r.where.required_label();
  if (!req) {
    t.open.push_back(i);
    return;
  }
  auto li = std::find_if(t.by_label.begin(), t.by_label.end(),
                         [&](const LabelIndex& l) { return l.key == req->key; });
  if (li == t.by_label.end()) {
    t.by_label.push_back({req->key, {}});
    li = t.by_label.end() - 1;
  }
  std::sort(req->values.begin(), req->values.end());
  req->values.erase(std::unique(req->values.begin(), req->values.end()), req->values.end());
  for (auto& v : req->values) li->by_value[std::move(v)].push_back(i);
}

const std::vector<uint32_t>& RuleSet::candidates(EventType t, const VmFacts& vm,
                                                 std::vector<uint32_t>* scratch) const {
  const TypeIndex& ti = index_[idx(t)];
  if (ti.by_label.empty()) return ti.open;
  scratch->assign(ti.open.begin(), ti.open.end());
  size_t sources = scratch->empty() ? 0 : 1;
  for (const LabelIndex& li : ti.by_label) {
    auto it = li.by_value.find(vm.label(li.key));
    if (it == li.by_value.end()) continue;
    scratch->insert(scratch->end(), it->second.begin(), it->second.end());
    ++sources;
  }
  // Each list is in rule order; a rule sits in at most one of them.
  if (sources > 1) std::sort(scratch->begin(), scratch->end());
  return *scratch;
}

const Rule* RuleSet::find(std::string_view name) const {
  for (const auto& r : rules_) {
    if (r->name == name) return r.get();
  }
  return nullptr;
}

}  // namespace medic::rules
