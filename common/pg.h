// A thin RAII layer over libpq for the PostgreSQL stores (DESIGN §7): a connection opened from a
// URL, statements with bound parameters only (text format), a result with typed column getters, a
// transaction guard, a small fixed-size connection pool, and the one migration runner every
// PostgreSQL store uses. Domain code never includes this header: only the stores' .cpp files do.
//
// Errors (all as dc::Error):
// - kUnavailable, code "storage_unavailable": the server cannot be reached, the connection broke,
//   the server is shutting down or out of resources, a lock or serialization conflict (SQLSTATE
//   classes 08, 40, 53, 57 and 55P03), a pool checkout timed out. The caller may retry. Messages
//   name host, port and database, never the password.
// - kConflict, code "constraint_violation": an integrity constraint failed (SQLSTATE class 23);
//   the message names the SQLSTATE, e.g. "(SQLSTATE 23505)" for a unique violation.
// - kInvalidArgument, code "invalid_database_url": the URL does not parse (field "database").
// - kInvalidArgument, code "schema_too_new": runMigrations found a newer schema than it knows.
// - kInternal, code "internal": any other SQL error (a bug: bad SQL, wrong types).
//
// Thread-safety: a Connection, a Rows and a Transaction belong to one thread at a time. A Pool
// may be used from any thread; each Lease is then owned by the thread that acquired it.
//
// A store built on it (inventory/pg_store.cpp is the complete example):
//
//   const std::string_view kSteps[] = {"CREATE TABLE users (name text PRIMARY KEY, ...)"};
//   auto pool = pg::Pool::open({url, 4});                      // Result<unique_ptr<Pool>>
//   auto c = (*pool)->acquire();                               // Result<Pool::Lease>
//   pg::runMigrations(**c, "auth", kSteps);                    // once, at start-up
//   auto tx = pg::Transaction::begin(**c);                     // rolls back unless committed
//   auto r = (*c)->exec("SELECT id, created_at FROM users WHERE name = $1::text",
//                       {pg::text(name)});                    // Result<Rows>
//   if (!r.ok()) return r.error();
//   for (int i = 0; i < r->rows(); ++i) use(r->integer(i, 0), r->epochMs(i, 1));
//   return tx->commit();
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/status.h"

struct pg_conn;
struct pg_result;

namespace dc::pg {

/// One statement parameter in PostgreSQL's text format; std::nullopt is SQL NULL. Parameters are
/// sent apart from the SQL text ($1, $2, … in the statement), never spliced into it. The server
/// infers each parameter's type from its use; cast where it cannot (`$1::bigint`).
using Param = std::optional<std::string>;

inline Param text(std::string_view v) {
  return std::string(v);
}
inline Param integer(long long v) {
  return std::to_string(v);
}
inline Param integer(std::optional<long long> v) {
  return v ? integer(*v) : Param();
}
inline Param boolean(bool v) {
  return std::string(v ? "true" : "false");
}
/// A time as bigint milliseconds since the Unix epoch (UTC), as every store keeps times.
inline Param epochMs(TimePoint t) {
  return integer(static_cast<long long>(t.time_since_epoch().count()));
}
inline Param epochMs(std::optional<TimePoint> t) {
  return t ? epochMs(*t) : Param();
}
inline Param null() {
  return std::nullopt;
}

/// The rows of one statement, freed on scope exit. Row and column indexes start at 0; values
/// are read in text format. Getters on an index out of range or a value that does not parse
/// as asked are bugs (they assert in debug builds and return 0 / "" otherwise).
class Rows {
 public:
  Rows() = default;
  explicit Rows(pg_result* r);
  ~Rows();
  Rows(Rows&& o) noexcept;
  Rows& operator=(Rows&& o) noexcept;
  Rows(const Rows&) = delete;
  Rows& operator=(const Rows&) = delete;

  int rows() const;
  int columns() const;
  /// The type of column `col` as a pg_type OID (e.g. 17 = bytea, 20 = bigint); 0 when unknown.
  unsigned columnType(int col) const;
  bool empty() const { return rows() == 0; }
  /// Rows changed by INSERT/UPDATE/DELETE (PQcmdTuples); 0 for other statements.
  long long affected() const;

  bool isNull(int row, int col) const;
  /// The value as text; "" for NULL.
  std::string text(int row, int col) const;
  /// A view into the result's buffer (valid while this Rows lives); "" for NULL.
  std::string_view view(int row, int col) const;
  /// An integer column (smallint, integer, bigint; count(*)); 0 for NULL.
  long long integer(int row, int col) const;
  std::optional<long long> optInteger(int row, int col) const;
  /// A boolean column ('t' / 'f'); false for NULL.
  bool boolean(int row, int col) const;
  /// A bigint epoch-milliseconds column as a time.
  TimePoint epochMs(int row, int col) const { return TimePoint(Millis(integer(row, col))); }
  std::optional<TimePoint> optEpochMs(int row, int col) const;

 private:
  pg_result* r_ = nullptr;
};

/// One connection to a PostgreSQL server, closed on scope exit.
class Connection {
 public:
  /// Connects to `url` (`postgresql://user[:password]@host:port/db[?param=value…]`, or any
  /// libpq connection string). Defaults that the URL may override: connect_timeout=10 (seconds),
  /// application_name=defender-console. Errors: kInvalidArgument "invalid_database_url";
  /// kUnavailable naming host, port and database (not the password) when the server cannot be
  /// reached or refuses the login.
  static Result<std::unique_ptr<Connection>> open(const std::string& url);

  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  /// Runs one SQL statement with bound parameters ($1 … $n, text format) and returns its rows
  /// (none for statements without a result). Errors as described at the top of this header.
  Result<Rows> exec(std::string_view sql, const std::vector<Param>& params = {});

  /// Runs fixed SQL text of one or more statements without parameters (schema migrations
  /// compiled into the binary). Never pass text that contains values: use exec().
  Status execScript(std::string_view sql);

  /// False once the connection is known to be lost (a statement failed on a broken socket).
  bool healthy() const;
  /// Reads, without blocking, what the server sent while the connection was idle, then answers
  /// healthy(): notices a connection the server closed meanwhile (a restart, an administrator's
  /// pg_terminate_backend) before a statement fails on it. Only between statements.
  bool alive();
  /// True while a transaction is open on this connection (also after a failed statement in it).
  bool inTransaction() const;
  /// Re-establishes a lost connection with the same parameters. Errors: kUnavailable.
  Status reconnect();

  /// "host:port/db" of this connection, for messages (no user name or password).
  const std::string& describe() const { return where_; }
  /// The SQLSTATE of the last failed statement ("" when it had none, e.g. a lost connection),
  /// e.g. "40P01" (deadlock detected) or "40001" (serialization failure): callers may retry the
  /// whole transaction on those.
  const std::string& lastSqlState() const { return lastState_; }

 private:
  Connection(pg_conn* c, std::string where) : c_(c), where_(std::move(where)) {}
  static void onNotice(void* self, const pg_result* r);
  Error errorOf(pg_result* r, std::string_view what);

  pg_conn* c_ = nullptr;
  std::string where_;
  std::string lastState_;
  bool ended_ = false;  // the server announced the end of the session (FATAL)
};

/// BEGIN on creation; COMMIT on commit(); ROLLBACK when destroyed without a successful commit
/// (errors of that ROLLBACK are ignored: a broken connection has rolled back already).
class Transaction {
 public:
  /// Starts a transaction on `conn` (which must outlive the guard). `isolation` is appended to
  /// BEGIN from this fixed set only: "" (the server's default, READ COMMITTED), "REPEATABLE READ"
  /// or "SERIALIZABLE". Errors: as Connection::exec.
  static Result<Transaction> begin(Connection& conn, std::string_view isolation = "");

  Transaction(Transaction&& o) noexcept : conn_(o.conn_) { o.conn_ = nullptr; }
  Transaction& operator=(Transaction&&) = delete;
  Transaction(const Transaction&) = delete;
  ~Transaction();

  /// COMMIT. After it (successful or not) the guard does nothing more. Errors: as exec (a
  /// failed COMMIT means the transaction rolled back).
  Status commit();
  /// ROLLBACK now (idempotent).
  void rollback();

 private:
  explicit Transaction(Connection& c) : conn_(&c) {}
  Connection* conn_;
};

struct PoolOptions {
  /// As for Connection::open.
  std::string url;
  /// Connections kept open, 1..64; all are opened when the pool is created.
  int size = 4;
  /// How long acquire() waits for a free connection before failing with kUnavailable.
  Millis checkoutTimeout{5000};
};

/// A fixed number of connections to one database, lent out one at a time.
class Pool {
 public:
  /// Opens `options.size` connections. Errors: as Connection::open; kInvalidArgument
  /// "invalid_pool_size" when size is outside 1..64.
  static Result<std::unique_ptr<Pool>> open(const PoolOptions& options);
  ~Pool();  // every Lease must have been returned

  /// A connection borrowed from the pool; returned when the Lease is destroyed. A connection
  /// returned inside a transaction is rolled back first.
  class Lease {
   public:
    Lease(Lease&& o) noexcept : pool_(o.pool_), conn_(std::move(o.conn_)) { o.pool_ = nullptr; }
    Lease& operator=(Lease&&) = delete;
    ~Lease();
    Connection& operator*() const { return *conn_; }
    Connection* operator->() const { return conn_.get(); }

   private:
    friend class Pool;
    Lease(Pool* p, std::unique_ptr<Connection> c) : pool_(p), conn_(std::move(c)) {}
    Pool* pool_;
    std::unique_ptr<Connection> conn_;
  };

  /// Blocks until a connection is free (at most checkoutTimeout). A connection found broken or
  /// closed by the server (Connection::alive) is reconnected here first. Errors: kUnavailable on
  /// timeout (message "… no free connection within N ms") or when reconnecting fails (the slot
  /// stays free for the next checkout).
  Result<Lease> acquire();

  int size() const { return size_; }
  /// Connections lent out now.
  int inUse() const;

 private:
  Pool(PoolOptions o) : options_(std::move(o)), size_(options_.size) {}
  void giveBack(std::unique_ptr<Connection> c);

  PoolOptions options_;
  int size_;
  mutable std::mutex mutex_;
  std::condition_variable freed_;
  std::vector<std::unique_ptr<Connection>> free_;  // nullptr: a slot to (re)connect
  int lent_ = 0;
};

/// Runs `select` (a SELECT with bound parameters) through a cursor and calls `fn(rows, i)` for
/// every row, fetched `batchRows` at a time, so that reading millions of rows holds one batch in
/// memory, not the whole result. Stops early when `fn` returns false. Uses the connection's
/// transaction when one is open, else one of its own (READ COMMITTED: one snapshot for the
/// whole scan). One scan at a time per connection (the cursor has a fixed name). Errors: as
/// Connection::exec.
Status forEachRow(Connection& conn, std::string_view select, const std::vector<Param>& params,
                  int batchRows, const std::function<bool(const Rows& rows, int row)>& fn);

/// Brings `component`'s tables to version `steps.size()`: step i (0-based) is the SQL script that
/// takes the schema from version i to i+1 and is never edited once released (append new steps).
/// The applied versions are rows of `schema_migrations(component text, version int, applied_at
/// bigint [epoch ms, server clock], primary key (component, version))`, created if missing.
/// Each step runs in its own transaction together with its row, under a transaction-scoped
/// advisory lock (pg_advisory_xact_lock; never a session lock), so replicas that start at the same
/// time apply each step exactly once and the others find it done. Errors: kInvalidArgument
/// "schema_too_new" (field "database") when the database holds a version of `component` newer
/// than this binary knows (the Console refuses to start rather than misread the tables); SQL
/// errors as Connection::exec, with the component and version named.
Status runMigrations(Connection& conn, std::string_view component,
                     std::span<const std::string_view> steps);

/// "host:port/db" of a connection URL, for logs and messages: no user name, no password.
/// "(unparsable database URL)" when libpq cannot parse it.
std::string describeUrl(const std::string& url);

/// The version of `component` recorded in schema_migrations (0 when none or no table).
Result<int> schemaVersion(Connection& conn, std::string_view component);

}  // namespace dc::pg
