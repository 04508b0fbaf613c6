// Service probes: HTTP(S) requests through libcurl's multi interface and
// plain TCP connects, all driven from one thread. A ProbeRunner never blocks
// and never starts a thread per probe; the owner's event loop waits on the
// descriptors it lists (prepare()) and hands back what became ready
// (on_poll()). Thousands of probes can be in flight at once.
//
// Scheduling uses the injected Clock: each probe runs every `interval`, each
// run shifted by a random offset of up to +-jitter*interval drawn from a
// seeded generator (the same seed gives the same schedule). A run that is
// still in flight when the next is due is not doubled up: the due run is
// skipped and counted.
//
// Time spent on the wire (latency, per-request timeouts) is real time from a
// monotonic clock, because it measures the network rather than the schedule.
//
// Threading: one owner thread, like the Clock it runs on.
#pragma once

#include <poll.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/status.h"

namespace medic::collectors {

enum class ProbeKind { kHttp, kTcp, kProcess };

struct ProbeSpec {
  std::string name;
  std::string vm;  // the VM the probe is about; empty for a host-level probe
  ProbeKind kind = ProbeKind::kHttp;

  // HTTP(S)
  std::string method = "GET";
  std::string url;
  int expect_status = 200;    // 0 accepts any 2xx
  std::string body_contains;  // empty: the body is not read
  bool verify_tls = true;
  // Keep the connection open between runs (as Envoy's health checks do):
  // much cheaper, but the latency then leaves out connection set-up and a
  // listener that stopped accepting goes unnoticed while the old
  // connection lives. Off by default.
  bool reuse_connection = false;

  // TCP: host name or address, resolved once when the probe is added.
  std::string tcp_host;
  uint16_t tcp_port = 0;

  // Process: the process whose pid this file holds. Each run reads the file
  // and watches that process through a pidfd between runs, so its exit is a
  // failed run at once (`process_exited`), not at the next interval.
  std::string pid_file;

  Duration interval = std::chrono::seconds(10);
  Duration timeout = std::chrono::seconds(2);
  double jitter = 0.1;  // fraction of interval, 0..0.5

  // A timeout learned from the service's own answers: once `kLearnFrom`
  // runs have succeeded, a run is given 10x the slowest of the last 16
  // answers, at least `min_timeout` and at most `timeout`. A service that
  // answers in 1 ms and is silent for 100 ms is not well.
  bool learn_timeout = false;
  Duration min_timeout = std::chrono::milliseconds(50);
  // A failed run is confirmed by a second run at once (given 4x the first
  // run's timeout, at most `timeout`) before it is reported; a second run
  // that succeeds is reported instead (and counted as `unconfirmed`). Not
  // for process probes (an exit needs no second look). A reported failure
  // starts the learning of the timeout over.
  bool confirm = false;
  static constexpr int kLearnFrom = 5;
};

// Why a probe failed. Closed set, so rules can match on the name.
enum class ProbeFailure : uint8_t {
  kNone = 0,
  kTimeout,
  kConnectionRefused,
  kConnectFailed,  // unreachable, reset, any other connect error
  kDns,
  kTls,
  kStatusMismatch,
  kBodyMismatch,
  kProtocol,       // malformed HTTP or another transfer error
  kInternal,       // could not start the probe at all (out of descriptors...)
  kNotRunning,     // process: no pid file, or no process of its pid
  kProcessExited,  // process: the watched process exited
};
// "timeout", "connection_refused", "status_mismatch", ...
const char* probe_failure_name(ProbeFailure f);

struct ProbeOutcome {
  std::string probe;
  std::string vm;
  bool ok = false;
  uint32_t status = 0;  // HTTP status; 0 for TCP or when none arrived
  Duration latency{};   // start of the run to its end, real time
  ProbeFailure failure = ProbeFailure::kNone;
  std::string reason;  // "<failure name>: detail" for a person; empty when ok
  Time finished_at{};  // on the Clock
};

struct ProbeCounters {
  uint64_t started = 0;
  uint64_t succeeded = 0;
  uint64_t failed = 0;
  uint64_t skipped_overlap = 0;  // due while the previous run was in flight
  uint64_t confirmed = 0;        // failures a second run confirmed (reported)
  uint64_t unconfirmed = 0;      // failures a second run did not confirm (not reported)
};

class ProbeRunner {
 public:
  using ResultSink = std::function<void(const ProbeOutcome&)>;

  // `clock` must outlive the runner. Results reach `sink` only from inside
  // on_poll() (or run_now()).
  static Result<std::unique_ptr<ProbeRunner>> create(Clock& clock, ResultSink sink, uint64_t seed);
  ~ProbeRunner();
  ProbeRunner(const ProbeRunner&) = delete;
  ProbeRunner& operator=(const ProbeRunner&) = delete;

  // Validates and schedules a probe: its first run falls at a random point
  // within its first interval, so probes added together do not fire together.
  // Errors: kInvalidArgument for a bad spec, kAlreadyExists for a taken name,
  // kNotFound when a TCP host does not resolve.
  Status add(ProbeSpec spec);
  // Starts a run of the named probe now, outside its schedule (tests, operators).
  Status run_now(const std::string& name);

  // Appends the descriptors to wait on, with the events wanted.
  void prepare(std::vector<pollfd>* fds) const;
  // The longest the owner may wait before calling on_poll() again, for
  // transfer timers and TCP deadlines; nullopt when nothing is in flight.
  std::optional<Duration> max_wait() const;
  // Handles `fds` (as returned by poll(), may include the owner's own
  // descriptors, which are ignored) and every expired transfer timer, and
  // delivers finished runs to the sink.
  void on_poll(const pollfd* fds, size_t n);

  size_t size() const;
  size_t in_flight() const;
  const ProbeCounters& counters() const;

 private:
  class Impl;
  explicit ProbeRunner(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace medic::collectors
