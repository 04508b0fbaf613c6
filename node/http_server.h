// The operator's HTTP listener of a medic daemon: /healthz, /readyz,
// /metrics, and on the engine a read-only JSON API and the on-call page.
// One listener per process, on GNU libmicrohttpd (Debian libmicrohttpd-dev)
// with a thread per connection (at most kHttpConnections at once): a slow or
// stalled client ties up its own thread, never the daemon's event loop. TLS
// is libmicrohttpd's own, on GnuTLS.
//
// Contract:
// - Handlers run on the listener's threads, several at once. A handler that
//   needs the daemon's state must hand the question to the daemon's loop
//   (node/loop_mailbox.h) and wait for the answer with a deadline.
// - check_http_options refuses, before anything binds, a listener on an
//   address other than loopback without TLS (cert and key) and a bearer
//   token: the API shows fleet state and must not be readable in clear on a
//   network. A configured token is required (Authorization: Bearer <token>)
//   on every path registered as protected; the page itself and the health
//   checks are not, so a load balancer and a browser can reach them (the
//   page sends the token on its API calls).
// - A route "/x/" (ending in a slash) matches every path under it; any other
//   route matches its path exactly. Unknown paths get 404. A route takes GET
//   and HEAD, or, when it is a `post` route, POST only, with a body of at
//   most `max_body` bytes (413 past it, read no further; 401 before the body
//   is read when the token is wrong); any other method gets 405. The
//   engine's and agents' routes are all GET: nothing there changes state.
//   The alert bridge's webhook is the one POST route (node/alert_bridge.h).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/status.h"

struct MHD_Daemon;  // libmicrohttpd

namespace medic::node {

inline constexpr unsigned kHttpConnections = 64;

struct HttpOptions {
  std::string listen;    // host:port; empty = no listener. Port 0 picks a free one.
  std::string tls_cert;  // PEM certificate (chain)
  std::string tls_key;   // PEM private key
  std::string token;     // bearer token; empty = none
};

// The listen address's host part is 127.0.0.1, ::1 or localhost.
bool is_loopback_listen(const std::string& listen);
// Refuses what must not start: a malformed address, TLS half-configured, or
// a non-loopback address without TLS and a token. The message says which.
Status check_http_options(const HttpOptions& options);

struct HttpRequest {
  std::string path;                           // without the query
  std::map<std::string, std::string> params;  // the query's parameters, URL-decoded
  std::string body;                           // a POST route's body
  // The value of query parameter `name`, or "".
  std::string param(const std::string& name) const;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
};

HttpResponse json_response(int status, const std::string& body);
HttpResponse text_response(int status, const std::string& body);

using HttpHandler = std::function<HttpResponse(const HttpRequest&)>;

inline constexpr size_t kHttpMaxBody = 1 << 20;

struct HttpRoute {
  std::string path;
  bool protected_by_token = true;
  HttpHandler handler;
  bool post = false;               // takes POST (with a body), not GET
  size_t max_body = kHttpMaxBody;  // a post route's largest body
  // A post route's every answer, by status (refusals before the body too).
  std::function<void(int status)> observe;
};

class HttpServer {
 public:
  // Checks the options, binds and starts serving `routes`.
  static Result<std::unique_ptr<HttpServer>> start(const HttpOptions& options,
                                                   std::vector<HttpRoute> routes);
  // Stops accepting and waits for the handlers in progress.
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  uint16_t port() const { return port_; }
  // http(s)://host:port, as a client would reach it.
  std::string url() const;

  // For libmicrohttpd's callbacks; not for callers.
  HttpResponse serve(const std::string& method, const HttpRequest& request,
                     const std::string& authorization) const;
  // The route of `path`, null when none; and whether `authorization`
  // passes a route's token check.
  const HttpRoute* find(const std::string& path) const;
  bool authorized(const HttpRoute& route, const std::string& authorization) const;
  void log(const std::string& message);

 private:
  HttpServer(const HttpOptions& options, std::vector<HttpRoute> routes);
  Status bind();

  HttpOptions options_;
  std::vector<HttpRoute> routes_;
  std::string cert_pem_, key_pem_;  // read at start; the daemon keeps pointers to them
  ::MHD_Daemon* daemon_ = nullptr;
  std::mutex log_mu_;
  std::string last_log_;  // the library's last complaint, for a failed start
  uint16_t port_ = 0;
};

}  // namespace medic::node
