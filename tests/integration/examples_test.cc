// The shipped examples cannot rot: every config in examples/ loads with the
// loader the daemons use, their keys and hosts agree with the example trust
// store, the service files start real subcommands, and the examples run for
// real: scripts/make-example-keys makes keys and configs in a temp dir, an
// engine and an agent start as processes, decide on a simulated fault, and
// stop cleanly on SIGTERM.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <regex>

#include "node/agent_node.h"
#include "node/engine_node.h"
#include "audit/log.h"
#include "core/subprocess.h"
#include "fabric/trust.h"
#include "rules/loader.h"
#include "tests/testing/daemon.h"
#include "tests/testing/testing.h"

namespace medic {
namespace {

using namespace std::chrono_literals;
using testing::Daemon;
using testing::medic_binary;
using testing::read_file;
using testing::replace_all;
using testing::write_file;
using testing::query_number;
using testing::source_dir;

std::string example(const std::string& name) { return source_dir() + "/examples/" + name; }

// Checks the agent config against the example trust store: its host has the
// collector and actuator roles there, and the engine key it pins is the
// engine's.
void expect_agent_matches_trust(const node::AgentConfig& a, const fabric::TrustStore& trust) {
  ASSERT_TRUE(a.collector && a.actuator);
  const fabric::TrustedNode* engine = trust.find_name("engine-1");
  ASSERT_NE(engine, nullptr);
  ASSERT_EQ(a.collector->engines.size(), 1u);
  EXPECT_EQ(a.collector->engines[0].key, engine->key) << a.host;
  EXPECT_EQ(a.actuator->options.engine_key, engine->key) << a.host;
  const fabric::TrustedNode* host = trust.find_name(a.host);
  ASSERT_NE(host, nullptr) << a.host << " is not in the example trust store";
  EXPECT_TRUE(host->has_role(fabric::Role::kCollector));
  EXPECT_TRUE(host->has_role(fabric::Role::kActuator));
  EXPECT_TRUE(host->covers_host(a.host));
}

TEST(Examples, EngineConfigAndItsRulesLoad) {
  auto c = node::load_engine_config(example("engine.yaml"));
  ASSERT_OK(c);
  EXPECT_EQ(c->name, "engine-1");
  EXPECT_EQ(c->key_file, example("engine.key"));  // relative to the file
  EXPECT_EQ(c->trust_file, example("trust.yaml"));
  const std::vector<std::string> files = node::expand_rule_files(*c);
  ASSERT_FALSE(files.empty());
  for (const auto& f : files) EXPECT_TRUE(std::filesystem::exists(f)) << "no match: " << f;
  auto rules = rules::load_rule_files(files);
  for (const auto& m : rules.messages) ADD_FAILURE() << m.to_string();
  EXPECT_OK(rules);
  EXPECT_EQ(c->audit.durability, audit::Durability::kPowerLoss);
}

TEST(Examples, TrustStoreNamesEveryExampleIdentity) {
  auto t = fabric::TrustStore::load(example("trust.yaml"));
  ASSERT_OK(t);
  const fabric::TrustedNode* engine = t->find_name("engine-1");
  ASSERT_NE(engine, nullptr);
  EXPECT_TRUE(engine->has_role(fabric::Role::kEngine));
  const fabric::TrustedNode* op = t->find_name("operator");
  ASSERT_NE(op, nullptr);
  EXPECT_TRUE(op->has_role(fabric::Role::kOperator));
  EXPECT_FALSE(op->has_role(fabric::Role::kActuator));
  // Only public keys ship: no secret key file in examples/.
  for (const auto& e : std::filesystem::recursive_directory_iterator(source_dir() + "/examples")) {
    EXPECT_NE(e.path().extension(), ".key") << e.path();
  }
}

TEST(Examples, SimAgentLoadsAndBuildsItsBackend) {
  auto trust = fabric::TrustStore::load(example("trust.yaml"));
  ASSERT_OK(trust);
  auto a = node::load_agent_config(example("agent.yaml"), true, true);
  ASSERT_OK(a);
  EXPECT_EQ(a->host, "host-a");
  EXPECT_EQ(a->key_file, example("host-a.key"));
  expect_agent_matches_trust(*a, *trust);
  VirtualClock clock;
  auto b = node::make_backend(a->host, a->collector->backend, example("agent.yaml"), clock);
  ASSERT_OK(b);
  auto vms = b->hypervisor->list();
  ASSERT_OK(vms);
  EXPECT_EQ(vms->size(), 10u);
}

TEST(Examples, SmartosAgentLoadsAndBuildsAVmadmBackend) {
  auto trust = fabric::TrustStore::load(example("trust.yaml"));
  ASSERT_OK(trust);
  auto a = node::load_agent_config(example("agent-smartos.yaml"), true, true);
  ASSERT_OK(a);
  EXPECT_EQ(a->collector->backend_kind, "vmadm");
  EXPECT_EQ(a->collector->probes.size(), 1u);
  expect_agent_matches_trust(*a, *trust);
  VirtualClock clock;
  auto b = node::make_backend(a->host, a->collector->backend, example("agent-smartos.yaml"), clock);
  ASSERT_OK(b);
}

TEST(Examples, QemuAgentLoadsItsVmSpecsAndBuildsAQmpBackend) {
  auto trust = fabric::TrustStore::load(example("trust.yaml"));
  ASSERT_OK(trust);
  auto a = node::load_agent_config(example("agent-qemu.yaml"), true, true);
  ASSERT_OK(a);
  EXPECT_EQ(a->collector->backend_kind, "qmp");
  expect_agent_matches_trust(*a, *trust);
  // Builds the backend from qemu-vms.yaml without starting any guest.
  VirtualClock clock;
  auto b = node::make_backend(a->host, a->collector->backend, example("agent-qemu.yaml"), clock);
  ASSERT_OK(b);
  // db-1 has a guest_agent_socket, so the backend comes with a guest pinger.
  EXPECT_TRUE(a->collector->guest_ping.enabled);
  EXPECT_NE(b->guest_pinger, nullptr);
  // The probe speaks about a VM the spec file defines.
  ASSERT_EQ(a->collector->probes.size(), 1u);
  EXPECT_NE(read_file(example("qemu-vms.yaml")).find("uuid: " + a->collector->probes[0].vm),
            std::string::npos);
}

// `medic <words...> --help` exits 0 for the words after the binary in `exec`.
void expect_real_subcommand(const std::string& file, const std::string& exec) {
  std::istringstream words(exec);
  std::string w;
  words >> w;  // the binary
  ASSERT_NE(w.find("medic"), std::string::npos) << file << ": " << exec;
  std::vector<std::string> argv{medic_binary()};
  while (words >> w && w[0] != '-') argv.push_back(w);
  ASSERT_GE(argv.size(), 2u) << file << ": no subcommand in " << exec;
  argv.push_back("--help");
  EXPECT_EQ(testing::run_command(argv).exit_code, 0) << file << ": " << exec;
}

TEST(Examples, ServiceFilesStartRealSubcommandsWithTheDocumentedHardening) {
  for (const std::string unit :
       {"medic-engine.service", "medic-agent.service", "medic-record.service"}) {
    std::string text = read_file(example("systemd/" + unit));
    std::smatch m;
    ASSERT_TRUE(std::regex_search(text, m, std::regex("\nExecStart=([^\n]+)"))) << unit;
    expect_real_subcommand(unit, m[1]);
    for (const char* line : {"\nUser=medic\n", "\nNoNewPrivileges=yes\n",
                             "\nProtectSystem=strict\n", "\nReadWritePaths=/var/lib/medic",
                             "\nRestart=on-failure\n"}) {
      EXPECT_NE(text.find(line), std::string::npos) << unit << " lacks " << line;
    }
  }
  EXPECT_NE(read_file(example("systemd/medic-engine.service"))
                .find("\nExecReload=/bin/kill -HUP $MAINPID\n"),
            std::string::npos);

  std::string smf = read_file(example("smf/medic-agent.xml"));
  std::smatch m;
  ASSERT_TRUE(std::regex_search(smf, m, std::regex("name=\"start\"\\s+exec=\"([^\"]+)\"")));
  expect_real_subcommand("medic-agent.xml", m[1]);
  EXPECT_NE(std::string(m[1]).find("-c %{config/file}"), std::string::npos);
  EXPECT_NE(smf.find("<propval name=\"file\""), std::string::npos);
  EXPECT_NE(smf.find("svc:/milestone/network"), std::string::npos);
}



TEST(Examples, RunForRealFromMadeKeys) {
  testing::TempDir tmp;
  const std::string dir = tmp.file("run");
  // The script uses this build's binary, as a user would use theirs.
  ::setenv("MEDIC", medic_binary().c_str(), 1);
  auto made = testing::run_command({source_dir() + "/scripts/make-example-keys", dir}, 30s);
  ASSERT_EQ(made.exit_code, 0) << made.out << made.err;
  for (const char* f : {"engine.key", "host-a.key", "host-b.key", "operator.key", "app.key",
                        "trust.yaml", "engine.yaml", "agent.yaml", "agent-host-b.yaml"}) {
    ASSERT_TRUE(std::filesystem::exists(dir + "/" + f)) << f;
  }
  // Its configs load as they are, and agree with its trust store.
  auto trust = fabric::TrustStore::load(dir + "/trust.yaml");
  ASSERT_OK(trust);
  for (const char* f : {"agent.yaml", "agent-host-b.yaml"}) {
    auto a = node::load_agent_config(dir + "/" + f, true, true);
    ASSERT_OK(a);
    expect_agent_matches_trust(*a, *trust);
    EXPECT_EQ(a->actuator->options.journal_path, dir + "/" + a->host + ".journal.db");
  }
  auto ec = node::load_engine_config(dir + "/engine.yaml");
  ASSERT_OK(ec);
  EXPECT_EQ(ec->audit_path, dir + "/audit.db");
  // Running twice on one directory must not replace identities.
  auto again = testing::run_command({source_dir() + "/scripts/make-example-keys", dir}, 30s);
  EXPECT_NE(again.exit_code, 0);
  EXPECT_EQ(trust->find_name("engine-1")->key,
            fabric::TrustStore::load(dir + "/trust.yaml")->find_name("engine-1")->key);

  // Loopback ports of our own, and faults often enough to decide within
  // seconds; everything else is the example as shipped.
  std::string engine = read_file(dir + "/engine.yaml");
  std::string agent = read_file(dir + "/agent.yaml");
  engine = replace_all(engine, "tcp://0.0.0.0:", "tcp://127.0.0.1:");
  std::string control_endpoint;
  for (const char* port : {"7701", "7702", "7703", "7704"}) {
    const std::string to = ":" + std::to_string(testing::free_port());
    if (std::string(port) == "7704") control_endpoint = "tcp://127.0.0.1" + to;
    engine = replace_all(engine, std::string(":") + port, to);
    if (std::string(port) != "7704") agent = replace_all(agent, std::string(":") + port, to);
  }
  agent = replace_all(agent, "faults_per_hour: 12", "faults_per_hour: 36000");
  write_file(dir + "/engine.yaml", engine);
  write_file(dir + "/agent.yaml", agent);

  Daemon e({medic_binary(), "engine", "-c", dir + "/engine.yaml"}, dir + "/engine.log");
  Daemon a({medic_binary(), "agent", "-c", dir + "/agent.yaml"}, dir + "/agent.log");
  ASSERT_OK(e.start());
  ASSERT_OK(a.start());
  const std::string db = dir + "/audit.db";
  const bool decided = testing::wait_until(
      [&] { return query_number(db, "select count(*) from decisions") >= 1 || !e.running(); },
      25s);
  EXPECT_TRUE(decided && e.running()) << read_file(e.log()) << read_file(a.log());
  EXPECT_TRUE(a.running()) << read_file(a.log());
  EXPECT_GE(query_number(db, "select count(*) from decisions where host = 'host-a'"), 1)
      << read_file(e.log());

  // An operator asks the running engine for its status with the made key.
  auto status = testing::run_command(
      {medic_binary(), "status", "--engine", control_endpoint, "--engine-key",
       fabric::key_id(trust->find_name("engine-1")->key), "--key", dir + "/operator.key", "--trust",
       dir + "/trust.yaml"},
      15s);
  EXPECT_EQ(status.exit_code, 0) << status.out << status.err;
  EXPECT_FALSE(status.out.empty());

  // SIGHUP (systemctl reload) re-reads the rules and keeps the engine running.
  ASSERT_TRUE(e.running()) << read_file(e.log());
  e.signal(SIGHUP);
  EXPECT_TRUE(testing::wait_until(
      [&] { return read_file(e.log()).find("engine: rules reloaded") != std::string::npos; }, 5s))
      << read_file(e.log());
  EXPECT_TRUE(e.running()) << "SIGHUP stopped the engine:\n" << read_file(e.log());

  EXPECT_EQ(a.terminate(), 0) << read_file(a.log());
  EXPECT_EQ(e.terminate(), 0) << read_file(e.log());
  EXPECT_NE(read_file(e.log()).find("engine: stopping"), std::string::npos);

  // What the engine wrote verifies against the made trust store.
  auto v = testing::run_command(
      {medic_binary(), "audit", "verify", "--db", db, "--trust", dir + "/trust.yaml"});
  EXPECT_EQ(v.exit_code, 0) << v.out << v.err;
}

}  // namespace
}  // namespace medic
