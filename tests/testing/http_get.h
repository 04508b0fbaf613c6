// One HTTP(S) request from a test, over libcurl: what a client of medic's
// listeners (a browser, Prometheus, a load balancer) would send.
#pragma once

#include <string>

namespace medic::testing {

struct HttpReply {
  long status = 0;  // 0 when no response came
  std::string body;
  std::string error;  // libcurl's words when the request failed
};

struct HttpGet {
  std::string method = "GET";
  std::string token;  // sent as Authorization: Bearer <token> when set
  // PEM file of the CA to verify the server against; empty = no verification.
  std::string ca_file;
  std::string body;  // sent (with Content-Type: application/json) when set
};

HttpReply http_get(const std::string& url, const HttpGet& how = {});

}  // namespace medic::testing
