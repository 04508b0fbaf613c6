// Sample payloads for the strict-payload tests and fuzz targets: one message
// of each inner kind with every field set (the positive control for the
// schema table), and an oracle built on the generated code: does the lite
// parser accept these bytes, and does it find unknown fields anywhere inside?
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <google/protobuf/stubs/logging.h>

#include "medic/v1/actions.pb.h"
#include "medic/v1/control.pb.h"
#include "medic/v1/envelope.pb.h"
#include "medic/v1/events.pb.h"

namespace medic::fabric::test {

// Every inner kind, in Kind order.
inline constexpr medic::v1::Kind kInnerKinds[] = {
    medic::v1::KIND_EVENT_BATCH,    medic::v1::KIND_ACTION,        medic::v1::KIND_ACTION_ACK,
    medic::v1::KIND_ACTION_RESULT,  medic::v1::KIND_CONTROL_REQUEST,
    medic::v1::KIND_CONTROL_REPLY,  medic::v1::KIND_CHECKPOINT,
};

inline medic::v1::EventBatch full_batch(const std::string& host) {
  medic::v1::EventBatch b;
  b.set_urgent(true);
  auto event = [&](const std::string& vm) {
    auto* e = b.add_events();
    e->set_host(host);
    e->set_vm(vm);
    e->set_observed_at_ns(1'700'000'000'000'000'000);
    return e;
  };
  auto* s = event("vm-state")->mutable_state();
  s->set_state(medic::v1::VM_STATE_RUNNING);
  s->set_last_heartbeat_ns(1'700'000'000'000'000'000);
  s->set_cpu_percent(12.5);
  s->set_rss_bytes(1 << 20);
  s->set_uptime_ns(99);
  for (const char* k : {"tier", "team"}) {
    auto* l = s->add_labels();
    l->set_key(k);
    l->set_value("web");
  }
  auto* lc = event("vm-life")->mutable_lifecycle();
  lc->set_what(medic::v1::LIFECYCLE_PANICKED);
  lc->set_detail("pvpanic");
  lc->set_vm_name("db-primary");
  auto* hb = event("vm-beat")->mutable_heartbeat();
  hb->set_counter(7);
  hb->set_source("backend");
  event("vm-agent")->mutable_guest_ping()->set_latency_ns(2000);
  auto* p = event("vm-probe")->mutable_probe();
  p->set_probe("http");
  p->set_ok(true);
  p->set_status(200);
  p->set_latency_ns(1000);
  p->set_reason("slow");
  auto* al = event("vm-alert")->mutable_alert();
  al->set_firing(true);
  al->set_name("AppUnresponsive");
  for (auto* kv : {al->add_labels(), al->add_annotations()}) {
    kv->set_key("severity");
    kv->set_value("page");
  }
  al->set_fingerprint("4f2a");
  al->set_starts_at_ns(1'700'000'000'000'000'000);
  al->set_generator_url("http://127.0.0.1:9090/graph");
  al->set_receiver("medic");
  return b;
}

inline medic::v1::Action full_action(const std::string& host) {
  medic::v1::Action a;
  a.set_id("a-1");
  a.set_verb(medic::v1::VERB_RESET);
  a.set_host(host);
  a.set_vm("vm-1");
  a.set_issued_at_ns(1);
  a.set_expires_at_ns(2);
  a.set_rule("guest-panicked");
  a.set_rule_version("3");
  a.set_attempt(1);
  a.set_watch_ns(5);
  a.set_fault("panic");
  a.set_template_name("web");
  a.set_vm_name("web-9");
  return a;
}

inline medic::v1::ActionAck full_ack() {
  medic::v1::ActionAck a;
  a.set_action_id("a-1");
  a.set_what(medic::v1::ActionAck::WHAT_RECEIVED);
  return a;
}

inline medic::v1::ActionResult full_result() {
  medic::v1::ActionResult r;
  r.set_action_id("a-1");
  r.set_outcome(medic::v1::ActionResult::OUTCOME_SUCCEEDED);
  r.set_reason("done");
  r.set_healed(true);
  r.set_executed_at_ns(1);
  r.set_finished_at_ns(2);
  r.set_output("ok");
  return r;
}

// A oneof holds one member: `which` picks approve (0), deny, silence, status,
// vm (4), vm_action (5), request (6) or unsilence (7).
inline medic::v1::ControlRequest full_request(int which) {
  medic::v1::ControlRequest q;
  q.set_request_id("r-1");
  switch (which) {
    case 0:
      q.mutable_approve()->set_action_id("a-1");
      q.mutable_approve()->set_comment("go");
      break;
    case 1:
      q.mutable_deny()->set_action_id("a-1");
      q.mutable_deny()->set_reason("no");
      break;
    case 2: {
      auto* s = q.mutable_silence();
      s->set_scope(medic::v1::Silence::SCOPE_VM);
      s->set_value("vm-1");
      s->set_duration_ns(60);
      s->set_reason("maintenance");
      break;
    }
    case 3:
      q.mutable_status();
      break;
    case 4:
      q.mutable_vm()->set_vm("web-7");
      break;
    case 5:
      q.mutable_vm_action()->set_vm("web-7");
      q.mutable_vm_action()->set_verb(medic::v1::VERB_STOP);
      q.mutable_vm_action()->set_reason("disk swap");
      break;
    case 6: {
      auto* r = q.mutable_request();
      r->set_verb(medic::v1::VERB_REBOOT);
      r->set_vm("web-7");
      r->set_label("team=db");
      r->set_reason("app unresponsive");
      r->set_follow(true);
      r->set_template_name("web");
      r->set_host("host-a");
      r->set_vm_name("web-9");
      break;
    }
    default:
      q.mutable_unsilence()->set_silence_id("s-1");
      break;
  }
  return q;
}

inline medic::v1::ControlReply full_reply() {
  medic::v1::ControlReply r;
  r.set_request_id("r-1");
  r.set_ok(true);
  r.set_error("none");
  r.set_text("fine");
  r.set_json("{}");
  r.set_stage(medic::v1::STAGE_DISPATCHED);
  r.set_vm("web-7");
  r.set_decision_id("d-1");
  r.set_done(true);
  return r;
}

inline medic::v1::Checkpoint full_checkpoint() {
  medic::v1::Checkpoint c;
  c.set_row_id(20);
  c.set_row_hash(std::string(32, '\x5a'));
  c.set_at_ns(3);
  return c;
}

// Serialized sample payloads of `kind`, every field set.
inline std::vector<std::string> full_payloads(medic::v1::Kind kind, const std::string& host) {
  switch (kind) {
    case medic::v1::KIND_EVENT_BATCH: return {full_batch(host).SerializeAsString()};
    case medic::v1::KIND_ACTION: return {full_action(host).SerializeAsString()};
    case medic::v1::KIND_ACTION_ACK: return {full_ack().SerializeAsString()};
    case medic::v1::KIND_ACTION_RESULT: return {full_result().SerializeAsString()};
    case medic::v1::KIND_CONTROL_REQUEST: {
      std::vector<std::string> out;
      for (int i = 0; i < 8; ++i) out.push_back(full_request(i).SerializeAsString());
      return out;
    }
    case medic::v1::KIND_CONTROL_REPLY: return {full_reply().SerializeAsString()};
    case medic::v1::KIND_CHECKPOINT: return {full_checkpoint().SerializeAsString()};
    default: return {};
  }
}

// ---- the oracle: the generated lite parser's view of the same bytes

// The lite parser logs an error for every invalid UTF-8 string it refuses;
// fuzzing and property tests feed it many.
inline void quiet_protobuf_log() {
  google::protobuf::SetLogHandler([](google::protobuf::LogLevel, const char*, int,
                                     const std::string&) {});
}

// The lite runtime keeps the bytes of fields it does not know in each
// message's metadata, but 3.21's generated lite classes have no public
// accessor. A pointer to the protected member, taken through a derived
// class, reads them (test code only).
struct UnknownFields : google::protobuf::MessageLite {
  static const std::string& of(const google::protobuf::MessageLite& m) {
    constexpr auto member = &UnknownFields::_internal_metadata_;
    return (m.*member).unknown_fields<std::string>(
        &google::protobuf::internal::GetEmptyStringAlreadyInited);
  }
  static std::string* mutable_of(google::protobuf::MessageLite* m) {
    constexpr auto member = &UnknownFields::_internal_metadata_;
    return (m->*member).mutable_unknown_fields<std::string>();
  }
};

// Appends raw field bytes to a message as unknown fields: serializing the
// message then writes them out within it.
inline void add_unknown(google::protobuf::MessageLite* m, const std::string& bytes) {
  UnknownFields::mutable_of(m)->append(bytes);
}
inline bool no_unknown(const google::protobuf::MessageLite& m) {
  return UnknownFields::of(m).empty();
}

inline bool clean(const medic::v1::VmStateReport& s) {
  for (const auto& l : s.labels()) {
    if (!no_unknown(l)) return false;
  }
  return no_unknown(s);
}

inline bool clean(const medic::v1::Event& e) {
  if (!no_unknown(e)) return false;
  switch (e.body_case()) {
    case medic::v1::Event::kState: return clean(e.state());
    case medic::v1::Event::kLifecycle: return no_unknown(e.lifecycle());
    case medic::v1::Event::kHeartbeat: return no_unknown(e.heartbeat());
    case medic::v1::Event::kProbe: return no_unknown(e.probe());
    case medic::v1::Event::kGuestPing: return no_unknown(e.guest_ping());
    case medic::v1::Event::kAlert: {
      for (const auto& kv : e.alert().labels()) {
        if (!no_unknown(kv)) return false;
      }
      for (const auto& kv : e.alert().annotations()) {
        if (!no_unknown(kv)) return false;
      }
      return no_unknown(e.alert());
    }
    case medic::v1::Event::BODY_NOT_SET: return true;
  }
  return true;
}

inline bool clean(const medic::v1::ControlRequest& q) {
  if (!no_unknown(q)) return false;
  switch (q.body_case()) {
    case medic::v1::ControlRequest::kApprove: return no_unknown(q.approve());
    case medic::v1::ControlRequest::kDeny: return no_unknown(q.deny());
    case medic::v1::ControlRequest::kSilence: return no_unknown(q.silence());
    case medic::v1::ControlRequest::kStatus: return no_unknown(q.status());
    case medic::v1::ControlRequest::kUnsilence: return no_unknown(q.unsilence());
    case medic::v1::ControlRequest::kUnfreeze: return no_unknown(q.unfreeze());
    case medic::v1::ControlRequest::kSilenceList: return no_unknown(q.silence_list());
    case medic::v1::ControlRequest::kIncidents: return no_unknown(q.incidents());
    case medic::v1::ControlRequest::kHosts: return no_unknown(q.hosts());
    case medic::v1::ControlRequest::kInject: return no_unknown(q.inject());
    case medic::v1::ControlRequest::kVm: return no_unknown(q.vm());
    case medic::v1::ControlRequest::kVmAction:
      return no_unknown(q.vm_action());
    case medic::v1::ControlRequest::kRequest:
      return no_unknown(q.request());
    // No default: a new body must be named here (-Wswitch), or the oracle
    // misses unknown fields inside it.
    case medic::v1::ControlRequest::BODY_NOT_SET: return true;
  }
  return true;
}

struct ParserView {
  bool parsed = false;
  bool unknown_fields = false;  // somewhere, at any depth (only when parsed)
  std::string reserialized;     // the parsed message written by the generated code
};

template <typename M, typename Clean>
ParserView view_as(std::string_view bytes, Clean is_clean) {
  M m;
  ParserView v;
  v.parsed = m.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()));
  if (v.parsed) {
    v.unknown_fields = !is_clean(m);
    v.reserialized = m.SerializeAsString();
  }
  return v;
}

inline ParserView parser_view(medic::v1::Kind kind, std::string_view bytes) {
  auto flat = [](const auto& m) { return no_unknown(m); };
  switch (kind) {
    case medic::v1::KIND_EVENT_BATCH:
      return view_as<medic::v1::EventBatch>(bytes, [](const medic::v1::EventBatch& b) {
        for (const auto& e : b.events()) {
          if (!clean(e)) return false;
        }
        return no_unknown(b);
      });
    case medic::v1::KIND_ACTION: return view_as<medic::v1::Action>(bytes, flat);
    case medic::v1::KIND_ACTION_ACK: return view_as<medic::v1::ActionAck>(bytes, flat);
    case medic::v1::KIND_ACTION_RESULT: return view_as<medic::v1::ActionResult>(bytes, flat);
    case medic::v1::KIND_CONTROL_REQUEST:
      return view_as<medic::v1::ControlRequest>(
          bytes, [](const medic::v1::ControlRequest& q) { return clean(q); });
    case medic::v1::KIND_CONTROL_REPLY: return view_as<medic::v1::ControlReply>(bytes, flat);
    case medic::v1::KIND_CHECKPOINT: return view_as<medic::v1::Checkpoint>(bytes, flat);
    default: return {};
  }
}

}  // namespace medic::fabric::test
