// verify_pg_chain (audit/intents.h): the PostgreSQL audit chain recomputed
// from row 1 with the same encoding as SQLite's.
#include <map>

#include "audit/chain.h"
#include "audit/intents.h"
#include "audit/pg_connection.h"
#include "core/json.h"
#include "fabric/identity.h"

namespace medic::audit {
namespace {

using internal::Hash;
using internal::Table;
using internal::TableSpec;

struct LoadedRow {
  Table table = Table::kEvidence;
  std::vector<int64_t> ints;      // per column; unused for texts
  std::vector<std::string> texts;  // per column; unused for ints
  std::string prev_hash, hash;
};

std::string select_sql(const TableSpec& spec) {
  std::string sql = "SELECT seq";
  for (const auto& c : spec.columns) sql += ", " + std::string(c.name);
  return sql + ", prev_hash, hash FROM audit_" + spec.name + " WHERE chain = $1 ORDER BY seq";
}

std::string blob(const pqxx::field& f) { return pqxx::binarystring(f).str(); }

void load_table(pqxx::work& tx, const std::string& chain, const TableSpec& spec,
                std::map<Seq, LoadedRow>* rows) {
  for (const auto& r : tx.exec_params(select_sql(spec), chain)) {
    LoadedRow row;
    row.table = spec.id;
    const size_t n = spec.columns.size();
    row.ints.resize(n);
    row.texts.resize(n);
    for (size_t i = 0; i < n; ++i) {
      const auto& f = r[static_cast<int>(i + 1)];
      if (spec.columns[i].is_int) {
        row.ints[i] = f.as<int64_t>();
      } else {
        row.texts[i] = spec.columns[i].is_blob ? blob(f) : f.as<std::string>();
      }
    }
    row.prev_hash = blob(r[static_cast<int>(n + 1)]);
    row.hash = blob(r[static_cast<int>(n + 2)]);
    (*rows)[r[0].as<int64_t>()] = std::move(row);
  }
}

// Empty when `row` at `seq` follows `prev`; else what is wrong with it.
std::string check_row(Seq seq, const LoadedRow& row, const Hash& prev, Hash* hash) {
  const TableSpec& spec = internal::table_spec(row.table);
  if (row.prev_hash != internal::bytes(prev)) {
    return std::string("its prev_hash is not the hash of row ") + std::to_string(seq - 1);
  }
  std::vector<internal::Value> values;
  for (size_t i = 0; i < spec.columns.size(); ++i) {
    values.push_back(spec.columns[i].is_int ? internal::Value::of(row.ints[i])
                                            : internal::Value::of(row.texts[i]));
  }
  std::string encoded;
  internal::encode_row(row.table, seq, values, &encoded);
  *hash = internal::row_hash(prev, encoded);
  if (row.hash != internal::bytes(*hash)) {
    return std::string("its content does not match its hash (") + spec.name + " edited)";
  }
  return "";
}

bool signature_holds(std::string_view signer, std::string_view signature, const std::string& msg) {
  if (signer.size() != 32 || signature.size() != 64) return false;
  fabric::PublicKey pk{};
  std::copy(signer.begin(), signer.end(), pk.begin());
  return fabric::verify_signature(pk, reinterpret_cast<const uint8_t*>(msg.data()), msg.size(),
                                  reinterpret_cast<const uint8_t*>(signature.data()));
}

// Empty when checkpoint `row` at `seq` is signed by `signer` over the row before it.
std::string check_checkpoint(Seq seq, const LoadedRow& row, const Hash& prev,
                             std::string_view signer) {
  // Columns: at_ns, covers, covers_hash, signer, signature.
  if (row.ints[1] != seq - 1 || row.texts[2] != internal::bytes(prev)) {
    return "checkpoint does not cover the row before it";
  }
  if (row.texts[3] != signer) return "checkpoint signed by a key other than the chain's";
  std::string msg = internal::checkpoint_signing_input(seq - 1, prev, row.ints[0]);
  if (!signature_holds(row.texts[3], row.texts[4], msg))
    return "checkpoint signature does not verify";
  return "";
}

// A chain's head row as stored.
struct HeadRow {
  Seq seq = 0;
  std::string hash, signer, signature;
  int64_t at_ns = 0;
};

// Walks one chain's rows into *report; false at its first bad row.
bool walk(const std::string& chain, const std::map<Seq, LoadedRow>& rows, const HeadRow& head,
          PgChainReport* report) {
  auto bad = [&](Seq seq, std::string problem) {
    report->bad_chain = chain;
    report->first_bad = seq;
    report->problem = std::move(problem);
    return false;
  };
  const bool is_signed = !head.signature.empty();
  Hash prev{};
  Seq expected = 1;
  for (const auto& [seq, row] : rows) {
    if (seq != expected) return bad(expected, "row " + std::to_string(expected) + " is missing");
    Hash hash{};
    std::string problem = check_row(seq, row, prev, &hash);
    if (problem.empty() && row.table == Table::kCheckpoints && is_signed) {
      problem = check_checkpoint(seq, row, prev, head.signer);
    }
    if (!problem.empty()) return bad(seq, problem);
    prev = hash;
    ++report->rows;
    ++expected;
  }
  const Seq last = expected - 1;
  if (head.seq != last || head.hash != internal::bytes(prev)) {
    return bad(std::min<Seq>(head.seq, last) + 1,
               "the chain's head names row " + std::to_string(head.seq) + " but the chain has " +
                   std::to_string(last) + " rows ending elsewhere");
  }
  if (is_signed) {
    if (!signature_holds(head.signer, head.signature,
                         internal::head_signing_input(head.seq, prev, head.at_ns))) {
      return bad(last + 1, "the chain's signed head does not verify");
    }
    ++report->signed_heads;
  }
  return true;
}

}  // namespace

bool is_postgres_url(const std::string& storage) {
  return storage.rfind("postgresql://", 0) == 0 || storage.rfind("postgres://", 0) == 0;
}

std::string PgChainReport::text() const {
  std::string s;
  if (ok()) {
    s += "OK: the audit log verifies.\n";
  } else {
    s += "TAMPERED: the audit log does not verify.\n";
    s += "  chain:         " + bad_chain + "\n";
    s += "  first bad row: " + std::to_string(first_bad) + "\n";
    s += "  problem:       " + problem + "\n";
  }
  s += "  chains:        " + std::to_string(chains) + " (" + std::to_string(signed_heads) +
       " with a signed head)\n";
  s += "  rows checked:  " + std::to_string(rows) + "\n";
  if (signed_heads < chains) {
    s += "  note: a chain without a signed head shows rows edited, reordered or removed, not a "
         "chain cut off by someone who can write the database\n";
  }
  return s;
}

std::string PgChainReport::json() const {
  Json j = {{"ok", ok()},
            {"chains", chains},
            {"rows", rows},
            {"signed_heads", signed_heads},
            {"signed", chains > 0 && signed_heads == chains}};
  if (!ok()) {
    j["chain"] = bad_chain;
    j["first_bad"] = first_bad;
    j["problem"] = problem;
  }
  return dump_json(j);
}

Result<PgChainReport> verify_pg_chain(const std::string& url) {
  internal::PgConnection db(url, std::chrono::minutes(10));
  PgChainReport report;
  MEDIC_RETURN_IF_ERROR(db.transact([&](pqxx::work& tx) {
    tx.exec("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ");
    if (!tx.exec1("SELECT to_regclass('medic_chain') IS NOT NULL")[0].as<bool>()) {
      return not_found("no medic audit chain in this database");
    }
    report = {};
    for (const auto& h : tx.exec(
             "SELECT chain, seq, hash, signer, signature, at_ns FROM medic_chain ORDER BY chain")) {
      const std::string chain = h[0].as<std::string>();
      std::map<Seq, LoadedRow> rows;
      for (const TableSpec& spec : internal::tables()) load_table(tx, chain, spec, &rows);
      HeadRow head{h[1].as<int64_t>(), blob(h[2]), blob(h[3]), blob(h[4]), h[5].as<int64_t>()};
      ++report.chains;
      if (!walk(chain, rows, head, &report)) break;
    }
    return Status{};
  }));
  return report;
}

}  // namespace medic::audit
