#include "node/http_config.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include <yaml-cpp/yaml.h>

namespace medic::node {
namespace {

std::string resolve(const std::string& dir, const std::string& p) {
  if (p.empty() || p[0] == '/') return p;
  return (std::filesystem::path(dir) / p).lexically_normal().string();
}

void read_token(ConfigReader& r, const YAML::Node& n, const std::string& path, HttpOptions* out) {
  std::ifstream in(path);
  if (!in) {
    r.error(n["token_file"], "cannot read token file " + path);
    return;
  }
  std::string token;
  std::getline(in, token);
  while (!token.empty() && (token.back() == '\r' || token.back() == ' ')) token.pop_back();
  if (token.empty()) {
    r.error(n["token_file"], "token file " + path + " is empty");
    return;
  }
  out->token = token;
}

}  // namespace

void read_http_section(ConfigReader& r, const YAML::Node& n, const std::string& dir,
                       const std::string& default_listen, HttpOptions* out) {
  if (!n.IsDefined() || !r.expect_map(n, "\"http:\"")) return;
  r.check_keys(n, {"listen", "tls_cert", "tls_key", "token_file"});
  out->listen = default_listen;
  if (auto v = r.string(n, "listen", false)) out->listen = *v;
  if (auto v = r.string(n, "tls_cert", false)) out->tls_cert = resolve(dir, *v);
  if (auto v = r.string(n, "tls_key", false)) out->tls_key = resolve(dir, *v);
  if (auto v = r.string(n, "token_file", false)) read_token(r, n, resolve(dir, *v), out);
  Status s = check_http_options(*out);
  if (!s.ok()) r.error(n["listen"].IsDefined() ? n["listen"] : n, s.message());
}

}  // namespace medic::node
