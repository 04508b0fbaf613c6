#include "tests/testing/postgres.h"

#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <sstream>

#include "core/subprocess.h"

namespace medic::testing {
namespace {

constexpr const char* kDebianRoot = "/usr/lib/postgresql";

// The numeric version of a /usr/lib/postgresql/<version> directory, -1 if none.
int version_of(const std::filesystem::path& dir) {
  const std::string name = dir.filename().string();
  char* end = nullptr;
  long v = std::strtol(name.c_str(), &end, 10);
  return (end && *end == '\0' && v > 0) ? static_cast<int>(v) : -1;
}

// The lines of postmaster.pid: pid, data dir, start time, port, socket dir,
// listen address, shared memory key, status ("ready" once it accepts).
std::vector<std::string> pid_file_lines(const std::string& data) {
  std::vector<std::string> lines;
  std::istringstream in(read_file(data + "/postmaster.pid"));
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

Status chown_to(const std::string& path, const passwd* pw) {
  if (::chown(path.c_str(), pw->pw_uid, pw->pw_gid) != 0) {
    return io_error("chown " + path + " to postgres: " + std::strerror(errno));
  }
  return {};
}

}  // namespace

Result<std::string> PostgresServer::find_bin_dir() {
  if (const char* env = std::getenv("MEDIC_PG_BINDIR"); env && *env) {
    if (::access((std::string(env) + "/initdb").c_str(), X_OK) == 0) return std::string(env);
    return not_found(std::string("no initdb in $MEDIC_PG_BINDIR=") + env);
  }
  std::string best;
  int best_version = -1;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(kDebianRoot, ec)) {
    int v = version_of(entry.path());
    std::string bin = entry.path().string() + "/bin";
    if (v > best_version && ::access((bin + "/initdb").c_str(), X_OK) == 0) {
      best_version = v;
      best = bin;
    }
  }
  if (best.empty()) {
    return not_found(std::string("no PostgreSQL server binaries (initdb) under ") + kDebianRoot +
                     "/<version>/bin: run scripts/bootstrap (it installs postgresql)");
  }
  return best;
}

Result<std::unique_ptr<PostgresServer>> PostgresServer::start(const std::string& database) {
  auto bin = find_bin_dir();
  if (!bin.ok()) return bin.status();
  std::unique_ptr<PostgresServer> s(new PostgresServer());
  s->bin_ = *bin;
  s->database_ = database;
  MEDIC_RETURN_IF_ERROR(s->init_cluster());
  // free_port() can race with another process; a few tries make that rare.
  Status launched;
  for (int attempt = 0; attempt < 3; ++attempt) {
    s->port_ = free_port();
    launched = s->launch();
    if (launched.ok()) break;
  }
  MEDIC_RETURN_IF_ERROR(launched);
  MEDIC_RETURN_IF_ERROR(s->create_database(database));
  s->url_ = "postgresql://postgres@127.0.0.1:" + std::to_string(s->port_) + "/" + database;
  return s;
}

PostgresServer::~PostgresServer() { (void)stop(); }

std::vector<std::string> PostgresServer::as_postgres(std::vector<std::string> argv) const {
  if (::geteuid() != 0) return argv;
  std::vector<std::string> full = {"runuser", "-u", "postgres", "--"};
  full.insert(full.end(), argv.begin(), argv.end());
  return full;
}

Status PostgresServer::init_cluster() {
  data_ = dir_.file("data");
  sockets_ = dir_.file("sockets");
  log_ = dir_.file("postgres.log");
  std::filesystem::create_directories(data_);
  std::filesystem::create_directories(sockets_);
  ::chmod(dir_.path().c_str(), 0755);
  ::chmod(data_.c_str(), 0700);
  if (::geteuid() == 0) {
    const passwd* pw = ::getpwnam("postgres");
    if (!pw) return not_found("no `postgres` user: run scripts/bootstrap (postgresql creates it)");
    MEDIC_RETURN_IF_ERROR(chown_to(data_, pw));
    MEDIC_RETURN_IF_ERROR(chown_to(sockets_, pw));
  }
  CommandResult r = run_command(
      as_postgres({bin_ + "/initdb", "-D", data_, "-U", "postgres", "-A", "trust", "-E", "UTF8",
                   "--no-sync", "--no-instructions"}),
      std::chrono::seconds(120));
  if (r.exit_code != 0) {
    return io_error("initdb failed (exit " + std::to_string(r.exit_code) + "): " + r.err + r.out);
  }
  return {};
}

Status PostgresServer::launch() {
  auto pid = spawn_process(
      as_postgres({bin_ + "/postgres", "-D", data_, "-p", std::to_string(port_), "-k", sockets_,
                   "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c",
                   "max_connections=200"}),
      log_, /*search_path=*/true);
  if (!pid.ok()) return pid.status();
  launcher_ = *pid;
  Status ready = wait_ready();
  if (!ready.ok()) (void)stop();
  return ready;
}

Status PostgresServer::wait_ready() {
  bool exited = false;
  bool ready = wait_until(
      [&] {
        if (reap(launcher_)) {
          exited = true;
          launcher_ = 0;
          return true;
        }
        auto lines = pid_file_lines(data_);
        return lines.size() >= 8 && lines[7].find("ready") != std::string::npos;
      },
      std::chrono::seconds(60));
  if (exited || !ready) {
    return unavailable(std::string("postgres ") + (exited ? "exited" : "not ready in 60 s") +
                       " on port " + std::to_string(port_) + "; its log ends: " + log_tail());
  }
  postmaster_ = static_cast<pid_t>(std::atoi(pid_file_lines(data_)[0].c_str()));
  return {};
}

Status PostgresServer::stop() {
  if (launcher_ == 0 && postmaster_ == 0) return {};
  CommandResult r = run_command(
      as_postgres({bin_ + "/pg_ctl", "stop", "-D", data_, "-m", "immediate", "-w", "-t", "30"}),
      std::chrono::seconds(40));
  if (r.exit_code != 0 && postmaster_ > 0) ::kill(postmaster_, SIGKILL);
  bool gone = launcher_ == 0 || wait_until([&] { return reap(launcher_); }, std::chrono::seconds(10));
  if (!gone) kill_and_reap(launcher_);
  if (postmaster_ > 0) {
    wait_until([&] { return ::kill(postmaster_, 0) != 0 && errno == ESRCH; },
               std::chrono::seconds(10));
  }
  launcher_ = 0;
  postmaster_ = 0;
  if (r.exit_code != 0) return io_error("pg_ctl stop failed; the postmaster was killed: " + r.err);
  return {};
}

Status PostgresServer::restart() {
  if (launcher_ != 0) return failed_precondition("the server is running");
  return launch();
}

Status PostgresServer::create_database(const std::string& name) const {
  CommandResult r = run_command({bin_ + "/createdb", "-h", "127.0.0.1", "-p",
                                 std::to_string(port_), "-U", "postgres", name},
                                std::chrono::seconds(60));
  if (r.exit_code != 0) return io_error("createdb " + name + " failed: " + r.err);
  return {};
}

std::string PostgresServer::log_tail() const {
  std::string log = read_file(log_);
  return log.size() > 2000 ? log.substr(log.size() - 2000) : log;
}

}  // namespace medic::testing
