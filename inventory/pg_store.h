// PostgreSQL implementation of inventory::Store (DESIGN §7): the same semantics as the SQLite
// store (inventory/sqlite_store.h), on a database that several Consoles may share. Built on
// common/pg.h: a pool of connections, bound parameters only, the schema through the migration
// runner (component "inventory").
//
// Several writers (Console replicas) may write the same database at once; the concurrent-writer
// rules of Store::write hold in SQL: a registration is one row whichever writer takes it
// (INSERT … ON CONFLICT on the hostname key), `lastSeen` only moves forward, `registered_at` is
// written once.
#pragma once

#include <memory>
#include <string>

#include "common/clock.h"
#include "inventory/store.h"

namespace dc::inventory {

struct PgOptions {
  /// libpq URL, e.g. `postgresql://console@db.example:5432/defenders`.
  std::string url;
  /// Connections kept open (reads and writes share them), 1..64.
  int poolSize = 8;
  /// How long a call waits for a free connection before failing with kUnavailable.
  Millis checkoutTimeout{5000};
};

/// Connects and brings the schema up to date. Errors: kUnavailable ("storage_unavailable") when
/// the server cannot be reached (the message names host, port and database); kInvalidArgument
/// "invalid_database_url"; kInvalidArgument "schema_too_new" when another Console with a newer
/// schema migrated this database.
Result<std::unique_ptr<Store>> openPgStore(const PgOptions& options);

/// Schema version (of component "inventory") this build writes.
int pgSchemaVersion();

}  // namespace dc::inventory
