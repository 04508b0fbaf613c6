// A real PostgreSQL server for one test: a cluster initialised in a fresh
// temporary directory, listening on a loopback port that nothing else uses,
// with one database created, and stopped (immediately, like a crash) when the
// object goes away.
//
// Tests run as root and PostgreSQL refuses to; as root every server command
// runs as the `postgres` user through `runuser -u postgres --` and the
// cluster's directories are chowned to it. As another user they run as that
// user.
//
// The server binaries are those of $MEDIC_PG_BINDIR, else the newest
// /usr/lib/postgresql/<version>/bin that has initdb (Debian's layout).
// Missing binaries are an error (kNotFound naming where it looked and
// `scripts/bootstrap`), never a skip: a machine where bootstrap ran has them.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>

#include "core/status.h"
#include "tests/testing/testing.h"

namespace medic::testing {

class PostgresServer {
 public:
  // initdb, start, wait until it accepts connections, create `database`.
  static Result<std::unique_ptr<PostgresServer>> start(const std::string& database = "medic");
  ~PostgresServer();
  PostgresServer(const PostgresServer&) = delete;
  PostgresServer& operator=(const PostgresServer&) = delete;

  // postgresql://postgres@127.0.0.1:<port>/<database>
  const std::string& url() const { return url_; }
  int port() const { return port_; }
  // The postmaster's pid while it runs (from postmaster.pid), else 0.
  pid_t postmaster_pid() const { return postmaster_; }

  // pg_ctl stop -m immediate (the postmaster is killed if that fails); the
  // data directory stays. Idempotent.
  Status stop();
  // Starts the server again on the same data directory and port.
  Status restart();
  // A further database on this server.
  Status create_database(const std::string& name) const;

  // Where the server binaries are, or kNotFound saying where it looked.
  static Result<std::string> find_bin_dir();

 private:
  PostgresServer() = default;
  std::vector<std::string> as_postgres(std::vector<std::string> argv) const;
  Status init_cluster();
  Status launch();
  Status wait_ready();
  std::string log_tail() const;

  TempDir dir_;
  std::string bin_;
  std::string data_;
  std::string sockets_;
  std::string log_;
  std::string database_;
  std::string url_;
  int port_ = 0;
  pid_t launcher_ = 0;    // runuser (or the postmaster itself when not root)
  pid_t postmaster_ = 0;
};

}  // namespace medic::testing
