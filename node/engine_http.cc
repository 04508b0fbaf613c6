#include "node/engine_http.h"

#include <cstdlib>

#include "core/json.h"
#include "node/engine_views.h"
#include "node/web_page.h"

namespace medic::node {
namespace {

// A JSON view computed on the loop thread.
HttpRoute loop_view(const std::string& path, EngineNode& node, Json (*view)(EngineNode&)) {
  return {path, true, [&node, view](const HttpRequest&) {
            auto answer = node.mailbox().ask([&node, view] { return dump_json(view(node)); },
                                             kAnswerDeadline);
            return answer ? json_response(200, *answer) : busy_response();
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

HttpRoute page_route(const std::string& path) {
  return {path, false, [](const HttpRequest&) {
            return HttpResponse{200, "text/html; charset=utf-8", on_call_page()};
          }};
}

}  // namespace

Result<std::unique_ptr<EngineHttp>> EngineHttp::start(const HttpOptions& options,
                                                      EngineNode& node, MetricsRenderer metrics) {
  std::vector<HttpRoute> routes = {
      healthz_route(node.mailbox()),
      readyz_route(node.mailbox(), [&node] { return readiness_json(node); }),
      metrics_route(node.mailbox(), std::move(metrics)),
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
