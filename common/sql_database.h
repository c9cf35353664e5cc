// One small SQL interface for the stores that keep a few tables of their own (users and
// credentials, issued App IDs and image entrypoints, saved views, fleet history, the audit log,
// registry credentials), so that each is written once and runs on both backends: the embedded
// SQLite default and PostgreSQL (docs/operations.md "PostgreSQL").
//
// Statements use PostgreSQL's positional parameters `$1`, `$2`, … on both backends (SQLite reads
// `$1` as a named parameter, bound here by name). Values are always bound, never spliced into the
// SQL. Portable SQL only: `INSERT … ON CONFLICT … DO UPDATE`, `RETURNING`, `LIMIT … OFFSET …`;
// where the dialects differ (DDL, auto-increment keys, blob types) a migration gives both texts.
//
// The inventory itself (inventory/store.h) has its own, faster implementations per backend.
#pragma once

#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "common/status.h"

namespace dc::sql {

/// Raw bytes (salts, hashes, sealed secrets): SQLite BLOB, PostgreSQL BYTEA.
struct Blob {
  std::string bytes;
};

/// A bound value: NULL, a 64-bit integer, UTF-8 text or bytes.
using Value = std::variant<std::nullptr_t, long long, std::string, Blob>;

/// One result row; column indexes start at 0. Each column is held as text (integers in decimal,
/// blobs as their raw bytes), or nullopt for NULL.
class Row {
 public:
  explicit Row(std::vector<std::optional<std::string>> columns) : columns_(std::move(columns)) {}
  size_t size() const { return columns_.size(); }
  bool null(size_t col) const { return !columns_.at(col).has_value(); }
  /// The column as text, "" for NULL.
  const std::string& text(size_t col) const;
  /// The column as raw bytes (BLOB/BYTEA), "" for NULL.
  const std::string& blob(size_t col) const { return text(col); }
  /// The column as an integer, 0 for NULL or when it is not one.
  long long integer(size_t col) const;

 private:
  std::vector<std::optional<std::string>> columns_;
};

using Rows = std::vector<Row>;

enum class Backend { kSqlite, kPostgres };

/// One schema version of a store's tables. `sqlite` and `postgres` are the DDL for each backend
/// (several statements separated by ';'); an empty `postgres` means the same text as `sqlite`.
struct Migration {
  int version = 0;
  std::string sqlite;
  std::string postgres;
};

/// A connection (SQLite) or a pool of connections (PostgreSQL) to one database.
///
/// Thread-safety: every method may be called from any thread. A transaction holds its connection
/// for its whole body; statements outside a transaction each take one for themselves.
/// Errors: kUnavailable "storage_unavailable" (message names the store's `component` and what
/// failed) when the database refuses or cannot be reached; kConflict "constraint_violation" when a
/// statement breaks a constraint (UNIQUE, PRIMARY KEY, NOT NULL, …); kInternal for SQL that
/// does not compile or a parameter count that does not match (a bug).
class Database {
 public:
  virtual ~Database() = default;
  virtual Backend backend() const = 0;

  /// Runs one statement with `$1…$n` bound to `params` (in order) and returns its rows (empty
  /// for statements without a result).
  virtual Result<Rows> run(std::string_view sql, std::span<const Value> params) = 0;
  Result<Rows> run(std::string_view sql, std::initializer_list<Value> params = {}) {
    return run(sql, std::span<const Value>(params.begin(), params.size()));
  }

  /// Runs `body` in one transaction on one connection, given a Database bound to it: committed
  /// when `body` succeeds, rolled back when it returns an error (which is returned) or throws.
  virtual Status transaction(const std::function<Status(Database&)>& body) = 0;

  /// Brings the tables of `component` (e.g. "auth") to the newest of `steps` (ascending
  /// versions), each step in its own transaction, and records the version. SQLite keeps the
  /// record in `<component>_meta` under "schema_version" (the layout of earlier Consoles);
  /// PostgreSQL in `schema_migrations (component, version)`, applied under a transaction-scoped
  /// advisory lock so that replicas starting together apply each step once.
  /// Errors: kInvalidArgument "schema_too_new" when the database holds a newer version than
  /// `steps` knows (the Console refuses to start rather than misread it); kUnavailable.
  virtual Status migrate(std::string_view component, std::span<const Migration> steps) = 0;
};

/// True when `target` names a PostgreSQL database (`postgresql://…` or `postgres://…`).
bool isPostgresUrl(std::string_view target);

/// Opens the database `target` names: a `postgresql://user@host:port/db` URL (libpq's URI form;
/// `poolSize` connections, opened lazily) or a SQLite file path (":memory:" for a private one;
/// created when missing; `busyTimeoutMs` waits on a locked file). `component` names the store
/// in error messages. Errors: kUnavailable naming the path or the host and database (never the
/// password).
Result<std::unique_ptr<Database>> openDatabase(const std::string& target,
                                               std::string_view component, int poolSize = 4,
                                               int busyTimeoutMs = 5000);

}  // namespace dc::sql
