// Small SQLite helpers: opening a connection (common/sql_database.cpp) and the epoch-millisecond
// times the stores on sql::Database keep.
#pragma once

#include <sqlite3.h>

#include <string>
#include <string_view>

#include "common/clock.h"
#include "common/status.h"

namespace dc {

/// Opens (creating) the SQLite database at `path` (or ":memory:") in serialized mode with a busy
/// timeout in milliseconds. Errors: kUnavailable naming the path. The caller closes it.
Result<sqlite3*> openSqliteConnection(const std::string& path, int busyTimeoutMs);

/// Times are stored as milliseconds since the Unix epoch (UTC).
inline long long toEpochMs(TimePoint t) {
  return t.time_since_epoch().count();
}
inline TimePoint fromEpochMs(long long ms) {
  return TimePoint(Millis(ms));
}

}  // namespace dc
