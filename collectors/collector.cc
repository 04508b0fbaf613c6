#include "collectors/collector.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>

#include "core/duration.h"

namespace medic::collectors {
namespace {

using medic::v1::Event;
using Steady = std::chrono::steady_clock;

constexpr uint32_t kBulkStream = 0;
constexpr uint32_t kUrgentStream = 1;

// Logs the first occurrence of a repeated problem and then every 1000th, so a
// backend that stays broken does not flood the log.
bool should_log(uint64_t count) { return count == 1 || count % 1000 == 0; }

}  // namespace

CollectorOptions options_from_config(const CollectorConfig& c) {
  CollectorOptions o;
  o.host = c.host;
  o.interval = c.interval;
  o.resource_interval = c.resource_interval;
  o.timer_slack = c.timer_slack;
  o.max_events_per_batch = c.lanes.max_events_per_batch;
  o.guest_ping = c.guest_ping;
  o.probes = c.probes;
  o.seed = c.seed;
  return o;
}

Collector::Collector(CollectorDeps deps, CollectorOptions opts)
    : deps_(deps),
      opts_(std::move(opts)),
      bulk_sealer_(*deps.identity, kBulkStream),
      urgent_sealer_(*deps.identity, kUrgentStream) {}

Collector::~Collector() {
  if (deps_.clock) {
    if (flush_timer_) deps_.clock->cancel(flush_timer_);
    if (ping_timer_) deps_.clock->cancel(ping_timer_);
  }
  // The backend must not call into a destroyed collector.
  if (started_) deps_.hypervisor->subscribe(nullptr);
  if (loop_) loop_->remove(source_id_);
}

Result<std::unique_ptr<Collector>> Collector::create(CollectorOptions opts, CollectorDeps deps) {
  if (!deps.hypervisor || !deps.clock || !deps.identity || !deps.publisher) {
    return invalid_argument("collector: hypervisor, clock, identity and publisher are required");
  }
  if (opts.host.empty()) return invalid_argument("collector: no host name");
  if (deps.hypervisor->host() != opts.host) {
    return permission_denied("collector for host \"" + opts.host +
                             "\" was given the backend of host \"" + deps.hypervisor->host() +
                             "\"; a collector speaks only for its own host");
  }
  if (opts.interval <= Duration::zero()) return invalid_argument("collector: interval must be > 0");
  if (opts.max_events_per_batch < 1) opts.max_events_per_batch = 1;
  if (opts.timer_slack < Duration::zero()) {
    opts.timer_slack = std::min<Duration>(opts.interval / 10, std::chrono::milliseconds(100));
  }
  std::unique_ptr<Collector> c(new Collector(deps, std::move(opts)));
  Collector* raw = c.get();
  auto runner = ProbeRunner::create(
      *deps.clock, [raw](const ProbeOutcome& o) { raw->on_probe(o); }, c->opts_.seed);
  if (!runner.ok()) return runner.status();
  c->probes_ = std::move(*runner);
  for (const auto& spec : c->opts_.probes) {
    Status s = c->probes_->add(spec);
    if (!s.ok()) return s;
  }
  if (deps.loop) {
    c->loop_ = deps.loop;
    c->loop_->set_timer_slack(std::max(c->loop_->timer_slack(), c->opts_.timer_slack));
  } else {
    c->own_loop_ = std::make_unique<EventLoop>(*deps.clock, c->opts_.timer_slack);
    c->loop_ = c->own_loop_.get();
  }
  c->source_id_ = c->loop_->add_source(c.get());
  return c;
}

void Collector::start() {
  if (started_) return;
  started_ = true;
  deps_.hypervisor->subscribe([this](const vmm::VmEvent& e) { on_vm_event(e); });
  schedule_flush(deps_.clock->now() + opts_.interval);
  if (opts_.guest_ping.enabled && deps_.guest_pinger) schedule_guest_pings();
  if (opts_.guest_ping.enabled && !deps_.guest_pinger) {
    spdlog::warn("collector {}: guest_ping is enabled but this backend offers no guest agent",
                 opts_.host);
  }
}

void Collector::schedule_flush(Time due) {
  flush_timer_ = deps_.clock->schedule_at(due, [this, due] {
    flush();
    // Keep the cadence without drift; after a stall, skip ahead instead of
    // flushing in a burst.
    Time next = due + opts_.interval;
    const Time now = deps_.clock->now();
    if (next <= now) next = now + opts_.interval;
    schedule_flush(next);
  });
}

void Collector::schedule_guest_pings() {
  ping_timer_ = deps_.clock->schedule_after(opts_.guest_ping.interval, [this] {
    for (const auto& vm : running_vms_) {
      if (!deps_.guest_pinger->covers(vm)) continue;
      // At most one ping per VM at a time: a slow or paused guest must not
      // collect a socket per interval.
      if (!pinging_.insert(vm).second) {
        ++counters_.guest_pings_skipped;
        continue;
      }
      ++counters_.guest_pings;
      // The answer may come after this collector is gone; the weak token
      // tells.
      std::weak_ptr<bool> alive = alive_;
      const Time asked = deps_.clock->now();
      deps_.guest_pinger->ping(vm, opts_.guest_ping.timeout, [this, alive, vm, asked](bool ok) {
        if (alive.expired()) return;
        pinging_.erase(vm);
        if (ok) {
          record_agent_answer(vm, deps_.clock->now(), deps_.clock->now() - asked);
        } else {
          ++counters_.guest_ping_failures;
        }
      });
    }
    schedule_guest_pings();
  });
}

void Collector::record_beat(const std::string& vm, Time at, uint64_t counter, const char* source) {
  ++counters_.heartbeats;
  Beat& b = beats_[vm];
  if (at >= b.at) {
    b.at = at;
    b.counter = counter;
    b.source = source;
  }
  b.fresh = true;
}

void Collector::record_agent_answer(const std::string& vm, Time at, Duration latency) {
  ++counters_.guest_ping_answers;
  AgentAnswer& a = agent_answers_[vm];
  a.at = at;
  a.latency = latency;
  a.fresh = true;
}

void Collector::on_vm_event(const vmm::VmEvent& e) {
  if (e.type == vmm::VmEvent::Type::kHeartbeat) {
    record_beat(e.vm, e.at == Time{} ? deps_.clock->now() : e.at, e.counter, "backend");
    return;
  }
  ++counters_.lifecycle_events;
  if (pending_urgent_.empty()) first_urgent_read_ = Steady::now();
  Event& ev = pending_urgent_.emplace_back();
  ev.set_host(opts_.host);
  ev.set_vm(e.vm);
  ev.set_observed_at_ns(to_ns(e.at == Time{} ? deps_.clock->now() : e.at));
  auto* lc = ev.mutable_lifecycle();
  lc->set_what(e.what);
  lc->set_detail(e.detail);
  if (auto it = names_.find(e.vm); it != names_.end()) lc->set_vm_name(it->second);
  // Events delivered outside poll() (for example from execute()) go out now;
  // those read by poll() go out together right after it returns.
  if (!in_backend_poll_) flush_urgent();
}

void Collector::flush_urgent() {
  if (pending_urgent_.empty()) return;
  medic::v1::EventBatch batch;
  batch.set_urgent(true);
  for (auto& e : pending_urgent_) *batch.add_events() = std::move(e);
  pending_urgent_.clear();
  batch.SerializeToString(&payload_buf_);
  std::vector<std::string> frames;
  frames.push_back(urgent_sealer_.seal(medic::v1::KIND_EVENT_BATCH, opts_.host, payload_buf_,
                                       deps_.clock->now()));
  deps_.publisher->publish(Lane::kUrgent, frames);
  ++counters_.urgent_batches;
  const auto latency = std::chrono::duration_cast<Duration>(Steady::now() - first_urgent_read_);
  counters_.last_urgent_latency = latency;
  counters_.max_urgent_latency = std::max(counters_.max_urgent_latency, latency);
  if (urgent_histogram_) urgent_histogram_->observe(latency);
}

void Collector::set_latency_registry(CounterRegistry* r) {
  if (!r) {
    urgent_histogram_ = probe_ok_histogram_ = probe_failed_histogram_ = nullptr;
    return;
  }
  urgent_histogram_ = &r->histogram("collector_urgent_flush_seconds", {},
                                    "a lifecycle event read -> its urgent batch published");
  const char* help = "one probe run, start to end (real time)";
  probe_ok_histogram_ = &r->histogram("probe_duration_seconds", {{"result", "succeeded"}}, help);
  probe_failed_histogram_ = &r->histogram("probe_duration_seconds", {{"result", "failed"}}, help);
}

void Collector::on_probe(const ProbeOutcome& o) {
  ++counters_.probe_results;
  if (Histogram* h = o.ok ? probe_ok_histogram_ : probe_failed_histogram_) h->observe(o.latency);
  if (pending_probes_.size() >= opts_.max_pending_probe_results) {
    pending_probes_.pop_front();
    ++counters_.probe_results_dropped;
  }
  pending_probes_.push_back(o);
}

void Collector::sample_resources(const std::vector<vmm::VmInfo>& vms) {
  if (!deps_.process_stats) return;
  const Time now = deps_.clock->now();
  if (now < next_resource_sample_) return;
  const Duration every =
      opts_.resource_interval > Duration::zero() ? opts_.resource_interval : opts_.interval;
  next_resource_sample_ = now + every - every / 10;  // tolerate a slightly early flush
  deps_.process_stats->refresh();
  std::map<std::string, Figures> fresh;
  for (const auto& vm : vms) {
    if (vm.pid <= 0) continue;
    auto s = deps_.process_stats->sample(vm.pid);
    if (!s.ok()) {
      // A VM whose process just exited is normal; anything else is worth a line.
      if (s.status().code() != Code::kNotFound && should_log(++counters_.stats_errors)) {
        spdlog::warn("collector {}: resource figures of {}: {}", opts_.host, vm.id,
                     s.status().message());
      }
      continue;
    }
    Figures f;
    f.cpu_percent = cpu_.update(vm.pid, s->cpu_time, now);
    f.rss_bytes = s->rss_bytes;
    f.uptime = s->uptime;
    fresh.emplace(vm.id, f);
  }
  figures_ = std::move(fresh);
  cpu_.forget_older_than(now - 3 * every);
}

void Collector::flush() {
  ++counters_.flushes;
  const Time now = deps_.clock->now();
  std::vector<Event> events;
  auto vms = deps_.hypervisor->list();
  counters_.listing_ok = vms.ok();
  counters_.last_list_error = vms.ok() ? "" : vms.status().message();
  if (!vms.ok()) {
    // No state this time; probe results still go out. The engine sees the
    // host's state reports stop, which is the signal that matters.
    if (should_log(++counters_.list_errors)) {
      spdlog::warn("collector {}: cannot list VMs: {}", opts_.host, vms.status().message());
    }
  } else {
    sample_resources(*vms);
    append_state_events(*vms, now, &events);
  }
  append_fresh_heartbeats(&events);
  append_probe_results(&events);
  send_bulk(events, now);
}

namespace {

// The VM's labels into its state report, and its name for people (its alias
// or spec name) as the `name` label unless a label already says it, so rules
// and `medic audit why` can show it next to the id. Returns that name, or null.
const std::string* add_labels(const vmm::VmInfo& vm, medic::v1::VmStateReport* st) {
  const std::string* name = nullptr;
  for (const auto& [k, v] : vm.labels) {
    auto* l = st->add_labels();
    l->set_key(k);
    l->set_value(v);
    if (k == "name") name = &v;
  }
  if (!name && !vm.name.empty() && vm.name != vm.id) {
    auto* l = st->add_labels();
    l->set_key("name");
    l->set_value(vm.name);
    name = &vm.name;
  }
  return name;
}

}  // namespace

void Collector::append_state_events(const std::vector<vmm::VmInfo>& vms, Time now,
                                    std::vector<Event>* events) {
  running_vms_.clear();
  std::map<std::string, Beat> kept;
  std::map<std::string, std::string> names;
  events->reserve(vms.size() + pending_probes_.size());
  for (const auto& vm : vms) {
    Event& ev = events->emplace_back();
    ev.set_host(opts_.host);
    ev.set_vm(vm.id);
    ev.set_observed_at_ns(to_ns(now));
    auto* st = ev.mutable_state();
    st->set_state(vm.state);
    const std::string* name = add_labels(vm, st);
    if (name) {
      // The entry of the last listing is moved over, so a steady fleet
      // allocates nothing here.
      auto entry = names_.extract(vm.id);
      if (entry.empty()) {
        names.emplace(vm.id, *name);
      } else {
        if (entry.mapped() != *name) entry.mapped() = *name;
        names.insert(std::move(entry));
      }
    }
    Time beat = vm.last_heartbeat;
    if (auto it = beats_.find(vm.id); it != beats_.end()) {
      beat = std::max(beat, it->second.at);
      kept.insert(beats_.extract(it));
    }
    st->set_last_heartbeat_ns(beat == Time{} ? 0 : to_ns(beat));
    if (auto f = figures_.find(vm.id); f != figures_.end()) {
      st->set_cpu_percent(std::round(f->second.cpu_percent * 100) / 100);
      st->set_rss_bytes(f->second.rss_bytes);
      st->set_uptime_ns(f->second.uptime.count());
    }
    if (vm.state == medic::v1::VM_STATE_RUNNING) running_vms_.push_back(vm.id);
  }
  // Heartbeats and agent answers of VMs the backend no longer lists are
  // forgotten, so the tables are bounded by the host's VMs.
  beats_ = std::move(kept);
  names_ = std::move(names);
  std::map<std::string, AgentAnswer> answers;
  for (const auto& vm : vms) {
    if (auto it = agent_answers_.find(vm.id); it != agent_answers_.end()) {
      answers.insert(agent_answers_.extract(it));
    }
  }
  agent_answers_ = std::move(answers);
}

void Collector::append_fresh_heartbeats(std::vector<Event>* events) {
  for (auto& [vm, b] : beats_) {
    if (!b.fresh) continue;
    b.fresh = false;
    Event& ev = events->emplace_back();
    ev.set_host(opts_.host);
    ev.set_vm(vm);
    ev.set_observed_at_ns(to_ns(b.at));
    auto* hb = ev.mutable_heartbeat();
    hb->set_counter(b.counter);
    hb->set_source(b.source);
  }
  for (auto& [vm, a] : agent_answers_) {
    if (!a.fresh) continue;
    a.fresh = false;
    Event& ev = events->emplace_back();
    ev.set_host(opts_.host);
    ev.set_vm(vm);
    ev.set_observed_at_ns(to_ns(a.at));
    ev.mutable_guest_ping()->set_latency_ns(a.latency.count());
  }
}

void Collector::append_probe_results(std::vector<Event>* events) {
  for (auto& o : pending_probes_) {
    Event& ev = events->emplace_back();
    ev.set_host(opts_.host);
    ev.set_vm(o.vm);
    ev.set_observed_at_ns(to_ns(o.finished_at));
    auto* p = ev.mutable_probe();
    p->set_probe(std::move(o.probe));
    p->set_ok(o.ok);
    p->set_status(o.status);
    p->set_latency_ns(o.latency.count());
    p->set_reason(std::move(o.reason));
  }
  pending_probes_.clear();
}

void Collector::send_bulk(std::vector<Event>& events, Time now) {
  std::vector<std::string> frames;
  const size_t per = static_cast<size_t>(opts_.max_events_per_batch);
  // An empty host still sends one (empty) batch: it tells the engine the
  // collector is alive.
  size_t i = 0;
  do {
    medic::v1::EventBatch batch;
    const size_t end = std::min(events.size(), i + per);
    for (; i < end; ++i) *batch.add_events() = std::move(events[i]);
    batch.SerializeToString(&payload_buf_);
    frames.push_back(bulk_sealer_.seal(medic::v1::KIND_EVENT_BATCH, opts_.host, payload_buf_, now));
    ++counters_.bulk_batches;
  } while (i < events.size());
  deps_.publisher->publish(Lane::kBulk, frames);
}

void Collector::run_once(Duration max_wait) { loop_->run_once(max_wait); }

void Collector::prepare(std::vector<pollfd>* fds, Duration* wait) {
  const size_t first = fds->size();
  for (int fd : deps_.hypervisor->fds()) fds->push_back(pollfd{fd, POLLIN, 0});
  backend_fds_ = fds->size() - first;
  probes_->prepare(fds);
  if (auto p = probes_->max_wait()) *wait = std::min(*wait, *p);
  // Bulk frames an engine could not take are retried every 100 ms: soon
  // enough for a slow engine, cheap while one is gone.
  if (deps_.publisher->has_waiting()) {
    *wait = std::min<Duration>(*wait, std::chrono::milliseconds(100));
  }
}

// Everything is read before the timers run, so a flush due now carries what
// this iteration saw.
void Collector::dispatch(const pollfd* fds, size_t n) {
  read_backend();
  probes_->on_poll(fds + backend_fds_, n - backend_fds_);
}

// The backend is read again after the timers for backends driven by the
// Clock, whose timers just made events ready.
void Collector::after_timers(size_t timers_ran) {
  if (timers_ran > 0) read_backend();
  deps_.publisher->pump();
}

void Collector::read_backend() {
  in_backend_poll_ = true;
  deps_.hypervisor->poll();
  in_backend_poll_ = false;
  flush_urgent();
}

void Collector::run(const std::atomic<bool>& stop) {
  start();
  loop_->run(stop);
}

CollectorService::~CollectorService() = default;

Result<std::unique_ptr<CollectorService>> CollectorService::create(const CollectorConfig& config,
                                                                   vmm::Hypervisor& hypervisor,
                                                                   Clock& clock,
                                                                   GuestPinger* pinger) {
  std::unique_ptr<CollectorService> s(new CollectorService());
  auto id = fabric::Identity::load(config.key_file);
  if (!id.ok()) return id.status().with_context("collector key");
  s->identity_ = std::make_unique<fabric::Identity>(std::move(*id));
  if (!config.trust_file.empty()) {
    auto trust = fabric::TrustStore::load(config.trust_file);
    if (!trust.ok()) return trust.status().with_context("collector trust store");
    s->trust_ = std::make_unique<fabric::TrustStore>(std::move(*trust));
  } else {
    s->trust_ = std::make_unique<fabric::TrustStore>();
  }
  auto ctx = fabric::Context::create(*s->trust_);
  if (!ctx.ok()) return ctx.status();
  s->context_ = std::move(*ctx);
  auto pub = ZmqPublisher::create(config.engines, config.lanes,
                                  {*s->context_, *s->identity_, *s->trust_, clock});
  if (!pub.ok()) return pub.status();
  s->publisher_ = std::move(*pub);
  s->stats_ = make_process_stats(config.proc_root);
  CollectorDeps deps;
  deps.hypervisor = &hypervisor;
  deps.clock = &clock;
  deps.identity = s->identity_.get();
  deps.publisher = s->publisher_.get();
  deps.process_stats = s->stats_.get();
  deps.guest_pinger = pinger;
  auto c = Collector::create(options_from_config(config), deps);
  if (!c.ok()) return c.status();
  s->collector_ = std::move(*c);
  s->interval_ = config.interval;
  s->engines_ = config.engines.size();
  return s;
}

void CollectorService::run(const std::atomic<bool>& stop) {
  spdlog::info("collector {}: reporting every {} to {} engine(s), {} probe(s)", collector_->host(),
               format_duration(interval_), engines_, collector_->probes().size());
  collector_->run(stop);
}

}  // namespace medic::collectors
