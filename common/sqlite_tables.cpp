#include "common/sqlite_tables.h"

namespace dc {

SqliteStatement::SqliteStatement(sqlite3* db, const char* sql) {
  rc_ = sqlite3_prepare_v2(db, sql, -1, &s_, nullptr);
}

SqliteStatement::~SqliteStatement() {
  sqlite3_finalize(s_);
}

void SqliteStatement::text(int i, std::string_view v) {
  sqlite3_bind_text(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
}

void SqliteStatement::blob(int i, std::string_view v) {
  sqlite3_bind_blob(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
}

void SqliteStatement::integer(int i, long long v) {
  sqlite3_bind_int64(s_, i, v);
}

void SqliteStatement::null(int i) {
  sqlite3_bind_null(s_, i);
}

int SqliteStatement::step() {
  return sqlite3_step(s_);
}

std::string SqliteStatement::columnText(int col) const {
  const auto* p = sqlite3_column_text(s_, col);
  return p ? std::string(reinterpret_cast<const char*>(p),
                         static_cast<size_t>(sqlite3_column_bytes(s_, col)))
           : std::string();
}

std::string SqliteStatement::columnBlob(int col) const {
  const auto* p = sqlite3_column_blob(s_, col);
  return p ? std::string(static_cast<const char*>(p),
                         static_cast<size_t>(sqlite3_column_bytes(s_, col)))
           : std::string();
}

long long SqliteStatement::columnInteger(int col) const {
  return sqlite3_column_int64(s_, col);
}

bool SqliteStatement::columnNull(int col) const {
  return sqlite3_column_type(s_, col) == SQLITE_NULL;
}

Result<sqlite3*> openSqliteConnection(const std::string& path, int busyTimeoutMs) {
  sqlite3* db = nullptr;
  const int rc =
      sqlite3_open_v2(path.c_str(), &db,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = db ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close(db);
    return Error::unavailable("cannot open " + path + ": " + msg);
  }
  sqlite3_busy_timeout(db, busyTimeoutMs);
  return db;
}

Status createVersionedTables(sqlite3* db, const char* schema, std::string_view metaTable,
                             long long version, std::string_view component) {
  const std::string who(component);
  auto failure = [&](const std::string& what) {
    return Error::unavailable(who + " store: " + what + ": " + sqlite3_errmsg(db));
  };
  char* msg = nullptr;
  if (sqlite3_exec(db, schema, nullptr, nullptr, &msg) != SQLITE_OK) {
    std::string m = msg ? msg : "unknown error";
    sqlite3_free(msg);
    return Error::unavailable("cannot create " + who + " tables: " + m);
  }
  const std::string table(metaTable);
  SqliteStatement get(db, ("SELECT value FROM " + table + " WHERE key = 'schema_version'").c_str());
  if (!get.ok()) return failure("read schema version");
  if (get.step() == SQLITE_ROW) {
    long long stored = 0;
    try {
      stored = std::stoll(get.columnText(0));
    } catch (const std::exception&) {
      return Error::unavailable(who + " store: unreadable schema version '" + get.columnText(0) +
                                "'");
    }
    if (stored > version)
      return Error::invalid("schema_too_new", "",
                            "the " + who + " tables have schema version " + std::to_string(stored) +
                                "; this Console knows up to " + std::to_string(version));
    return Status::success();
  }
  SqliteStatement put(
      db, ("INSERT INTO " + table + " (key, value) VALUES ('schema_version', ?1)").c_str());
  if (!put.ok()) return failure("write schema version");
  put.text(1, std::to_string(version));
  if (put.step() != SQLITE_DONE) return failure("write schema version");
  return Status::success();
}

}  // namespace dc
