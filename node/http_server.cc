#include "node/http_server.h"

#include <civetweb.h>
#include <sys/stat.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <cstdlib>
#include <mutex>

namespace medic::node {
namespace {

// host:port -> {host, port text}; IPv6 as [::1]:port.
bool split_listen(const std::string& listen, std::string* host, std::string* port) {
  size_t colon = listen.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == listen.size()) return false;
  *host = listen.substr(0, colon);
  *port = listen.substr(colon + 1);
  if (host->front() == '[') {
    if (host->back() != ']') return false;
    *host = host->substr(1, host->size() - 2);
  }
  if (port->size() > 5 || port->find_first_not_of("0123456789") != std::string::npos) return false;
  return std::atoi(port->c_str()) <= 65535;
}

const char* reason_phrase(int status) {
  switch (status) {
    case 200: return "OK";
    case 401: return "Unauthorized";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 503: return "Service Unavailable";
    default: return status < 400 ? "OK" : status < 500 ? "Bad Request" : "Internal Server Error";
  }
}

int handle(struct mg_connection* conn, void* cbdata) {
  const auto* server = static_cast<const HttpServer*>(cbdata);
  const mg_request_info* info = mg_get_request_info(conn);
  HttpRequest req;
  req.path = info->local_uri ? info->local_uri : "/";
  req.query = info->query_string ? info->query_string : "";
  const char* auth = mg_get_header(conn, "Authorization");
  const std::string method = info->request_method ? info->request_method : "";
  HttpResponse res = server->serve(method, req, auth ? auth : "");
  mg_printf(conn,
            "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
            "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n"
            "Connection: close\r\n\r\n",
            res.status, reason_phrase(res.status), res.content_type.c_str(), res.body.size());
  if (method != "HEAD") mg_write(conn, res.body.data(), res.body.size());
  return res.status;
}

int log_message(const struct mg_connection*, const char* message) {
  spdlog::warn("http: {}", message);
  return 1;
}

// Compares in time independent of where the texts differ.
bool same_secret(const std::string& given, const std::string& token) {
  if (token.empty() || given.size() != token.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < token.size(); ++i) diff |= given[i] ^ token[i];
  return diff == 0;
}

}  // namespace

bool is_loopback_listen(const std::string& listen) {
  std::string host, port;
  if (!split_listen(listen, &host, &port)) return false;
  return host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

Status check_http_options(const HttpOptions& o) {
  if (o.listen.empty()) return {};
  std::string host, port;
  if (!split_listen(o.listen, &host, &port)) {
    return invalid_argument("http listen \"" + o.listen + "\" is not host:port");
  }
  if (o.tls_cert.empty() != o.tls_key.empty()) {
    return invalid_argument("http: tls_cert and tls_key go together (one of them is missing)");
  }
  if (is_loopback_listen(o.listen)) return {};
  if (o.tls_cert.empty()) {
    return invalid_argument("http listen " + o.listen +
                            " is not loopback: it needs tls_cert and tls_key");
  }
  if (o.token.empty()) {
    return invalid_argument("http listen " + o.listen +
                            " is not loopback: it needs a bearer token (token_file)");
  }
  return {};
}

std::string HttpRequest::param(const std::string& name) const {
  std::vector<char> buf(query.size() + 1);
  int n = mg_get_var(query.data(), query.size(), name.c_str(), buf.data(), buf.size());
  return n >= 0 ? std::string(buf.data(), n) : std::string();
}

HttpResponse json_response(int status, const std::string& body) {
  return {status, "application/json", body};
}

HttpResponse text_response(int status, const std::string& body) {
  return {status, "text/plain; charset=utf-8", body};
}

HttpServer::HttpServer(const HttpOptions& options, std::vector<HttpRoute> routes)
    : options_(options), routes_(std::move(routes)) {}

HttpServer::~HttpServer() {
  if (ctx_) mg_stop(ctx_);
}

Result<std::unique_ptr<HttpServer>> HttpServer::start(const HttpOptions& options,
                                                      std::vector<HttpRoute> routes) {
  MEDIC_RETURN_IF_ERROR(check_http_options(options));
  if (options.listen.empty()) return invalid_argument("http: no listen address");
  static std::once_flag init;
  std::call_once(init, [] { mg_init_library(MG_FEATURES_TLS); });
  std::unique_ptr<HttpServer> server(new HttpServer(options, std::move(routes)));
  MEDIC_RETURN_IF_ERROR(server->bind());
  return server;
}

Status HttpServer::bind() {
  if (!options_.tls_cert.empty()) {
    // Debian's civetweb 1.15 loads OpenSSL at run time and calls
    // SSL_get_peer_certificate on every TLS connection; OpenSSL 3 no longer
    // exports it, so the first client would crash the daemon.
    return unavailable(
        "http: TLS is not available with this civetweb build (it needs "
        "SSL_get_peer_certificate, which OpenSSL 3 dropped); keep the listener on loopback "
        "and put a TLS-terminating proxy in front of it");
  }
  const std::string& ports = options_.listen;
  std::vector<const char*> opts = {"listening_ports", ports.c_str(), "num_threads", "4",
                                   "request_timeout_ms", "10000", "enable_keep_alive", "no"};
  opts.push_back(nullptr);
  mg_callbacks callbacks{};
  callbacks.log_message = log_message;
  ctx_ = mg_start(&callbacks, this, opts.data());
  if (!ctx_) return unavailable("http: cannot listen on " + options_.listen + " (see the log)");
  mg_set_request_handler(ctx_, "/", handle, this);
  mg_server_port bound[4]{};
  int n = mg_get_server_ports(ctx_, 4, bound);
  if (n > 0) port_ = static_cast<uint16_t>(bound[0].port);
  return {};
}

std::string HttpServer::url() const {
  std::string host, port;
  split_listen(options_.listen, &host, &port);
  if (host.find(':') != std::string::npos) host = "[" + host + "]";
  if (host == "0.0.0.0") host = "127.0.0.1";
  return "http://" + host + ":" + std::to_string(port_);
}

const HttpRoute* HttpServer::find(const std::string& path) const {
  for (const auto& r : routes_) {
    if (r.path == path) return &r;
    if (r.path.back() == '/' && r.path.size() > 1 && path.rfind(r.path, 0) == 0) return &r;
  }
  return nullptr;
}

HttpResponse HttpServer::serve(const std::string& method, const HttpRequest& request,
                               const std::string& authorization) const {
  const HttpRoute* route = find(request.path);
  if (!route) return json_response(404, R"({"error":"no such path"})");
  if (method != "GET" && method != "HEAD") {
    return json_response(405, R"({"error":"read-only: changes are signed CLI requests"})");
  }
  if (route->protected_by_token && !options_.token.empty()) {
    const std::string prefix = "Bearer ";
    if (authorization.rfind(prefix, 0) != 0 ||
        !same_secret(authorization.substr(prefix.size()), options_.token)) {
      return json_response(401, R"({"error":"missing or wrong bearer token"})");
    }
  }
  return route->handler(request);
}

}  // namespace medic::node
