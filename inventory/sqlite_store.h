// SQLite implementation of inventory::Store (DESIGN §7): one database file in WAL mode, created
// and migrated on open; bound parameters only.
#pragma once

#include <memory>
#include <string>

#include "inventory/store.h"

namespace dc::inventory {

struct SqliteOptions {
  /// Database file path, or ":memory:" for a private in-memory database (tests).
  std::string path = ":memory:";
  /// Read connections kept open for concurrent readers (file databases only).
  int readConnections = 4;
  /// How long a statement waits for a lock before failing with kUnavailable, in milliseconds.
  int busyTimeoutMs = 5000;
};

/// Opens (creating and migrating as needed) the database. Errors: kUnavailable when the file
/// cannot be opened or written; kInvalidArgument ("schema_too_new") when the database was
/// written by a newer Console whose schema this one does not know.
Result<std::unique_ptr<Store>> openSqliteStore(const SqliteOptions& options);

/// Schema version this build writes.
int sqliteSchemaVersion();

}  // namespace dc::inventory
