#include "audit/pg_chain.h"

namespace medic::audit::internal {
namespace {

std::string insert_sql(const TableSpec& spec) {
  std::string sql = "INSERT INTO audit_" + std::string(spec.name) + " (chain, seq";
  for (const ColumnSpec& c : spec.columns) sql += ", " + std::string(c.name);
  sql += ", prev_hash, hash) VALUES ($1, $2";
  const size_t n = spec.columns.size() + 4;
  for (size_t i = 3; i <= n; ++i) sql += ", $" + std::to_string(i);
  return sql + ")";
}

}  // namespace

std::string bytea_text(std::string_view bytes) { return "\\x" + hex(bytes); }

Status insert_chained_row(pqxx::work& tx, const std::string& chain, Table t, Seq seq,
                          const std::vector<Value>& values, const Hash& prev, const Hash& hash) {
  const TableSpec& spec = table_spec(t);
  if (values.size() != spec.columns.size()) {
    return internal_error(std::string("wrong number of values for ") + spec.name);
  }
  std::vector<std::string> params = {chain, std::to_string(seq)};
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
  params.push_back(bytea_text(bytes(prev)));
  params.push_back(bytea_text(bytes(hash)));
  tx.exec_params(insert_sql(spec), pqxx::prepare::make_dynamic_params(params));
  return {};
}

std::pair<Seq, Hash> lock_chain(pqxx::work& tx, const std::string& chain) {
  tx.exec_params("INSERT INTO medic_chain (chain) VALUES ($1) ON CONFLICT DO NOTHING", chain);
  pqxx::row head =
      tx.exec_params1("SELECT seq, hash FROM medic_chain WHERE chain = $1 FOR UPDATE", chain);
  Hash hash{};
  if (!to_hash(pqxx::binarystring(head[1]).str(), &hash)) hash = {};
  return {head[0].as<int64_t>(), hash};
}

PgChainAppender::PgChainAppender(pqxx::work& tx, std::string chain)
    : tx_(tx), chain_(std::move(chain)) {
  std::tie(seq_, hash_) = lock_chain(tx_, chain_);
}

Result<Seq> PgChainAppender::append(Table t, const std::vector<Value>& values) {
  const Seq seq = seq_ + 1;
  encoded_.clear();
  encode_row(t, seq, values, &encoded_);
  const Hash hash = row_hash(hash_, encoded_);
  MEDIC_RETURN_IF_ERROR(insert_chained_row(tx_, chain_, t, seq, values, hash_, hash));
  seq_ = seq;
  hash_ = hash;
  return seq;
}

void PgChainAppender::finish() {
  tx_.exec_params("UPDATE medic_chain SET seq = $1, hash = $2::bytea WHERE chain = $3", seq_,
                  bytea_text(bytes(hash_)), chain_);
}

}  // namespace medic::audit::internal
