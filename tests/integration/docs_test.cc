// The docs cannot rot: every fenced block that shows a medic file or command
// is checked against the real code.
//
//   ```yaml medic:trust      parsed as a trust store
//   ```yaml medic:engine     loaded as engine.yaml (node::load_engine_config)
//   ```yaml medic:agent      loaded as agent.yaml (node::load_agent_config)
//   ```yaml medic:rules      loaded as a rule file (rules::load_rule_text)
//   ```yaml medic:bridge     loaded as bridge.yaml (node::load_bridge_config),
//                            beside a token file alerts.token
//   ```sh                    every line starting with "medic " names a real
//                            subcommand: `medic <subcommand...> --help` exits 0
//   ```console medic:transcript
//                            a terminal session: each "$ COMMAND" line runs in
//                            the source tree (medic is the built binary, stderr
//                            goes with stdout) and what it prints must be the
//                            lines under it, exactly
//   ```console medic:walkthrough
//                            run for real against the examples' engine and
//                            agent (scripts/make-example-keys): every `$ `
//                            line is run, must exit 0, and every output line
//                            shown must match a line it printed, numbers and
//                            ids aside (see shape())
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <regex>
#include <sstream>

#include "fabric/trust.h"
#include "node/agent_node.h"
#include "node/alert_bridge.h"
#include "node/engine_node.h"
#include "rules/loader.h"
#include "tests/testing/daemon.h"
#include "tests/testing/testing.h"

namespace medic {
namespace {

struct Block {
  std::string file;
  int line = 0;  // of the opening fence
  std::string info;
  std::string text;
};

std::vector<Block> fenced_blocks(const std::string& path) {
  std::ifstream in(path);
  std::vector<Block> out;
  std::string line;
  int n = 0;
  Block* open = nullptr;
  while (std::getline(in, line)) {
    ++n;
    if (line.rfind("```", 0) == 0) {
      if (open) {
        open = nullptr;
      } else {
        out.push_back({path, n, line.substr(3), ""});
        open = &out.back();
      }
      continue;
    }
    if (open) open->text += line + "\n";
  }
  return out;
}

std::vector<std::string> doc_files() {
  std::vector<std::string> files = {testing::source_dir() + "/README.md"};
  for (const auto& e : std::filesystem::directory_iterator(testing::source_dir() + "/docs")) {
    if (e.path().extension() == ".md") files.push_back(e.path().string());
  }
  return files;
}

using Checker = std::function<Status(const std::string& text, const std::string& name)>;

// The config loaders read files: the block goes to a file of its own in a
// fresh directory (relative key and trust paths need not exist to load it),
// and errors are reported against the doc's name and line.
Status load_as_file(const std::string& text, const std::string& name,
                    const std::function<Status(const std::string& path)>& load) {
  testing::TempDir dir;
  const std::string path = dir.write("block.yaml", text);
  Status s = load(path);
  if (s.ok()) return s;
  std::string message = s.message();
  for (size_t at = message.find(path); at != std::string::npos; at = message.find(path, at)) {
    message.replace(at, path.size(), name);
  }
  return invalid_argument(message);
}

// Replays a console transcript with /bin/sh and compares what it prints with
// the block. `$?` in a command is the status of the command before it.
Status check_transcript(const std::string& text, const std::string& name) {
  const std::string shown = text.substr(text.find_first_not_of('\n'));
  auto quoted = [](const std::string& s) {
    std::string q = "'";
    for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return q + "'";
  };
  std::string script = "cd " + quoted(testing::source_dir()) + " || exit 99\nmedic() { " +
                       quoted(testing::medic_binary()) + " \"$@\"; }\ns=0\n";
  std::istringstream lines(shown);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("$ ", 0) != 0) continue;
    const std::string cmd = line.substr(2);
    script += "printf '%s\\n' " + quoted(line) + "\n(exit $s); " + cmd + " 2>&1; s=$?\n";
  }
  auto r = testing::run_command({"/bin/sh", "-c", script});
  if (r.out == shown) return {};
  return invalid_argument(name + ": the transcript differs from a real run.\n--- shown\n" + shown +
                          "--- real\n" + r.out + r.err);
}

const std::map<std::string, Checker>& checkers() {
  static const std::map<std::string, Checker> m = {
      {"medic:trust",
       [](const std::string& text, const std::string& name) {
         return fabric::TrustStore::parse(text, name).status();
       }},
      {"medic:engine",
       [](const std::string& text, const std::string& name) {
         return load_as_file(text, name, [](const std::string& path) {
           return node::load_engine_config(path).status();
         });
       }},
      {"medic:agent",
       [](const std::string& text, const std::string& name) {
         // A block may show one half of an agent (a collector alone).
         const bool collector = text.find("\ncollector:") != std::string::npos;
         const bool actuator = text.find("\nactuator:") != std::string::npos;
         return load_as_file(text, name, [&](const std::string& path) {
           return node::load_agent_config(path, collector, actuator).status();
         });
       }},
      {"medic:bridge",
       [](const std::string& text, const std::string& name) {
         // The token file a bridge block names must exist: it is read at load.
         return load_as_file(text, name, [](const std::string& path) {
           const auto dir = std::filesystem::path(path).parent_path();
           std::ofstream(dir / "alerts.token") << "a-token\n";
           return node::load_bridge_config(path).status();
         });
       }},
      {"medic:transcript", check_transcript},
      {"medic:rules",
       [](const std::string& text, const std::string& name) -> Status {
         auto loaded = rules::load_rule_text(text, name);
         if (loaded.ok()) return {};
         std::string all;
         for (const auto& m : loaded.messages) all += m.to_string() + "\n";
         return invalid_argument(all);
       }},
  };
  return m;
}

TEST(Docs, EveryTaggedYamlBlockLoads) {
  int checked = 0;
  for (const auto& f : doc_files()) {
    for (const auto& b : fenced_blocks(f)) {
      auto pos = b.info.find("medic:");
      if (pos == std::string::npos || b.info == "console medic:walkthrough") continue;
      std::string kind = b.info.substr(pos);
      auto it = checkers().find(kind);
      ASSERT_NE(it, checkers().end()) << b.file << ":" << b.line << ": no checker for " << kind;
      // Blank lines in front keep the loader's line numbers those of the file.
      Status s = it->second(std::string(b.line, '\n') + b.text, b.file);
      EXPECT_OK(s) << s;
      ++checked;
    }
  }
  EXPECT_GT(checked, 0) << "no tagged blocks found: is the docs tree there?";
}

// Every image a doc shows and every file it links to relatively is in the
// tree (the plots of docs/PERFORMANCE.md, the docs' links to each other).
TEST(Docs, EveryImageAndRelativeLinkNamesAFileThatExists) {
  const std::regex link(R"(\[[^\]]*\]\(([^)#\s]+)(#[^)\s]*)?\))");
  int images = 0, links = 0;
  for (const auto& f : doc_files()) {
    std::ifstream in(f);
    std::string line;
    for (int n = 1; std::getline(in, line); ++n) {
      for (std::sregex_iterator m(line.begin(), line.end(), link), end; m != end; ++m) {
        const std::string target = (*m)[1];
        if (target.find("://") != std::string::npos || target.rfind("mailto:", 0) == 0) continue;
        const auto at = static_cast<size_t>(m->position());
        (at > 0 && line[at - 1] == '!' ? images : links)++;
        const auto path = std::filesystem::path(f).parent_path() / target;
        EXPECT_TRUE(std::filesystem::exists(path)) << f << ":" << n << ": " << target;
      }
    }
  }
  EXPECT_GT(images, 0) << "no images found: the plots of docs/PERFORMANCE.md?";
  EXPECT_GT(links, 0);
}

TEST(Docs, EveryMedicCommandShownNamesARealSubcommand) {
  int checked = 0;
  for (const auto& f : doc_files()) {
    for (const auto& b : fenced_blocks(f)) {
      if (b.info != "sh" && b.info != "console") continue;
      std::istringstream lines(b.text);
      std::string line;
      while (std::getline(lines, line)) {
        if (line.rfind("$ ", 0) == 0) line = line.substr(2);
        if (line.rfind("medic ", 0) != 0) continue;
        // The subcommand path: words up to the first option or argument.
        std::istringstream words(line);
        std::vector<std::string> argv{testing::medic_binary()};
        std::string w;
        words >> w;  // "medic"
        while (words >> w && !w.empty() && w[0] != '-' && w[0] != '#' &&
               w.find_first_of("/.=<[$") == std::string::npos && !std::isdigit(w[0])) {
          argv.push_back(w);
        }
        // Trailing words that are arguments (an action id, a file) are not
        // subcommands: walk back until --help succeeds, but require at least
        // the first subcommand to exist.
        bool ok = false;
        while (argv.size() >= 2 && !ok) {
          std::vector<std::string> cmd = argv;
          cmd.push_back("--help");
          ok = testing::run_command(cmd).exit_code == 0;
          if (!ok) argv.pop_back();
        }
        EXPECT_TRUE(ok) << b.file << ":" << b.line << ": " << line;
        ++checked;
      }
    }
  }
  EXPECT_GT(checked, 0);
}


// ---- walkthroughs

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size())) {
    s.replace(at, from.size(), to);
  }
  return s;
}

// A line with every word that holds a digit (a number, a time, an action or
// VM id, a key) replaced by '#', and every uuid by one '#' (a random uuid's
// parts may hold no digit): what a walkthrough's output is compared by.
std::string shape(const std::string& text) {
  static const std::regex kUuid(
      "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}");
  const std::string line = std::regex_replace(text, kUuid, "0");
  std::string out, word;
  auto flush = [&] {
    out += word.find_first_of("0123456789") == std::string::npos ? word : "#";
    word.clear();
  };
  for (char c : line) {
    if (std::isalnum(static_cast<unsigned char>(c))) {
      word += c;
    } else {
      flush();
      out += c;
    }
  }
  flush();
  return out;
}

std::vector<std::string> split_words(const std::string& s) {
  std::istringstream in(s);
  std::vector<std::string> out;
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

struct Step {
  std::string command;
  std::vector<std::string> shown;  // output lines the doc shows ("..." ones left out)
};

std::vector<Step> walkthrough_steps(const Block& b) {
  std::vector<Step> steps;
  std::istringstream lines(b.text);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("$ ", 0) == 0) {
      steps.push_back({line.substr(2), {}});
    } else if (!steps.empty() && !line.empty() && line.find("...") == std::string::npos) {
      steps.back().shown.push_back(line);
    }
  }
  return steps;
}

// The examples' engine and one agent (host-a), on free loopback ports, with
// the variables an operator exports.
class ExampleFleet {
 public:
  explicit ExampleFleet(const std::string& dir) : dir_(dir) {}
  ~ExampleFleet() {
    if (agent_) agent_->terminate();
    if (engine_) engine_->terminate();
  }

  Status start() {
    ::setenv("MEDIC", testing::medic_binary().c_str(), 1);
    auto made = testing::run_command({testing::source_dir() + "/scripts/make-example-keys", dir_},
                                     std::chrono::seconds(30));
    if (made.exit_code != 0) return internal_error("make-example-keys: " + made.err);
    std::string engine = read(dir_ + "/engine.yaml"), agent = read(dir_ + "/agent.yaml");
    engine = replace_all(engine, "tcp://0.0.0.0:", "tcp://127.0.0.1:");
    for (const char* port : {"7701", "7702", "7703", "7704"}) {
      const std::string to = ":" + std::to_string(testing::free_port());
      if (std::string(port) == "7704") control_ = "tcp://127.0.0.1" + to;
      engine = replace_all(engine, std::string(":") + port, to);
      agent = replace_all(agent, std::string(":") + port, to);
    }
    write(dir_ + "/engine.yaml", engine);
    write(dir_ + "/agent.yaml", agent);
    engine_ = std::make_unique<testing::Daemon>(
        std::vector<std::string>{testing::medic_binary(), "engine", "-c", dir_ + "/engine.yaml"},
        dir_ + "/engine.log");
    agent_ = std::make_unique<testing::Daemon>(
        std::vector<std::string>{testing::medic_binary(), "agent", "-c", dir_ + "/agent.yaml"},
        dir_ + "/agent.log");
    MEDIC_RETURN_IF_ERROR(engine_->start());
    MEDIC_RETURN_IF_ERROR(agent_->start());
    // As a user would, wait for the agent's first report before the walk.
    if (!testing::wait_until([&] { return run("medic hosts").out.find("host-a") == 0; },
                             std::chrono::seconds(30))) {
      return unavailable("host-a never reported:\n" + logs());
    }
    return {};
  }

  // `command` through the shell, medic first on PATH, the operator's variables set.
  testing::CommandResult run(const std::string& command) const {
    const std::string bin = std::filesystem::path(testing::medic_binary()).parent_path().string();
    const std::string env = "PATH=" + bin + ":$PATH MEDIC_ENGINE=" + control_ +
                            " MEDIC_KEY=" + dir_ + "/operator.key MEDIC_TRUST=" + dir_ +
                            "/trust.yaml MEDIC_ENGINE_KEY=" + engine_key();
    return testing::run_command({"/bin/sh", "-c", "export " + env + "; " + command},
                                std::chrono::seconds(90));
  }
  std::string logs() const { return read(dir_ + "/engine.log") + read(dir_ + "/agent.log"); }

 private:
  std::string engine_key() const {
    auto t = fabric::TrustStore::load(dir_ + "/trust.yaml");
    return t.ok() ? fabric::key_id(t->find_name("engine-1")->key) : "";
  }
  static std::string read(const std::string& path) {
    std::ifstream in(path);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
  static void write(const std::string& path, const std::string& text) {
    std::ofstream(path) << text;
  }

  std::string dir_;
  std::string control_;
  std::unique_ptr<testing::Daemon> engine_, agent_;
};

// Runs one step; checks that each shown line matches a printed one, and
// learns from the match what the doc's ids stand for in this run (*names).
void check_step(const ExampleFleet& fleet, const Step& step, const std::string& where,
                std::map<std::string, std::string>* names) {
  std::string command = step.command;
  for (const auto& [doc, real] : *names) command = replace_all(command, doc, real);
  auto r = fleet.run(command);
  ASSERT_EQ(r.exit_code, 0) << where << ": " << command << "\n" << r.out << r.err << fleet.logs();
  std::vector<std::string> printed;
  std::istringstream lines(r.out);
  for (std::string l; std::getline(lines, l);) printed.push_back(l);
  for (const auto& shown : step.shown) {
    std::string expect = shown;
    for (const auto& [doc, real] : *names) expect = replace_all(expect, doc, real);
    auto it = std::find_if(printed.begin(), printed.end(),
                           [&](const std::string& p) { return shape(p) == shape(expect); });
    ASSERT_NE(it, printed.end()) << where << ": `" << command << "` printed no line like\n  "
                                 << shown << "\nit printed:\n" << r.out;
    auto doc_words = split_words(expect), real_words = split_words(*it);
    for (size_t i = 0; i < doc_words.size() && i < real_words.size(); ++i) {
      if (doc_words[i] != real_words[i] && doc_words[i].size() >= 8) {
        names->emplace(doc_words[i], real_words[i]);
      }
    }
  }
}

TEST(Docs, EveryWalkthroughRunsAndPrintsWhatItShows) {
  int checked = 0;
  for (const auto& f : doc_files()) {
    for (const auto& b : fenced_blocks(f)) {
      if (b.info != "console medic:walkthrough") continue;
      testing::TempDir tmp;
      const std::string dir = tmp.file("medic-example");
      ExampleFleet fleet(dir);
      ASSERT_OK(fleet.start());
      std::map<std::string, std::string> names = {{"/tmp/medic-example", dir}};
      for (const auto& step : walkthrough_steps(b)) {
        check_step(fleet, step, b.file + ":" + std::to_string(b.line), &names);
        if (HasFatalFailure()) return;
        ++checked;
      }
    }
  }
  EXPECT_GT(checked, 0) << "no walkthrough found";
}

}  // namespace
}  // namespace medic
