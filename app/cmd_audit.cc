// medic audit list/show/why/verify/export: questions to the audit log.
// Exit codes: 0 answered (verify: the log verifies), 1 the answer is a problem
// (verify: tampered; show/why: no such action), 2 usage or set-up error.
#include <time.h>
#include <yaml-cpp/yaml.h>

#include <cstdlib>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>

#include "app/commands.h"
#include "audit/intents.h"
#include "audit/log.h"
#include "core/duration.h"
#include "fabric/trust.h"

namespace medic::app {
namespace {

std::string default_db() {
  const char* env = std::getenv("MEDIC_AUDIT_DB");
  return env && *env ? env : "medic-audit.db";
}

// "2026-01-01T03:00:00Z", "2026-01-01 03:00:00", "2026-01-01", or a duration
// meaning that long ago ("2h").
Result<Time> parse_when(const std::string& text) {
  struct tm tm = {};
  for (const char* fmt : {"%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S",
                          "%Y-%m-%d %H:%M", "%Y-%m-%d"}) {
    tm = {};
    const char* end = strptime(text.c_str(), fmt, &tm);
    if (end && *end == '\0') return from_ns(static_cast<int64_t>(timegm(&tm)) * 1'000'000'000);
  }
  auto ago = parse_duration(text);
  if (ago.ok()) return SystemClock::wall_now() - *ago;
  return invalid_argument("cannot read time '" + text +
                          "': use 2026-01-01T03:00:00Z (UTC), 2026-01-01, or a duration such as 2h "
                          "meaning that long ago");
}

struct Common {
  std::string db = default_db();
  bool json = false;
};

void add_common(CLI::App* sub, Common* c) {
  sub->add_option("--db", c->db, "audit log file ($MEDIC_AUDIT_DB)")->capture_default_str();
  sub->add_flag("--json", c->json, "machine-readable output");
}

// Opens the log or says why not (exit 2).
std::optional<audit::AuditReader> open_reader(const std::string& cmd, const std::string& db,
                                              int* exit_code) {
  auto r = audit::AuditReader::open(db);
  if (!r.ok()) {
    std::cerr << "medic audit " << cmd << ": " << r.status().message() << "\n";
    *exit_code = 2;
    return std::nullopt;
  }
  return std::move(*r);
}

void add_list(CLI::App* audit, int* exit_code) {
  auto* sub =
      audit->add_subcommand("list", "decisions and where their actions stand, newest first");
  auto c = std::make_shared<Common>();
  auto f = std::make_shared<audit::ListFilter>();
  auto since = std::make_shared<std::string>();
  auto until = std::make_shared<std::string>();
  add_common(sub, c.get());
  sub->add_option("--vm", f->vm, "only this VM");
  sub->add_option("--host", f->host, "only this host");
  sub->add_option("--rule", f->rule, "only this rule");
  sub->add_option("--status", f->status,
                  "a decision outcome (proposed, suppressed, pending_approval, dry_run) or action "
                  "state (dispatched, succeeded, failed, ...)");
  sub->add_option("--since", *since, "from this time (UTC) or this long ago (2h)");
  sub->add_option("--until", *until, "before this time (UTC) or this long ago");
  sub->add_option("--limit", f->limit, "at most this many; 0 for all")->capture_default_str();
  sub->callback([c, f, since, until, exit_code] {
    for (auto [text, out] : {std::pair{since.get(), &f->since}, {until.get(), &f->until}}) {
      if (text->empty()) continue;
      auto t = parse_when(*text);
      if (!t.ok()) {
        std::cerr << "medic audit list: " << t.status().message() << "\n";
        *exit_code = 2;
        return;
      }
      *out = *t;
    }
    auto reader = open_reader("list", c->db, exit_code);
    if (!reader) return;
    auto rows = reader->list(*f);
    if (!rows.ok()) {
      std::cerr << "medic audit list: " << rows.status().message() << "\n";
      *exit_code = 2;
      return;
    }
    std::cout << (c->json ? audit::list_json(*rows) : audit::list_text(*rows));
    *exit_code = 0;
  });
}

void add_show_or_why(CLI::App* audit, bool why, int* exit_code) {
  const char* name = why ? "why" : "show";
  auto* sub = audit->add_subcommand(
      name, why ? "why medic did this: evidence, rule, policies, approval, result, time to heal"
                : "everything the log holds about one action or decision");
  auto c = std::make_shared<Common>();
  auto id = std::make_shared<std::string>();
  add_common(sub, c.get());
  sub->add_option("ID", *id, "action id or decision id")->required();
  sub->callback([c, id, why, name, exit_code] {
    auto reader = open_reader(name, c->db, exit_code);
    if (!reader) return;
    auto h = reader->history(*id);
    if (!h.ok()) {
      std::cerr << "medic audit " << name << ": " << h.status().message() << "\n";
      *exit_code = h.status().code() == Code::kNotFound ? 1 : 2;
      return;
    }
    if (why) {
      std::cout << (c->json ? audit::why_json(*h) : audit::why_text(*h));
    } else {
      std::cout << (c->json ? audit::show_json(*h) : audit::show_text(*h));
    }
    *exit_code = 0;
  });
}

// The engine keys of a trust store file.
Result<std::vector<fabric::PublicKey>> engine_keys(const std::string& path) {
  auto trust = fabric::TrustStore::load(path);
  if (!trust.ok()) return trust.status();
  std::vector<fabric::PublicKey> keys;
  try {
    YAML::Node root = YAML::LoadFile(path);
    for (const auto& node : root["nodes"]) {
      auto k = fabric::public_key_from_hex(node["key"].as<std::string>());
      if (!k.ok()) continue;
      const fabric::TrustedNode* n = trust->find(*k);
      if (n && n->has_role(fabric::Role::kEngine)) keys.push_back(*k);
    }
  } catch (const std::exception& e) {
    return invalid_argument(path + ": " + e.what());
  }
  if (keys.empty()) return invalid_argument(path + " lists no key with the engine role");
  return keys;
}

// An anchor is "SEQ:HASH" (HASH 64 hex digits), given as it is or as the
// path of a file whose first line is one (written by --write-anchor).
std::optional<std::pair<audit::Seq, std::string>> anchor_from_text(const std::string& text) {
  auto colon = text.find(':');
  if (colon == std::string::npos || colon == 0 || text.size() - colon - 1 != 64) return {};
  char* end = nullptr;
  long long seq = std::strtoll(text.c_str(), &end, 10);
  if (end != text.c_str() + colon || seq < 0) return {};
  std::string hash = text.substr(colon + 1);
  if (hash.find_first_not_of("0123456789abcdef") != std::string::npos) return {};
  return std::make_pair(static_cast<audit::Seq>(seq), hash);
}

Result<std::pair<audit::Seq, std::string>> read_anchor(const std::string& arg) {
  if (auto a = anchor_from_text(arg)) return *a;
  std::ifstream in(arg);
  if (!in) {
    return invalid_argument("--anchor wants SEQ:HASH (HASH is 64 hex digits) or a file holding "
                            "one; cannot read " + arg);
  }
  std::string line;
  std::getline(in, line);
  if (auto a = anchor_from_text(line)) return *a;
  return invalid_argument(arg + ":1: expected SEQ:HASH (HASH is 64 hex digits), as written by "
                          "`medic audit verify --write-anchor`");
}

// The engine keys (from --trust and each --key) and the --anchor verify checks against.
Result<audit::VerifyOptions> verify_options(const std::string& trust,
                                            const std::vector<std::string>& keys,
                                            const std::string& anchor) {
  audit::VerifyOptions o;
  if (!trust.empty()) {
    auto k = engine_keys(trust);
    if (!k.ok()) return k.status();
    o.engine_keys = *k;
  }
  for (const auto& hex : keys) {
    auto k = fabric::public_key_from_hex(hex);
    if (!k.ok()) return invalid_argument("--key " + hex + ": " + k.status().message());
    o.engine_keys.push_back(*k);
  }
  if (!anchor.empty()) {
    auto a = read_anchor(anchor);
    if (!a.ok()) return a.status();
    o.anchor = *a;
  }
  return o;
}

// Writes the verified head as SEQ:HASH to `path`; false if it could not.
bool write_anchor_file(const audit::VerifyReport& report, const std::string& path) {
  std::ofstream out(path, std::ios::trunc);
  out << report.head_seq << ":" << report.head_hash << "\n";
  out.close();
  return static_cast<bool>(out);
}

// verify --db postgresql://...: the chain only (no signatures there yet).
void verify_postgres(const Common& c, bool signature_options, int* exit_code) {
  if (signature_options) {
    std::cerr << "medic audit verify: --trust, --key, --anchor and --write-anchor check "
                 "signatures, and a PostgreSQL log has none yet\n";
    *exit_code = 2;
    return;
  }
  auto report = audit::verify_pg_chain(c.db);
  if (!report.ok()) {
    std::cerr << "medic audit verify: " << report.status().message() << "\n";
    *exit_code = 2;
    return;
  }
  std::cout << (c.json ? report->json() + "\n" : report->text());
  *exit_code = report->ok() ? 0 : 1;
}

void add_verify(CLI::App* audit, int* exit_code) {
  auto* sub = audit->add_subcommand(
      "verify", "recompute the hash chain and check every signature; exit 1 if tampered");
  auto c = std::make_shared<Common>();
  auto trust = std::make_shared<std::string>();
  auto keys = std::make_shared<std::vector<std::string>>();
  auto anchor = std::make_shared<std::string>();
  add_common(sub, c.get());
  sub->add_option("--trust", *trust, "trust store: checkpoints must be signed by an engine key");
  sub->add_option("--key", *keys, "an engine key id (64 hex digits) to trust; repeatable");
  auto write_anchor = std::make_shared<std::string>();
  sub->add_option("--anchor", *anchor,
                  "SEQ:HASH of a head kept elsewhere (printed by an earlier verify), or a file "
                  "written by --write-anchor; the log must still contain it");
  sub->add_option("--write-anchor", *write_anchor,
                  "when the log verifies, write its signed head as SEQ:HASH to this file; keep "
                  "it off this host and pass it to --anchor later");
  sub->callback([c, trust, keys, anchor, write_anchor, exit_code] {
    if (audit::is_postgres_url(c->db)) {
      bool signatures = !trust->empty() || !keys->empty() || !anchor->empty() ||
                        !write_anchor->empty();
      return verify_postgres(*c, signatures, exit_code);
    }
    auto o = verify_options(*trust, *keys, *anchor);
    if (!o.ok()) {
      std::cerr << "medic audit verify: " << o.status().message() << "\n";
      *exit_code = 2;
      return;
    }
    auto report = audit::verify_log(c->db, *o);
    if (!report.ok()) {
      std::cerr << "medic audit verify: " << report.status().message() << "\n";
      *exit_code = 2;
      return;
    }
    std::cout << (c->json ? report->json() + "\n" : report->text());
    *exit_code = report->ok ? 0 : 1;
    if (report->ok && !write_anchor->empty() && !write_anchor_file(*report, *write_anchor)) {
      std::cerr << "medic audit verify: cannot write the anchor to " << *write_anchor << "\n";
      *exit_code = 2;
    }
  });
}

void add_export(CLI::App* audit, int* exit_code) {
  auto* sub = audit->add_subcommand("export", "every row in chain order, one JSON object a line");
  auto c = std::make_shared<Common>();
  auto format = std::make_shared<std::string>("jsonl");
  auto output = std::make_shared<std::string>();
  sub->add_option("--db", c->db, "audit log file ($MEDIC_AUDIT_DB)")->capture_default_str();
  sub->add_option("--format", *format, "jsonl (the only format)")->capture_default_str();
  sub->add_option("-o,--output", *output, "write to this file instead of stdout");
  sub->callback([c, format, output, exit_code] {
    if (*format != "jsonl") {
      std::cerr << "medic audit export: unknown format '" << *format << "' (use jsonl)\n";
      *exit_code = 2;
      return;
    }
    auto reader = open_reader("export", c->db, exit_code);
    if (!reader) return;
    std::ofstream file;
    if (!output->empty()) {
      file.open(*output, std::ios::trunc);
      if (!file) {
        std::cerr << "medic audit export: cannot write " << *output << "\n";
        *exit_code = 2;
        return;
      }
    }
    std::ostream& out = output->empty() ? std::cout : file;
    Status s = reader->export_jsonl([&out](const std::string& line) { out << line << '\n'; });
    out.flush();
    if (!s.ok() || !out) {
      std::cerr << "medic audit export: " << (s.ok() ? "write failed" : s.message()) << "\n";
      *exit_code = 2;
      return;
    }
    *exit_code = 0;
  });
}

}  // namespace

void add_audit(CLI::App& app, int* exit_code) {
  auto* audit = app.add_subcommand("audit", "query and verify the audit log");
  audit->require_subcommand(1);
  add_list(audit, exit_code);
  add_show_or_why(audit, false, exit_code);
  add_show_or_why(audit, true, exit_code);
  add_verify(audit, exit_code);
  add_export(audit, exit_code);
}

}  // namespace medic::app
