#include "tests/testing/testing.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <climits>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <stdexcept>
#include <thread>

#include "core/subprocess.h"

namespace medic::testing {

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = std::string(base && *base ? base : "/tmp") + "/medic-test-XXXXXX";
  if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::string TempDir::write(const std::string& name, const std::string& content, int mode) const {
  std::string p = file(name);
  std::filesystem::create_directories(std::filesystem::path(p).parent_path());
  {
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out << content;
  }
  ::chmod(p.c_str(), static_cast<mode_t>(mode));
  return p;
}

std::string medic_binary() {
  const char* b = std::getenv("MEDIC_BINARY");
  return b && *b ? b : MEDIC_DEFAULT_BINARY;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void write_file(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::trunc);
  out << text;
}

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  size_t n = 0;
  for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size())) {
    s.replace(at, from.size(), to);
    ++n;
  }
  EXPECT_GT(n, 0u) << "\"" << from << "\" not found";
  return s;
}

std::string source_dir() {
  const char* s = std::getenv("MEDIC_SOURCE_DIR");
  return s && *s ? s : MEDIC_DEFAULT_SOURCE_DIR;
}

CommandResult run_command(const std::vector<std::string>& argv, std::chrono::milliseconds limit,
                          const std::string& stdin_data) {
  RunOptions o;
  o.timeout = limit;
  o.stdin_data = stdin_data;
  o.search_path = true;
  o.max_output_bytes = 16 << 20;
  CommandResult r;
  auto run = run_process(argv, o);
  if (!run.ok()) {
    r.err = run.status().message();
    return r;
  }
  r.exit_code = run->exit_code;
  r.out = std::move(run->out);
  r.err = std::move(run->err);
  if (run->signal) r.err += "[killed by signal " + std::to_string(run->signal) + "]";
  if (run->timed_out) r.err += "[timed out]";
  return r;
}

bool wait_until(const std::function<bool()>& cond, std::chrono::milliseconds limit) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  auto step = std::chrono::milliseconds(1);
  while (true) {
    if (cond()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return cond();
    std::this_thread::sleep_for(step);  // polling a real condition, bounded
    if (step < std::chrono::milliseconds(50)) step *= 2;
  }
}

int free_port() {
  int s = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(s, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(s);
  return ntohs(a.sin_port);
}

namespace {

std::map<std::string, ChildEntry>& child_entries() {
  static std::map<std::string, ChildEntry> entries;
  return entries;
}

}  // namespace

bool register_child_entry(const char* name, ChildEntry entry) {
  return child_entries().emplace(name, entry).second;
}

ChildEntry child_entry_from_env() {
  const char* name = std::getenv("MEDIC_TEST_CHILD");
  if (!name) return nullptr;
  auto it = child_entries().find(name);
  if (it == child_entries().end()) {
    std::fprintf(stderr, "MEDIC_TEST_CHILD=%s: no such child entry in this test binary\n", name);
    std::_Exit(127);
  }
  return it->second;
}

std::string self_exe() {
  char buf[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : "";
}

}  // namespace medic::testing
