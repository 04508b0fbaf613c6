#include "rules/notifier.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <mutex>
#include <thread>

#include "tests/testing/testing.h"

namespace medic::rules {
namespace {

// A tiny HTTP/1.1 server on loopback: records request bodies and answers
// every request with `status`.
class LoopbackServer {
 public:
  explicit LoopbackServer(int status) : status_(status) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    EXPECT_EQ(listen(fd_, 16), 0);
    socklen_t len = sizeof a;
    getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { serve(); });
  }
  ~LoopbackServer() {
    stop_ = true;
    thread_.join();
    close(fd_);
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/hook"; }
  std::vector<std::string> bodies() {
    std::lock_guard<std::mutex> l(mu_);
    return bodies_;
  }

 private:
  void serve() {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, 20) <= 0) continue;
      int c = accept(fd_, nullptr, nullptr);
      if (c < 0) continue;
      std::string req;
      char buf[4096];
      size_t want = std::string::npos;
      for (int i = 0; i < 1000 && (want == std::string::npos || req.size() < want); ++i) {
        ssize_t n = recv(c, buf, sizeof buf, 0);
        if (n <= 0) break;
        req.append(buf, static_cast<size_t>(n));
        size_t end = req.find("\r\n\r\n");
        if (end != std::string::npos && want == std::string::npos) {
          size_t cl = req.find("Content-Length: ");
          size_t len = cl == std::string::npos ? 0 : std::stoul(req.substr(cl + 16));
          want = end + 4 + len;
        }
      }
      {
        std::lock_guard<std::mutex> l(mu_);
        size_t end = req.find("\r\n\r\n");
        bodies_.push_back(end == std::string::npos ? "" : req.substr(end + 4));
      }
      std::string resp = "HTTP/1.1 " + std::to_string(status_) +
                         " X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
      send(c, resp.data(), resp.size(), MSG_NOSIGNAL);
      close(c);
    }
  }

  int status_;
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::vector<std::string> bodies_;
  std::thread thread_;
};

Decision sample() {
  Decision d;
  d.id = "d-7";
  d.rule = "guest-unresponsive";
  d.rule_version = "abc";
  d.vm = "vm-\"1\"";
  d.host = "h1";
  d.step = Step::kNotify;
  d.ladder_step = 4;
  d.trigger = "no vm.heartbeat for 30s";
  d.reason = "tried reboot reset restart without healing it";
  d.evidence = {11, 12};
  return d;
}

TEST(Notifier, JsonCarriesTheDecisionAndEscapesStrings) {
  std::string j = notification_json(sample());
  EXPECT_NE(j.find("\"id\":\"d-7\""), std::string::npos) << j;
  EXPECT_NE(j.find("\"vm\":\"vm-\\\"1\\\"\""), std::string::npos) << j;
  EXPECT_NE(j.find("\"step\":\"notify\""), std::string::npos) << j;
  EXPECT_NE(j.find("\"evidence\":[11,12]"), std::string::npos) << j;
  EXPECT_NE(j.find("\"text\":\"tried reboot reset restart without healing it\""), std::string::npos)
      << j;
}

TEST(Notifier, PostsToTheWebhook) {
  LoopbackServer server(200);
  WebhookNotifier n({server.url(), std::chrono::seconds(5), 100, 1});
  n.notify(sample());
  ASSERT_TRUE(n.drain(std::chrono::seconds(10)));
  EXPECT_EQ(n.stats().sent, 1u);
  auto bodies = server.bodies();
  ASSERT_EQ(bodies.size(), 1u);
  EXPECT_EQ(bodies[0], notification_json(sample()));
}

TEST(Notifier, RetriesAndCountsAFailingWebhook) {
  LoopbackServer server(500);
  WebhookNotifier n({server.url(), std::chrono::seconds(5), 100, 2});
  n.notify(sample());
  ASSERT_TRUE(n.drain(std::chrono::seconds(10)));
  EXPECT_EQ(n.stats().failed, 1u);
  EXPECT_EQ(server.bodies().size(), 2u);
}

TEST(Notifier, ADeadWebhookNeverBlocksTheCallerAndTheQueueIsBounded) {
  // A listening socket that never accepts: connections hang until the timeout.
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(listen(fd, 1), 0);
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  std::string url = "http://127.0.0.1:" + std::to_string(ntohs(a.sin_port)) + "/";
  {
    WebhookNotifier n({url, std::chrono::milliseconds(300), 5, 1});
    auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < 50; ++i) n.notify(sample());
    auto spent = std::chrono::steady_clock::now() - t0;
    EXPECT_LT(spent, std::chrono::milliseconds(250)) << "notify() waited on the network";
    auto s = n.stats();
    EXPECT_EQ(s.queued, 50u);
    EXPECT_GE(s.dropped, 44u);
  }
  close(fd);
}

}  // namespace
}  // namespace medic::rules
