#include "node/engine_http.h"

#include <cstdlib>

#include "core/json.h"
#include "node/engine_views.h"
#include "node/web_page.h"

namespace medic::node {
namespace {

HttpResponse busy() {
  return json_response(
      503, R"j({"error":"the engine's loop did not answer in time (busy or stuck)"})j");
}

// A JSON view computed on the loop thread.
HttpRoute loop_view(const std::string& path, EngineNode& node, Json (*view)(EngineNode&)) {
  return {path, true, [&node, view](const HttpRequest&) {
            auto answer =
                node.mailbox().ask([&node, view] { return dump_json(view(node)); }, kAnswerDeadline);
            return answer ? json_response(200, *answer) : busy();
          }};
}

HttpResponse error_json(int status, const Status& s) {
  return json_response(status, dump_json(Json{{"error", s.message()}}));
}

HttpRoute actions_route(EngineNode& node) {
  const std::string path = node.config().audit_path;
  return {"/api/v1/actions", true, [path](const HttpRequest& req) {
            int64_t limit = std::atoll(req.param("limit").c_str());
            if (limit <= 0 || limit > 1000) limit = 50;
            auto j = recent_actions_json(path, limit);
            return j.ok() ? json_response(200, dump_json(*j)) : error_json(503, j.status());
          }};
}

HttpRoute why_route(EngineNode& node) {
  const std::string path = node.config().audit_path;
  return {"/api/v1/why/", true, [path](const HttpRequest& req) {
            const std::string id = req.path.substr(std::string("/api/v1/why/").size());
            auto j = why_json(path, id);
            if (j.ok()) return json_response(200, dump_json(*j));
            return error_json(j.status().code() == Code::kNotFound ? 404 : 503, j.status());
          }};
}

HttpRoute healthz(EngineNode& node) {
  return {"/healthz", false, [&node](const HttpRequest&) {
            const int64_t now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                                    std::chrono::steady_clock::now().time_since_epoch())
                                    .count();
            const int64_t idle = now - node.mailbox().last_beat_ns();
            if (idle > std::chrono::nanoseconds(kLoopStall).count()) {
              return json_response(503, dump_json(Json{{"alive", false},
                                                       {"loop_idle_seconds", idle / 1e9}}));
            }
            return json_response(200, R"({"alive":true})");
          }};
}

HttpRoute readyz(EngineNode& node) {
  return {"/readyz", false, [&node](const HttpRequest&) {
            auto answer = node.mailbox().ask([&node] { return dump_json(readiness_json(node)); },
                                             kAnswerDeadline);
            if (!answer) return busy();
            const bool ready = answer->find("\"ready\":true") != std::string::npos;
            return json_response(ready ? 200 : 503, *answer);
          }};
}

HttpRoute metrics_route(EngineNode& node, MetricsRenderer metrics) {
  return {"/metrics", true, [&node, metrics](const HttpRequest&) {
            if (!metrics) return text_response(404, "no metrics in this build\n");
            auto answer = node.mailbox().ask(metrics, kAnswerDeadline);
            if (!answer) return busy();
            return HttpResponse{200, "text/plain; version=0.0.4; charset=utf-8", *answer};
          }};
}

HttpRoute page_route(const std::string& path) {
  return {path, false, [](const HttpRequest&) {
            return HttpResponse{200, "text/html; charset=utf-8", on_call_page()};
          }};
}

}  // namespace

Result<std::unique_ptr<EngineHttp>> EngineHttp::start(const HttpOptions& options,
                                                      EngineNode& node, MetricsRenderer metrics) {
  std::vector<HttpRoute> routes = {
      healthz(node),
      readyz(node),
      metrics_route(node, std::move(metrics)),
      loop_view("/api/v1/status", node, status_json),
      loop_view("/api/v1/hosts", node, hosts_json),
      loop_view("/api/v1/vms", node, vms_json),
      loop_view("/api/v1/incidents", node, incidents_json),
      loop_view("/api/v1/approvals", node, approvals_json),
      loop_view("/api/v1/silences", node, silences_json),
      loop_view("/api/v1/freezes", node, freezes_json),
      loop_view("/api/v1/overview", node, overview_json),
      actions_route(node),
      why_route(node),
      page_route("/"),
      page_route("/index.html"),
  };
  auto server = HttpServer::start(options, std::move(routes));
  if (!server.ok()) return server.status();
  return std::unique_ptr<EngineHttp>(new EngineHttp(std::move(*server)));
}

}  // namespace medic::node
