// SQLite backend of EmbedStore: its own tables in the Console's database file (created with
// CREATE TABLE IF NOT EXISTS on open) and its own schema-version row in `embed_meta`. Bound
// parameters only. WAL mode is the main store's business; this connection only sets a busy
// timeout. Thread-safe: one connection guarded by a mutex (the embed flow is low-rate).
#pragma once

#include <memory>
#include <string>

#include "embed/store.h"

namespace dc::embed {

/// Schema version of the embed tables written by this build.
inline constexpr int kEmbedSchemaVersion = 1;

/// Opens `path` (a database file, created if missing, or ":memory:") and creates the embed
/// tables. Errors: kUnavailable when the file cannot be opened or written; kInvalidArgument
/// "schema_too_new" when the embed tables were written by a newer Console.
Result<std::unique_ptr<EmbedStore>> openSqliteEmbedStore(const std::string& path,
                                                         int busyTimeoutMs = 5000);

}  // namespace dc::embed
