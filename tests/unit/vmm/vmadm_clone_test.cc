// Provisioning in the SmartOS backend against tests/fakes/vmadm: clone is
// vmadm create -f with a template's payload, delete is vmadm delete, and only
// of a VM whose tags say medic cloned it.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>

#include "core/event_loop.h"
#include "core/json.h"
#include "tests/testing/testing.h"
#include "vmm/vmadm/vmadm.h"

namespace medic::vmm::vmadm {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using ::testing::HasSubstr;

constexpr char kWeb[] = "11111111-2222-4333-8444-000000000001";
constexpr char kClone[] = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee";

class VmadmClone : public ::testing::Test {
 protected:
  VmadmClone() {
    fs::copy_file(testing::source_dir() + "/tests/fakes/vmadm", dir_.file("vmadm"));
    fs::permissions(dir_.file("vmadm"), fs::perms::owner_all);
    dir_.write("vms", std::string(kWeb) + "\trunning\tweb-01\n");
    fs::create_directories(dir_.file("templates"));
    dir_.write(
        "templates/base.json",
        R"({"brand": "kvm", "ram": 256, "autoboot": true, "tags": {"role": "web"},)"
        R"( "disks": [{"image_uuid": "01234567-89ab-4cde-8f01-23456789abcd", "boot": true}]})");
    dir_.write("templates/cold.json", R"({"brand": "bhyve", "autoboot": false})");
    dir_.write("templates/broken.json", R"({"brand": )");
    dir_.write("templates/list.json", R"([1, 2])");
    dir_.write("templates/notes.txt", "not a template");
    opts_.host = "cn-07";
    opts_.vmadm_path = dir_.file("vmadm");
    opts_.zones_root = dir_.file("zones");
    opts_.templates_dir = dir_.file("templates");
  }

  VmadmHypervisor& backend() {
    if (!hv_) {
      hv_ = std::make_unique<VmadmHypervisor>(clock_, opts_);
      loop_.add_source(&source_.emplace(*hv_));
    }
    return *hv_;
  }
  bool run_until(const std::function<bool()>& cond) {
    backend();
    return testing::wait_until([&] {
      loop_.run_once(20ms);
      return cond();
    });
  }
  void listed() {
    const uint64_t want = backend().stats().listings_started + 1;
    backend().refresh();
    ASSERT_TRUE(run_until([&] { return backend().stats().listings_done >= want; }));
  }
  Status clone(const std::string& tmpl, const std::string& id = kClone,
               const std::string& name = "web-7") {
    std::optional<Status> out;
    Status s = backend().begin_clone({tmpl, id, name}, 30s, [&](Status st) { out = st; });
    if (!s.ok()) return s;
    if (out) return internal_error("done ran inside begin_clone");
    if (!run_until([&] { return out.has_value(); })) return internal_error("no completion");
    return *out;
  }
  Status run_verb(Verb verb, const std::string& vm) {
    std::optional<Status> out;
    backend().execute(verb, vm, 30s, [&](Status s) { out = s; });
    EXPECT_TRUE(run_until([&] { return out.has_value(); }));
    return out.value_or(internal_error("the verb did not finish"));
  }
  std::vector<std::string> calls() const {
    std::ifstream in(dir_.file("calls"));
    std::vector<std::string> out;
    for (std::string line; std::getline(in, line);) {
      if (line.rfind("list", 0) != 0) out.push_back(line);
    }
    return out;
  }

  VirtualClock clock_;
  testing::TempDir dir_;
  VmadmOptions opts_;
  EventLoop loop_{clock_};
  std::unique_ptr<VmadmHypervisor> hv_;
  std::optional<HypervisorSource> source_;
};

TEST_F(VmadmClone, ListsTheJsonFilesOfTheTemplatesDir) {
  EXPECT_THAT(backend().templates(), ::testing::ElementsAre("base", "broken", "cold", "list"));
}

TEST_F(VmadmClone, CreatesFromThePayloadWithUuidAliasAndMedicTags) {
  ASSERT_OK(clone("base"));
  auto c = calls();
  ASSERT_EQ(c.size(), 1u);
  EXPECT_THAT(c[0], HasSubstr("create -f "));
  const std::string payload_file = c[0].substr(c[0].find("-f ") + 3);
  EXPECT_FALSE(fs::exists(payload_file));  // removed once vmadm ended
  auto kept = parse_json(testing::read_file(dir_.file("payloads/") + kClone + ".json"));
  ASSERT_OK(kept);
  EXPECT_EQ((*kept)["uuid"], kClone);
  EXPECT_EQ((*kept)["alias"], "web-7");
  EXPECT_EQ((*kept)["ram"], 256);
  EXPECT_EQ((*kept)["tags"]["role"], "web");
  EXPECT_EQ((*kept)["tags"]["medic_template"], "base");
  EXPECT_EQ((*kept)["tags"]["medic_clone"], true);
  EXPECT_EQ((*kept)["disks"][0]["image_uuid"], "01234567-89ab-4cde-8f01-23456789abcd");
  // Listed again after the create.
  ASSERT_TRUE(run_until([&] { return backend().get(kClone).ok(); }));
  EXPECT_EQ(backend().get(kClone)->name, "web-7");
  EXPECT_EQ(backend().get(kClone)->state, medic::v1::VM_STATE_RUNNING);
  // The listing carries the clone's template tag, so the engine keeps its
  // `template` label (a requester scoped to the template may delete it).
  EXPECT_EQ(backend().get(kClone)->labels.at("template"), "base");
}

TEST_F(VmadmClone, AutobootFalseInTheTemplateLeavesTheCloneStopped) {
  ASSERT_OK(clone("cold"));
  ASSERT_TRUE(run_until([&] { return backend().get(kClone).ok(); }));
  EXPECT_EQ(backend().get(kClone)->state, medic::v1::VM_STATE_STOPPED);
}

TEST_F(VmadmClone, RefusesBadRequestsAtOnce) {
  listed();
  Status s = clone("nope");
  EXPECT_EQ(s.code(), Code::kNotFound);
  EXPECT_THAT(s.message(), HasSubstr("templates: base, broken, cold, list"));
  EXPECT_EQ(clone("base", kWeb, "fresh").code(), Code::kAlreadyExists);
  EXPECT_EQ(clone("base", kClone, "web-01").code(), Code::kAlreadyExists);
  EXPECT_EQ(clone("base", "nope", "fresh").code(), Code::kInvalidArgument);
  EXPECT_EQ(clone("base", kClone, "a b").code(), Code::kInvalidArgument);
  s = clone("broken");
  EXPECT_EQ(s.code(), Code::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("broken.json"));
  EXPECT_EQ(clone("list").code(), Code::kFailedPrecondition);
  EXPECT_TRUE(calls().empty());  // vmadm never ran
}

TEST_F(VmadmClone, AHostWithoutTemplatesDirDoesNotClone) {
  opts_.templates_dir.clear();
  EXPECT_EQ(clone("base").code(), Code::kFailedPrecondition);
  EXPECT_TRUE(backend().templates().empty());
}

TEST_F(VmadmClone, AnExistingUuidUnknownToTheListingIsRefusedByVmadm) {
  // No listing has ended yet: vmadm's own refusal comes back, quoted.
  Status s = clone("base", kWeb, "fresh");
  EXPECT_EQ(s.code(), Code::kIo);
  EXPECT_THAT(s.message(), HasSubstr("already exists"));
}

TEST_F(VmadmClone, AFailedCreateIsQuotedAndFreesTheIdForAnotherTry) {
  dir_.write("fail", "");
  Status s = clone("base");
  EXPECT_EQ(s.code(), Code::kIo);
  EXPECT_THAT(s.message(), HasSubstr("simulated failure"));
  EXPECT_THAT(s.message(), HasSubstr("clone web-7 from template base"));
  const std::string c = calls().back();
  EXPECT_FALSE(fs::exists(c.substr(c.find("-f ") + 3)));  // the payload file is gone
  fs::remove(dir_.file("fail"));
  EXPECT_OK(clone("base"));  // positive control: nothing was left busy
}

TEST_F(VmadmClone, DeletesAClone) {
  ASSERT_OK(clone("base"));
  ASSERT_OK(run_verb(medic::v1::VERB_DELETE, kClone));
  auto c = calls();
  EXPECT_THAT(c, ::testing::Contains(std::string("get ") + kClone));
  EXPECT_THAT(c, ::testing::Contains(std::string("delete ") + kClone));
  listed();
  EXPECT_EQ(backend().get(kClone).status().code(), Code::kNotFound);
}

TEST_F(VmadmClone, RefusesToDeleteAVmMedicDidNotClone) {
  Status s = run_verb(medic::v1::VERB_DELETE, kWeb);
  EXPECT_EQ(s.code(), Code::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("medic_clone"));
  for (const auto& c : calls()) EXPECT_THAT(c, ::testing::Not(HasSubstr("delete")));
  listed();
  EXPECT_OK(backend().get(kWeb));
}

TEST_F(VmadmClone, DeleteOfAnUnknownVmIsNotFound) {
  EXPECT_EQ(run_verb(medic::v1::VERB_DELETE, kClone).code(), Code::kNotFound);
}

TEST_F(VmadmClone, ReadsTemplatesDirFromConfig) {
  ConfigReader r("agent.yaml");
  auto node = load_yaml_string("templates_dir: /opt/medic/templates\n", "agent.yaml");
  ASSERT_OK(node);
  VmadmOptions o = read_vmadm_options(r, *node);
  ASSERT_OK(r.status());
  EXPECT_EQ(o.templates_dir, "/opt/medic/templates");
  ConfigReader bad("agent.yaml");
  (void)read_vmadm_options(bad, *load_yaml_string("templates_dir: rel\n", "agent.yaml"));
  EXPECT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(), HasSubstr("agent.yaml:1:"));
}

}  // namespace
}  // namespace medic::vmm::vmadm
