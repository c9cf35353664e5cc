// EmbedStore on sql::Database (SQLite or PostgreSQL): its own tables (embed_app_ids,
// embed_image_entrypoints) and its own schema version (`embed_meta` on SQLite, as earlier
// Consoles wrote it; schema_migrations on PostgreSQL). Bound parameters only. Thread-safe (the
// Database is). Several stores on one database (replicas) see each other's writes at once: every
// call reads the database, nothing is cached.
#pragma once

#include <memory>

#include "common/sql_database.h"
#include "embed/store.h"

namespace dc::embed {

/// Schema version of the embed tables written by this build.
inline constexpr int kEmbedSchemaVersion = 1;

/// Creates or migrates the embed tables in `db`. Errors: kUnavailable when the database fails;
/// kInvalidArgument "schema_too_new" when the embed tables were written by a newer Console.
Result<std::unique_ptr<EmbedStore>> openEmbedStore(std::shared_ptr<sql::Database> db);

}  // namespace dc::embed
