// The operator's HTTP listener by itself (node/http_server.h): the bearer
// token on protected paths, read-only methods, the refusal of a network
// address without TLS and a token, and real TLS: a certificate made by the
// openssl command line, verified by the client, and the refusals of a
// missing or malformed certificate.
#include "node/http_server.h"

#include <gtest/gtest.h>

#include <mutex>

#include "tests/testing/http_get.h"
#include "tests/testing/testing.h"

namespace medic {
namespace {

using namespace std::chrono_literals;
using testing::http_get;

std::vector<node::HttpRoute> two_routes() {
  return {
      {"/api/v1/status", true,
       [](const node::HttpRequest& r) {
         return node::json_response(200, "{\"limit\":\"" + r.param("limit") + "\"}");
       }},
      {"/healthz", false, [](const node::HttpRequest&) { return node::json_response(200, "ok"); }},
  };
}

// A self-signed certificate for 127.0.0.1 (its own CA), from the openssl CLI.
void make_certificate(const testing::TempDir& dir) {
  auto made = testing::run_command(
      {"/usr/bin/openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
       "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj", "/CN=medic-test", "-addext",
       "subjectAltName=IP:127.0.0.1", "-keyout", dir.file("key.pem"), "-out", dir.file("cert.pem")},
      30s);
  ASSERT_EQ(made.exit_code, 0) << made.err;
}

TEST(HttpOptionsTest, NonLoopbackNeedsTlsAndATokenAndLoopbackNeedsNeither) {
  EXPECT_OK(node::check_http_options({"127.0.0.1:9464", "", "", ""}));
  EXPECT_OK(node::check_http_options({"[::1]:9464", "", "", ""}));
  Status no_tls = node::check_http_options({"0.0.0.0:9464", "", "", "secret"});
  EXPECT_NE(no_tls.message().find("needs tls_cert and tls_key"), std::string::npos)
      << no_tls.message();
  Status no_token = node::check_http_options({"10.0.0.5:9464", "c.pem", "k.pem", ""});
  EXPECT_NE(no_token.message().find("needs a bearer token"), std::string::npos)
      << no_token.message();
  Status half = node::check_http_options({"127.0.0.1:9464", "c.pem", "", ""});
  EXPECT_NE(half.message().find("go together"), std::string::npos) << half.message();
  EXPECT_OK(node::check_http_options({"10.0.0.5:9464", "c.pem", "k.pem", "secret"}));
  auto refused = node::HttpServer::start({"0.0.0.0:0", "", "", ""}, {});
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("not loopback"), std::string::npos);
}

TEST(HttpServerTest, AsksForTheTokenOnProtectedPathsOnlyAndServesOnlyReads) {
  auto server = node::HttpServer::start({"127.0.0.1:0", "", "", "s3cret-token"}, two_routes());
  ASSERT_OK(server);
  const std::string url = (*server)->url();
  EXPECT_EQ(url.rfind("http://127.0.0.1:", 0), 0u) << url;
  auto open = http_get(url + "/healthz");
  EXPECT_EQ(open.status, 200) << open.error;
  auto none = http_get(url + "/api/v1/status");
  EXPECT_EQ(none.status, 401) << none.error;
  EXPECT_NE(none.body.find("bearer token"), std::string::npos) << none.body;
  EXPECT_EQ(http_get(url + "/api/v1/status", {"GET", "s3cret-tokem", ""}).status, 401);
  auto right = http_get(url + "/api/v1/status?limit=a%20b", {"GET", "s3cret-token", ""});
  EXPECT_EQ(right.status, 200) << right.error << right.body;
  EXPECT_EQ(right.body, R"({"limit":"a b"})");  // the parameter arrives decoded
  EXPECT_EQ(http_get(url + "/healthz", {"HEAD", "", ""}).status, 200);
  auto post = http_get(url + "/healthz", {"POST", "", ""});
  EXPECT_EQ(post.status, 405);
  EXPECT_NE(post.body.find("signed CLI requests"), std::string::npos) << post.body;
  EXPECT_EQ(http_get(url + "/nothing-here").status, 404);
}

TEST(HttpServerTest, ServesTlsThatAClientVerifiesAgainstTheCertificate) {
  testing::TempDir dir;
  make_certificate(dir);
  auto server = node::HttpServer::start(
      {"127.0.0.1:0", dir.file("cert.pem"), dir.file("key.pem"), "tok"}, two_routes());
  ASSERT_OK(server);
  const std::string url = (*server)->url();
  ASSERT_EQ(url.rfind("https://127.0.0.1:", 0), 0u) << url;
  // Verified against the certificate as its CA: the handshake and the name check pass.
  auto verified = http_get(url + "/api/v1/status", {"GET", "tok", dir.file("cert.pem")});
  EXPECT_EQ(verified.status, 200) << verified.error;
  EXPECT_EQ(http_get(url + "/api/v1/status", {"GET", "", dir.file("cert.pem")}).status, 401);
  // The control: a client that trusts another CA refuses the server.
  testing::TempDir other;
  make_certificate(other);
  auto untrusted = http_get(url + "/healthz", {"GET", "", other.file("cert.pem")});
  EXPECT_EQ(untrusted.status, 0);
  EXPECT_FALSE(untrusted.error.empty());
  // Plain HTTP to the TLS port gets no page.
  const std::string plain = "http://" + url.substr(std::string("https://").size());
  EXPECT_NE(http_get(plain + "/healthz").status, 200);
}

TEST(HttpServerTest, RefusesAMissingOrMalformedCertificateWithItsPath) {
  testing::TempDir dir;
  auto missing = node::HttpServer::start(
      {"127.0.0.1:0", dir.file("none.pem"), dir.file("key.pem"), "t"}, two_routes());
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("cannot read tls_cert " + dir.file("none.pem")),
            std::string::npos)
      << missing.status().message();
  testing::write_file(dir.file("junk.pem"), "not a certificate\n");
  auto junk = node::HttpServer::start(
      {"127.0.0.1:0", dir.file("junk.pem"), dir.file("junk.pem"), "t"}, two_routes());
  ASSERT_FALSE(junk.ok());
  EXPECT_NE(junk.status().message().find("is not PEM"), std::string::npos)
      << junk.status().message();
  make_certificate(dir);
  testing::write_file(dir.file("bad-key.pem"),
                      "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n");
  auto bad_key = node::HttpServer::start(
      {"127.0.0.1:0", dir.file("cert.pem"), dir.file("bad-key.pem"), "t"}, two_routes());
  ASSERT_FALSE(bad_key.ok());
  EXPECT_NE(bad_key.status().message().find("cannot listen on 127.0.0.1:0 with TLS"),
            std::string::npos)
      << bad_key.status().message();
}

// A post route (the alert bridge's webhook): its body reaches the handler;
// a wrong token is refused before the body is read, one past max_body gets
// 413, GET gets 405; every answer is observed by status.
TEST(HttpServerTest, APostRouteTakesABodyUpToItsLimitBehindTheToken) {
  std::vector<int> seen;
  std::mutex mu;
  node::HttpRoute echo{"/api/v1/alerts", true,
                       [](const node::HttpRequest& r) {
                         return node::json_response(
                             200, "{\"got\":" + std::to_string(r.body.size()) + "}");
                       },
                       true, 64};
  echo.observe = [&](int status) {
    std::lock_guard lock(mu);
    seen.push_back(status);
  };
  auto server = node::HttpServer::start({"127.0.0.1:0", "", "", "tok"}, {echo});
  ASSERT_OK(server);
  const std::string url = (*server)->url() + "/api/v1/alerts";
  testing::HttpGet post;
  post.method = "POST";
  post.token = "tok";
  post.body = std::string(40, 'x');
  auto ok = http_get(url, post);
  EXPECT_EQ(ok.status, 200) << ok.error;
  EXPECT_EQ(ok.body, "{\"got\":40}");
  post.body = std::string(65, 'x');
  auto big = http_get(url, post);
  EXPECT_EQ(big.status, 413);
  EXPECT_NE(big.body.find("larger than 64 bytes"), std::string::npos) << big.body;
  post.body = "{}";
  post.token = "wrong";
  EXPECT_EQ(http_get(url, post).status, 401);
  EXPECT_EQ(http_get(url, {"GET", "tok", ""}).status, 405);
  std::lock_guard lock(mu);
  EXPECT_EQ(seen, (std::vector<int>{200, 413, 401}));
}

}  // namespace
}  // namespace medic
