#include "rules/notifier.h"

#include <curl/curl.h>
#include <spdlog/spdlog.h>

#include "core/duration.h"
#include "core/json.h"

namespace medic::rules {
namespace {


size_t discard(char*, size_t size, size_t n, void*) { return size * n; }

}  // namespace

std::string notification_json(const Decision& d) {
  Json body = {{"id", d.id},
               {"at_ns", to_ns(d.at)},
               {"rule", d.rule},
               {"rule_version", d.rule_version},
               {"vm", d.vm},
               {"host", d.host},
               {"step", step_name(d.step)},
               {"outcome", outcome_name(d.outcome)},
               {"policy", policy_name(d.policy)},
               {"trigger", d.trigger},
               {"text", d.reason},
               {"evidence", d.evidence}};
  return dump_json(body);
}

WebhookNotifier::WebhookNotifier(WebhookOptions opts) : opts_(std::move(opts)) {
  curl_global_init(CURL_GLOBAL_DEFAULT);
  worker_ = std::thread([this] { run(); });
}

WebhookNotifier::~WebhookNotifier() {
  drain(std::chrono::duration_cast<std::chrono::milliseconds>(opts_.timeout));
  {
    std::lock_guard<std::mutex> l(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  worker_.join();
}

void WebhookNotifier::notify(const Decision& d) {
  std::string who = d.vm.empty() ? (d.host.empty() ? "fleet" : "host " + d.host) : "vm " + d.vm;
  spdlog::warn("notify [{}] {}: {}", d.rule.empty() ? std::string(policy_name(d.policy)) : d.rule,
               who, d.reason);
  if (opts_.url.empty()) return;
  {
    std::lock_guard<std::mutex> l(mu_);
    if (queue_.size() >= opts_.max_queue) {
      queue_.pop_front();
      ++stats_.dropped;
    }
    queue_.push_back(notification_json(d));
    ++stats_.queued;
  }
  cv_.notify_one();
}

WebhookNotifier::Stats WebhookNotifier::stats() const {
  std::lock_guard<std::mutex> l(mu_);
  return stats_;
}

bool WebhookNotifier::drain(std::chrono::milliseconds limit) {
  std::unique_lock<std::mutex> l(mu_);
  return cv_.wait_for(l, limit, [this] { return queue_.empty() && !busy_; });
}

void WebhookNotifier::run() {
  std::unique_lock<std::mutex> l(mu_);
  while (true) {
    cv_.wait(l, [this] { return stopping_ || !queue_.empty(); });
    if (stopping_) {
      // Shutting down after the grace period: what is left is lost, and counted.
      stats_.dropped += queue_.size();
      queue_.clear();
      return;
    }
    std::string body = std::move(queue_.front());
    queue_.pop_front();
    busy_ = true;
    l.unlock();
    std::string error;
    bool ok = false;
    for (uint32_t i = 0; i < std::max<uint32_t>(1, opts_.attempts) && !ok; ++i)
      ok = post(body, &error);
    if (!ok) spdlog::error("notify: webhook {} failed: {}", opts_.url, error);
    l.lock();
    busy_ = false;
    ++(ok ? stats_.sent : stats_.failed);
    cv_.notify_all();
  }
}

bool WebhookNotifier::post(const std::string& body, std::string* error) {
  CURL* c = curl_easy_init();
  if (!c) {
    *error = "curl_easy_init failed";
    return false;
  }
  curl_slist* headers = curl_slist_append(nullptr, "Content-Type: application/json");
  curl_easy_setopt(c, CURLOPT_URL, opts_.url.c_str());
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.c_str());
  curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(opts_.timeout.count() / 1'000'000));
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
  CURLcode rc = curl_easy_perform(c);
  long status = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  curl_slist_free_all(headers);
  curl_easy_cleanup(c);
  if (rc != CURLE_OK) {
    *error = curl_easy_strerror(rc);
    return false;
  }
  if (status < 200 || status >= 300) {
    *error = "HTTP status " + std::to_string(status);
    return false;
  }
  return true;
}

}  // namespace medic::rules
