// The docs cannot rot: every fenced block that shows a medic file or command
// is checked against the real code.
//
//   ```yaml medic:trust      parsed as a trust store
//   ```yaml medic:engine     loaded as engine.yaml (node::load_engine_config)
//   ```yaml medic:agent      loaded as agent.yaml (node::load_agent_config)
//   ```yaml medic:rules      loaded as a rule file (rules::load_rule_text)
//   ```sh                    every line starting with "medic " names a real
//                            subcommand: `medic <subcommand...> --help` exits 0
//   ```console medic:transcript
//                            a terminal session: each "$ COMMAND" line runs in
//                            the source tree (medic is the built binary, stderr
//                            goes with stdout) and what it prints must be the
//                            lines under it, exactly
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>

#include "node/agent_node.h"
#include "node/engine_node.h"
#include "fabric/trust.h"
#include "rules/loader.h"
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
      if (pos == std::string::npos) continue;
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

}  // namespace
}  // namespace medic
