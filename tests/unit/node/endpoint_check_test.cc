#include "node/endpoint_check.h"

#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

namespace medic::node {
namespace {

Status bind_check(const std::string& e) { return check_endpoint_syntax(e, EndpointUse::kBind); }
Status connect_check(const std::string& e) {
  return check_endpoint_syntax(e, EndpointUse::kConnect);
}

TEST(EndpointCheck, AcceptsTheFormsTheDaemonsUse) {
  for (const char* e :
       {"tcp://0.0.0.0:7701", "tcp://*:7701", "tcp://127.0.0.1:*", "tcp://[::1]:7701",
        "ipc:///run/medic/engine.sock", "ipc://*", "inproc://events"}) {
    EXPECT_TRUE(bind_check(e).ok()) << e << ": " << bind_check(e);
  }
  for (const char* e : {"tcp://10.0.0.1:7701", "tcp://engine-1.example.org:65535",
                        "tcp://[fe80::1]:1", "ipc:///run/medic/engine.sock"}) {
    EXPECT_TRUE(connect_check(e).ok()) << e << ": " << connect_check(e);
  }
}

TEST(EndpointCheck, RefusesAPortThatIsNotANumberFrom1To65535) {
  for (const char* port : {"77x2", "0", "65536", "", "-1", "7701 "}) {
    Status s = bind_check(std::string("tcp://127.0.0.1:") + port);
    ASSERT_FALSE(s.ok()) << port;
    EXPECT_NE(s.message().find("expected a port 1-65535 or *"), std::string::npos) << s;
    EXPECT_NE(s.message().find(std::string("got \"") + port + "\""), std::string::npos) << s;
  }
}

TEST(EndpointCheck, AWildcardIsOnlyForBinding) {
  Status host = connect_check("tcp://*:7701");
  ASSERT_FALSE(host.ok());
  EXPECT_NE(host.message().find("`*` is for binding"), std::string::npos) << host;
  Status port = connect_check("tcp://10.0.0.1:*");
  ASSERT_FALSE(port.ok());
  EXPECT_NE(port.message().find("expected a port 1-65535 after"), std::string::npos) << port;
  EXPECT_FALSE(connect_check("ipc://*").ok());
  EXPECT_TRUE(bind_check("tcp://*:*").ok());
}

TEST(EndpointCheck, RefusesAMissingHostOrPort) {
  EXPECT_NE(bind_check("tcp://10.0.0.1").message().find("no :PORT"), std::string::npos);
  EXPECT_NE(bind_check("tcp://:7701").message().find("no host"), std::string::npos);
  EXPECT_NE(bind_check("tcp://[::1]").message().find("no :PORT after the IPv6 host"),
            std::string::npos);
  EXPECT_NE(bind_check("tcp://[::1:7701").message().find("needs a closing ]"), std::string::npos);
  EXPECT_NE(bind_check("tcp://[]:7701").message().find("an empty IPv6 host"), std::string::npos);
  EXPECT_NE(bind_check("tcp://[::1]x:7701").message().find("no :PORT after"), std::string::npos);
  EXPECT_NE(bind_check("tcp://a b:7701").message().find("bad character ' '"), std::string::npos);
  EXPECT_NE(bind_check("ipc://").message().find("no socket path"), std::string::npos);
  EXPECT_NE(bind_check("inproc://").message().find("no name"), std::string::npos);
}

TEST(EndpointCheck, RefusesAnUnknownSchemeAndNamesTheExpectedForms) {
  for (const char* e : {"udp://10.0.0.1:7701", "10.0.0.1:7701", "TCP://10.0.0.1:7701", ""}) {
    Status s = bind_check(e);
    ASSERT_FALSE(s.ok()) << e;
    EXPECT_NE(s.message().find("expected tcp://HOST:PORT, ipc://PATH or inproc://NAME"),
              std::string::npos)
        << s;
    EXPECT_NE(s.message().find(std::string("bad endpoint \"") + e + "\""), std::string::npos) << s;
  }
}

TEST(EndpointCheck, RefusesAnIpcPathLongerThanASocketAddressHolds) {
  const std::string fits = "/" + std::string(106, 'a');
  EXPECT_TRUE(bind_check("ipc://" + fits).ok());
  Status s = bind_check("ipc://" + fits + "a");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("108 bytes"), std::string::npos) << s;
}

TEST(EndpointCheck, ReportsTheProblemAtTheValuesPositionInTheFile) {
  auto root = load_yaml_string("listen:\n  events: tcp://0.0.0.0:7701\n  urgent: tcp://h:x\n",
                               "engine.yaml");
  ASSERT_TRUE(root.ok()) << root.status();
  ConfigReader r("engine.yaml");
  check_endpoint(r, (*root)["listen"], "events", EndpointUse::kBind);
  EXPECT_TRUE(r.ok()) << r.status();
  check_endpoint(r, (*root)["listen"], "urgent", EndpointUse::kBind);
  check_endpoint(r, (*root)["listen"], "absent", EndpointUse::kBind);  // left to the reader
  ASSERT_EQ(r.diagnostics().size(), 1u) << r.status();
  EXPECT_EQ(
      r.diagnostics()[0].to_string().rfind("engine.yaml:3:11: error: \"urgent\": bad endpoint", 0),
      0u)
      << r.status();
}

}  // namespace
}  // namespace medic::node
