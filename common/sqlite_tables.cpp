#include "common/sqlite_tables.h"

namespace dc {

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

}  // namespace dc
