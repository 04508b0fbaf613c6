// A tiny HTTP/1.1 server on 127.0.0.1 for probe tests and the collector
// bench: one thread, poll(). Connections are kept open for the next request
// unless the client asks to close (or the path never completes).
// Header-only so unit tests, integration tests and the bench can share it.
//
// Paths:
//   /ok            200 "hello medic ok"
//   /status/NNN    status NNN
//   /hang          reads the request and never answers
//   /slow/MS       sends headers and half the body, the rest after MS ms
//   /gate/N        holds every /gate request until N of them wait, then
//                  answers them all (proves N requests are in flight at once)
//   /big           ~256 KiB body ending in "NEEDLE"
//   anything else  404
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace medic::testing {

class TestHttpServer {
 public:
  TestHttpServer() {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 ||
        ::listen(listen_fd_, 4096) != 0) {
      throw std::runtime_error("test http server: cannot listen");
    }
    socklen_t len = sizeof(a);
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    if (::pipe2(wake_, O_NONBLOCK | O_CLOEXEC) != 0) throw std::runtime_error("pipe2");
    thread_ = std::thread([this] { loop(); });
  }

  ~TestHttpServer() {
    stop_ = true;
    (void)!::write(wake_[1], "x", 1);
    thread_.join();
    for (auto& [fd, c] : conns_) ::close(fd);
    ::close(listen_fd_);
    ::close(wake_[0]);
    ::close(wake_[1]);
  }

  int port() const { return port_; }
  std::string url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }
  size_t requests() const { return requests_.load(); }
  size_t connections() const { return connections_.load(); }

 private:
  using Clock = std::chrono::steady_clock;
  struct Chunk {
    Clock::time_point due;
    std::string data;
  };
  struct Conn {
    std::string in;
    bool answered = false;
    std::string out;          // due now, not yet written
    std::deque<Chunk> later;  // due in the future
    bool close_when_done = false;
    bool keep_alive = false;
    bool hang = false;
    bool peer_closed = false;
    int gate = 0;  // /gate/N: waiting for N
  };

  static std::string response(int status, const std::string& body, size_t length,
                              bool keep_alive = false) {
    return "HTTP/1.1 " + std::to_string(status) +
           " X\r\nContent-Length: " + std::to_string(length) +
           "\r\nConnection: " + (keep_alive ? "keep-alive" : "close") + "\r\n\r\n" + body;
  }

  void answer(Conn& c, const std::string& path) {
    const auto now = Clock::now();
    c.answered = true;
    c.keep_alive = c.in.find("Connection: close") == std::string::npos;
    c.close_when_done = !c.keep_alive;
    if (path == "/ok") {
      c.out = response(200, "hello medic ok", 14, c.keep_alive);
    } else if (path.rfind("/status/", 0) == 0) {
      c.out = response(std::atoi(path.c_str() + 8), "status", 6);
    } else if (path == "/hang") {
      c.hang = true;
    } else if (path.rfind("/slow/", 0) == 0) {
      const int ms = std::atoi(path.c_str() + 6);
      c.out = response(200, "first half ", 22);
      c.later.push_back({now + std::chrono::milliseconds(ms), "second half"});
    } else if (path.rfind("/gate/", 0) == 0) {
      c.gate = std::atoi(path.c_str() + 6);
    } else if (path == "/big") {
      std::string body(256 * 1024, 'x');
      body += "NEEDLE";
      c.out = response(200, body, body.size());
    } else {
      c.out = response(404, "not found", 9);
    }
  }

  void open_gates() {
    int waiting = 0, need = 0;
    for (auto& [fd, c] : conns_) {
      if (c.gate > 0) {
        ++waiting;
        need = c.gate;
      }
    }
    if (need == 0 || waiting < need) return;
    for (auto& [fd, c] : conns_) {
      if (c.gate > 0) {
        c.gate = 0;
        c.out = response(200, "gate open", 9);
        c.close_when_done = true;
      }
    }
  }

  void read_conn(int fd, Conn& c) {
    char buf[4096];
    while (true) {
      ssize_t n = ::read(fd, buf, sizeof(buf));
      if (n > 0) {
        c.in.append(buf, static_cast<size_t>(n));
        continue;
      }
      if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) c.peer_closed = true;
      break;
    }
    if (!c.answered && c.in.find("\r\n\r\n") != std::string::npos) {
      ++requests_;
      const auto sp1 = c.in.find(' ');
      const auto sp2 = c.in.find(' ', sp1 + 1);
      answer(c, c.in.substr(sp1 + 1, sp2 - sp1 - 1));
    }
  }

  // Returns false when the connection is finished.
  bool write_conn(int fd, Conn& c) {
    if (c.peer_closed) return false;
    const auto now = Clock::now();
    while (!c.later.empty() && c.later.front().due <= now) {
      c.out += c.later.front().data;
      c.later.pop_front();
    }
    while (!c.out.empty()) {
      ssize_t n = ::send(fd, c.out.data(), c.out.size(), MSG_NOSIGNAL);
      if (n <= 0) return errno == EAGAIN || errno == EWOULDBLOCK;
      c.out.erase(0, static_cast<size_t>(n));
    }
    const bool done = c.answered && c.later.empty() && !c.hang && c.gate == 0;
    if (!done) return true;
    if (c.close_when_done) return false;
    c.answered = false;  // kept alive: ready for the next request
    c.in.clear();
    return true;
  }

  void loop() {
    std::vector<pollfd> fds;
    while (!stop_) {
      fds.clear();
      fds.push_back({wake_[0], POLLIN, 0});
      fds.push_back({listen_fd_, POLLIN, 0});
      int timeout = 1000;
      const auto now = Clock::now();
      for (auto& [fd, c] : conns_) {
        short ev = POLLIN;
        if (!c.out.empty()) ev |= POLLOUT;
        if (!c.later.empty()) {
          auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(c.later.front().due - now)
                        .count();
          timeout = std::max(0, std::min<int>(timeout, static_cast<int>(ms) + 1));
        }
        fds.push_back({fd, ev, 0});
      }
      ::poll(fds.data(), fds.size(), timeout);
      if (fds[1].revents & POLLIN) {
        while (true) {
          int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
          if (fd < 0) break;
          ++connections_;
          conns_[fd];
        }
      }
      for (size_t i = 2; i < fds.size(); ++i) {
        auto it = conns_.find(fds[i].fd);
        if (it == conns_.end()) continue;
        if (fds[i].revents & (POLLIN | POLLHUP | POLLERR)) read_conn(it->first, it->second);
      }
      open_gates();
      for (auto it = conns_.begin(); it != conns_.end();) {
        if (!write_conn(it->first, it->second)) {
          ::close(it->first);
          it = conns_.erase(it);
        } else {
          ++it;
        }
      }
    }
  }

  int listen_fd_ = -1;
  int port_ = 0;
  int wake_[2] = {-1, -1};
  std::atomic<bool> stop_{false};
  std::atomic<size_t> requests_{0};
  std::atomic<size_t> connections_{0};
  std::map<int, Conn> conns_;
  std::thread thread_;
};

}  // namespace medic::testing
