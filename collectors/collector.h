// The host collector: observes the VMs of one host through its Hypervisor
// backend and publishes signed EventBatches to the engines.
//
// Contract:
// - Speaks only for its own host: every event carries `host`, every envelope
//   is sealed for `host`, and create() refuses a backend for another host.
// - Bulk lane (stream 0): every `interval` one flush with the full state of
//   every VM (state, labels, last heartbeat, CPU%, RSS, uptime), one
//   coalesced Heartbeat event per VM whose heartbeat writer beat since the
//   last flush, one GuestPing event per VM whose guest agent answered since
//   then, and the probe results that finished since the last flush. Level-triggered: a
//   lost flush is healed by the next.
// - Urgent lane (stream 1, its own Sealer and sockets): lifecycle events read
//   from the backend are sealed and handed to the publisher in the same loop
//   iteration that read them, before the loop waits again.
// - Never blocks on the fabric; memory stays bounded when engines are slow or
//   gone (see collectors/publisher.h).
//
// Threading: one thread runs the EventLoop the collector is registered on
// (run_once / run, or the owner's loop); the Clock, the Hypervisor and the
// publisher belong to it.
#pragma once

#include <atomic>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "collectors/config.h"
#include "collectors/probes.h"
#include "collectors/process_stats.h"
#include "collectors/publisher.h"
#include "core/clock.h"
#include "core/counters.h"
#include "core/event_loop.h"
#include "core/status.h"
#include "fabric/envelope.h"
#include "fabric/identity.h"
#include "fabric/transport.h"
#include "fabric/trust.h"
#include "vmm/hypervisor.h"

namespace medic::collectors {

// Hook for guest liveness through the QEMU guest agent (`guest-ping` over the
// VM's guest-agent socket). The QMP backend provides the implementation; the
// collector only schedules pings and reports answers as GuestPing events
// (rules: vm.guest_ping), never as heartbeats: an agent that answers says
// nothing about the guest's own heartbeat writer.
class GuestPinger {
 public:
  using Done = std::function<void(bool ok)>;
  virtual ~GuestPinger() = default;
  // Starts a ping of `vm`; must not block. `done` runs later on the owner's
  // thread (from inside Hypervisor::poll() or a Clock timer), at most once,
  // and within `timeout` (with ok=false on timeout). It may run after the
  // collector is gone; it then does nothing.
  virtual void ping(const std::string& vm, Duration timeout, Done done) = 0;
  // False for a VM that has no guest agent to ask (say, a VM spec without a
  // guest-agent socket): the collector does not ping it, so such VMs in a
  // mixed fleet neither log nor count as failures.
  virtual bool covers(const std::string& vm) { return !vm.empty(); }
};

struct CollectorOptions {
  std::string host;
  Duration interval = std::chrono::seconds(1);
  Duration resource_interval{};  // 0: every interval
  int max_events_per_batch = 2000;
  size_t max_pending_probe_results = 10000;
  // How late a timer (flush, probe start, guest ping) may run so that timers
  // due close together share one wake-up of the loop. Descriptor events
  // (lifecycle events, probe I/O) are never delayed by it. Negative: a tenth
  // of the interval, at most 100 ms.
  Duration timer_slack = Duration(-1);
  GuestPingConfig guest_ping;
  std::vector<ProbeSpec> probes;
  uint64_t seed = 1;
};

CollectorOptions options_from_config(const CollectorConfig& c);

struct CollectorCounters {
  uint64_t flushes = 0;
  uint64_t bulk_batches = 0;
  uint64_t urgent_batches = 0;
  uint64_t lifecycle_events = 0;
  uint64_t heartbeats = 0;
  uint64_t probe_results = 0;
  uint64_t probe_results_dropped = 0;  // more finished than fit between flushes
  uint64_t list_errors = 0;
  bool listing_ok = false;      // the last listing succeeded (false before the first)
  std::string last_list_error;  // why it did not
  uint64_t stats_errors = 0;
  uint64_t guest_pings = 0;
  uint64_t guest_ping_answers = 0;
  uint64_t guest_ping_failures = 0;
  uint64_t guest_pings_skipped = 0;  // the VM's previous ping was still unanswered
  // Lifecycle event read -> urgent batch handed to the publisher.
  Duration last_urgent_latency{};
  Duration max_urgent_latency{};
};

struct CollectorDeps {
  vmm::Hypervisor* hypervisor = nullptr;       // required
  Clock* clock = nullptr;                      // required
  const fabric::Identity* identity = nullptr;  // required: signs every batch
  Publisher* publisher = nullptr;              // required
  ProcessStats* process_stats = nullptr;       // optional: no CPU/RSS without it
  GuestPinger* guest_pinger = nullptr;         // optional: guest_ping needs it
  // optional: the loop to register on (the agent's, shared with the
  // actuator); without it the collector makes a loop of its own. A shared
  // loop's timer slack is raised to the collector's when it is smaller.
  EventLoop* loop = nullptr;
};

class Collector final : private EventSource {
 public:
  // Errors: kInvalidArgument for a missing dependency or a bad probe,
  // kPermissionDenied when the backend manages another host.
  static Result<std::unique_ptr<Collector>> create(CollectorOptions opts, CollectorDeps deps);
  ~Collector() override;
  Collector(const Collector&) = delete;
  Collector& operator=(const Collector&) = delete;

  // Subscribes to the backend and schedules the first flush one interval
  // from now (and probes, guest pings).
  void start();

  // One iteration of the loop the collector is registered on: waits at most
  // `max_wait` (less when a timer, a probe or a waiting frame needs it) on
  // the backend's and probes' descriptors (and whatever else shares the
  // loop), then reads the backend and sends its lifecycle events, handles
  // probe I/O, runs due timers (flush, probe starts, guest pings) and
  // retries waiting bulk frames.
  void run_once(Duration max_wait);
  // Runs iterations until `stop` is set; checks it at least every 100 ms.
  void run(const std::atomic<bool>& stop);
  EventLoop& loop() { return *loop_; }

  // Builds and publishes one bulk flush now.
  void flush();
  // The backend's event sink. Public so a process that shares one backend
  // between collector and actuator can route events here.
  void on_vm_event(const vmm::VmEvent& e);

  const CollectorCounters& counters() const { return counters_; }
  // From now on observes, in `r`, collector_urgent_flush_seconds (a lifecycle
  // event read -> its urgent batch published) and
  // probe_duration_seconds{result}. Null stops it; `r` must outlive that.
  void set_latency_registry(CounterRegistry* r);
  const ProbeRunner& probes() const { return *probes_; }
  const std::string& host() const { return opts_.host; }

 private:
  struct Beat {
    Time at{};
    uint64_t counter = 0;
    const char* source = "backend";
    bool fresh = false;  // not yet reported in a Heartbeat event
  };
  struct AgentAnswer {
    Time at{};
    Duration latency{};
    bool fresh = false;  // not yet reported in a GuestPing event
  };
  struct Figures {
    double cpu_percent = 0;
    uint64_t rss_bytes = 0;
    Duration uptime{};
  };

  Collector(CollectorDeps deps, CollectorOptions opts);
  // EventSource: the backend's and the probes' descriptors.
  void prepare(std::vector<pollfd>* fds, Duration* wait) override;
  void dispatch(const pollfd* fds, size_t n) override;
  void after_timers(size_t timers_ran) override;
  void on_probe(const ProbeOutcome& o);
  void flush_urgent();
  void read_backend();
  void sample_resources(const std::vector<vmm::VmInfo>& vms);
  // The parts of a flush: one state event per listed VM (keeping the heartbeats
  // and agent answers of listed VMs only), then fresh heartbeats and agent
  // answers, then pending probe results.
  void append_state_events(const std::vector<vmm::VmInfo>& vms, Time now,
                           std::vector<medic::v1::Event>* events);
  void append_fresh_heartbeats(std::vector<medic::v1::Event>* events);
  void append_probe_results(std::vector<medic::v1::Event>* events);
  void schedule_flush(Time due);
  void schedule_guest_pings();
  void send_bulk(std::vector<medic::v1::Event>& events, Time now);
  void record_beat(const std::string& vm, Time at, uint64_t counter, const char* source);
  void record_agent_answer(const std::string& vm, Time at, Duration latency);

  CollectorDeps deps_;
  CollectorOptions opts_;
  fabric::Sealer bulk_sealer_;
  fabric::Sealer urgent_sealer_;
  std::unique_ptr<ProbeRunner> probes_;
  CpuMeter cpu_;
  std::map<std::string, Figures> figures_;
  Time next_resource_sample_{};
  std::map<std::string, Beat> beats_;
  std::map<std::string, std::string> names_;  // VM id -> its name, from the last list()
  std::map<std::string, AgentAnswer> agent_answers_;
  std::vector<std::string> running_vms_;  // from the last list(), for guest pings
  std::set<std::string> pinging_;         // VMs with a guest ping in flight
  std::deque<ProbeOutcome> pending_probes_;
  Histogram* urgent_histogram_ = nullptr;
  Histogram* probe_ok_histogram_ = nullptr;
  Histogram* probe_failed_histogram_ = nullptr;
  std::vector<medic::v1::Event> pending_urgent_;
  std::chrono::steady_clock::time_point first_urgent_read_{};
  bool in_backend_poll_ = false;
  bool started_ = false;
  std::vector<TimerId> timers_;
  TimerId flush_timer_ = 0;
  TimerId ping_timer_ = 0;
  std::unique_ptr<EventLoop> own_loop_;  // when the deps gave none
  EventLoop* loop_ = nullptr;
  EventLoop::WatchId source_id_ = 0;
  size_t backend_fds_ = 0;  // how many of the prepared descriptors are the backend's
  CollectorCounters counters_;
  std::string payload_buf_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

// Everything `medic collector -c agent.yaml` runs for one host, built from
// its config: identity, trust store, ZMQ context, publisher, /proc reader
// and the Collector. The backend is built by the caller from
// `config.backend` (the agent maps backend kinds to vmm backends).
class CollectorService {
 public:
  static Result<std::unique_ptr<CollectorService>> create(const CollectorConfig& config,
                                                          vmm::Hypervisor& hypervisor, Clock& clock,
                                                          GuestPinger* pinger = nullptr);
  ~CollectorService();

  Collector& collector() { return *collector_; }
  Publisher& publisher() { return *publisher_; }
  // Starts the collector and runs its loop until `stop` is set.
  void run(const std::atomic<bool>& stop);

 private:
  CollectorService() = default;
  std::unique_ptr<fabric::Identity> identity_;
  std::unique_ptr<fabric::TrustStore> trust_;
  std::unique_ptr<fabric::Context> context_;
  std::unique_ptr<ZmqPublisher> publisher_;
  ProcessStatsPtr stats_;
  std::unique_ptr<Collector> collector_;
  Duration interval_{};
  size_t engines_ = 0;
};

}  // namespace medic::collectors
