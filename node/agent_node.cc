#include "node/agent_node.h"

#include <spdlog/spdlog.h>
#include <yaml-cpp/yaml.h>

#include <filesystem>

#include "collectors/qmp_guest_pinger.h"
#include "core/config.h"
#include "node/http_config.h"
#include "vmm/qmp/launcher.h"
#include "vmm/qmp/qmp_client.h"
#include "vmm/qmp/qmp_hypervisor.h"
#include "vmm/vmadm/vmadm.h"

namespace medic::node {
namespace {

// How long a start at agent start-up may take without an actuator section
// (whose execute_timeout bounds it otherwise).
constexpr Duration kDesiredStartTimeout = std::chrono::seconds(60);

std::string resolve(const std::string& dir, const std::string& p) {
  if (p.empty() || p[0] == '/') return p;
  return (std::filesystem::path(dir) / p).lexically_normal().string();
}

// {kind: qmp, vms: vms.yaml, state_dir: DIR, templates: templates.yaml,
// clone_dir: DIR}: the VM specs the launcher starts and watches, where
// intended stops outlive the agent, what this host clones and where its
// clones live (default: state_dir/clones; none without a state_dir).
// Relative paths are the agent file's directory's.
Result<vmm::qmp::QmpHypervisorOptions> read_qmp_options(ConfigReader& r, const YAML::Node& rest,
                                                        const std::string& file,
                                                        const std::string& state_dir) {
  r.check_keys(rest, {"vms", "state_dir", "templates", "clone_dir"});
  auto specs_file = r.string(rest, "vms", true);
  auto dir = r.string(rest, "state_dir", false);
  auto templates_file = r.string(rest, "templates", false);
  auto clone_dir = r.string(rest, "clone_dir", false);
  if (!r.ok()) return r.status();
  const std::string base = std::filesystem::path(file).parent_path().string();
  vmm::qmp::QmpHypervisorOptions qo;
  qo.vms_file = resolve(base, *specs_file);
  qo.state_dir = dir ? resolve(base, *dir) : state_dir;
  if (templates_file) {
    auto templates = vmm::qmp::load_vm_templates(resolve(base, *templates_file));
    if (!templates.ok()) return templates.status();
    qo.templates = std::move(*templates);
  }
  if (clone_dir) {
    qo.clone_dir = resolve(base, *clone_dir);
  } else if (!qo.state_dir.empty()) {
    qo.clone_dir = (std::filesystem::path(qo.state_dir) / "clones").string();
  }
  return qo;
}

// The qmp backend, with a guest pinger when a VM or a template has a guest
// agent socket (clones of it get one).
Result<Backend> make_qmp_backend(const std::string& host, ConfigReader& r, const YAML::Node& rest,
                                 const std::string& file, Clock& clock,
                                 const std::string& state_dir) {
  auto qo = read_qmp_options(r, rest, file, state_dir);
  if (!qo.ok()) return qo.status();
  auto specs = vmm::qmp::load_vm_specs(qo->vms_file);
  if (!specs.ok()) return specs.status();
  auto qmp = std::make_unique<vmm::qmp::QmpHypervisor>(host, std::move(*specs), clock, *qo);
  bool agents = qmp->has_guest_agent();
  for (const auto& t : qo->templates) agents = agents || !t.guest_agent_socket.empty();
  Backend b;
  if (agents) b.guest_pinger = std::make_unique<collectors::QmpGuestPinger>(*qmp);
  b.owned = std::move(qmp);
  b.hypervisor = b.owned.get();
  return b;
}

}  // namespace

Result<AgentConfig> load_agent_config(const std::string& path, bool want_collector,
                                      bool want_actuator) {
  auto root = load_yaml_file(path);
  if (!root.ok()) return root.status();
  const std::string dir = std::filesystem::path(path).parent_path().string();
  ConfigReader r(path);
  if (!r.expect_map(*root, "agent.yaml")) return r.status();
  r.check_keys(*root, {"collector", "actuator", "http"});
  AgentConfig c;
  YAML::Node col = (*root)["collector"];
  YAML::Node act = (*root)["actuator"];
  if (want_collector && !col.IsDefined()) r.error(*root, "missing the \"collector:\" section");
  if (want_actuator && !act.IsDefined()) r.error(*root, "missing the \"actuator:\" section");
  if (want_collector && col.IsDefined()) {
    c.collector = collectors::read_collector_config(r, col);
    if (c.collector) {
      c.collector->key_file = resolve(dir, c.collector->key_file);
      c.collector->trust_file = resolve(dir, c.collector->trust_file);
      c.host = c.collector->host;
      c.key_file = c.collector->key_file;
      c.trust_file = c.collector->trust_file;
    }
  }
  if (want_actuator && act.IsDefined()) {
    auto a = actuators::parse_actuator_config(act, r);
    a.key_file = resolve(dir, a.key_file);
    a.trust_store = resolve(dir, a.trust_store);
    a.options.journal_path = resolve(dir, a.options.journal_path);
    if (r.ok()) {
      if (!c.host.empty() && c.host != a.options.host) {
        r.error(act["host"], "actuator host \"" + a.options.host +
                                 "\" differs from the collector's \"" + c.host + "\"");
      }
      if (!c.key_file.empty() && c.key_file != a.key_file) {
        r.error(act["key_file"], "collector and actuator of one agent must use one key file");
      }
      c.host = a.options.host;
      c.key_file = a.key_file;
      if (c.trust_file.empty()) c.trust_file = a.trust_store;
      c.actuator = std::move(a);
    }
  }
  read_http_section(r, (*root)["http"], dir, kDefaultAgentHttp, &c.http);
  if (!r.ok()) return r.status();
  return c;
}

Result<Backend> make_backend(const std::string& host, const YAML::Node& backend,
                             const std::string& file, Clock& clock, const std::string& state_dir) {
  ConfigReader r(file);
  Backend b;
  auto kind = r.string(backend, "kind", true);
  if (!kind) return r.status();
  // The backend's own reader checks the rest of the map. The map is edited in
  // place, not cloned: a clone would lose the positions error messages need.
  YAML::Node rest = backend;
  rest.remove("kind");
  if (*kind == "sim") {
    vmm::sim::SimOptions o = vmm::sim::read_sim_options(r, rest);
    if (!r.ok()) return r.status();
    o.host_names = {host};
    b.fleet = std::make_unique<vmm::sim::SimFleet>(clock, o);
    b.hypervisor = &b.fleet->host(0);
    return b;
  }
  if (*kind == "qmp") return make_qmp_backend(host, r, rest, file, clock, state_dir);
  if (*kind == "vmadm") {
    vmm::vmadm::VmadmOptions o = vmm::vmadm::read_vmadm_options(r, rest);
    if (!r.ok()) return r.status();
    o.host = host;
    b.owned = std::make_unique<vmm::vmadm::VmadmHypervisor>(clock, o);
    b.hypervisor = b.owned.get();
    return b;
  }
  r.error(backend["kind"], "unknown backend kind \"" + *kind + "\" (expected sim, qmp or vmadm)");
  return r.status();
}

Result<std::unique_ptr<AgentNode>> AgentNode::create(const AgentConfig& config,
                                                     const fabric::Party& party,
                                                     vmm::Hypervisor& hypervisor,
                                                     collectors::GuestPinger* guest_pinger) {
  std::unique_ptr<AgentNode> node(new AgentNode());
  node->host_ = config.host;
  node->loop_ = std::make_unique<EventLoop>(party.clock);
  LoopMailbox* mailbox = &node->mailbox_;
  node->loop_->watch_fd(mailbox->fd(), [mailbox] { mailbox->run(); });
  if (config.collector) {
    auto publisher =
        collectors::ZmqPublisher::create(config.collector->engines, config.collector->lanes, party);
    if (!publisher.ok()) return publisher.status().with_context("collector");
    node->publisher_ = std::move(*publisher);
    node->stats_ = collectors::make_process_stats(config.collector->proc_root);
    collectors::CollectorDeps cd;
    cd.hypervisor = &hypervisor;
    cd.clock = &party.clock;
    cd.identity = &party.identity;
    cd.publisher = node->publisher_.get();
    cd.process_stats = node->stats_.get();
    cd.guest_pinger = guest_pinger;
    cd.loop = node->loop_.get();
    auto collector =
        collectors::Collector::create(collectors::options_from_config(*config.collector), cd);
    if (!collector.ok()) return collector.status().with_context("collector");
    node->collector_ = std::move(*collector);
    node->collector_->set_latency_registry(&node->counters_);
    node->collector_->start();
    node->register_collector_counters();
  }
  if (config.actuator) {
    actuators::ActuatorOptions o = config.actuator->options;
    o.drive_hypervisor = !config.collector;
    auto actuator = actuators::Actuator::create(o, party, hypervisor, node->loop_.get());
    if (!actuator.ok()) return actuator.status().with_context("actuator");
    node->actuator_ = std::move(*actuator);
    node->actuator_->set_latency_registry(&node->counters_);
    node->register_actuator_counters();
  }
  hypervisor.register_counters(node->counters_);
  // One backend, two listeners: the collector reports, the actuator watches.
  collectors::Collector* c = node->collector_.get();
  actuators::Actuator* a = node->actuator_.get();
  hypervisor.subscribe([c, a](const vmm::VmEvent& e) {
    if (c) c->on_vm_event(e);
    if (a) a->on_vm_event(e);
  });
  // The guests this host is meant to run (qmp: `desired: running`) start
  // now, on the loop; their STARTED events reach the collector.
  const Duration start_timeout =
      config.actuator ? config.actuator->options.execute_timeout : kDesiredStartTimeout;
  const size_t starting = hypervisor.start_desired(start_timeout);
  if (starting > 0) spdlog::info("agent: starting {} guest(s) whose desired state is running", starting);
  return node;
}

void AgentNode::run_once(Duration max_wait) {
  loop_->run_once(max_wait);
  mailbox_.beat();
}

void AgentNode::register_collector_counters() {
  CounterRegistry& r = counters_;
  const collectors::CollectorCounters& c = collector_->counters();
  r.observe("collector_flushes_total", {}, [&c] { return c.flushes; });
  r.observe("collector_batches_total", {{"lane", "bulk"}}, [&c] { return c.bulk_batches; });
  r.observe("collector_batches_total", {{"lane", "urgent"}}, [&c] { return c.urgent_batches; });
  r.observe("collector_probe_results_dropped_total", {}, [&c] { return c.probe_results_dropped; },
            "probe results that finished faster than they could be flushed");
  r.observe("collector_backend_errors_total", {{"call", "list"}}, [&c] { return c.list_errors; });
  r.observe("collector_backend_errors_total", {{"call", "stats"}}, [&c] { return c.stats_errors; });
  r.observe("collector_guest_ping_failures_total", {}, [&c] { return c.guest_ping_failures; });
  r.observe("collector_guest_ping_answers_total", {}, [&c] { return c.guest_ping_answers; },
            "guest-agent answers, reported as vm.guest_ping (never as heartbeats)");
  r.observe("collector_guest_pings_skipped_total", {}, [&c] { return c.guest_pings_skipped; });
  const collectors::ProbeRunner& p = collector_->probes();
  r.observe("probes_total", {{"result", "succeeded"}}, [&p] { return p.counters().succeeded; });
  r.observe("probes_total", {{"result", "failed"}}, [&p] { return p.counters().failed; });
  r.observe("probes_skipped_total", {{"reason", "overlap"}},
            [&p] { return p.counters().skipped_overlap; });
  r.observe("probe_failures_confirmed_total", {{"result", "confirmed"}},
            [&p] { return p.counters().confirmed; },
            "failed runs a second run at once confirmed (reported) or did not (not reported)");
  r.observe("probe_failures_confirmed_total", {{"result", "unconfirmed"}},
            [&p] { return p.counters().unconfirmed; });
  collectors::Publisher* pub = publisher_.get();
  for (size_t lane = 0; lane < 2; ++lane) {
    const char* name = lane == 0 ? "bulk" : "urgent";
    r.observe("publisher_frames_total", {{"lane", name}}, [pub, lane] { return pub->counters().sent[lane]; });
    r.observe("batches_dropped_total", {{"socket", std::string("events_") + name}, {"reason", "back_pressure"}},
              [pub, lane] { return pub->counters().dropped[lane]; },
              "batches the publisher dropped (oldest state first) while the fabric was slow");
  }
}

void AgentNode::register_actuator_counters() {
  CounterRegistry& r = counters_;
  const actuators::ActuatorStats& a = actuator_->stats();
  for (size_t i = 0; i < static_cast<size_t>(actuators::Rejection::kCount); ++i) {
    r.observe("actuator_rejections_total",
              {{"cause", actuators::rejection_name(static_cast<actuators::Rejection>(i))}},
              [&a, i] { return a.rejected_by[i]; }, "actions answered with a rejected result");
  }
  r.observe("actuator_unattributed_total", {}, [&a] { return a.unattributed; },
            "frames dropped without an answer (no trusted engine to answer)");
  r.observe("actuator_send_failures_total", {}, [&a] { return a.send_failures; });
  r.observe("actuator_executed_total", {}, [&a] { return a.executed; });
  const fabric::OpenCounters& o = actuator_->open_counters();
  for (size_t i = 1; i < static_cast<size_t>(fabric::OpenError::kCount); ++i) {
    auto e = static_cast<fabric::OpenError>(i);
    r.observe("frames_rejected_total", {{"socket", "actuator"}, {"cause", fabric::open_error_name(e)}},
              [&o, e] { return o.get(e); });
  }
}

}  // namespace medic::node
