// Thin RAII over the sqlite3 C API for this module: a connection, prepared
// statements, and errors turned into Status. Internal to audit/.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "core/action_state.h"
#include "core/status.h"

namespace medic::audit::internal {

class Stmt {
 public:
  Stmt() = default;
  Stmt(sqlite3* db, sqlite3_stmt* s) : db_(db), s_(s) {}
  Stmt(Stmt&& o) noexcept : db_(o.db_), s_(o.s_) { o.s_ = nullptr; }
  Stmt& operator=(Stmt&& o) noexcept;
  ~Stmt();

  Stmt& bind(int i, int64_t v);
  Stmt& bind(int i, std::string_view text);  // TEXT
  Stmt& bind_blob(int i, std::string_view bytes);
  Stmt& bind_blob(int i, const uint8_t* p, size_t n);
  Stmt& bind_null(int i);

  // SQLITE_ROW -> true, SQLITE_DONE -> false; other codes -> error.
  Result<bool> step();
  // Steps to completion (for statements without rows) and resets.
  Status run();
  void reset();

  int64_t i64(int col) const { return sqlite3_column_int64(s_, col); }
  std::string text(int col) const;
  std::string blob(int col) const;
  bool is_null(int col) const { return sqlite3_column_type(s_, col) == SQLITE_NULL; }
  sqlite3_stmt* raw() const { return s_; }

 private:
  sqlite3* db_ = nullptr;
  sqlite3_stmt* s_ = nullptr;
};

class Db {
 public:
  static Result<Db> open(const std::string& path, bool read_only);
  Db() = default;
  Db(Db&& o) noexcept : db_(o.db_) { o.db_ = nullptr; }
  Db& operator=(Db&& o) noexcept;
  ~Db();

  Status exec(const std::string& sql);
  Result<Stmt> prepare(const std::string& sql);
  Status error(const std::string& what) const;
  sqlite3* raw() const { return db_; }

 private:
  explicit Db(sqlite3* db) : db_(db) {}
  sqlite3* db_ = nullptr;
};

// A state or outcome name as read back from the row `seq`. Strict: a name
// medic does not know (a log it did not write, or an edited row) is an error
// naming the row, never a default.
Result<ActionState> stored_state(std::string_view name, int64_t seq);
Result<DecisionOutcome> stored_outcome(std::string_view name, int64_t seq);

}  // namespace medic::audit::internal
