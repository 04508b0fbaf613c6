// The chain's on-disk shape and its canonical encoding. Internal to audit/.
//
// Every chained table has `seq INTEGER PRIMARY KEY`, its own columns, then
// `prev_hash` and `hash` (32 bytes each). A row's hash is
//   BLAKE2b-256(prev_hash || u8 table id || i64 seq || columns...)
// with each INTEGER column as a little-endian i64 and each TEXT/BLOB column as
// a u32 length then its bytes, in the column order below. The writer and the
// verifier both encode through encode_row(), so they cannot disagree.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "audit/log.h"

namespace medic::audit::internal {

using Hash = std::array<uint8_t, 32>;

enum class Table : uint8_t {
  kEvidence = 1,
  kDecisions = 2,
  kTransitions = 3,
  kRequests = 4,
  kCheckpoints = 5,
  kVerdicts = 6,  // added after the first logs: a log may lack the table (no rows)
};
constexpr int kTableCount = 6;

struct ColumnSpec {
  const char* name;
  bool is_int;
  bool is_blob = false;  // binary (keys, signatures, envelopes); else TEXT
};

struct TableSpec {
  Table id;
  const char* name;
  std::vector<ColumnSpec> columns;  // between seq and prev_hash
};

// The chained tables, in Table id order.
const std::vector<TableSpec>& tables();
const TableSpec& table_spec(Table t);
std::string schema_sql();

// One column value, borrowed.
struct Value {
  bool is_int = false;
  int64_t i = 0;
  std::string_view s;
  static Value of(int64_t v) { return {true, v, {}}; }
  static Value of(std::string_view v) { return {false, 0, v}; }
};

// A decision's and a transition's column values, in their TableSpec order,
// as every store writes them. The values borrow from the record and from
// *texts, which must outlive them.
struct DecisionTexts {
  std::string policies;  // JSON list of the policies passed
  std::string refs;      // encode_refs(evidence)
};
std::vector<Value> decision_values(const Decision& d, DecisionTexts* texts);
std::vector<Value> transition_values(const Transition& t);
// The transitions appending decision `d` adds after it: `proposed`, then
// `pending_approval` or `suppressed` for those outcomes; none for a dry run.
std::vector<Transition> first_transitions(const Decision& d);

// Appends the canonical encoding of a row (everything after prev_hash) to *out.
void encode_row(Table t, Seq seq, const std::vector<Value>& values, std::string* out);
Hash row_hash(const Hash& prev, std::string_view encoded);

// What a checkpoint / head signature covers.
std::string checkpoint_signing_input(Seq covers, const Hash& covers_hash, int64_t at_ns);
std::string head_signing_input(Seq seq, const Hash& hash, int64_t at_ns);

std::string hex(std::string_view bytes);
inline std::string hex(const Hash& h) {
  return hex(std::string_view(reinterpret_cast<const char*>(h.data()), h.size()));
}
inline std::string_view bytes(const Hash& h) {
  return {reinterpret_cast<const char*>(h.data()), h.size()};
}
// False unless `s` is exactly 32 bytes.
bool to_hash(std::string_view s, Hash* out);

// "12", "12:3" joined by commas; and back.
std::string encode_refs(const std::vector<EvidenceRef>& refs);
bool decode_refs(std::string_view text, std::vector<EvidenceRef>* out);
std::string join(const std::vector<std::string>& items, char sep);
std::vector<std::string> split(std::string_view text, char sep);

}  // namespace medic::audit::internal
