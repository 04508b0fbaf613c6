#include "node/request_replies.h"

#include "rules/engine.h"

namespace medic::node {
namespace {

using medic::v1::Stage;

std::string key_of(const std::string& rule, const std::string& vm) { return rule + '\x1f' + vm; }

// "budget: VM web-1 used 3 of 3 actions per 1h", or just the reason.
std::string decision_text(const rules::Decision& d) {
  std::string out;
  if (d.policy != rules::Policy::kNone) out = std::string(rules::policy_name(d.policy));
  if (!d.reason.empty()) out += (out.empty() ? "" : ": ") + d.reason;
  return out;
}

}  // namespace

Stage stage_of(const rules::Decision& d) {
  switch (d.outcome) {
    case rules::Outcome::kProposed:
      return medic::v1::STAGE_ACCEPTED;
    case rules::Outcome::kPendingApproval:
      return medic::v1::STAGE_PENDING_APPROVAL;
    case rules::Outcome::kApproved:
      return medic::v1::STAGE_APPROVED;
    case rules::Outcome::kDenied:
      return medic::v1::STAGE_DENIED;
    case rules::Outcome::kExpired:
      return medic::v1::STAGE_EXPIRED;
    case rules::Outcome::kDryRun:
      return medic::v1::STAGE_DRY_RUN;
    case rules::Outcome::kSuppressed:
      if (!d.checks.empty() && d.checks.back().verdict == rules::Verdict::kWait)
        return medic::v1::STAGE_WAITING;
      return medic::v1::STAGE_REFUSED;
  }
  return medic::v1::STAGE_UNSPECIFIED;
}

bool final_stage(Stage s) {
  switch (s) {
    case medic::v1::STAGE_REFUSED:
    case medic::v1::STAGE_HEALED:
    case medic::v1::STAGE_NOT_HEALED:
    case medic::v1::STAGE_DENIED:
    case medic::v1::STAGE_EXPIRED:
    case medic::v1::STAGE_DRY_RUN:
      return true;
    default:
      return false;
  }
}

std::string stage_words(Stage s) {
  switch (s) {
    case medic::v1::STAGE_ACCEPTED:
      return "accepted";
    case medic::v1::STAGE_REFUSED:
      return "refused";
    case medic::v1::STAGE_PENDING_APPROVAL:
      return "pending approval";
    case medic::v1::STAGE_APPROVED:
      return "approved";
    case medic::v1::STAGE_WAITING:
      return "waiting";
    case medic::v1::STAGE_DISPATCHED:
      return "dispatched";
    case medic::v1::STAGE_RESULT:
      return "result";
    case medic::v1::STAGE_HEALED:
      return "healed";
    case medic::v1::STAGE_NOT_HEALED:
      return "not healed";
    case medic::v1::STAGE_DENIED:
      return "denied";
    case medic::v1::STAGE_EXPIRED:
      return "expired";
    case medic::v1::STAGE_DRY_RUN:
      return "dry run";
    default:
      return "answered";
  }
}

RequestFollowers::RequestFollowers(Send send, size_t limit)
    : send_(std::move(send)), limit_(limit) {}

void RequestFollowers::follow(const std::string& peer, const std::string& request_id,
                              std::vector<Step> steps, Time until) {
  Follow f{peer, request_id, until, {}};
  const uint64_t n = next_++;
  for (auto& s : steps) {
    if (final_stage(s.stage) || s.decision_id.empty()) continue;
    f.vms[s.vm] = Track{s.rule, {s.decision_id}, false};
    by_key_[key_of(s.rule, s.vm)] = {n, s.vm};
    by_decision_[s.decision_id] = {n, s.vm};
  }
  if (f.vms.empty()) return;
  follows_.emplace(n, std::move(f));
  while (follows_.size() > limit_) {
    const uint64_t oldest = follows_.begin()->first;
    Follow& old = follows_.begin()->second;
    medic::v1::ControlReply r;
    r.set_request_id(old.request_id);
    r.set_ok(false);
    r.set_error("the engine follows too many requests; this one is no longer followed");
    r.set_done(true);
    send_(old.peer, r);
    end(oldest);
  }
}

const RequestFollowers::Where* RequestFollowers::find(const std::string& id,
                                                      const std::string& rule,
                                                      const std::string& vm) {
  if (auto it = by_decision_.find(id); it != by_decision_.end()) return &it->second;
  if (!rules::is_request_rule(rule)) return nullptr;
  auto it = by_key_.find(key_of(rule, vm));
  if (it == by_key_.end()) return nullptr;
  follows_.at(it->second.follow).vms.at(vm).ids.push_back(id);
  return &(by_decision_[id] = it->second);
}

void RequestFollowers::tell(const Where& w, Stage stage, const std::string& decision_id,
                            const std::string& text) {
  const Where where = w;  // `w` lives in a map end() may edit
  Follow& f = follows_.at(where.follow);
  Track& t = f.vms.at(where.vm);
  if (final_stage(stage)) t.done = true;
  bool all_done = true;
  for (const auto& [vm, track] : f.vms) all_done = all_done && track.done;
  medic::v1::ControlReply r;
  r.set_request_id(f.request_id);
  r.set_ok(stage != medic::v1::STAGE_REFUSED && stage != medic::v1::STAGE_NOT_HEALED &&
           stage != medic::v1::STAGE_DENIED && stage != medic::v1::STAGE_EXPIRED);
  r.set_stage(stage);
  r.set_vm(where.vm);
  r.set_decision_id(decision_id);
  r.set_text("VM " + where.vm + ": " + stage_words(stage) + (text.empty() ? "" : ": " + text));
  if (!r.ok()) r.set_error(r.text());
  r.set_done(all_done);
  send_(f.peer, r);
  if (all_done) end(where.follow);
}

void RequestFollowers::end(uint64_t follow) {
  auto it = follows_.find(follow);
  if (it == follows_.end()) return;
  for (const auto& [vm, track] : it->second.vms) {
    by_key_.erase(key_of(track.rule, vm));
    for (const auto& id : track.ids) by_decision_.erase(id);
  }
  follows_.erase(it);
}

void RequestFollowers::on_decision(const rules::Decision& d) {
  if (follows_.empty()) return;
  const Where* w = find(d.id, d.rule, d.vm);
  if (w) tell(*w, stage_of(d), d.id, decision_text(d));
}

void RequestFollowers::on_dispatched(const std::string& action_id, const std::string& host) {
  if (auto it = by_decision_.find(action_id); it != by_decision_.end())
    tell(it->second, medic::v1::STAGE_DISPATCHED, action_id, "to the actuator of " + host);
}

void RequestFollowers::on_result(const std::string& action_id, bool ran,
                                 const std::string& detail) {
  if (auto it = by_decision_.find(action_id); it != by_decision_.end())
    tell(it->second, medic::v1::STAGE_RESULT, action_id, (ran ? "" : "failed: ") + detail);
}

void RequestFollowers::on_heal(const rules::HealVerdict& v) {
  auto it = by_decision_.find(v.decision_id);
  if (it == by_decision_.end()) return;
  tell(it->second, v.healed ? medic::v1::STAGE_HEALED : medic::v1::STAGE_NOT_HEALED, v.decision_id,
       v.detail);
}

void RequestFollowers::expire(Time now) {
  std::vector<uint64_t> late;
  for (const auto& [n, f] : follows_) {
    if (f.until <= now) late.push_back(n);
  }
  for (uint64_t n : late) {
    Follow& f = follows_.at(n);
    medic::v1::ControlReply r;
    r.set_request_id(f.request_id);
    r.set_ok(false);
    r.set_error("no word on this request within the time the engine follows it; see medic audit");
    r.set_done(true);
    send_(f.peer, r);
    end(n);
  }
}

}  // namespace medic::node
