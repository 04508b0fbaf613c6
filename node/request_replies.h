// The replies an ActionRequest gets after its first (`medic request --wait`,
// ActionRequest.follow): one signed ControlReply for each stage a VM's action
// reaches (pending approval, approved, waiting for a slot, dispatched, the
// actuator's result, healed or not, refused, denied, expired), until every VM
// it named has reached a final stage; the last reply says `done`.
//
// RequestFollowers keeps who waits for what and turns what the engine node
// sees into replies; the node's ControlServer sends them. A follower is
// found by the request's built-in rule and VM (one live request incident per
// verb and VM), so a step that waited for a slot and came back under a new
// decision id is still followed, then by each decision id it took. One that
// outlives `until` (its incident ended unseen, say, at a restart) gets a last
// reply saying so. A requester that went away just misses its replies.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "core/clock.h"
#include "medic/v1/control.pb.h"
#include "rules/decision.h"

namespace medic::node {

// The stage a decision put a request's step in (decision outcomes only).
medic::v1::Stage stage_of(const rules::Decision& d);
// Whether nothing follows `s` for that VM.
bool final_stage(medic::v1::Stage s);
// "dispatched", "pending approval", ...
std::string stage_words(medic::v1::Stage s);

class RequestFollowers {
 public:
  using Send = std::function<void(const std::string& peer, const medic::v1::ControlReply&)>;
  // At most `limit` requests are followed at once; past it the oldest is
  // told it is no longer followed.
  explicit RequestFollowers(Send send, size_t limit = 4096);

  // One VM of a request, and the decision its first reply answered.
  struct Step {
    std::string vm;
    std::string rule;  // the built-in request rule ("request:reboot")
    std::string decision_id;
    medic::v1::Stage stage = medic::v1::STAGE_ACCEPTED;
  };
  // Follows `request_id` from `peer` for the steps not yet final; nothing
  // when all are.
  void follow(const std::string& peer, const std::string& request_id, std::vector<Step> steps,
              Time until);

  void on_decision(const rules::Decision& d);
  void on_dispatched(const std::string& action_id, const std::string& host);
  void on_result(const std::string& action_id, bool ran, const std::string& detail);
  void on_heal(const rules::HealVerdict& v);
  // Ends the followers whose `until` is past.
  void expire(Time now);

  size_t size() const { return follows_.size(); }

 private:
  struct Track {
    std::string rule;
    std::vector<std::string> ids;  // decision ids it took
    bool done = false;
  };
  struct Follow {
    std::string peer;
    std::string request_id;
    Time until{};
    std::map<std::string, Track> vms;  // by VM id
  };
  struct Where {
    uint64_t follow = 0;
    std::string vm;
  };

  // The follower of decision `id` (or of `rule` on `vm`, learning `id`).
  const Where* find(const std::string& id, const std::string& rule, const std::string& vm);
  void tell(const Where& w, medic::v1::Stage stage, const std::string& decision_id,
            const std::string& text);
  void end(uint64_t follow);

  Send send_;
  size_t limit_;
  uint64_t next_ = 1;
  std::map<uint64_t, Follow> follows_;
  std::map<std::string, Where> by_key_;       // rule, unit separator, VM
  std::map<std::string, Where> by_decision_;  // decision (action) id
};

}  // namespace medic::node
