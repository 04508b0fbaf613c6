#include "audit/chain.h"

#include <sodium.h>

#include <charconv>

#include "core/json.h"

namespace medic::audit::internal {
namespace {

void put_u32(std::string* out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

void put_i64(std::string* out, int64_t v) {
  auto u = static_cast<uint64_t>(v);
  for (int i = 0; i < 8; ++i) out->push_back(static_cast<char>((u >> (8 * i)) & 0xff));
}

// One function a table: its columns between seq and prev_hash, in order.
TableSpec evidence_table() {
  return {Table::kEvidence,
          "evidence",
          {{"received_ns", true},
           {"sender", false, true},
           {"sender_name", false},
           {"kind", true},
           {"host", false},
           {"envelope", false, true}}};
}

TableSpec decisions_table() {
  return {Table::kDecisions,
          "decisions",
          {{"decision_id", false},
           {"at_ns", true},
           {"rule", false},
           {"rule_version", false},
           {"vm", false},
           {"host", false},
           {"verb", false},
           {"ladder_step", true},
           {"outcome", false},
           {"policy", false},
           {"reason", false},
           {"policies_passed", false},
           {"evidence", false},
           {"action_id", false},
           {"expires_ns", true}}};
}

TableSpec transitions_table() {
  return {Table::kTransitions,
          "transitions",
          {{"action_id", false},
           {"at_ns", true},
           {"state", false},
           {"actor", false},
           {"detail", false},
           {"ref", true}}};
}

TableSpec requests_table() {
  return {Table::kRequests,
          "operator_requests",
          {{"received_ns", true},
           {"operator_name", false},
           {"sender", false, true},
           {"verb", false},
           {"target", false},
           {"accepted", true},
           {"detail", false},
           {"envelope", false, true}}};
}

TableSpec checkpoints_table() {
  return {Table::kCheckpoints,
          "checkpoints",
          {{"at_ns", true},
           {"covers", true},
           {"covers_hash", false, true},
           {"signer", false, true},
           {"signature", false, true}}};
}

TableSpec verdicts_table() {
  return {Table::kVerdicts,
          "heal_verdicts",
          {{"action_id", false},
           {"at_ns", true},
           {"healed", true},
           {"detail", false},
           {"next_id", false},
           {"ref", true}}};
}

}  // namespace

const std::vector<TableSpec>& tables() {
  static const std::vector<TableSpec> kTables = {evidence_table(), decisions_table(), transitions_table(), requests_table(), checkpoints_table(), verdicts_table()};
  return kTables;
}

const TableSpec& table_spec(Table t) { return tables()[static_cast<size_t>(t) - 1]; }

std::string schema_sql() {
  std::string sql;
  for (const TableSpec& t : tables()) {
    sql += "CREATE TABLE IF NOT EXISTS ";
    sql += t.name;
    sql += " (seq INTEGER PRIMARY KEY";
    for (const ColumnSpec& c : t.columns) {
      sql += ", ";
      sql += c.name;
      sql += c.is_int ? " INTEGER NOT NULL" : c.is_blob ? " BLOB NOT NULL" : " TEXT NOT NULL";
    }
    sql += ", prev_hash BLOB NOT NULL, hash BLOB NOT NULL);\n";
    // Append-only against mistakes: an UPDATE or DELETE through SQLite fails.
    // Someone editing the file can drop these; the chain catches that.
    for (const char* op : {"UPDATE", "DELETE"}) {
      sql += "CREATE TRIGGER IF NOT EXISTS ";
      sql += t.name;
      sql += std::string("_no_") + op + " BEFORE " + op + " ON " + t.name +
             " BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;\n";
    }
  }
  sql +=
      "CREATE INDEX IF NOT EXISTS decisions_action ON decisions(action_id);\n"
      "CREATE INDEX IF NOT EXISTS decisions_id ON decisions(decision_id);\n"
      "CREATE INDEX IF NOT EXISTS transitions_action ON transitions(action_id, seq);\n"
      "CREATE INDEX IF NOT EXISTS heal_verdicts_action ON heal_verdicts(action_id, seq);\n"
      "CREATE INDEX IF NOT EXISTS heal_verdicts_next ON heal_verdicts(next_id);\n"
      "CREATE TABLE IF NOT EXISTS head (id INTEGER PRIMARY KEY CHECK (id = 1), seq INTEGER NOT "
      "NULL, hash BLOB NOT NULL, at_ns INTEGER NOT NULL, signer BLOB NOT NULL, signature BLOB "
      "NOT NULL);\n"
      "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);\n";
  return sql;
}

void encode_row(Table t, Seq seq, const std::vector<Value>& values, std::string* out) {
  out->push_back(static_cast<char>(t));
  put_i64(out, seq);
  for (const Value& v : values) {
    if (v.is_int) {
      put_i64(out, v.i);
    } else {
      put_u32(out, static_cast<uint32_t>(v.s.size()));
      out->append(v.s);
    }
  }
}

std::vector<Value> decision_values(const Decision& d, DecisionTexts* texts) {
  texts->policies = dump_json(Json(d.policies_passed));
  texts->refs = encode_refs(d.evidence);
  return {Value::of(d.id),          Value::of(to_ns(d.at)),
          Value::of(d.rule),        Value::of(d.rule_version),
          Value::of(d.vm),          Value::of(d.host),
          Value::of(d.verb),        Value::of(int64_t{d.ladder_step}),
          Value::of(outcome_name(d.outcome)), Value::of(d.policy),
          Value::of(d.reason),      Value::of(texts->policies),
          Value::of(texts->refs),   Value::of(d.action_id),
          Value::of(to_ns(d.action_expires_at))};
}

std::vector<Value> transition_values(const Transition& t) {
  return {Value::of(t.action_id), Value::of(to_ns(t.at)), Value::of(state_name(t.state)),
          Value::of(t.actor),     Value::of(t.detail),    Value::of(t.ref)};
}

std::vector<Transition> first_transitions(const Decision& d) {
  std::vector<Transition> out;
  if (d.outcome == DecisionOutcome::kDryRun) return out;
  out.push_back({d.action_id, d.at, ActionState::kProposed, "engine", "", 0});
  if (d.outcome == DecisionOutcome::kPendingApproval) {
    out.push_back({d.action_id, d.at, ActionState::kPendingApproval, "engine",
                   "waiting for an operator approval", 0});
  }
  if (d.outcome == DecisionOutcome::kSuppressed) {
    out.push_back({d.action_id, d.at, ActionState::kSuppressed, "engine",
                   d.policy + (d.reason.empty() ? "" : ": " + d.reason), 0});
  }
  return out;
}

Hash row_hash(const Hash& prev, std::string_view encoded) {
  Hash h;
  crypto_generichash_state st;
  crypto_generichash_init(&st, nullptr, 0, h.size());
  crypto_generichash_update(&st, prev.data(), prev.size());
  crypto_generichash_update(&st, reinterpret_cast<const uint8_t*>(encoded.data()), encoded.size());
  crypto_generichash_final(&st, h.data(), h.size());
  return h;
}

std::string checkpoint_signing_input(Seq covers, const Hash& covers_hash, int64_t at_ns) {
  std::string s = "medic/v1/audit_checkpoint";
  s.push_back('\0');
  put_i64(&s, covers);
  s.append(bytes(covers_hash));
  put_i64(&s, at_ns);
  return s;
}

std::string head_signing_input(Seq seq, const Hash& hash, int64_t at_ns) {
  std::string s = "medic/v1/audit_head";
  s.push_back('\0');
  put_i64(&s, seq);
  s.append(bytes(hash));
  put_i64(&s, at_ns);
  return s;
}

std::string hex(std::string_view b) {
  static const char* kDigits = "0123456789abcdef";
  std::string out;
  out.reserve(b.size() * 2);
  for (unsigned char c : b) {
    out.push_back(kDigits[c >> 4]);
    out.push_back(kDigits[c & 15]);
  }
  return out;
}

bool to_hash(std::string_view s, Hash* out) {
  if (s.size() != out->size()) return false;
  std::copy(s.begin(), s.end(), out->begin());
  return true;
}

std::string encode_refs(const std::vector<EvidenceRef>& refs) {
  std::string out;
  for (const EvidenceRef& r : refs) {
    if (!out.empty()) out.push_back(',');
    out += std::to_string(r.evidence);
    if (r.event_index >= 0) out += ":" + std::to_string(r.event_index);
  }
  return out;
}

bool decode_refs(std::string_view text, std::vector<EvidenceRef>* out) {
  out->clear();
  if (text.empty()) return true;
  for (const std::string& item : split(text, ',')) {
    EvidenceRef r;
    auto colon = item.find(':');
    std::string_view a(item.data(), colon == std::string::npos ? item.size() : colon);
    if (std::from_chars(a.data(), a.data() + a.size(), r.evidence).ec != std::errc()) return false;
    if (colon != std::string::npos) {
      std::string_view b(item.data() + colon + 1, item.size() - colon - 1);
      if (std::from_chars(b.data(), b.data() + b.size(), r.event_index).ec != std::errc()) {
        return false;
      }
    }
    out->push_back(r);
  }
  return true;
}

std::string join(const std::vector<std::string>& items, char sep) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) {
    if (i) out.push_back(sep);
    out += items[i];
  }
  return out;
}

std::vector<std::string> split(std::string_view text, char sep) {
  std::vector<std::string> out;
  if (text.empty()) return out;
  size_t start = 0;
  while (true) {
    size_t p = text.find(sep, start);
    out.emplace_back(text.substr(start, p == std::string_view::npos ? text.npos : p - start));
    if (p == std::string_view::npos) break;
    start = p + 1;
  }
  return out;
}

}  // namespace medic::audit::internal
