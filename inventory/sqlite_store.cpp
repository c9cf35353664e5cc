#include "inventory/sqlite_store.h"

#include "common/defender_version.h"
#include "inventory/liveness.h"
#include "inventory/store_sql.h"

#include <spdlog/spdlog.h>
#include <sqlite3.h>

#include <algorithm>
#include <condition_variable>
#include <iterator>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace dc::inventory {

namespace {

using storesql::imageOf;
using storesql::likePattern;
using storesql::storedVersionKey;

// ---------------------------------------------------------------------------------------------
// Thin RAII over the SQLite C API.

Error sqliteError(sqlite3* db, int rc, const char* what) {
  std::string msg = std::string(what) + ": " + (db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_FULL:
    case SQLITE_READONLY:
    case SQLITE_IOERR:
    case SQLITE_CANTOPEN:
    case SQLITE_NOMEM:
      return Error::unavailable(msg);
    default:
      return Error::internal(msg);
  }
}

class Stmt {
 public:
  Stmt(sqlite3* db, const std::string& sql) : db_(db) {
    rc_ = sqlite3_prepare_v2(db, sql.c_str(), static_cast<int>(sql.size()), &stmt_, nullptr);
  }
  ~Stmt() { sqlite3_finalize(stmt_); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  bool prepared() const { return rc_ == SQLITE_OK; }
  Error error(const char* what) const { return sqliteError(db_, rc_, what); }

  Stmt& bind(int i, long long v) {
    sqlite3_bind_int64(stmt_, i, v);
    return *this;
  }
  Stmt& bind(int i, TimePoint t) {
    return bind(i, static_cast<long long>(t.time_since_epoch().count()));
  }
  Stmt& bind(int i, const std::string& s) {
    sqlite3_bind_text(stmt_, i, s.data(), static_cast<int>(s.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Stmt& bind(int i, std::string_view s) {
    sqlite3_bind_text(stmt_, i, s.data(), static_cast<int>(s.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Stmt& bind(int i, const char* s) { return bind(i, std::string_view(s)); }
  Stmt& bindNull(int i) {
    sqlite3_bind_null(stmt_, i);
    return *this;
  }
  template <typename T>
  Stmt& bind(int i, const std::optional<T>& v) {
    return v ? bind(i, *v) : bindNull(i);
  }

  /// Steps once: true for a row, false when done; rc() tells errors.
  bool step() {
    rc_ = sqlite3_step(stmt_);
    return rc_ == SQLITE_ROW;
  }
  bool failed() const { return rc_ != SQLITE_ROW && rc_ != SQLITE_DONE && rc_ != SQLITE_OK; }
  void reset() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
    rc_ = SQLITE_OK;
  }

  long long i64(int col) const { return sqlite3_column_int64(stmt_, col); }
  TimePoint time(int col) const { return TimePoint(Millis(i64(col))); }
  bool isNull(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }
  std::optional<TimePoint> optTime(int col) const {
    return isNull(col) ? std::nullopt : std::optional<TimePoint>(time(col));
  }
  void assignText(int col, std::string& out) const {
    const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, col));
    out.assign(p ? p : "", p ? static_cast<size_t>(sqlite3_column_bytes(stmt_, col)) : 0);
  }
  std::string text(int col) const {
    const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, col));
    return p ? std::string(p, static_cast<size_t>(sqlite3_column_bytes(stmt_, col)))
             : std::string();
  }

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
  int rc_ = SQLITE_OK;
};

Status exec(sqlite3* db, const char* sql) {
  char* err = nullptr;
  const int rc = sqlite3_exec(db, sql, nullptr, nullptr, &err);
  if (rc == SQLITE_OK) return Status::success();
  Error e = sqliteError(db, rc, "sql");
  if (err) {
    e.message = std::string("sql: ") + err;
    sqlite3_free(err);
  }
  return e;
}

/// Runs `body` inside BEGIN IMMEDIATE … COMMIT; rolls back on error.
template <typename F>
Status inTransaction(sqlite3* db, F&& body) {
  if (auto st = exec(db, "BEGIN IMMEDIATE"); !st.ok()) return st;
  Status st = body();
  if (st.ok()) st = exec(db, "COMMIT");
  if (!st.ok()) (void)exec(db, "ROLLBACK");
  return st;
}

// ---------------------------------------------------------------------------------------------
// Schema. Each migration runs in its own transaction together with the version bump.

const char* const kMigrations[] = {
    // 1: defenders, observations, audit, settings, console state.
    R"sql(
CREATE TABLE defenders (
  id              INTEGER PRIMARY KEY,
  key             TEXT    NOT NULL UNIQUE,  -- lower-cased hostname
  hostname        TEXT    NOT NULL,
  type            TEXT    NOT NULL,
  category        TEXT    NOT NULL,
  version         TEXT    NOT NULL,
  cluster         TEXT    NOT NULL,
  app_id          TEXT    NOT NULL,
  container       TEXT    NOT NULL,
  image           TEXT    NOT NULL,
  details         TEXT    NOT NULL,         -- JSON object
  registered_at   INTEGER NOT NULL,         -- ms since epoch, UTC
  last_seen       INTEGER NOT NULL,
  judged_from     INTEGER NOT NULL,
  connected_since INTEGER NOT NULL,
  graceful_at     INTEGER,
  clock_skew_ms   INTEGER
);
CREATE INDEX defenders_type ON defenders(type, key);
CREATE INDEX defenders_cluster ON defenders(cluster, key);
CREATE INDEX defenders_app_id ON defenders(app_id, key);
CREATE INDEX defenders_judged ON defenders(judged_from);
CREATE INDEX defenders_category_judged ON defenders(category, judged_from);
CREATE INDEX defenders_graceful ON defenders(graceful_at) WHERE graceful_at IS NOT NULL;
CREATE TABLE observations (
  id          INTEGER PRIMARY KEY,
  defender_id INTEGER NOT NULL,
  kind        TEXT    NOT NULL,
  time        INTEGER NOT NULL,
  received_at INTEGER NOT NULL,
  fields      TEXT    NOT NULL
);
CREATE INDEX observations_defender ON observations(defender_id, id);
CREATE TABLE audit (
  id                   INTEGER PRIMARY KEY,
  at                   INTEGER NOT NULL,
  actor                TEXT    NOT NULL,
  reason               TEXT    NOT NULL,
  hostname             TEXT    NOT NULL,
  app_id               TEXT    NOT NULL,
  type                 TEXT    NOT NULL,
  last_seen            INTEGER NOT NULL,
  observations_removed INTEGER NOT NULL
);
CREATE TABLE settings (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE console_state (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
)sql",
    // 2: the fingerprint of the descriptive fields (inventory::descriptiveFingerprint, as a
    // signed 64-bit integer; 0 = unknown), so that after a restart a heartbeat whose
    // descriptive fields did not change writes only the liveness columns. The judged_from
    // indexes go: eviction candidates come from the inventory's in-memory index, and every
    // heartbeat moved two entries of each to random pages (docs/benchmarks.md, B2).
    R"sql(
ALTER TABLE defenders ADD COLUMN fingerprint INTEGER NOT NULL DEFAULT 0;
DROP INDEX defenders_judged;
DROP INDEX defenders_category_judged;
)sql",
    // 3: the reported version as one ordered integer (dc::versionKey; NULL when it does not
    // parse), so that `outdated=true` and the summary's outdated counts are index range scans
    // instead of parsing every row's version text.
    R"sql(
ALTER TABLE defenders ADD COLUMN version_key INTEGER;
UPDATE defenders SET version_key = dc_version_key(version);
CREATE INDEX defenders_version ON defenders(version_key, category) WHERE version_key IS NOT NULL;
)sql",
    // 4: several replicas on one database (DESIGN §7). The sweeper lease with its fencing
    // token (docs/operations.md "Which replica sweeps"), and one alive time per replica instead
    // of the Console's single one, which becomes the row of replica 'console' (kLegacyReplica).
    R"sql(
CREATE TABLE sweeper_lease (
  name          TEXT    PRIMARY KEY,
  holder        TEXT    NOT NULL,  -- replica id
  epoch         INTEGER NOT NULL,  -- fencing token
  expires_at_ms INTEGER NOT NULL   -- ms since epoch, UTC
);
CREATE TABLE replica_alive (
  replica  TEXT    PRIMARY KEY,
  alive_at INTEGER NOT NULL        -- ms since epoch, UTC
);
INSERT INTO replica_alive(replica, alive_at)
  SELECT 'console', value FROM console_state WHERE name = 'alive';
DELETE FROM console_state WHERE name = 'alive';
)sql",
};

// SQL function dc_version_key(text) for migration 3's backfill (the writer connection only).
Status registerVersionKeyFunction(sqlite3* db) {
  const int rc = sqlite3_create_function(
      db, "dc_version_key", 1, SQLITE_UTF8 | SQLITE_DETERMINISTIC, nullptr,
      [](sqlite3_context* ctx, int, sqlite3_value** argv) {
        const auto* text = reinterpret_cast<const char*>(sqlite3_value_text(argv[0]));
        const auto key = text ? storedVersionKey(text) : std::nullopt;
        if (key)
          sqlite3_result_int64(ctx, *key);
        else
          sqlite3_result_null(ctx);
      },
      nullptr, nullptr);
  if (rc != SQLITE_OK)
    return Error::unavailable(std::string("register dc_version_key: ") + sqlite3_errmsg(db));
  return Status::success();
}
constexpr int kSchemaVersion = static_cast<int>(std::size(kMigrations));

Status migrate(sqlite3* db) {
  if (auto st = exec(db, "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)");
      !st.ok())
    return st;
  int current = 0;
  {
    Stmt q(db, "SELECT version FROM schema_version");
    if (!q.prepared()) return q.error("read schema version");
    if (q.step()) current = static_cast<int>(q.i64(0));
  }
  if (current > kSchemaVersion)
    return Error{ErrorKind::kInvalidArgument, "schema_too_new",
                 "database schema version " + std::to_string(current) +
                     " was written by a newer Defender Console; this build knows up to " +
                     std::to_string(kSchemaVersion) +
                     ". Upgrade the Console or use another "
                     "--data-dir.",
                 "data-dir"};
  for (int v = current; v < kSchemaVersion; ++v) {
    auto st = inTransaction(db, [&]() -> Status {
      if (auto s = exec(db, kMigrations[v]); !s.ok()) return s;
      Stmt del(db, "DELETE FROM schema_version");
      del.step();
      Stmt ins(db, "INSERT INTO schema_version(version) VALUES (?)");
      ins.bind(1, static_cast<long long>(v + 1));
      ins.step();
      if (ins.failed()) return ins.error("write schema version");
      return Status::success();
    });
    if (!st.ok()) return st;
  }
  if (current > 0 && current < kSchemaVersion)
    spdlog::info("database schema migrated from version {} to {}", current, kSchemaVersion);
  return Status::success();
}

// How long the alive time of a replica not heard of since is kept (see Store::write).
constexpr Millis kReplicaAliveKept = std::chrono::hours(24);

// The answer when the sweeper lease is no longer the one an eviction runs under.
Error leaseLost(const LeaseFence& fence) {
  return Error{ErrorKind::kConflict,
               "sweep_lease_lost",
               "the sweeper lease is no longer held by replica " + fence.holder + " with epoch " +
                   std::to_string(fence.epoch) + "; nothing evicted",
               {}};
}

// ---------------------------------------------------------------------------------------------
// Row mapping.

constexpr const char* kDefenderColumns =
    "hostname, type, version, cluster, app_id, container, details, registered_at, last_seen, "
    "judged_from, connected_since, graceful_at, clock_skew_ms";

Defender readDefender(const Stmt& s, int c = 0) {
  Defender d;
  d.hostname = s.text(c + 0);
  d.type = parseType(s.text(c + 1)).value_or(DefenderType::kNone);
  d.version = s.text(c + 2);
  d.cluster = s.text(c + 3);
  d.appId = s.text(c + 4);
  d.container = s.text(c + 5);
  d.details = nlohmann::json::parse(s.text(c + 6), nullptr, /*allow_exceptions=*/false);
  if (!d.details.is_object()) d.details = nlohmann::json::object();
  d.registeredAt = s.time(c + 7);
  d.lastSeen = s.time(c + 8);
  d.judgedFrom = s.time(c + 9);
  d.connectedSince = s.time(c + 10);
  d.gracefulDisconnectAt = s.optTime(c + 11);
  if (!s.isNull(c + 12)) d.clockSkewMs = s.i64(c + 12);
  return d;
}

// A WHERE clause built from fixed fragments, with its parameters bound in order.
struct Where {
  std::string sql;
  std::vector<std::string> textParams;  // bound as ?NNN in order after the fixed ones
  void add(const std::string& fragment) { sql += (sql.empty() ? " WHERE " : " AND ") + fragment; }
};

// Fixed parameters of every list/summary statement: ?1 = connected cutoff (now − G), ?2 = G.
constexpr const char* kConnectedExpr = kConnectedSql;  // inventory/liveness.h
constexpr const char* kLastModifiedExpr =
    "(CASE WHEN graceful_at IS NULL AND judged_from >= ?1 THEN connected_since "
    "ELSE COALESCE(graceful_at, judged_from + ?2) END)";

std::string orderBy(SortKey key, bool reverse) {
  return storesql::orderBy(key, reverse, [](SortKey k) -> std::string {
    return k == SortKey::kLastModified ? kLastModifiedExpr : kConnectedExpr;
  });
}

// ---------------------------------------------------------------------------------------------

class SqliteStore final : public Store {
 public:
  ~SqliteStore() override {
    for (auto* db : readers_) sqlite3_close(db);
    if (writer_) sqlite3_close(writer_);
  }

  Status open(const SqliteOptions& options) {
    memory_ = options.path == ":memory:";
    if (auto st = openConnection(options, writer_); !st.ok()) return st;
    if (!memory_) {
      if (auto st = exec(writer_, "PRAGMA journal_mode=WAL"); !st.ok()) return st;
    }
    // The writer touches rows all over the table (one per heartbeating Defender per flush): a
    // page cache of 64 MiB keeps the b-tree interior and the hot leaves in memory instead of
    // one pread per row (SQLite's default is 2 MiB).
    // synchronous=FULL: every commit fsyncs the WAL before it returns, so what was answered 200
    // is on the disk, not only in the kernel's page cache. With NORMAL, a file system the kernel
    // turns read-only after an error (ext4 errors=remount-ro) dropped every acknowledged
    // registration since the last checkpoint (docs/reliability.md section 6). Group commit and
    // the write-behind flush keep it to one fsync per commit, not one per request.
    if (auto st = exec(writer_,
                       "PRAGMA synchronous=FULL; PRAGMA foreign_keys=OFF; "
                       "PRAGMA cache_size=-65536;");
        !st.ok())
      return st;
    if (auto st = registerVersionKeyFunction(writer_); !st.ok()) return st;
    if (auto st = migrate(writer_); !st.ok()) return st;
    if (!memory_) {
      for (int i = 0; i < options.readConnections; ++i) {
        sqlite3* db = nullptr;
        if (auto st = openConnection(options, db); !st.ok()) return st;
        readers_.push_back(db);
        freeReaders_.push_back(db);
      }
    }
    return Status::success();
  }

  // ---- writes ----

  Status write(const WriteBatch& batch) override {
    std::lock_guard lock(writeMutex_);
    std::vector<std::string> missing;
    auto st = inTransaction(writer_, [&]() -> Status {
      missing.clear();
      // The rules of Store::write for several writers: registered_at is not in the SET list
      // (written once, by the insert); a report older than the stored row changes nothing, nor
      // does one seen before a stored graceful disconnect.
      if (!batch.upserts.empty()) {
        Stmt s(writer_,
               "INSERT INTO defenders (key, hostname, type, category, version, cluster, app_id, "
               "container, image, details, registered_at, last_seen, judged_from, "
               "connected_since, graceful_at, clock_skew_ms, fingerprint, version_key) "
               "VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17,?18) "
               "ON CONFLICT(key) DO UPDATE SET hostname=excluded.hostname, type=excluded.type, "
               "category=excluded.category, version=excluded.version, cluster=excluded.cluster, "
               "app_id=excluded.app_id, container=excluded.container, image=excluded.image, "
               "details=excluded.details, last_seen=max(last_seen, excluded.last_seen), "
               "judged_from=excluded.judged_from, connected_since=excluded.connected_since, "
               "graceful_at=excluded.graceful_at, clock_skew_ms=excluded.clock_skew_ms, "
               "fingerprint=excluded.fingerprint, version_key=excluded.version_key "
               "WHERE excluded.last_seen >= last_seen AND (graceful_at IS NULL OR "
               "excluded.graceful_at IS NOT NULL OR excluded.last_seen > graceful_at)");
        if (!s.prepared()) return s.error("prepare upsert");
        for (const auto& d : batch.upserts) {
          s.bind(1, hostnameKey(d.hostname))
              .bind(2, d.hostname)
              .bind(3, typeInfo(d.type).apiName)
              .bind(4, categoryName(categoryOf(d.type)))
              .bind(5, d.version)
              .bind(6, d.cluster)
              .bind(7, d.appId)
              .bind(8, d.container)
              .bind(9, imageOf(d))
              .bind(10, d.details.dump())
              .bind(11, d.registeredAt)
              .bind(12, d.lastSeen)
              .bind(13, d.judgedFrom)
              .bind(14, d.connectedSince)
              .bind(15, d.gracefulDisconnectAt)
              .bind(16, d.clockSkewMs)
              .bind(17, static_cast<long long>(descriptiveFingerprint(d)))
              .bind(18, storedVersionKey(d.version));
          s.step();
          if (s.failed()) return s.error("upsert defender");
          s.reset();
        }
      }
      if (!batch.touches.empty()) {
        Stmt s(writer_,
               "UPDATE defenders SET last_seen=?2, judged_from=?3, connected_since=?4, "
               "graceful_at=?5, clock_skew_ms=?6 WHERE key=?1 AND last_seen <= ?2 AND "
               "(graceful_at IS NULL OR ?5 IS NOT NULL OR ?2 > graceful_at)");
        if (!s.prepared()) return s.error("prepare touch");
        for (const auto& d : batch.touches) {
          s.bind(1, hostnameKey(d.hostname))
              .bind(2, d.lastSeen)
              .bind(3, d.judgedFrom)
              .bind(4, d.connectedSince)
              .bind(5, d.gracefulDisconnectAt)
              .bind(6, d.clockSkewMs);
          s.step();
          if (s.failed()) return s.error("touch defender");
          s.reset();
          if (batch.missingTouches && sqlite3_changes(writer_) == 0) {
            Stmt exists(writer_, "SELECT 1 FROM defenders WHERE key=?1");
            if (!exists.prepared()) return exists.error("prepare touch check");
            exists.bind(1, hostnameKey(d.hostname));
            const bool stored = exists.step();
            if (exists.failed()) return exists.error("check touched defender");
            if (!stored) missing.push_back(hostnameKey(d.hostname));
          }
        }
      }
      if (!batch.observations.empty()) {
        Stmt ins(writer_,
                 "INSERT INTO observations (defender_id, kind, time, received_at, fields) "
                 "SELECT id, ?2, ?3, ?4, ?5 FROM defenders WHERE key=?1");
        if (!ins.prepared()) return ins.error("prepare observation");
        for (const auto& [key, o] : batch.observations) {
          ins.bind(1, key)
              .bind(2, o.kind)
              .bind(3, o.time)
              .bind(4, o.receivedAt)
              .bind(5, o.fields.dump());
          ins.step();
          if (ins.failed()) return ins.error("insert observation");
          ins.reset();
        }
      }
      if (batch.consoleAlive) {
        const std::string replica = batch.replica.empty() ? kLegacyReplica : batch.replica;
        Stmt s(writer_,
               "INSERT INTO replica_alive(replica, alive_at) VALUES (?1, ?2) "
               "ON CONFLICT(replica) DO UPDATE SET alive_at=excluded.alive_at");
        if (!s.prepared()) return s.error("prepare alive time");
        s.bind(1, replica).bind(2, *batch.consoleAlive);
        s.step();
        if (s.failed()) return s.error("save alive time");
        // Each start is a new replica id: rows of replicas gone for a day go. They cannot be
        // the newest alive time any more (this row is newer).
        Stmt prune(writer_, "DELETE FROM replica_alive WHERE replica <> ?1 AND alive_at < ?2");
        if (!prune.prepared()) return prune.error("prepare alive prune");
        prune.bind(1, replica).bind(2, *batch.consoleAlive - kReplicaAliveKept);
        prune.step();
        if (prune.failed()) return prune.error("prune alive times");
      }
      return Status::success();
    });
    if (st.ok() && batch.missingTouches)
      batch.missingTouches->insert(batch.missingTouches->end(),
                                   std::make_move_iterator(missing.begin()),
                                   std::make_move_iterator(missing.end()));
    return st;
  }

  Result<std::vector<AuditRecord>> removeDefenders(std::span<const std::string> keys,
                                                   const std::string& actor,
                                                   const std::string& reason,
                                                   TimePoint at) override {
    std::lock_guard lock(writeMutex_);
    std::vector<AuditRecord> written;
    auto st = inTransaction(writer_, [&]() -> Status {
      Stmt find(writer_,
                "SELECT id, hostname, app_id, type, last_seen FROM defenders WHERE key=?1");
      Stmt delObs(writer_, "DELETE FROM observations WHERE defender_id=?1");
      Stmt delDef(writer_, "DELETE FROM defenders WHERE id=?1");
      Stmt audit(writer_,
                 "INSERT INTO audit (at, actor, reason, hostname, app_id, type, last_seen, "
                 "observations_removed) VALUES (?1,?2,?3,?4,?5,?6,?7,?8)");
      for (auto* s : {&find, &delObs, &delDef, &audit})
        if (!s->prepared()) return s->error("prepare remove");
      for (const auto& key : keys) {
        find.bind(1, key);
        if (!find.step()) {
          if (find.failed()) return find.error("find defender");
          find.reset();
          continue;
        }
        const long long id = find.i64(0);
        AuditRecord rec;
        rec.at = at;
        rec.actor = actor;
        rec.reason = reason;
        rec.hostname = find.text(1);
        rec.appId = find.text(2);
        rec.type = parseType(find.text(3)).value_or(DefenderType::kNone);
        rec.lastSeen = find.time(4);
        find.reset();
        delObs.bind(1, id);
        delObs.step();
        if (delObs.failed()) return delObs.error("delete observations");
        rec.observationsRemoved = sqlite3_changes(writer_);
        delObs.reset();
        delDef.bind(1, id);
        delDef.step();
        if (delDef.failed()) return delDef.error("delete defender");
        delDef.reset();
        audit.bind(1, rec.at)
            .bind(2, rec.actor)
            .bind(3, rec.reason)
            .bind(4, rec.hostname)
            .bind(5, rec.appId)
            .bind(6, typeInfo(rec.type).apiName)
            .bind(7, rec.lastSeen)
            .bind(8, rec.observationsRemoved);
        audit.step();
        if (audit.failed()) return audit.error("write audit");
        rec.id = sqlite3_last_insert_rowid(writer_);
        audit.reset();
        written.push_back(std::move(rec));
      }
      return Status::success();
    });
    if (!st.ok()) return st.error();
    return written;
  }

  Result<std::vector<AuditRecord>> evictDefenders(std::span<const std::string> keys,
                                                  const DueRule& due, const LeaseFence& fence,
                                                  const std::string& reason) override {
    std::vector<AuditRecord> written;
    if (keys.empty()) return written;
    std::lock_guard lock(writeMutex_);
    auto st = inTransaction(writer_, [&]() -> Status {
      // BEGIN IMMEDIATE holds the database's write lock: the lease cannot change between this
      // check (which tells why nothing would be deleted) and the DELETE, which checks it again.
      {
        Stmt lease(writer_,
                   "SELECT 1 FROM sweeper_lease WHERE name = 'sweeper' AND holder = ?1 AND "
                   "epoch = ?2 AND expires_at_ms > ?3");
        if (!lease.prepared()) return lease.error("prepare lease check");
        lease.bind(1, fence.holder).bind(2, fence.epoch).bind(3, fence.at);
        const bool held = lease.step();
        if (lease.failed()) return lease.error("check sweeper lease");
        if (!held) return leaseLost(fence);
      }
      // ?1 now − margin, ?2 G, ?3 appEmbedded retention, ?4 other retention (ms), ?5..?7 the
      // fence, ?8… the keys. The same rule as inventory::judge + retentionFor.
      std::string sql =
          "DELETE FROM defenders WHERE COALESCE(graceful_at, judged_from + ?2) + "
          "CASE WHEN category = 'appEmbedded' THEN ?3 ELSE ?4 END <= ?1 AND EXISTS (SELECT 1 "
          "FROM sweeper_lease WHERE name = 'sweeper' AND holder = ?5 AND epoch = ?6 AND "
          "expires_at_ms > ?7) AND key IN (";
      for (size_t i = 0; i < keys.size(); ++i) sql += i == 0 ? "?" : ",?";
      sql += ") RETURNING id, key, hostname, app_id, type, last_seen";
      Stmt del(writer_, sql);
      if (!del.prepared()) return del.error("prepare eviction");
      del.bind(1, due.now - due.margin)
          .bind(2, static_cast<long long>(due.grace.count()))
          .bind(3, static_cast<long long>(retentionFor(Category::kAppEmbedded, 1).count()))
          .bind(4, static_cast<long long>(
                       retentionFor(Category::kHost, due.disconnectPeriodDays).count()))
          .bind(5, fence.holder)
          .bind(6, fence.epoch)
          .bind(7, fence.at);
      for (size_t i = 0; i < keys.size(); ++i) del.bind(static_cast<int>(i + 8), keys[i]);
      std::vector<std::pair<long long, std::string>> removed;  // (id, key)
      while (del.step()) {
        AuditRecord rec;
        rec.at = due.now;
        rec.actor = "scheduler";
        rec.reason = reason;
        rec.hostname = del.text(2);
        rec.appId = del.text(3);
        rec.type = parseType(del.text(4)).value_or(DefenderType::kNone);
        rec.lastSeen = del.time(5);
        removed.emplace_back(del.i64(0), del.text(1));
        written.push_back(std::move(rec));
      }
      if (del.failed()) return del.error("evict defenders");
      Stmt delObs(writer_, "DELETE FROM observations WHERE defender_id=?1");
      Stmt audit(writer_,
                 "INSERT INTO audit (at, actor, reason, hostname, app_id, type, last_seen, "
                 "observations_removed) VALUES (?1,?2,?3,?4,?5,?6,?7,?8)");
      for (auto* s : {&delObs, &audit})
        if (!s->prepared()) return s->error("prepare eviction");
      // Audit records in `keys` order (oldest due first), as removeDefenders writes them.
      std::unordered_map<std::string, size_t> order;
      for (size_t i = 0; i < keys.size(); ++i) order.emplace(keys[i], i);
      std::vector<size_t> byKey(written.size());
      for (size_t i = 0; i < byKey.size(); ++i) byKey[i] = i;
      std::sort(byKey.begin(), byKey.end(), [&](size_t a, size_t b) {
        return order[removed[a].second] < order[removed[b].second];
      });
      std::vector<AuditRecord> ordered;
      ordered.reserve(written.size());
      for (size_t i : byKey) {
        AuditRecord& rec = written[i];
        delObs.bind(1, removed[i].first);
        delObs.step();
        if (delObs.failed()) return delObs.error("delete observations");
        rec.observationsRemoved = sqlite3_changes(writer_);
        delObs.reset();
        audit.bind(1, rec.at)
            .bind(2, rec.actor)
            .bind(3, rec.reason)
            .bind(4, rec.hostname)
            .bind(5, rec.appId)
            .bind(6, typeInfo(rec.type).apiName)
            .bind(7, rec.lastSeen)
            .bind(8, rec.observationsRemoved);
        audit.step();
        if (audit.failed()) return audit.error("write audit");
        rec.id = sqlite3_last_insert_rowid(writer_);
        audit.reset();
        ordered.push_back(std::move(rec));
      }
      written = std::move(ordered);
      return Status::success();
    });
    if (!st.ok()) return st.error();
    return written;
  }

  Result<SweepLease> acquireSweepLease(const std::string& holder, TimePoint now,
                                       Millis ttl) override {
    std::lock_guard lock(writeMutex_);
    SweepLease out;
    auto st = inTransaction(writer_, [&]() -> Status {
      // Taken when there is none or it expired, renewed when it is ours; the epoch moves on
      // unless a valid lease is renewed. (SET reads the row as it was before the update.)
      Stmt take(writer_,
                "INSERT INTO sweeper_lease(name, holder, epoch, expires_at_ms) "
                "VALUES ('sweeper', ?1, 1, ?3) ON CONFLICT(name) DO UPDATE SET "
                "epoch = CASE WHEN holder = excluded.holder AND expires_at_ms > ?2 THEN epoch "
                "ELSE epoch + 1 END, holder = excluded.holder, "
                "expires_at_ms = excluded.expires_at_ms "
                "WHERE holder = excluded.holder OR expires_at_ms <= ?2");
      if (!take.prepared()) return take.error("prepare lease");
      take.bind(1, holder).bind(2, now).bind(3, now + ttl);
      take.step();
      if (take.failed()) return take.error("take sweeper lease");
      Stmt read(writer_,
                "SELECT holder, epoch, expires_at_ms FROM sweeper_lease WHERE name = 'sweeper'");
      if (!read.prepared()) return read.error("prepare lease read");
      if (read.step()) {
        out.holder = read.text(0);
        out.epoch = read.i64(1);
        out.expiresAt = read.time(2);
      }
      if (read.failed()) return read.error("read sweeper lease");
      return Status::success();
    });
    if (!st.ok()) return st.error();
    return out;
  }

  Status releaseSweepLease(const std::string& holder, long long epoch) override {
    std::lock_guard lock(writeMutex_);
    Stmt s(writer_,
           "UPDATE sweeper_lease SET expires_at_ms = 0 WHERE name = 'sweeper' AND holder = ?1 "
           "AND epoch = ?2");
    if (!s.prepared()) return s.error("prepare lease release");
    s.bind(1, holder).bind(2, epoch);
    s.step();
    if (s.failed()) return s.error("release sweeper lease");
    return Status::success();
  }

  Status saveSettings(const DefenderSettings& settings) override {
    std::lock_guard lock(writeMutex_);
    Stmt s(writer_,
           "INSERT INTO settings(name, value) VALUES ('disconnectPeriodDays', ?1) "
           "ON CONFLICT(name) DO UPDATE SET value=excluded.value");
    if (!s.prepared()) return s.error("prepare settings");
    s.bind(1, std::to_string(settings.disconnectPeriodDays));
    s.step();
    if (s.failed()) return s.error("save settings");
    return Status::success();
  }

  // ---- reads ----

  Result<std::optional<Defender>> findDefender(const std::string& key) override {
    Reader r(*this);
    Stmt s(r.db, std::string("SELECT ") + kDefenderColumns + " FROM defenders WHERE key=?1");
    if (!s.prepared()) return s.error("prepare find");
    s.bind(1, key);
    if (s.step()) return std::optional<Defender>(readDefender(s));
    if (s.failed()) return s.error("find defender");
    return std::optional<Defender>();
  }

  Result<std::vector<Defender>> findDefenders(std::span<const std::string> keys) override {
    std::vector<Defender> out;
    if (keys.empty()) return out;
    Reader r(*this);
    std::string sql = std::string("SELECT ") + kDefenderColumns + " FROM defenders WHERE key IN (";
    for (size_t i = 0; i < keys.size(); ++i) sql += i == 0 ? "?" : ",?";
    sql += ")";
    Stmt s(r.db, sql);
    if (!s.prepared()) return s.error("prepare find");
    for (size_t i = 0; i < keys.size(); ++i) s.bind(static_cast<int>(i + 1), keys[i]);
    out.reserve(keys.size());
    while (s.step()) out.push_back(readDefender(s));
    if (s.failed()) return s.error("find defenders");
    return out;
  }

  Result<Page<Defender>> listDefenders(const DefenderQuery& q,
                                       const LivenessCutoff& cutoff) override {
    return select(q, cutoff, nullptr);
  }

  Result<std::vector<std::string>> listKeys(const DefenderQuery& q,
                                            const LivenessCutoff& cutoff) override {
    std::vector<std::string> keys;
    DefenderQuery all = q;
    all.countTotal = false;
    auto st = select(all, cutoff, &keys);
    if (!st.ok()) return st.error();
    return keys;
  }

  /// listDefenders, or with `keysOnly` every match's key (no paging) appended there instead.
  Result<Page<Defender>> select(const DefenderQuery& q, const LivenessCutoff& cutoff,
                                std::vector<std::string>* keysOnly) {
    Where w;
    auto param = [&](std::string v) {
      w.textParams.push_back(std::move(v));
      // Appending (not "?" + …) sidesteps a false -Wrestrict of GCC 12 in release builds.
      std::string ref = "?";
      ref += std::to_string(w.textParams.size() + 2);
      return ref;
    };
    if (q.hostname) w.add("key = " + param(hostnameKey(*q.hostname)));
    if (!q.types.empty()) {
      std::string in;
      for (auto t : q.types) {
        if (!in.empty()) in += ',';
        in += param(std::string(typeInfo(t).apiName));
      }
      w.add("type IN (" + in + ")");
    }
    if (q.category) w.add("category = " + param(std::string(categoryName(*q.category))));
    if (q.connected) w.add(*q.connected ? kConnectedExpr : std::string("NOT ") + kConnectedExpr);
    if (q.cluster) w.add("cluster = " + param(*q.cluster));
    if (q.clusterContains)
      w.add("cluster LIKE " + param(likePattern(*q.clusterContains)) + " ESCAPE '\\'");
    if (q.appId) w.add("app_id = " + param(*q.appId));
    if (q.family) {
      // App IDs are `<family>:<36-character uuid>`: the range finds the candidates through the
      // app_id index, the substr keeps the exact family (a family may itself contain ':').
      std::string from = *q.family, to = *q.family;
      from += ':';
      to += ';';  // the character after ':'
      w.add("app_id >= " + param(std::move(from)) + " AND app_id < " + param(std::move(to)) +
            " AND substr(app_id, 1, length(app_id) - 37) = " + param(*q.family));
    }
    if (q.image) w.add("image = " + param(*q.image));
    if (q.container) w.add("container = " + param(*q.container));
    if (q.version) w.add("version = " + param(*q.version));
    if (q.outdated) {
      // A literal, not a parameter: our own integer, and the partial index needs to see it.
      const std::string below = std::to_string(versionKey(q.deployedVersion));
      w.add(*q.outdated ? "(version_key IS NOT NULL AND version_key < " + below + ")"
                        : "(version_key IS NULL OR version_key >= " + below + ")");
    }
    if (q.afterKey && q.sort == SortKey::kHostname)
      w.add(std::string(q.reverse ? "key < " : "key > ") + param(*q.afterKey));
    if (q.search) {
      const auto p = param(likePattern(*q.search));
      // The task ARN lives in the details JSON; json_valid() guards json_extract(), which fails
      // the statement on text that is not JSON. OR evaluates left to right, so the JSON is only
      // read for rows that no column matched.
      std::string any;
      for (const char* column : {"key", "app_id", "cluster", "image", "version",
                                 "CASE WHEN json_valid(details) THEN "
                                 "json_extract(details, '$.cloudMetadata.resourceID') END"}) {
        if (!any.empty()) any += " OR ";
        any += std::string(column) + " LIKE " + p + " ESCAPE '\\'";
      }
      w.add("(" + any + ")");
    }
    auto bindAll = [&](Stmt& s) {
      s.bind(1, connectedCutoff(cutoff.now, cutoff.grace))
          .bind(2, static_cast<long long>(cutoff.grace.count()));
      for (size_t i = 0; i < w.textParams.size(); ++i)
        s.bind(static_cast<int>(i + 3), w.textParams[i]);
    };

    Reader r(*this);
    Page<Defender> page;
    if (q.countTotal) {
      // ?1/?2 (cutoff, grace) are bound even where the text does not use them; SQLite
      // numbers parameters by their explicit ?NNN index.
      Stmt c(r.db, "SELECT count(*) FROM defenders" + w.sql);
      if (!c.prepared()) return c.error("prepare count");
      bindAll(c);
      if (c.step()) page.total = c.i64(0);
      if (c.failed()) return c.error("count defenders");
    }
    Stmt s(r.db, keysOnly ? "SELECT key FROM defenders" + w.sql + orderBy(q.sort, q.reverse)
                          : std::string("SELECT ") + kDefenderColumns + " FROM defenders" + w.sql +
                                orderBy(q.sort, q.reverse) + " LIMIT " + std::to_string(q.limit) +
                                " OFFSET " + std::to_string(q.offset));
    if (!s.prepared()) return s.error("prepare list");
    bindAll(s);
    while (s.step())
      if (keysOnly)
        keysOnly->push_back(s.text(0));
      else
        page.items.push_back(readDefender(s));
    if (s.failed()) return s.error("list defenders");
    return page;
  }

  Result<std::vector<CategorySummary>> summarize(const LivenessCutoff& cutoff) override {
    Reader r(*this);
    Stmt s(r.db, std::string("SELECT category, count(*), sum(") + kConnectedExpr +
                     ") FROM defenders GROUP BY category");
    if (!s.prepared()) return s.error("prepare summary");
    s.bind(1, connectedCutoff(cutoff.now, cutoff.grace));
    std::vector<CategorySummary> out;
    for (auto c :
         {Category::kContainer, Category::kHost, Category::kServerless, Category::kAppEmbedded})
      out.push_back({c, 0, 0, 0});
    while (s.step()) {
      if (auto c = parseCategory(s.text(0))) {
        auto& row = out[static_cast<size_t>(*c)];
        row.deployed = s.i64(1);
        row.connected = s.i64(2);
      }
    }
    if (s.failed()) return s.error("summarize");
    return out;
  }

  Result<std::vector<CategorySummary>> countOutdated(const DefenderVersion& deployed) override {
    Reader r(*this);
    Stmt s(r.db,
           "SELECT category, count(*) FROM defenders WHERE version_key IS NOT NULL AND "
           "version_key < ?1 GROUP BY category");
    if (!s.prepared()) return s.error("prepare outdated count");
    s.bind(1, versionKey(deployed));
    std::vector<CategorySummary> out;
    for (auto c :
         {Category::kContainer, Category::kHost, Category::kServerless, Category::kAppEmbedded})
      out.push_back({c, 0, 0, 0});
    while (s.step())
      if (auto c = parseCategory(s.text(0))) out[static_cast<size_t>(*c)].outdated = s.i64(1);
    if (s.failed()) return s.error("count outdated");
    return out;
  }

  Result<std::vector<TypeCount>> countTypes(const LivenessCutoff& cutoff) override {
    Reader r(*this);
    Stmt s(r.db, std::string("SELECT type, count(*), sum(") + kConnectedExpr +
                     ") FROM defenders GROUP BY type");
    if (!s.prepared()) return s.error("prepare type count");
    s.bind(1, connectedCutoff(cutoff.now, cutoff.grace));
    std::vector<TypeCount> out;
    for (const auto& info : allTypes()) out.push_back({info.type, 0, 0});
    while (s.step())
      if (auto t = parseType(s.text(0)))
        for (auto& row : out)
          if (row.type == *t) {
            row.deployed = s.i64(1);
            row.connected = s.i64(2);
          }
    if (s.failed()) return s.error("count types");
    return out;
  }

  Result<SilenceCount> countSilence(TimePoint since, TimePoint now, Millis grace) override {
    Reader r(*this);
    Stmt s(r.db,
           "SELECT count(*), COALESCE(sum(CASE WHEN graceful_at IS NULL AND judged_from < ?3 "
           "THEN 1 ELSE 0 END), 0) FROM defenders WHERE (graceful_at IS NULL OR graceful_at > ?1) "
           "AND judged_from >= ?2");
    if (!s.prepared()) return s.error("prepare silence count");
    s.bind(1, since).bind(2, connectedCutoff(since, grace)).bind(3, connectedCutoff(now, grace));
    SilenceCount out;
    if (s.step()) out = {s.i64(0), s.i64(1)};
    if (s.failed()) return s.error("count silence");
    return out;
  }

  Result<std::vector<std::string>> listDueKeys(Category category, const DueRule& due,
                                               size_t limit) override {
    Reader r(*this);
    // removalAt = COALESCE(graceful_at, judged_from + G) + retention ≤ now − margin, the rule
    // evictDefenders re-checks.
    Stmt s(r.db,
           "SELECT key FROM defenders WHERE category = ?1 AND "
           "COALESCE(graceful_at, judged_from + ?2) <= ?3 "
           "ORDER BY COALESCE(graceful_at, judged_from + ?2), key LIMIT ?4");
    if (!s.prepared()) return s.error("prepare due keys");
    s.bind(1, categoryName(category))
        .bind(2, static_cast<long long>(due.grace.count()))
        .bind(3, due.now - due.margin - retentionFor(category, due.disconnectPeriodDays))
        .bind(4, static_cast<long long>(limit));
    std::vector<std::string> out;
    while (s.step()) out.push_back(s.text(0));
    if (s.failed()) return s.error("list due keys");
    return out;
  }

  Result<std::vector<ClusterCount>> countClusters() override {
    Reader r(*this);
    // GROUP BY walks the defenders_cluster index: no sort, no table read.
    Stmt s(r.db,
           "SELECT cluster, count(*) FROM defenders WHERE cluster <> '' GROUP BY cluster "
           "ORDER BY cluster");
    if (!s.prepared()) return s.error("prepare cluster count");
    std::vector<ClusterCount> out;
    while (s.step()) out.push_back({s.text(0), s.i64(1)});
    if (s.failed()) return s.error("count clusters");
    return out;
  }

  Result<std::vector<VersionCount>> countVersions() override {
    Reader r(*this);
    Stmt s(r.db, "SELECT version, count(*) FROM defenders GROUP BY version ORDER BY version");
    if (!s.prepared()) return s.error("prepare version count");
    std::vector<VersionCount> out;
    while (s.step()) out.push_back({s.text(0), s.i64(1)});
    if (s.failed()) return s.error("count versions");
    return out;
  }

  Status forEachDefender(const std::function<bool(const Defender&)>& fn) override {
    Reader r(*this);
    Stmt s(r.db, std::string("SELECT ") + kDefenderColumns + " FROM defenders");
    if (!s.prepared()) return s.error("prepare scan");
    while (s.step())
      if (!fn(readDefender(s))) break;
    if (s.failed()) return s.error("scan defenders");
    return Status::success();
  }

  Result<long long> countDefenders() override {
    Reader r(*this);
    Stmt s(r.db, "SELECT count(*) FROM defenders");
    if (!s.prepared()) return s.error("prepare count");
    long long n = 0;
    if (s.step()) n = s.i64(0);
    if (s.failed()) return s.error("count defenders");
    return n;
  }

  Status forEachLiveness(const std::function<bool(const StoredLiveness&)>& fn) override {
    Reader r(*this);
    Stmt s(r.db,
           "SELECT key, type, registered_at, last_seen, judged_from, connected_since, graceful_at, "
           "clock_skew_ms, app_id, fingerprint, CASE WHEN category = 'appEmbedded' AND "
           "json_valid(details) THEN json_extract(details, '$.cloudMetadata.resourceID') END "
           "FROM defenders");
    if (!s.prepared()) return s.error("prepare liveness scan");
    StoredLiveness l;
    while (s.step()) {
      s.assignText(0, l.key);  // reuses the buffers: no allocation per row
      l.type = parseType(s.text(1)).value_or(DefenderType::kNone);
      l.registeredAt = s.time(2);
      l.lastSeen = s.time(3);
      l.judgedFrom = s.time(4);
      l.connectedSince = s.time(5);
      l.gracefulDisconnectAt = s.optTime(6);
      l.clockSkewMs = s.isNull(7) ? std::nullopt : std::optional<long long>(s.i64(7));
      s.assignText(8, l.appId);
      l.fingerprint = static_cast<uint64_t>(s.i64(9));
      if (s.isNull(10))
        l.resourceId.clear();
      else
        s.assignText(10, l.resourceId);
      if (!fn(l)) break;
    }
    if (s.failed()) return s.error("scan liveness");
    return Status::success();
  }

  Result<DefenderSettings> loadSettings() override {
    Reader r(*this);
    DefenderSettings out;
    Stmt s(r.db, "SELECT value FROM settings WHERE name='disconnectPeriodDays'");
    if (!s.prepared()) return s.error("prepare settings");
    if (s.step()) {
      try {
        out.disconnectPeriodDays = std::stoi(s.text(0));
      } catch (...) {
        // A corrupt value falls back to the default.
      }
    }
    if (s.failed()) return s.error("load settings");
    return out;
  }

  Result<std::optional<TimePoint>> loadConsoleAlive() override {
    Reader r(*this);
    Stmt s(r.db, "SELECT max(alive_at) FROM replica_alive");
    if (!s.prepared()) return s.error("prepare alive time");
    if (s.step() && !s.isNull(0)) return std::optional<TimePoint>(s.time(0));
    if (s.failed()) return s.error("load alive time");
    return std::optional<TimePoint>();
  }

  Result<std::vector<ReplicaAlive>> listReplicasAlive() override {
    Reader r(*this);
    Stmt s(r.db, "SELECT replica, alive_at FROM replica_alive ORDER BY replica");
    if (!s.prepared()) return s.error("prepare alive times");
    std::vector<ReplicaAlive> out;
    while (s.step()) out.push_back({s.text(0), s.time(1)});
    if (s.failed()) return s.error("list alive times");
    return out;
  }

  Result<Page<Observation>> listObservations(const std::string& key, int offset,
                                             int limit) override {
    Reader r(*this);
    Page<Observation> page;
    {
      Stmt c(r.db,
             "SELECT count(*) FROM observations WHERE defender_id = "
             "(SELECT id FROM defenders WHERE key=?1)");
      if (!c.prepared()) return c.error("prepare count");
      c.bind(1, key);
      if (c.step()) page.total = c.i64(0);
      if (c.failed()) return c.error("count observations");
    }
    Stmt s(r.db,
           "SELECT id, kind, time, received_at, fields FROM observations WHERE defender_id = "
           "(SELECT id FROM defenders WHERE key=?1) ORDER BY id DESC LIMIT ?2 OFFSET ?3");
    if (!s.prepared()) return s.error("prepare observations");
    s.bind(1, key).bind(2, static_cast<long long>(limit)).bind(3, static_cast<long long>(offset));
    while (s.step()) {
      Observation o;
      o.id = s.i64(0);
      o.kind = s.text(1);
      o.time = s.time(2);
      o.receivedAt = s.time(3);
      o.fields = nlohmann::json::parse(s.text(4), nullptr, false);
      if (!o.fields.is_object()) o.fields = nlohmann::json::object();
      page.items.push_back(std::move(o));
    }
    if (s.failed()) return s.error("list observations");
    return page;
  }

  Result<long long> countObservations() override {
    Reader r(*this);
    Stmt s(r.db, "SELECT count(*) FROM observations");
    if (!s.prepared()) return s.error("prepare count");
    long long n = 0;
    if (s.step()) n = s.i64(0);
    if (s.failed()) return s.error("count observations");
    return n;
  }

  Result<Page<AuditRecord>> listAudit(int offset, int limit) override {
    Reader r(*this);
    Page<AuditRecord> page;
    {
      Stmt c(r.db, "SELECT count(*) FROM audit");
      if (!c.prepared()) return c.error("prepare count");
      if (c.step()) page.total = c.i64(0);
      if (c.failed()) return c.error("count audit");
    }
    Stmt s(r.db,
           "SELECT id, at, actor, reason, hostname, app_id, type, last_seen, "
           "observations_removed FROM audit ORDER BY id DESC LIMIT ?1 OFFSET ?2");
    if (!s.prepared()) return s.error("prepare audit");
    s.bind(1, static_cast<long long>(limit)).bind(2, static_cast<long long>(offset));
    while (s.step()) {
      AuditRecord a;
      a.id = s.i64(0);
      a.at = s.time(1);
      a.actor = s.text(2);
      a.reason = s.text(3);
      a.hostname = s.text(4);
      a.appId = s.text(5);
      a.type = parseType(s.text(6)).value_or(DefenderType::kNone);
      a.lastSeen = s.time(7);
      a.observationsRemoved = s.i64(8);
      page.items.push_back(std::move(a));
    }
    if (s.failed()) return s.error("list audit");
    return page;
  }

 private:
  // A read connection borrowed for one call. An in-memory database has only the writer
  // connection, so readers share it under the write mutex.
  struct Reader {
    explicit Reader(SqliteStore& s) : store(s) {
      if (s.memory_) {
        s.writeMutex_.lock();
        db = s.writer_;
        return;
      }
      std::unique_lock lock(s.readMutex_);
      s.readerFree_.wait(lock, [&] { return !s.freeReaders_.empty(); });
      db = s.freeReaders_.back();
      s.freeReaders_.pop_back();
    }
    ~Reader() {
      if (store.memory_) {
        store.writeMutex_.unlock();
        return;
      }
      {
        std::lock_guard lock(store.readMutex_);
        store.freeReaders_.push_back(db);
      }
      store.readerFree_.notify_one();
    }
    SqliteStore& store;
    sqlite3* db = nullptr;
  };

  static Status openConnection(const SqliteOptions& options, sqlite3*& db) {
    const int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
    const int rc = sqlite3_open_v2(options.path.c_str(), &db, flags, nullptr);
    if (rc != SQLITE_OK) {
      Error e = sqliteError(db, rc, ("open " + options.path).c_str());
      sqlite3_close(db);
      db = nullptr;
      return e;
    }
    sqlite3_busy_timeout(db, options.busyTimeoutMs);
    return Status::success();
  }

  bool memory_ = false;
  sqlite3* writer_ = nullptr;
  std::mutex writeMutex_;
  std::vector<sqlite3*> readers_;
  std::vector<sqlite3*> freeReaders_;
  std::mutex readMutex_;
  std::condition_variable readerFree_;
};

}  // namespace

int sqliteSchemaVersion() {
  return kSchemaVersion;
}

Result<std::unique_ptr<Store>> openSqliteStore(const SqliteOptions& options) {
  auto store = std::make_unique<SqliteStore>();
  if (auto st = store->open(options); !st.ok()) return st.error();
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace dc::inventory
