#include "audit/pg_chain.h"

namespace medic::audit::internal {
namespace {

std::string insert_sql(const TableSpec& spec) {
  std::string sql = "INSERT INTO audit_" + std::string(spec.name) + " (seq";
  for (const ColumnSpec& c : spec.columns) sql += ", " + std::string(c.name);
  sql += ", prev_hash, hash) VALUES ($1";
  const size_t n = spec.columns.size() + 3;
  for (size_t i = 2; i <= n; ++i) sql += ", $" + std::to_string(i);
  return sql + ")";
}

}  // namespace

std::string bytea_text(std::string_view bytes) { return "\\x" + hex(bytes); }

PgChainAppender::PgChainAppender(pqxx::work& tx) : tx_(tx) {
  pqxx::row head = tx_.exec1("SELECT seq, hash FROM medic_chain WHERE id = 1 FOR UPDATE");
  seq_ = head[0].as<int64_t>();
  pqxx::binarystring h(head[1]);
  if (!to_hash(h.str(), &hash_)) hash_ = {};
}

Result<Seq> PgChainAppender::append(Table t, const std::vector<Value>& values) {
  const TableSpec& spec = table_spec(t);
  if (values.size() != spec.columns.size()) {
    return internal_error(std::string("wrong number of values for ") + spec.name);
  }
  const Seq seq = seq_ + 1;
  encoded_.clear();
  encode_row(t, seq, values, &encoded_);
  const Hash hash = row_hash(hash_, encoded_);
  std::vector<std::string> params = {std::to_string(seq)};
  for (size_t i = 0; i < values.size(); ++i) {
    const Value& v = values[i];
    if (v.is_int) {
      params.push_back(std::to_string(v.i));
    } else if (spec.columns[i].is_blob) {
      params.push_back(bytea_text(v.s));
    } else if (v.s.find('\0') != std::string_view::npos) {
      return invalid_argument(std::string(spec.name) + "." + spec.columns[i].name +
                              " holds a NUL byte, which PostgreSQL text cannot store");
    } else {
      params.emplace_back(v.s);
    }
  }
  params.push_back(bytea_text(bytes(hash_)));
  params.push_back(bytea_text(bytes(hash)));
  tx_.exec_params(insert_sql(spec), pqxx::prepare::make_dynamic_params(params));
  seq_ = seq;
  hash_ = hash;
  return seq;
}

void PgChainAppender::finish() {
  tx_.exec_params("UPDATE medic_chain SET seq = $1, hash = $2::bytea WHERE id = 1", seq_,
                  bytea_text(bytes(hash_)));
}

}  // namespace medic::audit::internal
