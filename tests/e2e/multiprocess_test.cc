// One engine and two agents as separate processes over tcp loopback with
// CurveZMQ, simulated backends with scheduled faults. The engine is killed
// with SIGKILL mid-run and started again. Afterwards: faults were healed, the
// audit log verifies, every action decided before the kill reached an end,
// and no action ran twice.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <set>

#include "audit/log.h"
#include "core/subprocess.h"
#include "tests/testing/testing.h"

namespace medic {
namespace {

using namespace std::chrono_literals;
using testing::medic_binary;
using testing::read_file;


std::string keygen(const testing::TempDir& dir, const std::string& name) {
  auto r = testing::run_command({medic_binary(), "keygen", "-o", dir.file(name + ".key")});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return r.out.substr(0, r.out.find('\n'));
}

// Rows of a query on a SQLite file, each row's columns joined by '|'.
std::vector<std::string> query(const std::string& db, const std::string& sql) {
  sqlite3* h = nullptr;
  std::vector<std::string> rows;
  // Read-write (no create): a read-only connection to a WAL database that
  // another process writes can fail to read its index; we only SELECT.
  if (sqlite3_open_v2(db.c_str(), &h, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK) {
    sqlite3_close(h);
    return rows;
  }
  sqlite3_busy_timeout(h, 2000);
  sqlite3_stmt* st = nullptr;
  if (sqlite3_prepare_v2(h, sql.c_str(), -1, &st, nullptr) != SQLITE_OK) {
    std::fprintf(stderr, "query %s on %s: %s\n", sql.c_str(), db.c_str(), sqlite3_errmsg(h));
  } else {
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
      std::string row;
      for (int i = 0; i < sqlite3_column_count(st); ++i) {
        const unsigned char* t = sqlite3_column_text(st, i);
        row += (i ? "|" : "") + std::string(t ? reinterpret_cast<const char*>(t) : "");
      }
      rows.push_back(row);
    }
    if (rc != SQLITE_DONE) std::fprintf(stderr, "query %s: %s\n", sql.c_str(), sqlite3_errmsg(h));
  }
  sqlite3_finalize(st);
  sqlite3_close(h);
  return rows;
}

class Daemon {
 public:
  Daemon(std::vector<std::string> argv, std::string log) : argv_(std::move(argv)), log_(std::move(log)) {}
  ~Daemon() { kill(SIGKILL); }
  void start() {
    auto pid = spawn_process(argv_, log_);
    ASSERT_OK(pid);
    pid_ = *pid;
  }
  // Returns the exit status (-signal when killed), or -999 when it had to
  // be killed after not stopping within 15 s.
  int kill(int sig) {
    if (pid_ <= 0) return -999;
    ::kill(pid_, sig);
    int status = -999;
    if (sig == SIGKILL) {
      kill_and_reap(pid_);
      status = -SIGKILL;
    } else if (!testing::wait_until([&] { return reap(pid_, &status); }, 15s)) {
      kill_and_reap(pid_);
      status = -999;
    }
    pid_ = 0;
    return status;
  }
  bool alive() { return pid_ > 0 && !reap(pid_); }
  void signal(int sig) {
    if (pid_ > 0) ::kill(pid_, sig);
  }

 private:
  std::vector<std::string> argv_;
  std::string log_;
  pid_t pid_ = 0;
};

TEST(MultiProcess, EngineAndTwoAgentsHealFaultsAndSurviveAnEngineKill) {
  testing::TempDir dir;
  const std::string engine_id = keygen(dir, "engine");
  const std::string a_id = keygen(dir, "host-a");
  const std::string b_id = keygen(dir, "host-b");
  dir.write("trust.yaml", "nodes:\n"
                          "  - {name: engine-1, key: " + engine_id + ", roles: [engine]}\n"
                          "  - {name: host-a, key: " + a_id + ", roles: [collector, actuator]}\n"
                          "  - {name: host-b, key: " + b_id + ", roles: [collector, actuator]}\n");
  const int p_events = testing::free_port(), p_urgent = testing::free_port(), p_actions = testing::free_port(),
            p_control = testing::free_port();
  auto ep = [](int p) { return "tcp://127.0.0.1:" + std::to_string(p); };
  dir.write("rules.yaml",
            "rules:\n"
            "  - {name: guest-panicked, on: vm.panicked, do: reset, cooldown: 5s}\n"
            "  - {name: guest-crashed, on: vm.crashed, do: restart, cooldown: 5s}\n"
            "  - name: guest-unresponsive\n"
            "    absent: vm.heartbeat\n"
            "    for: 3s\n"
            "    where: vm.state == \"running\"\n"
            "    do: [reset, restart, notify]\n"
            "    heal_within: 5s\n"
            "    cooldown: 5s\n");
  dir.write("engine.yaml",
            "engine:\n  name: engine-1\n  key: engine.key\n  trust: trust.yaml\n"
            "  listen:\n    events: " + ep(p_events) + "\n    urgent: " + ep(p_urgent) +
                "\n    actions: " + ep(p_actions) + "\n    control: " + ep(p_control) +
                "\n  rules: [rules.yaml]\n  audit: {path: audit.db}\n  action_ttl: 30s\n"
                "  policies:\n    storm: {host_fraction: 0.95, fleet_fraction: 0.95}\n");
  for (const auto& [host, seed] : std::vector<std::pair<std::string, int>>{{"host-a", 11}, {"host-b", 12}}) {
    dir.write(host + ".yaml",
              "collector:\n  host: " + host + "\n  key: " + host + ".key\n  trust: trust.yaml\n"
              "  interval: 1s\n"
              "  backend: {kind: sim, vms_per_host: 6, seed: " + std::to_string(seed) +
                  ", faults_per_hour: 300, boot_time: 1s,"
                  " fault_weights: {panic: 1, crash: 1, hang: 1}}\n"
              "  engines:\n    - {name: engine-1, key: " + engine_id + ", events: " + ep(p_events) +
                  ", urgent: " + ep(p_urgent) + "}\n"
              "actuator:\n  host: " + host + "\n  engine: " + ep(p_actions) + "\n  engine_key: " +
                  engine_id + "\n  key_file: " + host + ".key\n  trust_store: trust.yaml\n"
              "  journal: " + host + ".journal.db\n");
  }
  const std::string db = dir.file("audit.db");
  Daemon engine({medic_binary(), "engine", "-c", dir.file("engine.yaml")}, dir.file("engine.log"));
  Daemon agent_a({medic_binary(), "agent", "-c", dir.file("host-a.yaml")}, dir.file("host-a.log"));
  Daemon agent_b({medic_binary(), "agent", "-c", dir.file("host-b.yaml")}, dir.file("host-b.log"));
  engine.start();
  agent_a.start();
  agent_b.start();

  auto count = [&](const std::string& sql) {
    auto rows = query(db, sql);
    return rows.empty() ? 0 : std::stoi(rows[0]);
  };
  // Faults are scheduled in the agents; wait for healing actions to succeed.
  ASSERT_TRUE(testing::wait_until(
      [&] { return count("select count(*) from transitions where state='succeeded'") >= 2; }, 90s))
      << read_file(dir.file("engine.log")) << read_file(dir.file("host-a.log"));

  // Kill the engine mid-run; note what it had decided.
  engine.kill(SIGKILL);
  auto decided_before = query(db, "select distinct action_id from transitions where state='dispatched'");
  ASSERT_FALSE(decided_before.empty());
  engine.start();
  ASSERT_TRUE(testing::wait_until([&] { return engine.alive(); }, 5s));

  // Every action dispatched before the kill reaches an end, and new ones succeed.
  const int succeeded_at_restart = count("select count(*) from transitions where state='succeeded'");
  auto unfinished = [&] {
    std::vector<std::string> open;
    for (const auto& id : decided_before) {
      int ended = count("select count(*) from transitions where action_id='" + id +
                        "' and state in ('succeeded','failed','timed_out','rejected','expired')");
      if (ended == 0) open.push_back(id);
    }
    return open;
  };
  ASSERT_TRUE(testing::wait_until([&] { return unfinished().empty(); }, 120s))
      << "still open: " << unfinished().size() << "\n" << read_file(dir.file("engine.log"));
  ASSERT_TRUE(testing::wait_until(
      [&] {
        return count("select count(*) from transitions where state='succeeded'") >
               succeeded_at_restart;
      },
      90s))
      << read_file(dir.file("engine.log"));

  // A clean stop on SIGTERM: exit status 0 for every daemon.
  EXPECT_EQ(engine.kill(SIGTERM), 0);
  EXPECT_EQ(agent_a.kill(SIGTERM), 0);
  EXPECT_EQ(agent_b.kill(SIGTERM), 0);

  // Some actions healed their VM (the actuator saw it healthy again).
  EXPECT_GE(count("select count(*) from transitions where state='succeeded' and detail = "
                  "'executed; the actuator saw the VM healthy'"),
            1);
  // No action reached an end twice, and no actuator executed an id twice.
  auto twice = query(db, "select action_id from transitions where state in "
                         "('succeeded','failed','timed_out','rejected') group by action_id having count(*) > 1");
  for (const auto& id : twice) {
    ADD_FAILURE() << "action " << id << " ended twice:\n"
                  << ::testing::PrintToString(query(db, "select state, actor, "
                                                        "detail from transitions where "
                                                        "action_id='" + id + "'"));
  }
  for (const char* host : {"host-a", "host-b"}) {
    std::string journal = dir.file(std::string(host) + ".journal.db");
    auto ids = query(journal, "select id from journal");
    std::set<std::string> unique(ids.begin(), ids.end());
    EXPECT_EQ(unique.size(), ids.size()) << host;
  }
  // The audit log verifies end to end.
  auto report = audit::verify_log(db);
  ASSERT_OK(report);
  EXPECT_TRUE(report->ok);
  EXPECT_GT(report->rows, 0);
}

TEST(MultiProcess, EngineReloadsRulesOnSighupAndKeepsTheOldOnesWhenTheNewAreBad) {
  testing::TempDir dir;
  const std::string engine_id = keygen(dir, "engine");
  dir.write("trust.yaml", "nodes:\n  - {name: engine-1, key: " + engine_id + ", roles: [engine]}\n");
  dir.write("rules.yaml", "rules:\n  - {name: guest-panicked, on: vm.panicked, do: reset}\n");
  auto ep = [] { return "tcp://127.0.0.1:" + std::to_string(testing::free_port()); };
  dir.write("engine.yaml", "engine:\n  key: engine.key\n  trust: trust.yaml\n  listen:\n    events: " +
                               ep() + "\n    urgent: " + ep() + "\n    actions: " + ep() +
                               "\n    control: " + ep() + "\n  rules: [rules.yaml]\n  audit: {path: audit.db}\n");
  Daemon engine({medic_binary(), "engine", "-c", dir.file("engine.yaml")}, dir.file("engine.log"));
  engine.start();
  auto log_has = [&](const std::string& text) {
    return testing::wait_until(
        [&] { return read_file(dir.file("engine.log")).find(text) != std::string::npos; }, 10s);
  };
  ASSERT_TRUE(log_has("up: events")) << read_file(dir.file("engine.log"));
  // A broken rule file: the reload is refused, naming the problem, and the engine stays up.
  dir.write("rules.yaml", "rules:\n  - {name: guest-panicked, on: vm.panickd, do: reset}\n");
  engine.signal(SIGHUP);
  ASSERT_TRUE(log_has("reload refused")) << read_file(dir.file("engine.log"));
  EXPECT_NE(read_file(dir.file("engine.log")).find("rules.yaml:2:"), std::string::npos);
  EXPECT_TRUE(engine.alive());
  dir.write("rules.yaml", "rules:\n  - {name: guest-panicked, on: vm.panicked, do: reset}\n"
                          "  - {name: guest-crashed, on: vm.crashed, do: restart}\n");
  engine.signal(SIGHUP);
  ASSERT_TRUE(log_has("rules reloaded")) << read_file(dir.file("engine.log"));
  EXPECT_EQ(engine.kill(SIGTERM), 0);
  EXPECT_NE(read_file(dir.file("engine.log")).find("engine: stopping"), std::string::npos);
}

}  // namespace
}  // namespace medic
