// The floor of a durable path, for the end-to-end benches: what the
// machine itself costs, measured in the same run, so a bench can report its
// figure as a ratio to it rather than as an absolute time.
//   commit_floor      one durable SQLite commit (WAL, synchronous=FULL, the
//                     audit log's and the journal's settings) of one small row
//   round_trip_floor  one 200-byte message to a thread and back over TCP on
//                     127.0.0.1 (no ZeroMQ, no CurveZMQ, no signature)
// Each returns n samples in milliseconds, none if any step failed (a floor
// of failed steps would look too good).
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sqlite3.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "bench/latency.h"

namespace medic::bench {

inline std::vector<double> commit_floor(const std::string& dir, int n) {
  using Steady = std::chrono::steady_clock;
  std::vector<double> out;
  sqlite3* db = nullptr;
  sqlite3_stmt* ins = nullptr;
  const std::string path = dir + "/floor.db";
  bool ok = sqlite3_open(path.c_str(), &db) == SQLITE_OK &&
            sqlite3_exec(db,
                         "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
                         "CREATE TABLE IF NOT EXISTS t(x BLOB)",
                         nullptr, nullptr, nullptr) == SQLITE_OK &&
            sqlite3_prepare_v2(db, "INSERT INTO t(x) VALUES (zeroblob(512))", -1, &ins, nullptr) ==
                SQLITE_OK;
  for (int i = 0; ok && i < n; ++i) {
    const auto t0 = Steady::now();
    ok = sqlite3_exec(db, "BEGIN", nullptr, nullptr, nullptr) == SQLITE_OK &&
         sqlite3_step(ins) == SQLITE_DONE && sqlite3_reset(ins) == SQLITE_OK &&
         sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr) == SQLITE_OK;
    out.push_back(ms(Steady::now() - t0));
  }
  sqlite3_finalize(ins);
  sqlite3_close(db);
  if (!ok) {
    std::fprintf(stderr, "floor: a commit failed; no floor\n");
    out.clear();
  }
  return out;
}

namespace floor_detail {

inline bool full_io(int fd, char* buf, size_t n, bool write_it) {
  for (size_t done = 0; done < n;) {
    const ssize_t r = write_it ? ::write(fd, buf + done, n - done) : ::read(fd, buf + done, n - done);
    if (r <= 0) return false;
    done += static_cast<size_t>(r);
  }
  return true;
}

}  // namespace floor_detail

inline std::vector<double> round_trip_floor(int n) {
  using Steady = std::chrono::steady_clock;
  constexpr size_t kBytes = 200;
  std::vector<double> out;
  int lfd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(a);
  bool ok = lfd >= 0 && ::bind(lfd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0 &&
            ::listen(lfd, 1) == 0 && ::getsockname(lfd, reinterpret_cast<sockaddr*>(&a), &len) == 0;
  int cfd = ok ? ::socket(AF_INET, SOCK_STREAM, 0) : -1;
  ok = ok && cfd >= 0 && ::connect(cfd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
  int sfd = ok ? ::accept(lfd, nullptr, nullptr) : -1;
  ok = ok && sfd >= 0;
  std::thread echo;
  if (ok) {
    const int one = 1;
    ::setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    ::setsockopt(sfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    echo = std::thread([sfd, n] {
      char buf[kBytes];
      for (int i = 0; i < n; ++i) {
        if (!floor_detail::full_io(sfd, buf, kBytes, false) ||
            !floor_detail::full_io(sfd, buf, kBytes, true)) {
          return;
        }
      }
    });
  }
  char buf[kBytes] = {};
  for (int i = 0; ok && i < n; ++i) {
    const auto t0 = Steady::now();
    ok = floor_detail::full_io(cfd, buf, kBytes, true) && floor_detail::full_io(cfd, buf, kBytes, false);
    out.push_back(ms(Steady::now() - t0));
  }
  if (cfd >= 0) ::shutdown(cfd, SHUT_RDWR);
  if (echo.joinable()) echo.join();
  for (int fd : {cfd, sfd, lfd}) {
    if (fd >= 0) ::close(fd);
  }
  if (!ok) {
    std::fprintf(stderr, "floor: a loopback round trip failed; no floor\n");
    out.clear();
  }
  return out;
}

}  // namespace medic::bench
