#include "rules/triggers.h"

#include <algorithm>

#include "core/duration.h"

namespace medic::rules {

namespace {

std::string fmt(Duration d) {
  return format_duration(std::chrono::duration_cast<std::chrono::milliseconds>(d));
}

}  // namespace

const std::string& signal_name(const medic::v1::Event& e) {
  static const std::string kNone;
  if (e.has_probe()) return e.probe().probe();
  if (e.has_alert()) return e.alert().name();
  return kNone;
}

void incident_key(const Rule& r, const VmFacts& vm, const medic::v1::Event* e, std::string* k) {
  k->assign(r.name);
  for (KeyField f : r.key) {
    *k += '\x1f';
    switch (f) {
      case KeyField::kVmId:  // a VM is (host, id): one host's claim keys apart from another's
        *k += vm.host;
        *k += '\x1e';
        *k += vm.id;
        break;
      case KeyField::kVmHost:
        *k += vm.host;
        break;
      case KeyField::kProbeName:
        if (e) *k += e->probe().probe();
        break;
      case KeyField::kAlertName:
        if (e) *k += e->alert().name();
        break;
    }
  }
}

std::string describe_event_trigger(const Rule& r, EventType type, const medic::v1::Event& e) {
  if (r.trigger == TriggerKind::kCount) {
    return std::to_string(r.count) + " " + std::string(event_type_name(r.event)) + " within " +
           fmt(r.within);
  }
  std::string what(event_type_name(type));
  if (e.has_probe()) what += " (probe " + e.probe().probe() + ")";
  if (e.has_alert()) what += " (alert " + e.alert().name() + ")";
  return what;
}

std::string describe_absence(const Rule& r) {
  return "no " + std::string(event_type_name(r.event)) + " for " + fmt(r.absent_for);
}

bool CountWindows::reached(const Rule& r, const std::string& key, int64_t now) {
  auto& times = times_[key];
  times.push_back(now);
  int64_t floor = now - r.within.count();
  times.erase(times.begin(),
              std::find_if(times.begin(), times.end(), [&](int64_t t) { return t > floor; }));
  if (times.size() < r.count) return false;
  times.clear();
  return true;
}

AbsenceWatch::AbsenceWatch(Clock& clock, OnDue on_due)
    : clock_(clock), on_due_(std::move(on_due)) {}

AbsenceWatch::~AbsenceWatch() {
  if (timer_) clock_.cancel(timer_);
}

void AbsenceWatch::rebuild(const RuleSet& rules, size_t vm_count, int64_t now) {
  std::vector<Slot> old;
  old.swap(slots_);
  slot_of_rule_.assign(rules.size(), 0);
  for (uint32_t i : rules.absence_rules()) {
    const RulePtr& r = rules.rules()[i];
    slot_of_rule_[i] = static_cast<uint32_t>(slots_.size());
    auto same = std::find_if(old.begin(), old.end(), [&](const Slot& s) {
      return s.rule && s.rule->name == r->name && s.rule->event == r->event;
    });
    if (same != old.end()) {
      slots_.push_back({r, std::move(same->tracker)});
      same->rule = nullptr;
      continue;
    }
    slots_.push_back({r, {}});
    for (uint32_t v = 0; v < vm_count; ++v) {
      slots_.back().tracker.arm(v, now + r->absent_for.count());
    }
  }
  ensure_timer();
}

void AbsenceWatch::arm_all(uint32_t v, int64_t now) {
  for (auto& slot : slots_) slot.tracker.arm(v, now + slot.rule->absent_for.count());
  ensure_timer();
}

void AbsenceWatch::signalled(const RuleSet& rules, EventType type, uint32_t v, int64_t now) {
  for (uint32_t i : rules.absence_signalled_by(type)) {
    Slot& slot = slots_[slot_of_rule_[i]];
    slot.tracker.arm(v, now + slot.rule->absent_for.count());
  }
}

void AbsenceWatch::rearm(const std::vector<uint32_t>& vms, int64_t now) {
  for (auto& slot : slots_) {
    for (uint32_t v : vms) slot.tracker.arm(v, now + slot.rule->absent_for.count());
  }
  ensure_timer();
}

void AbsenceWatch::arm(const Rule& r, uint32_t v, int64_t deadline) {
  for (auto& slot : slots_) {
    if (slot.rule->name == r.name) slot.tracker.arm(v, deadline);
  }
}

void AbsenceWatch::pop_due(int64_t now, std::vector<Due>* out) {
  for (auto& slot : slots_) {
    due_buf_.clear();
    slot.tracker.pop_due(now, &due_buf_);
    // Heap order among equal deadlines is arbitrary; VM order is stable and
    // is the order the engine first heard of them.
    std::sort(due_buf_.begin(), due_buf_.end());
    for (uint32_t v : due_buf_) out->push_back({slot.rule, v});
  }
}

void AbsenceWatch::ensure_timer() {
  int64_t next = std::numeric_limits<int64_t>::max();
  for (const auto& s : slots_) {
    if (auto n = s.tracker.next_check()) next = std::min(next, *n);
  }
  if (next >= timer_at_) return;
  if (timer_) clock_.cancel(timer_);
  timer_at_ = next;
  timer_ = clock_.schedule_at(from_ns(next), [this] {
    timer_ = 0;
    timer_at_ = std::numeric_limits<int64_t>::max();
    on_due_();
    ensure_timer();
  });
}

size_t AbsenceWatch::armed_count() const {
  size_t n = 0;
  for (const auto& s : slots_) n += s.tracker.armed_count();
  return n;
}

}  // namespace medic::rules
