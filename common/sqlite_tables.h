// Small SQLite helpers shared by the stores that keep their own tables next to the inventory
// (auth/, embed/): a prepared statement with bound parameters only, and the create-or-check of a
// versioned set of tables.
#pragma once

#include <sqlite3.h>

#include <string>
#include <string_view>

#include "common/clock.h"
#include "common/status.h"

namespace dc {

/// A prepared statement, finalized on scope exit. Binding indexes start at 1 (SQLite's `?1`),
/// column indexes at 0. Text and blobs are copied when bound (SQLITE_TRANSIENT).
class SqliteStatement {
 public:
  SqliteStatement(sqlite3* db, const char* sql);
  ~SqliteStatement();
  SqliteStatement(const SqliteStatement&) = delete;
  SqliteStatement& operator=(const SqliteStatement&) = delete;

  /// False when the SQL did not compile (sqlite3_errmsg of the connection says why).
  bool ok() const { return rc_ == SQLITE_OK; }
  void text(int i, std::string_view v);
  void blob(int i, std::string_view v);
  void integer(int i, long long v);
  void null(int i);
  /// sqlite3_step: SQLITE_ROW, SQLITE_DONE or an error code.
  int step();
  std::string columnText(int col) const;  // "" for NULL
  std::string columnBlob(int col) const;  // "" for NULL
  long long columnInteger(int col) const;
  bool columnNull(int col) const;

 private:
  sqlite3_stmt* s_ = nullptr;
  int rc_ = SQLITE_ERROR;
};

/// Opens (creating) the SQLite database at `path` (or ":memory:") in serialized mode with a busy
/// timeout in milliseconds. Errors: kUnavailable naming the path. The caller closes it.
Result<sqlite3*> openSqliteConnection(const std::string& path, int busyTimeoutMs);

/// Runs `schema` (idempotent CREATE … IF NOT EXISTS statements that include the table
/// `metaTable (key TEXT PRIMARY KEY, value TEXT)`), then records `version` under the key
/// "schema_version", or checks the recorded one. Errors: kUnavailable when SQLite fails (message
/// names `component`, e.g. "auth"); kInvalidArgument "schema_too_new" when the tables come from a
/// newer Console than this one (it refuses to start rather than misread them).
Status createVersionedTables(sqlite3* db, const char* schema, std::string_view metaTable,
                             long long version, std::string_view component);

/// Times are stored as milliseconds since the Unix epoch (UTC).
inline long long toEpochMs(TimePoint t) {
  return t.time_since_epoch().count();
}
inline TimePoint fromEpochMs(long long ms) {
  return TimePoint(Millis(ms));
}

}  // namespace dc
