#include "fabric/identity.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include "tests/testing/testing.h"

namespace medic::fabric {
namespace {

TEST(Identity, SavesWithMode0600AndLoadsTheSameKey) {
  testing::TempDir dir;
  auto id = Identity::generate();
  std::string path = dir.file("node.key");
  ASSERT_OK(id.save(path));
  struct stat st {};
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto loaded = Identity::load(path);
  ASSERT_OK(loaded);
  EXPECT_EQ(loaded->public_key(), id.public_key());
  EXPECT_EQ(loaded->curve_public(), id.curve_public());
  std::string msg = "hello";
  auto sig = loaded->sign(reinterpret_cast<const uint8_t*>(msg.data()), msg.size());
  EXPECT_TRUE(verify_signature(id.public_key(), reinterpret_cast<const uint8_t*>(msg.data()),
                               msg.size(), sig.data()));
}

TEST(Identity, RefusesToOverwriteAKeyFile) {
  testing::TempDir dir;
  std::string path = dir.file("node.key");
  ASSERT_OK(Identity::generate().save(path));
  Status s = Identity::generate().save(path);
  EXPECT_EQ(s.code(), Code::kAlreadyExists);
}

TEST(Identity, RefusesAKeyFileOthersCanRead) {
  testing::TempDir dir;
  std::string path = dir.file("node.key");
  ASSERT_OK(Identity::generate().save(path));
  chmod(path.c_str(), 0644);
  auto r = Identity::load(path);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kPermissionDenied);
  EXPECT_NE(r.status().message().find("0644"), std::string::npos) << r.status();
}

TEST(Identity, MissingKeyFileIsNotFound) {
  auto r = Identity::load("/nonexistent/node.key");
  EXPECT_EQ(r.status().code(), Code::kNotFound);
}

TEST(Identity, MalformedKeyFilesNameTheProblem) {
  testing::TempDir dir;
  auto a = Identity::generate();
  auto b = Identity::generate();
  std::string good = dir.file("a.key");
  ASSERT_OK(a.save(good));
  struct Case {
    std::string content;
    std::string expect;
  };
  std::vector<Case> cases = {
      {"public: zz\nsecret: 00\n", "hex digits"},
      {"garbage line\n", ":1: expected"},
      {"public: " + a.id() + "\n", "needs both"},
      {"colour: blue\n", "unknown key \"colour\""},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    std::string p = dir.write("bad" + std::to_string(i) + ".key", cases[i].content, 0600);
    auto r = Identity::load(p);
    ASSERT_FALSE(r.ok()) << cases[i].content;
    EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
    EXPECT_NE(r.status().message().find(cases[i].expect), std::string::npos) << r.status();
  }
  // A secret that belongs to another public key.
  auto r = testing::run_command({"sed", "-n", "s/^secret: //p", good});
  std::string p = dir.write("mixed.key", "public: " + b.id() + "\nsecret: " + r.out, 0600);
  auto mixed = Identity::load(p);
  ASSERT_FALSE(mixed.ok());
  EXPECT_NE(mixed.status().message().find("does not belong"), std::string::npos);
}

TEST(Identity, HexRoundTripAndRejectsBadHex) {
  auto id = Identity::generate();
  auto pk = public_key_from_hex(id.id());
  ASSERT_OK(pk);
  EXPECT_EQ(*pk, id.public_key());
  EXPECT_FALSE(public_key_from_hex("abcd").ok());
  EXPECT_FALSE(public_key_from_hex(std::string(64, 'g')).ok());
}

TEST(Identity, SignatureOverOtherBytesFails) {
  auto id = Identity::generate();
  std::string msg = "medic";
  auto sig = id.sign(reinterpret_cast<const uint8_t*>(msg.data()), msg.size());
  std::string other = "medix";
  EXPECT_FALSE(verify_signature(id.public_key(), reinterpret_cast<const uint8_t*>(other.data()),
                                other.size(), sig.data()));
}

}  // namespace
}  // namespace medic::fabric
