#include "node/daemon_http.h"

#include "core/json.h"

namespace medic::node {

HttpResponse busy_response() {
  return json_response(503,
                       R"j({"error":"the daemon's loop did not answer in time (busy or stuck)"})j");
}

HttpRoute healthz_route(const LoopMailbox& mailbox) {
  return {"/healthz", false, [&mailbox](const HttpRequest&) {
            const int64_t now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                                    std::chrono::steady_clock::now().time_since_epoch())
                                    .count();
            const int64_t idle = now - mailbox.last_beat_ns();
            if (idle > std::chrono::nanoseconds(kLoopStall).count()) {
              return json_response(
                  503, dump_json(Json{{"alive", false}, {"loop_idle_seconds", idle / 1e9}}));
            }
            return json_response(200, R"({"alive":true})");
          }};
}

HttpRoute readyz_route(LoopMailbox& mailbox, ReadinessView readiness) {
  return {"/readyz", false, [&mailbox, readiness](const HttpRequest&) {
            // By value: a late question runs after this request is gone.
            auto answer =
                mailbox.ask([readiness] { return dump_json(readiness()); }, kAnswerDeadline);
            if (!answer) return busy_response();
            auto parsed = parse_json(*answer);
            const bool ready = parsed.ok() && parsed->value("ready", false);
            return json_response(ready ? 200 : 503, *answer);
          }};
}

HttpRoute metrics_route(LoopMailbox& mailbox, MetricsRenderer metrics) {
  return {"/metrics", true, [&mailbox, metrics](const HttpRequest&) {
            if (!metrics) return text_response(404, "no metrics in this build\n");
            auto answer = mailbox.ask(metrics, kAnswerDeadline);
            if (!answer) return busy_response();
            return HttpResponse{200, "text/plain; version=0.0.4; charset=utf-8", *answer};
          }};
}

void ReadinessChecks::check(const std::string& name, bool ok, const std::string& detail) {
  checks_.emplace_back(name, ok, detail);
}

Json ReadinessChecks::json() const {
  Json checks = Json::object();
  bool ready = true;
  for (const auto& [name, ok, detail] : checks_) {
    checks[name] = Json{{"ok", ok}, {"detail", detail}};
    ready = ready && ok;
  }
  return Json{{"ready", ready}, {"checks", std::move(checks)}};
}

}  // namespace medic::node
