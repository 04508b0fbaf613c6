#include "collectors/probes.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <netdb.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <deque>
#include <fstream>
#include <limits>
#include <mutex>
#include <set>
#include <unordered_map>

#include "core/duration.h"

namespace medic::collectors {

const char* probe_failure_name(ProbeFailure f) {
  switch (f) {
    case ProbeFailure::kNone: return "none";
    case ProbeFailure::kTimeout: return "timeout";
    case ProbeFailure::kConnectionRefused: return "connection_refused";
    case ProbeFailure::kConnectFailed: return "connect_failed";
    case ProbeFailure::kDns: return "dns";
    case ProbeFailure::kTls: return "tls";
    case ProbeFailure::kStatusMismatch: return "status_mismatch";
    case ProbeFailure::kBodyMismatch: return "body_mismatch";
    case ProbeFailure::kProtocol: return "protocol";
    case ProbeFailure::kInternal: return "internal";
    case ProbeFailure::kNotRunning:
      return "not_running";
    case ProbeFailure::kProcessExited:
      return "process_exited";
  }
  return "unknown";
}

namespace {

using Steady = std::chrono::steady_clock;

bool curl_ready() {
  static std::once_flag once;
  static bool ok = false;
  std::call_once(once, [] { ok = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK; });
  return ok;
}

// splitmix64: a small, portable generator so a seed gives the same schedule
// on every platform.
uint64_t next_random(uint64_t* state) {
  uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// Uniform in [0, 1).
double unit_random(uint64_t* state) { return (next_random(state) >> 11) * 0x1.0p-53; }

ProbeFailure classify_curl(CURLcode rc, long os_errno) {
  switch (rc) {
    case CURLE_OPERATION_TIMEDOUT: return ProbeFailure::kTimeout;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY: return ProbeFailure::kDns;
    case CURLE_COULDNT_CONNECT:
      return os_errno == ECONNREFUSED ? ProbeFailure::kConnectionRefused
                                      : ProbeFailure::kConnectFailed;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS: return ProbeFailure::kTls;
    case CURLE_OUT_OF_MEMORY:
    case CURLE_FAILED_INIT: return ProbeFailure::kInternal;
    default: return ProbeFailure::kProtocol;
  }
}

struct Probe {
  ProbeSpec spec;
  // TCP: the addresses resolved when the probe was added, tried in order.
  std::vector<std::pair<sockaddr_storage, socklen_t>> addrs;
  size_t next_addr = 0;
  // HTTP: one easy handle per probe, reused across runs.
  CURL* easy = nullptr;
  char curl_error[CURL_ERROR_SIZE] = {};
  std::string tail;  // last needle-1 body bytes, so a match across chunks is found
  bool body_found = false;

  // Process: the pidfd of the process watched between runs, and its pid.
  int pid_fd = -1;
  long pid = 0;
  long exited_pid = 0;  // the last process seen to exit: its pid may be reused

  // The last answers' latencies (learn_timeout), and whether this run is
  // the second that confirms a failure.
  std::array<Duration, 16> answers{};
  int answered = 0;
  bool relearn = false;  // a failure was reported: the spec's timeout until an answer
  bool confirming = false;
  Duration run_timeout{};

  bool in_flight = false;
  Steady::time_point started{};
  int tcp_fd = -1;
  Steady::time_point tcp_deadline{};
  TimerId timer = 0;
  Time due{};  // when the current scheduled run is due, on the Clock
};

}  // namespace

class ProbeRunner::Impl {
 public:
  Impl(Clock& clock, ResultSink sink, uint64_t seed)
      : clock_(clock), sink_(std::move(sink)), rng_(seed) {}

  ~Impl() {
    for (auto& p : probes_) {
      if (p->timer) clock_.cancel(p->timer);
      if (p->easy) {
        if (p->in_flight) curl_multi_remove_handle(multi_, p->easy);
        curl_easy_cleanup(p->easy);
      }
      if (p->tcp_fd >= 0) ::close(p->tcp_fd);
      if (p->pid_fd >= 0) ::close(p->pid_fd);
    }
    if (multi_) curl_multi_cleanup(multi_);
  }

  Status init() {
    if (!curl_ready()) return internal_error("libcurl failed to initialise");
    multi_ = curl_multi_init();
    if (!multi_) return internal_error("curl_multi_init failed");
    curl_multi_setopt(multi_, CURLMOPT_SOCKETFUNCTION, &Impl::socket_cb);
    curl_multi_setopt(multi_, CURLMOPT_SOCKETDATA, this);
    curl_multi_setopt(multi_, CURLMOPT_TIMERFUNCTION, &Impl::timer_cb);
    curl_multi_setopt(multi_, CURLMOPT_TIMERDATA, this);
    return {};
  }

  Status add(ProbeSpec spec) {
    if (spec.name.empty()) return invalid_argument("a probe needs a name");
    if (by_name_.count(spec.name)) {
      return already_exists("probe \"" + spec.name + "\" exists already");
    }
    if (spec.interval <= Duration::zero() || spec.timeout <= Duration::zero()) {
      return invalid_argument("probe \"" + spec.name + "\": interval and timeout must be positive");
    }
    if (spec.learn_timeout &&
        (spec.min_timeout <= Duration::zero() || spec.min_timeout > spec.timeout)) {
      return invalid_argument("probe \"" + spec.name +
                              "\": min_timeout must be above 0 and at most the timeout");
    }
    if (spec.jitter < 0 || spec.jitter > 0.5) {
      return invalid_argument("probe \"" + spec.name + "\": jitter must be within 0..0.5");
    }
    auto p = std::make_unique<Probe>();
    p->spec = std::move(spec);
    if (p->spec.kind == ProbeKind::kTcp) {
      MEDIC_RETURN_IF_ERROR(resolve(p.get()));
    } else if (p->spec.kind == ProbeKind::kProcess) {
      if (p->spec.pid_file.empty()) {
        return invalid_argument("probe \"" + p->spec.name + "\": process needs a pid file");
      }
    } else {
      MEDIC_RETURN_IF_ERROR(make_easy(p.get()));
    }
    Probe* raw = p.get();
    by_name_[raw->spec.name] = raw;
    probes_.push_back(std::move(p));
    // The first run falls anywhere in the first interval, spreading probes out.
    auto first = Duration(static_cast<int64_t>(unit_random(&rng_) * raw->spec.interval.count()));
    raw->due = clock_.now() + first;
    raw->timer = clock_.schedule_at(raw->due, [this, raw] { on_due(raw); });
    return {};
  }

  Status run_now(const std::string& name) {
    auto it = by_name_.find(name);
    if (it == by_name_.end()) return not_found("no probe named \"" + name + "\"");
    if (it->second->in_flight) return failed_precondition("probe \"" + name + "\" is in flight");
    start(it->second);
    return {};
  }

  void prepare(std::vector<pollfd>* fds) const {
    for (const auto& [fd, what] : curl_socks_) {
      short ev = 0;
      if (what == CURL_POLL_IN || what == CURL_POLL_INOUT) ev |= POLLIN;
      if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT) ev |= POLLOUT;
      fds->push_back(pollfd{fd, ev, 0});
    }
    for (const auto& [fd, p] : tcp_by_fd_) fds->push_back(pollfd{fd, POLLOUT, 0});
    for (const auto& [fd, p] : pid_by_fd_) fds->push_back(pollfd{fd, POLLIN, 0});
  }

  std::optional<Duration> max_wait() const {
    if (!ready_.empty()) return Duration::zero();
    std::optional<Steady::time_point> due = curl_timer_;
    if (!tcp_deadlines_.empty()) {
      auto t = tcp_deadlines_.begin()->first;
      if (!due || t < *due) due = t;
    }
    if (!due) return std::nullopt;
    auto left = *due - Steady::now();
    return left < Duration::zero() ? Duration::zero() : std::chrono::duration_cast<Duration>(left);
  }

  void on_poll(const pollfd* fds, size_t n) {
    int running = 0;
    for (size_t i = 0; i < n; ++i) {
      if (fds[i].revents == 0) continue;
      const int fd = fds[i].fd;
      if (curl_socks_.count(fd)) {
        int mask = 0;
        if (fds[i].revents & POLLIN) mask |= CURL_CSELECT_IN;
        if (fds[i].revents & POLLOUT) mask |= CURL_CSELECT_OUT;
        if (fds[i].revents & (POLLERR | POLLHUP | POLLNVAL)) mask |= CURL_CSELECT_ERR;
        curl_multi_socket_action(multi_, fd, mask, &running);
      } else if (auto it = tcp_by_fd_.find(fd); it != tcp_by_fd_.end()) {
        finish_tcp(it->second);
      } else if (auto pit = pid_by_fd_.find(fd); pit != pid_by_fd_.end()) {
        process_exited(pit->second);
      }
    }
    const auto now = Steady::now();
    if (curl_timer_ && *curl_timer_ <= now) {
      curl_timer_.reset();
      curl_multi_socket_action(multi_, CURL_SOCKET_TIMEOUT, 0, &running);
    }
    while (!tcp_deadlines_.empty() && tcp_deadlines_.begin()->first <= now) {
      Probe* p = tcp_deadlines_.begin()->second;
      fail_tcp(p, ProbeFailure::kTimeout,
               "no connection within " + format_duration(p->run_timeout));
    }
    harvest_curl();
    deliver();
  }

  size_t size() const { return probes_.size(); }
  size_t in_flight() const { return in_flight_; }
  const ProbeCounters& counters() const { return counters_; }

 private:
  static int socket_cb(CURL*, curl_socket_t s, int what, void* self, void*) {
    auto* impl = static_cast<Impl*>(self);
    if (what == CURL_POLL_REMOVE) {
      impl->curl_socks_.erase(s);
    } else {
      impl->curl_socks_[s] = what;
    }
    return 0;
  }

  static int timer_cb(CURLM*, long timeout_ms, void* self) {
    auto* impl = static_cast<Impl*>(self);
    if (timeout_ms < 0) {
      impl->curl_timer_.reset();
    } else {
      impl->curl_timer_ = Steady::now() + std::chrono::milliseconds(timeout_ms);
    }
    return 0;
  }

  static size_t write_cb(char* data, size_t size, size_t nmemb, void* user) {
    auto* p = static_cast<Probe*>(user);
    const size_t n = size * nmemb;
    const std::string& needle = p->spec.body_contains;
    if (needle.empty() || p->body_found) return n;
    p->tail.append(data, n);
    if (p->tail.find(needle) != std::string::npos) {
      p->body_found = true;
      p->tail.clear();
    } else if (p->tail.size() >= needle.size()) {
      p->tail.erase(0, p->tail.size() - (needle.size() - 1));
    }
    return n;
  }

  Status make_easy(Probe* p) {
    const ProbeSpec& s = p->spec;
    if (s.url.rfind("http://", 0) != 0 && s.url.rfind("https://", 0) != 0) {
      return invalid_argument("probe \"" + s.name + "\": url must be http:// or https://");
    }
    CURL* e = curl_easy_init();
    if (!e) return internal_error("curl_easy_init failed");
    p->easy = e;
    curl_easy_setopt(e, CURLOPT_URL, s.url.c_str());
    curl_easy_setopt(e, CURLOPT_PRIVATE, p);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, p->curl_error);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS,
                     static_cast<long>(
                         std::chrono::duration_cast<std::chrono::milliseconds>(s.timeout).count()));
    // By default a probe measures the whole path, connect included, and
    // holds no idle connections between runs.
    if (!s.reuse_connection) {
      curl_easy_setopt(e, CURLOPT_FRESH_CONNECT, 1L);
      curl_easy_setopt(e, CURLOPT_FORBID_REUSE, 1L);
    }
    // Probes go straight to the guest: no proxy from the environment.
    curl_easy_setopt(e, CURLOPT_PROXY, "");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_USERAGENT, "medic-probe/1");
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &Impl::write_cb);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, p);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, s.verify_tls ? 1L : 0L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, s.verify_tls ? 2L : 0L);
    if (s.method == "HEAD") {
      curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    } else if (s.method == "POST") {
      curl_easy_setopt(e, CURLOPT_POSTFIELDS, "");
      curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, 0L);
    } else if (s.method != "GET") {
      curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, s.method.c_str());
    }
    return {};
  }

  Status resolve(Probe* p) {
    const ProbeSpec& s = p->spec;
    if (s.tcp_host.empty() || s.tcp_port == 0) {
      return invalid_argument("probe \"" + s.name + "\": tcp needs a host and a port");
    }
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_family = AF_UNSPEC;
    addrinfo* res = nullptr;
    const std::string port = std::to_string(s.tcp_port);
    int rc = getaddrinfo(s.tcp_host.c_str(), port.c_str(), &hints, &res);
    if (rc != 0 || !res) {
      return not_found("probe \"" + s.name + "\": cannot resolve \"" + s.tcp_host +
                       "\": " + gai_strerror(rc));
    }
    for (addrinfo* a = res; a; a = a->ai_next) {
      sockaddr_storage ss{};
      std::memcpy(&ss, a->ai_addr, a->ai_addrlen);
      p->addrs.emplace_back(ss, a->ai_addrlen);
    }
    freeaddrinfo(res);
    return {};
  }

  void on_due(Probe* p) {
    const ProbeSpec& s = p->spec;
    const double offset = (unit_random(&rng_) * 2.0 - 1.0) * s.jitter;
    // Anchored to when the run was due, not when it ran, so a loop that wakes
    // a little late (timer slack) does not stretch the interval.
    const Duration base = s.interval + Duration(static_cast<int64_t>(offset * s.interval.count()));
    p->due = std::max(p->due + base, clock_.now() + base / 2);
    p->timer = clock_.schedule_at(p->due, [this, p] { on_due(p); });
    if (p->in_flight) {
      ++counters_.skipped_overlap;
      return;
    }
    start(p);
  }

  // A run begins: counted and in flight until complete().
  void begin_run(Probe* p) {
    ++counters_.started;
    ++in_flight_;
    p->in_flight = true;
    p->started = Steady::now();
  }

  void start(Probe* p) {
    begin_run(p);
    p->run_timeout = run_timeout(*p);
    if (p->spec.kind == ProbeKind::kTcp) {
      start_tcp(p);
    } else if (p->spec.kind == ProbeKind::kProcess) {
      start_process(p);
    } else {
      start_http(p);
    }
  }

  // The spec's timeout, or the one learned from the last answers; a
  // confirming run has four times its first run's.
  static Duration run_timeout(const Probe& p) {
    const ProbeSpec& s = p.spec;
    Duration t = s.timeout;
    if (s.learn_timeout && p.answered >= ProbeSpec::kLearnFrom && !p.relearn) {
      const int n = std::min<int>(p.answered, static_cast<int>(p.answers.size()));
      Duration slowest = *std::max_element(p.answers.begin(), p.answers.begin() + n);
      t = std::clamp(10 * slowest, s.min_timeout, s.timeout);
    }
    if (p.confirming) t = std::min(4 * p.run_timeout, s.timeout);
    return t;
  }

  // Reads the pid file; the process it names is watched from then on (a
  // pidfd, which becomes readable when the process exits).
  void start_process(Probe* p) {
    long pid = 0;
    std::ifstream in(p->spec.pid_file);
    if (!(in >> pid) || pid <= 0 || pid > std::numeric_limits<pid_t>::max()) {
      close_pid(p);
      return complete(p, 0, ProbeFailure::kNotRunning, "no pid in " + p->spec.pid_file);
    }
    if (p->pid_fd >= 0 && pid == p->pid) return complete(p, 0, ProbeFailure::kNone, "");
    close_pid(p);
    const std::string which = std::to_string(pid) + " (" + p->spec.pid_file + ")";
    // The pid of a process seen to exit may be another process's by now.
    if (pid == p->exited_pid) {
      return complete(p, 0, ProbeFailure::kNotRunning, "process " + which + " has exited");
    }
    const int fd = static_cast<int>(::syscall(SYS_pidfd_open, static_cast<pid_t>(pid), 0));
    if (fd < 0) {
      const int err = errno;
      return complete(p, 0, err == ESRCH ? ProbeFailure::kNotRunning : ProbeFailure::kInternal,
                      err == ESRCH ? "no process " + which
                                   : "pidfd_open of " + which + ": " + std::strerror(err));
    }
    pollfd gone{fd, POLLIN, 0};
    if (::poll(&gone, 1, 0) > 0) {  // exited, not yet reaped
      ::close(fd);
      return complete(p, 0, ProbeFailure::kNotRunning, "process " + which + " has exited");
    }
    p->pid_fd = fd;
    p->pid = pid;
    pid_by_fd_[fd] = p;
    complete(p, 0, ProbeFailure::kNone, "");
  }

  void close_pid(Probe* p) {
    if (p->pid_fd < 0) return;
    pid_by_fd_.erase(p->pid_fd);
    ::close(p->pid_fd);
    p->pid_fd = -1;
  }

  // The watched process exited: a failed run now, not at the next interval.
  void process_exited(Probe* p) {
    const long pid = p->pid;
    p->exited_pid = pid;
    close_pid(p);
    if (p->in_flight) return;
    begin_run(p);
    complete(p, 0, ProbeFailure::kProcessExited, "process " + std::to_string(pid) + " exited");
  }

  void start_http(Probe* p) {
    // Whole milliseconds, rounded up: 0 would mean no timeout to libcurl.
    const auto ms = std::chrono::ceil<std::chrono::milliseconds>(p->run_timeout).count();
    curl_easy_setopt(p->easy, CURLOPT_TIMEOUT_MS, static_cast<long>(std::max<int64_t>(ms, 1)));
    p->tail.clear();
    p->body_found = false;
    p->curl_error[0] = '\0';
    CURLMcode rc = curl_multi_add_handle(multi_, p->easy);
    if (rc != CURLM_OK) {
      complete(p, 0, ProbeFailure::kInternal, curl_multi_strerror(rc));
    }
  }

  void start_tcp(Probe* p) {
    p->next_addr = 0;
    p->tcp_deadline = p->started + p->run_timeout;
    connect_next(p, 0);
  }

  // Connects to the next resolved address (a name may resolve to ::1 and
  // 127.0.0.1, and the service listen on one of them only). `last_err` is
  // the failure of the previous address, reported when none is left.
  void connect_next(Probe* p, int last_err) {
    while (p->next_addr < p->addrs.size()) {
      const auto& [addr, len] = p->addrs[p->next_addr++];
      int fd = ::socket(addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      if (fd < 0) {
        complete(p, 0, ProbeFailure::kInternal, std::string("socket: ") + std::strerror(errno));
        return;
      }
      if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), len) == 0) {
        ::close(fd);
        complete(p, 0, ProbeFailure::kNone, "");
        return;
      }
      if (errno == EINPROGRESS) {
        p->tcp_fd = fd;
        tcp_by_fd_[fd] = p;
        tcp_deadlines_.insert({p->tcp_deadline, p});
        return;
      }
      last_err = errno;
      ::close(fd);
    }
    complete(p, 0, tcp_failure(last_err), std::strerror(last_err));
  }

  static ProbeFailure tcp_failure(int err) {
    return err == ECONNREFUSED ? ProbeFailure::kConnectionRefused : ProbeFailure::kConnectFailed;
  }

  void close_tcp(Probe* p) {
    if (p->tcp_fd < 0) return;
    tcp_by_fd_.erase(p->tcp_fd);
    tcp_deadlines_.erase({p->tcp_deadline, p});
    ::close(p->tcp_fd);
    p->tcp_fd = -1;
  }

  void finish_tcp(Probe* p) {
    int err = 0;
    socklen_t len = sizeof(err);
    if (::getsockopt(p->tcp_fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
    close_tcp(p);
    if (err == 0) {
      complete(p, 0, ProbeFailure::kNone, "");
    } else {
      connect_next(p, err);
    }
  }

  void fail_tcp(Probe* p, ProbeFailure f, const std::string& detail) {
    close_tcp(p);
    complete(p, 0, f, detail);
  }

  void harvest_curl() {
    int left = 0;
    while (CURLMsg* m = curl_multi_info_read(multi_, &left)) {
      if (m->msg != CURLMSG_DONE) continue;
      Probe* p = nullptr;
      curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, reinterpret_cast<char**>(&p));
      const CURLcode rc = m->data.result;
      curl_multi_remove_handle(multi_, m->easy_handle);
      if (p) finish_http(p, rc);
    }
  }

  void finish_http(Probe* p, CURLcode rc) {
    long status = 0;
    curl_easy_getinfo(p->easy, CURLINFO_RESPONSE_CODE, &status);
    const auto code = static_cast<uint32_t>(status);
    if (rc != CURLE_OK) {
      long os_errno = 0;
      curl_easy_getinfo(p->easy, CURLINFO_OS_ERRNO, &os_errno);
      std::string detail = p->curl_error[0] ? p->curl_error : curl_easy_strerror(rc);
      complete(p, code, classify_curl(rc, os_errno), detail);
      return;
    }
    const int want = p->spec.expect_status;
    const bool status_ok = want == 0 ? (status >= 200 && status < 300) : status == want;
    if (!status_ok) {
      complete(p, code, ProbeFailure::kStatusMismatch,
               "got " + std::to_string(status) + ", expected " +
                   (want == 0 ? std::string("2xx") : std::to_string(want)));
    } else if (!p->spec.body_contains.empty() && !p->body_found) {
      complete(p, code, ProbeFailure::kBodyMismatch,
               "\"" + p->spec.body_contains + "\" not in the body");
    } else {
      complete(p, code, ProbeFailure::kNone, "");
    }
  }

  // Queues the outcome; the sink sees it from on_poll(), never from inside a
  // Clock timer or a libcurl callback.
  void complete(Probe* p, uint32_t status, ProbeFailure f, const std::string& detail) {
    p->in_flight = false;
    --in_flight_;
    const Duration latency = std::chrono::duration_cast<Duration>(Steady::now() - p->started);
    if (f == ProbeFailure::kNone) learn(p, latency);
    if (confirm_first(p, f)) return;
    // After a reported failure the next runs get the spec's timeout until
    // one answers: the service may answer at another pace now (slower for
    // good, or warming up after a restart), and that answer is learned, so
    // it is not held to the pace it had before.
    if (f != ProbeFailure::kNone) p->relearn = true;
    const bool confirmed = p->confirming && f != ProbeFailure::kNone;
    if (p->confirming) ++(confirmed ? counters_.confirmed : counters_.unconfirmed);
    p->confirming = false;
    ProbeOutcome o;
    o.probe = p->spec.name;
    o.vm = p->spec.vm;
    o.status = status;
    o.ok = f == ProbeFailure::kNone;
    o.failure = f;
    o.latency = latency;
    if (!o.ok) o.reason = std::string(probe_failure_name(f)) + ": " + detail;
    if (confirmed) o.reason += " (confirmed by a second run)";
    o.finished_at = clock_.now();
    (o.ok ? counters_.succeeded : counters_.failed)++;
    ready_.push_back(std::move(o));
  }

  static void learn(Probe* p, Duration latency) {
    if (!p->spec.learn_timeout) return;
    p->answers[static_cast<size_t>(p->answered) % p->answers.size()] = latency;
    ++p->answered;
    p->relearn = false;
  }

  // A first failure of a probe that confirms is not reported: a second run
  // starts at once (at most one; it is not a run of the schedule). A
  // process's exit needs no second look.
  bool confirm_first(Probe* p, ProbeFailure f) {
    if (f == ProbeFailure::kNone || !p->spec.confirm || p->confirming) return false;
    if (p->spec.kind == ProbeKind::kProcess) return false;
    p->confirming = true;
    start(p);
    return true;
  }

  void deliver() {
    while (!ready_.empty()) {
      ProbeOutcome o = std::move(ready_.front());
      ready_.pop_front();
      if (sink_) sink_(o);
    }
  }

  Clock& clock_;
  ResultSink sink_;
  uint64_t rng_;
  CURLM* multi_ = nullptr;
  std::vector<std::unique_ptr<Probe>> probes_;
  std::unordered_map<std::string, Probe*> by_name_;
  std::unordered_map<curl_socket_t, int> curl_socks_;  // fd -> CURL_POLL_*
  std::optional<Steady::time_point> curl_timer_;
  std::unordered_map<int, Probe*> tcp_by_fd_;
  std::set<std::pair<Steady::time_point, Probe*>> tcp_deadlines_;
  std::unordered_map<int, Probe*> pid_by_fd_;
  std::deque<ProbeOutcome> ready_;
  size_t in_flight_ = 0;
  ProbeCounters counters_;
};

Result<std::unique_ptr<ProbeRunner>> ProbeRunner::create(Clock& clock, ResultSink sink,
                                                         uint64_t seed) {
  auto impl = std::make_unique<Impl>(clock, std::move(sink), seed);
  MEDIC_RETURN_IF_ERROR(impl->init());
  return std::unique_ptr<ProbeRunner>(new ProbeRunner(std::move(impl)));
}

ProbeRunner::ProbeRunner(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ProbeRunner::~ProbeRunner() = default;
Status ProbeRunner::add(ProbeSpec spec) { return impl_->add(std::move(spec)); }
Status ProbeRunner::run_now(const std::string& name) { return impl_->run_now(name); }
void ProbeRunner::prepare(std::vector<pollfd>* fds) const { impl_->prepare(fds); }
std::optional<Duration> ProbeRunner::max_wait() const { return impl_->max_wait(); }
void ProbeRunner::on_poll(const pollfd* fds, size_t n) { impl_->on_poll(fds, n); }
size_t ProbeRunner::size() const { return impl_->size(); }
size_t ProbeRunner::in_flight() const { return impl_->in_flight(); }
const ProbeCounters& ProbeRunner::counters() const { return impl_->counters(); }

}  // namespace medic::collectors
