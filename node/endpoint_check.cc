#include "node/endpoint_check.h"

#include <cctype>
#include <charconv>

#include <yaml-cpp/yaml.h>

namespace medic::node {
namespace {

constexpr size_t kMaxIpcPath = 107;  // sizeof(sockaddr_un::sun_path) - 1 on Linux

bool host_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_';
}

bool ipv6_char(char c) {
  return std::isxdigit(static_cast<unsigned char>(c)) || c == ':' || c == '.';
}

Status check_host(std::string_view host, EndpointUse use) {
  if (host.empty()) return invalid_argument("no host before the port");
  if (host == "*") {
    if (use == EndpointUse::kBind) return {};
    return invalid_argument("`*` is for binding; name the host to connect to");
  }
  if (host.front() == '[') {
    if (host.size() < 3) return invalid_argument("an empty IPv6 host");
    for (char c : host.substr(1, host.size() - 2)) {
      if (!ipv6_char(c)) return invalid_argument("bad character in the IPv6 host");
    }
    return {};
  }
  for (char c : host) {
    if (!host_char(c)) {
      return invalid_argument(std::string("bad character '") + c + "' in the host");
    }
  }
  return {};
}

Status check_port(std::string_view port, EndpointUse use) {
  if (port == "*" && use == EndpointUse::kBind) return {};
  const char* expected =
      use == EndpointUse::kBind ? "a port 1-65535 or * (the OS picks one)" : "a port 1-65535";
  unsigned value = 0;
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (port.empty() || ec != std::errc() || end != port.data() + port.size() || value < 1 ||
      value > 65535) {
    return invalid_argument("expected " + std::string(expected) + " after the last ':', got \"" +
                            std::string(port) + "\"");
  }
  return {};
}

Status check_tcp(std::string_view rest, EndpointUse use) {
  size_t colon = rest.rfind(':');
  if (!rest.empty() && rest.front() == '[') {  // [IPv6]:PORT: the colons inside do not count
    const size_t close = rest.find(']');
    if (close == std::string_view::npos) return invalid_argument("an IPv6 host needs a closing ]");
    if (close + 1 >= rest.size() || rest[close + 1] != ':') {
      return invalid_argument("no :PORT after the IPv6 host");
    }
    colon = close + 1;
  }
  if (colon == std::string_view::npos) return invalid_argument("no :PORT");
  if (Status s = check_host(rest.substr(0, colon), use); !s.ok()) return s;
  return check_port(rest.substr(colon + 1), use);
}

Status check_ipc(std::string_view path, EndpointUse use) {
  if (path.empty()) return invalid_argument("no socket path after ipc://");
  if (path == "*" && use == EndpointUse::kConnect) {
    return invalid_argument("`*` is for binding; name the socket to connect to");
  }
  if (path.size() > kMaxIpcPath) {
    return invalid_argument("the socket path is " + std::to_string(path.size()) +
                            " bytes; a Unix socket path holds at most " +
                            std::to_string(kMaxIpcPath));
  }
  return {};
}

}  // namespace

Status check_endpoint_syntax(std::string_view endpoint, EndpointUse use) {
  Status s;
  if (endpoint.rfind("tcp://", 0) == 0) {
    s = check_tcp(endpoint.substr(6), use);
  } else if (endpoint.rfind("ipc://", 0) == 0) {
    s = check_ipc(endpoint.substr(6), use);
  } else if (endpoint.rfind("inproc://", 0) == 0) {
    if (endpoint.size() == 9) s = invalid_argument("no name after inproc://");
  } else {
    s = invalid_argument("expected tcp://HOST:PORT, ipc://PATH or inproc://NAME");
  }
  if (s.ok()) return s;
  return invalid_argument("bad endpoint \"" + std::string(endpoint) + "\": " + s.message());
}

void check_endpoint(ConfigReader& r, const YAML::Node& map, const std::string& key,
                    EndpointUse use) {
  if (!map.IsMap()) return;
  YAML::Node n = map[key];
  if (!n.IsDefined() || !n.IsScalar()) return;
  Status s = check_endpoint_syntax(n.Scalar(), use);
  if (!s.ok()) r.error(n, "\"" + key + "\": " + s.message());
}

}  // namespace medic::node
