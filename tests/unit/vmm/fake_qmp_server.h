// A fake QEMU on a unix socket path for tests of QMP clients: a thread that
// greets, then answers each command with the scripted reply (the request's
// id substituted) and records its name.
#pragma once

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "core/json.h"

namespace medic::vmm::qmp {

inline constexpr const char* kFakeQmpGreeting =
    R"({"QMP": {"version": {"qemu": {"micro": 22, "minor": 2, "major": 7}}, "capabilities": ["oob"]}})"
    "\n";

// A fake QEMU on a unix socket path: greets, then answers each command with
// the scripted reply (the request's id substituted) and records its name.
class FakeQmpServer {
 public:
  FakeQmpServer(std::string path, std::vector<std::string> replies)
      : path_(std::move(path)), replies_(std::move(replies)) {
    listen_fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, path_.c_str(), sizeof a.sun_path - 1);
    if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::listen(listen_fd_, 4) != 0) {
      std::abort();
    }
    thread_ = std::thread([this] { serve(); });
  }
  ~FakeQmpServer() {
    if (thread_.joinable()) thread_.join();
    ::close(listen_fd_);
  }
  // REQUIRES: the client is done; joins the server.
  std::vector<std::string> commands() {
    if (thread_.joinable()) thread_.join();
    return commands_;
  }

 private:
  void serve() {
    pollfd p{listen_fd_, POLLIN, 0};
    if (::poll(&p, 1, 10'000) <= 0) return;
    int fd = ::accept(listen_fd_, nullptr, nullptr);
    if (fd < 0) return;
    send_all(fd, kFakeQmpGreeting);
    std::string buf;
    size_t answered = 0;
    char chunk[1024];
    while (answered < replies_.size()) {
      size_t nl;
      while ((nl = buf.find('\n')) == std::string::npos) {
        pollfd q{fd, POLLIN, 0};
        if (::poll(&q, 1, 10'000) <= 0) break;
        ssize_t n = ::read(fd, chunk, sizeof chunk);
        if (n <= 0) break;
        buf.append(chunk, static_cast<size_t>(n));
      }
      if (nl == std::string::npos) break;
      auto req = parse_json(std::string_view(buf).substr(0, nl));
      buf.erase(0, nl + 1);
      if (!req.ok()) break;
      commands_.push_back(*json_string_member(*req, "execute"));
      std::string reply = replies_[answered++];
      reply.insert(reply.size() - 1, ", \"id\": " + dump_json(*json_member(*req, "id")));
      send_all(fd, reply + "\n");
    }
    ::close(fd);
  }
  static void send_all(int fd, const std::string& s) {
    ssize_t w = ::send(fd, s.data(), s.size(), MSG_NOSIGNAL);
    (void)w;
  }

  std::string path_;
  std::vector<std::string> replies_;
  int listen_fd_ = -1;
  std::thread thread_;
  std::vector<std::string> commands_;
};

}  // namespace medic::vmm::qmp
