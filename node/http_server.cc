#include "node/http_server.h"

#include <microhttpd.h>
#include <netdb.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

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

MHD_Result collect_param(void* cls, MHD_ValueKind, const char* key, const char* value) {
  if (key) (*static_cast<std::map<std::string, std::string>*>(cls))[key] = value ? value : "";
  return MHD_YES;
}

MHD_Result respond(MHD_Connection* conn, const HttpResponse& res) {
  MHD_Response* r = MHD_create_response_from_buffer(
      res.body.size(), const_cast<char*>(res.body.data()), MHD_RESPMEM_MUST_COPY);
  if (!r) return MHD_NO;
  MHD_add_response_header(r, "Content-Type", res.content_type.c_str());
  MHD_add_response_header(r, "Cache-Control", "no-store");
  MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
  MHD_Result ok = MHD_queue_response(conn, static_cast<unsigned>(res.status), r);
  MHD_destroy_response(r);
  return ok;
}

// A POST body being read, kept in the connection's slot between calls.
struct Upload {
  std::string body;
  bool too_large = false;
};

HttpResponse too_large(const HttpRoute& route) {
  return json_response(
      413, R"({"error":"body larger than )" + std::to_string(route.max_body) + R"( bytes"})");
}

// A POST to a post route is read across calls: the first sets up (and
// refuses a wrong token or a declared length past the limit at once), the
// middle ones take the body, the last (no data) serves it.
MHD_Result handle_post(const HttpServer& server, MHD_Connection* conn, const HttpRoute& route,
                       const HttpRequest& req, const char* data, size_t* size, void** slot) {
  auto answer = [&](const HttpResponse& res) {
    if (route.observe) route.observe(res.status);
    return respond(conn, res);
  };
  auto* up = static_cast<Upload*>(*slot);
  if (!up) {
    const char* auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
    if (!server.authorized(route, auth ? auth : ""))
      return answer(json_response(401, R"({"error":"missing or wrong bearer token"})"));
    const char* length = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
    if (length && std::strtoull(length, nullptr, 10) > route.max_body)
      return answer(too_large(route));
    *slot = new Upload{};
    return MHD_YES;
  }
  if (*size > 0) {
    if (up->body.size() + *size > route.max_body) up->too_large = true;
    if (!up->too_large) up->body.append(data, *size);
    *size = 0;
    return MHD_YES;
  }
  if (up->too_large) return answer(too_large(route));
  HttpRequest full = req;
  full.body = std::move(up->body);
  return answer(route.handler(full));
}

void upload_done(void*, MHD_Connection*, void** slot, MHD_RequestTerminationCode) {
  delete static_cast<Upload*>(*slot);
  *slot = nullptr;
}

MHD_Result handle(void* cls, MHD_Connection* conn, const char* url, const char* method, const char*,
                  const char* data, size_t* size, void** slot) {
  const auto* server = static_cast<const HttpServer*>(cls);
  HttpRequest req;
  req.path = url ? url : "/";
  MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, collect_param, &req.params);
  const std::string verb = method ? method : "";
  const HttpRoute* route = server->find(req.path);
  if (route && route->post && verb == "POST")
    return handle_post(*server, conn, *route, req, data, size, slot);
  const char* auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
  // A response to a request with a body (refused: 405) is sent at once; the
  // library then drops the connection instead of reading the body.
  return respond(conn, server->serve(verb, req, auth ? auth : ""));
}

void log_message(void* cls, const char* format, va_list ap) {
  char line[512];
  std::vsnprintf(line, sizeof line, format, ap);
  std::string text(line);
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  static_cast<HttpServer*>(cls)->log(text);
}

Result<std::string> read_pem(const std::string& what, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return invalid_argument("http: cannot read " + what + " " + path);
  std::ostringstream text;
  text << in.rdbuf();
  if (text.str().find("-----BEGIN") == std::string::npos) {
    return invalid_argument("http: " + what + " " + path + " is not PEM");
  }
  return text.str();
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
  auto it = params.find(name);
  return it == params.end() ? std::string() : it->second;
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
  if (daemon_) MHD_stop_daemon(daemon_);
}

Result<std::unique_ptr<HttpServer>> HttpServer::start(const HttpOptions& options,
                                                      std::vector<HttpRoute> routes) {
  MEDIC_RETURN_IF_ERROR(check_http_options(options));
  if (options.listen.empty()) return invalid_argument("http: no listen address");
  std::unique_ptr<HttpServer> server(new HttpServer(options, std::move(routes)));
  MEDIC_RETURN_IF_ERROR(server->bind());
  return server;
}

void HttpServer::log(const std::string& message) {
  spdlog::warn("http: {}", message);
  std::lock_guard lock(log_mu_);
  last_log_ = message;
}

Status HttpServer::bind() {
  std::string host, port;
  split_listen(options_.listen, &host, &port);
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* found = nullptr;
  if (int rc = getaddrinfo(host.c_str(), port.c_str(), &hints, &found); rc != 0) {
    return invalid_argument("http: cannot resolve " + host + ": " + gai_strerror(rc));
  }
  std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> addr(found, freeaddrinfo);
  unsigned flags =
      MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ERROR_LOG;
  if (addr->ai_family == AF_INET6) flags |= MHD_USE_IPv6;
  const bool tls = !options_.tls_cert.empty();
  if (tls) {
    if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
      return unavailable("http: this libmicrohttpd has no TLS support");
    }
    auto cert = read_pem("tls_cert", options_.tls_cert);
    if (!cert.ok()) return cert.status();
    auto key = read_pem("tls_key", options_.tls_key);
    if (!key.ok()) return key.status();
    cert_pem_ = std::move(*cert);
    key_pem_ = std::move(*key);
    flags |= MHD_USE_TLS;
  }
  MHD_OptionItem opts[] = {
      {MHD_OPTION_SOCK_ADDR, 0, addr->ai_addr},
      {MHD_OPTION_CONNECTION_LIMIT, kHttpConnections, nullptr},
      {MHD_OPTION_CONNECTION_TIMEOUT, 10, nullptr},
      {tls ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, 0, cert_pem_.data()},
      {tls ? MHD_OPTION_HTTPS_MEM_KEY : MHD_OPTION_END, 0, key_pem_.data()},
      {MHD_OPTION_END, 0, nullptr},
  };
  // The logger first, so that no option's complaint goes to stderr instead.
  daemon_ = MHD_start_daemon(flags, 0, nullptr, nullptr, handle, this, MHD_OPTION_EXTERNAL_LOGGER,
                             log_message, this, MHD_OPTION_NOTIFY_COMPLETED, upload_done, nullptr,
                             MHD_OPTION_ARRAY, opts, MHD_OPTION_END);
  if (!daemon_) {
    std::lock_guard lock(log_mu_);
    return unavailable("http: cannot listen on " + options_.listen + (tls ? " with TLS" : "") +
                       (last_log_.empty() ? "" : ": " + last_log_));
  }
  if (const MHD_DaemonInfo* info = MHD_get_daemon_info(daemon_, MHD_DAEMON_INFO_BIND_PORT)) {
    port_ = info->port;
  }
  return {};
}

std::string HttpServer::url() const {
  std::string host, port;
  split_listen(options_.listen, &host, &port);
  if (host.find(':') != std::string::npos) host = "[" + host + "]";
  if (host == "0.0.0.0") host = "127.0.0.1";
  return (options_.tls_cert.empty() ? "http://" : "https://") + host + ":" + std::to_string(port_);
}

const HttpRoute* HttpServer::find(const std::string& path) const {
  for (const auto& r : routes_) {
    if (r.path == path) return &r;
    if (r.path.back() == '/' && r.path.size() > 1 && path.rfind(r.path, 0) == 0) return &r;
  }
  return nullptr;
}

bool HttpServer::authorized(const HttpRoute& route, const std::string& authorization) const {
  if (!route.protected_by_token || options_.token.empty()) return true;
  const std::string prefix = "Bearer ";
  return authorization.rfind(prefix, 0) == 0 &&
         same_secret(authorization.substr(prefix.size()), options_.token);
}

HttpResponse HttpServer::serve(const std::string& method, const HttpRequest& request,
                               const std::string& authorization) const {
  const HttpRoute* route = find(request.path);
  if (!route) return json_response(404, R"({"error":"no such path"})");
  if (route->post && method != "POST") return json_response(405, R"({"error":"POST only"})");
  if (!route->post && method != "GET" && method != "HEAD") {
    return json_response(405, R"({"error":"read-only: changes are signed CLI requests"})");
  }
  // (A POST to a post route never comes here: handle_post checks its token
  // before reading the body.)
  if (!authorized(*route, authorization)) {
    return json_response(401, R"({"error":"missing or wrong bearer token"})");
  }
  return route->handler(request);
}

}  // namespace medic::node
