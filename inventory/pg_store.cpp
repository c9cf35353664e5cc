#include "inventory/pg_store.h"

#include <algorithm>
#include <iterator>
#include <map>
#include <string_view>

#include "common/defender_version.h"
#include "common/pg.h"
#include "inventory/liveness.h"
#include "inventory/store_sql.h"

namespace dc::inventory {

namespace {

/// How long a write transaction may idle between its statements before the server ends it
/// (write(): a paused replica must not keep its row locks).
constexpr Millis kWriteIdleLimit{5000};

using storesql::imageOf;
using storesql::likePattern;
using storesql::storedVersionKey;

// ---------------------------------------------------------------------------------------------
// Schema (component "inventory" of schema_migrations). Append steps; never edit a released one.
//
// Times are bigint milliseconds since the Unix epoch (UTC), as in the SQLite store. Text columns
// that are compared or sorted use the "C" collation: byte order, as SQLite's BINARY, whatever
// the database's default collation is. The columns a filter needs from the details JSON
// (image, resource_id) and the ordered version (version_key) are computed by the writer.

const std::string_view kMigrations[] = {
    // 1: defenders, observations, audit, settings, console state.
    R"sql(
CREATE TABLE defenders (
  id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  key             text COLLATE "C" NOT NULL UNIQUE,  -- lower-cased hostname
  hostname        text COLLATE "C" NOT NULL,
  type            text COLLATE "C" NOT NULL,
  category        text COLLATE "C" NOT NULL,
  version         text COLLATE "C" NOT NULL,
  version_key     bigint,                            -- dc::versionKey; NULL when unparseable
  cluster         text COLLATE "C" NOT NULL,
  app_id          text COLLATE "C" NOT NULL,
  container       text COLLATE "C" NOT NULL,
  image           text COLLATE "C" NOT NULL,         -- details.cloudMetadata.image
  resource_id     text COLLATE "C" NOT NULL,         -- details.cloudMetadata.resourceID
  details         text NOT NULL,                     -- JSON object
  fingerprint     bigint NOT NULL DEFAULT 0,         -- descriptiveFingerprint, signed
  registered_at   bigint NOT NULL,                   -- written once, by the insert
  last_seen       bigint NOT NULL,                   -- only moves forward
  judged_from     bigint NOT NULL,
  connected_since bigint NOT NULL,
  graceful_at     bigint,
  clock_skew_ms   bigint
);
CREATE INDEX defenders_type ON defenders (type, key);
CREATE INDEX defenders_cluster ON defenders (cluster, key);
CREATE INDEX defenders_app_id ON defenders (app_id, key);
CREATE INDEX defenders_graceful ON defenders (graceful_at) WHERE graceful_at IS NOT NULL;
CREATE INDEX defenders_version ON defenders (version_key, category) WHERE version_key IS NOT NULL;
CREATE TABLE observations (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  defender_id bigint NOT NULL,
  kind        text NOT NULL,
  time        bigint NOT NULL,
  received_at bigint NOT NULL,
  fields      text NOT NULL
);
CREATE INDEX observations_defender ON observations (defender_id, id);
CREATE TABLE audit (
  id                   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  at                   bigint NOT NULL,
  actor                text NOT NULL,
  reason               text NOT NULL,
  hostname             text NOT NULL,
  app_id               text NOT NULL,
  type                 text NOT NULL,
  last_seen            bigint NOT NULL,
  observations_removed bigint NOT NULL
);
CREATE TABLE settings (name text PRIMARY KEY, value text NOT NULL);
CREATE TABLE console_state (name text PRIMARY KEY, value bigint NOT NULL);
)sql",
    // 2: several replicas on one database. The sweeper lease with its fencing token
    // (docs/operations.md "Which replica sweeps"), and one alive time per replica instead of the
    // Console's single one, which becomes the row of replica 'console' (kLegacyReplica).
    R"sql(
CREATE TABLE sweeper_lease (
  name          text PRIMARY KEY,
  holder        text NOT NULL,    -- replica id
  epoch         bigint NOT NULL,  -- fencing token
  expires_at_ms bigint NOT NULL
);
CREATE TABLE replica_alive (
  replica  text PRIMARY KEY,
  alive_at bigint NOT NULL
);
INSERT INTO replica_alive (replica, alive_at)
  SELECT 'console', value FROM console_state WHERE name = 'alive';
DELETE FROM console_state WHERE name = 'alive';
)sql",
    // 3: room on every page of defenders for the updated version of its rows. A heartbeat
    // refresh changes no indexed column, so PostgreSQL can update the row on its own page without
    // touching the indexes (a HOT update) — if the page has room. Full pages (the default
    // fillfactor 100) made 95 % of refreshes non-HOT: one new entry in each of the table's 6
    // indexes per refresh (docs/benchmarks.md, "Write amplification"). Applies to pages written
    // from now on; `VACUUM FULL defenders` rewrites existing ones.
    R"sql(
ALTER TABLE defenders SET (fillfactor = 80);
)sql",
};
constexpr int kSchemaVersion = static_cast<int>(std::size(kMigrations));

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

// Rows fetched per round trip by the full scans.
constexpr int kScanBatch = 5000;
// A transaction that lost a deadlock or serialization conflict against another writer is run
// again, up to this many times in all.
constexpr int kAttempts = 3;

long long ms(TimePoint t) {
  return t.time_since_epoch().count();
}

nlohmann::json optMs(const std::optional<TimePoint>& t) {
  return t ? nlohmann::json(ms(*t)) : nlohmann::json(nullptr);
}

nlohmann::json optInt(const std::optional<long long>& v) {
  return v ? nlohmann::json(*v) : nlohmann::json(nullptr);
}

// Rows travel to the server as one JSON array parameter (json_to_recordset): one statement per
// batch, not one round trip per row. Invalid UTF-8 is replaced rather than thrown.
std::string dumpRows(const nlohmann::json& rows) {
  return rows.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// What applying `rows` one after the other under the write rules leaves per hostname key: a
// later row replaces an earlier one of the same key unless its lastSeen is older. One statement
// may change a row only once, so duplicates are folded here first.
std::vector<const Defender*> newestPerKey(const std::vector<Defender>& rows,
                                          std::vector<std::string>& keys) {
  std::map<std::string, size_t> at;
  std::vector<const Defender*> out;
  keys.clear();
  for (const auto& d : rows) {
    auto key = hostnameKey(d.hostname);
    auto [it, inserted] = at.try_emplace(key, out.size());
    if (inserted) {
      out.push_back(&d);
      keys.push_back(std::move(key));
    } else if (d.lastSeen >= out[it->second]->lastSeen) {
      out[it->second] = &d;
    }
  }
  return out;
}

constexpr const char* kDefenderColumns =
    "hostname, type, version, cluster, app_id, container, details, registered_at, last_seen, "
    "judged_from, connected_since, graceful_at, clock_skew_ms";

Defender readDefender(const pg::Rows& r, int row) {
  Defender d;
  d.hostname = r.text(row, 0);
  d.type = parseType(r.view(row, 1)).value_or(DefenderType::kNone);
  d.version = r.text(row, 2);
  d.cluster = r.text(row, 3);
  d.appId = r.text(row, 4);
  d.container = r.text(row, 5);
  d.details = nlohmann::json::parse(r.view(row, 6), nullptr, /*allow_exceptions=*/false);
  if (!d.details.is_object()) d.details = nlohmann::json::object();
  d.registeredAt = r.epochMs(row, 7);
  d.lastSeen = r.epochMs(row, 8);
  d.judgedFrom = r.epochMs(row, 9);
  d.connectedSince = r.epochMs(row, 10);
  d.gracefulDisconnectAt = r.optEpochMs(row, 11);
  d.clockSkewMs = r.optInteger(row, 12);
  return d;
}

// A statement's WHERE clause built from fixed fragments; every value is a bound parameter.
struct Where {
  std::string sql;
  std::vector<pg::Param> params;
  /// Binds `v` and returns its reference, e.g. "$3::text".
  std::string bind(pg::Param v, const char* type) {
    params.push_back(std::move(v));
    std::string ref = "$";
    ref += std::to_string(params.size());
    ref += "::";
    ref += type;
    return ref;
  }
  void add(const std::string& fragment) {
    sql += sql.empty() ? " WHERE " : " AND ";
    sql += fragment;
  }
};

// The liveness expressions of DESIGN §4 at one cutoff, their parameters bound in `w` (only the
// ones used: PostgreSQL rejects a parameter that no expression references).
// Connected ⇔ no graceful disconnect and judged within the grace period G (boolean).
std::string connectedSql(Where& w, const LivenessCutoff& c) {
  return "(graceful_at IS NULL AND judged_from >= " +
         w.bind(pg::epochMs(c.now - c.grace), "bigint") + ")";
}
// When the connection state last changed (bigint ms).
std::string lastModifiedSql(Where& w, const LivenessCutoff& c) {
  const auto connected = connectedSql(w, c);
  const auto grace = w.bind(pg::integer(static_cast<long long>(c.grace.count())), "bigint");
  return "(CASE WHEN " + connected + " THEN connected_since ELSE COALESCE(graceful_at, " +
         "judged_from + " + grace + ") END)";
}

std::string orderBy(SortKey key, bool reverse, Where& w, const LivenessCutoff& cutoff) {
  return storesql::orderBy(key, reverse, [&](SortKey k) {
    return k == SortKey::kLastModified ? lastModifiedSql(w, cutoff) : connectedSql(w, cutoff);
  });
}

std::vector<CategorySummary> emptySummary() {
  std::vector<CategorySummary> out;
  for (auto c :
       {Category::kContainer, Category::kHost, Category::kServerless, Category::kAppEmbedded})
    out.push_back({c, 0, 0, 0});
  return out;
}

// ---------------------------------------------------------------------------------------------

class PgStore final : public Store {
 public:
  explicit PgStore(std::unique_ptr<pg::Pool> pool) : pool_(std::move(pool)) {}

  Status migrate() {
    auto c = pool_->acquire();
    if (!c.ok()) return c.error();
    return pg::runMigrations(**c, "inventory", kMigrations);
  }

  // ---- writes ----

  Status write(const WriteBatch& batch) override {
    if (batch.empty()) return Status::success();
    std::vector<std::string> missing;
    auto st = inTransaction([&](pg::Connection& c) -> Status {
      missing.clear();
      // A writer sends its statements back to back; one that idles inside its transaction for
      // kWriteIdleLimit was paused (SIGSTOP, a frozen VM). The server then ends its session,
      // so the Defender rows it locked do not hold back every other replica's writes (and
      // sweeps) until it resumes; its batch stays pending here and is written again.
      auto limit = c.exec("SELECT set_config('idle_in_transaction_session_timeout', $1, true)",
                          {pg::text(std::to_string(kWriteIdleLimit.count()))});
      if (!limit.ok()) return limit.error();
      return writeIn(c, batch, missing);
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
    std::vector<AuditRecord> written;
    auto st = inTransaction([&](pg::Connection& c) -> Status {
      written.clear();
      for (const auto& key : keys) {
        // The row, its observations and the audit record in one statement; nothing when the
        // key is not stored (another writer may have removed it already).
        auto r = c.exec(
            "WITH d AS (DELETE FROM defenders WHERE key = $1::text "
            "RETURNING id, hostname, app_id, type, last_seen), "
            "o AS (DELETE FROM observations WHERE defender_id IN (SELECT id FROM d) RETURNING 1) "
            "INSERT INTO audit (at, actor, reason, hostname, app_id, type, last_seen, "
            "observations_removed) SELECT $2::bigint, $3::text, $4::text, hostname, app_id, "
            "type, last_seen, (SELECT count(*) FROM o) FROM d "
            "RETURNING id, hostname, app_id, type, last_seen, observations_removed",
            {pg::text(key), pg::epochMs(at), pg::text(actor), pg::text(reason)});
        if (!r.ok()) return r.error();
        if (r->empty()) continue;
        AuditRecord rec;
        rec.id = r->integer(0, 0);
        rec.at = at;
        rec.actor = actor;
        rec.reason = reason;
        rec.hostname = r->text(0, 1);
        rec.appId = r->text(0, 2);
        rec.type = parseType(r->view(0, 3)).value_or(DefenderType::kNone);
        rec.lastSeen = r->epochMs(0, 4);
        rec.observationsRemoved = r->integer(0, 5);
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
    const nlohmann::json keyList(std::vector<std::string>(keys.begin(), keys.end()));
    bool lost = false;
    auto st = inTransaction([&](pg::Connection& c) -> Status {
      written.clear();
      // FOR SHARE holds the lease row until this transaction ends: another replica's take-over
      // (an UPDATE of that row) waits for the delete to commit, and a take-over that committed
      // first leaves no matching row. The DELETE checks the lease again itself. The transaction
      // may idle between its statements at most until the lease expires (at least 1 s): a
      // replica paused (SIGSTOP, a frozen VM) in it then loses its session, and the lock, to
      // the server, and another replica takes the lease as if this one had crashed.
      auto lease = c.exec(
          "SELECT set_config('idle_in_transaction_session_timeout', "
          "GREATEST(expires_at_ms - $3::bigint, 1000)::text, true) FROM sweeper_lease "
          "WHERE name = 'sweeper' AND holder = $1::text AND epoch = $2::bigint AND "
          "expires_at_ms > $3::bigint FOR SHARE",
          {pg::text(fence.holder), pg::integer(fence.epoch), pg::epochMs(fence.at)});
      if (!lease.ok()) return lease.error();
      if (lease->empty()) {
        lost = true;
        return leaseLost(fence);
      }
      // Due on the stored row, by the rule of inventory::judge + retentionFor at now − margin; a
      // row another writer changed meanwhile is re-checked on its newest version (READ
      // COMMITTED). Observations and audit records in the same statement.
      auto r = c.exec(
          "WITH k AS (SELECT key, n FROM json_array_elements_text($1::json) WITH ORDINALITY "
          "AS k(key, n)), "
          "d AS (DELETE FROM defenders WHERE key IN (SELECT key FROM k) AND "
          "COALESCE(graceful_at, judged_from + $2::bigint) + CASE WHEN category = "
          "'appEmbedded' THEN $3::bigint ELSE $4::bigint END <= $5::bigint AND EXISTS (SELECT 1 "
          "FROM sweeper_lease WHERE name = 'sweeper' AND holder = $6::text AND epoch = "
          "$7::bigint AND expires_at_ms > $8::bigint) "
          "RETURNING id, key, hostname, app_id, type, last_seen), "
          "o AS (DELETE FROM observations WHERE defender_id IN (SELECT id FROM d) "
          "RETURNING defender_id), "
          "oc AS (SELECT defender_id, count(*) AS n FROM o GROUP BY defender_id), "
          "a AS (INSERT INTO audit (at, actor, reason, hostname, app_id, type, last_seen, "
          "observations_removed) SELECT $9::bigint, 'scheduler', $10::text, d.hostname, "
          "d.app_id, d.type, d.last_seen, COALESCE(oc.n, 0) FROM d LEFT JOIN oc ON "
          "oc.defender_id = d.id JOIN k ON k.key = d.key ORDER BY k.n "
          "RETURNING id, hostname, app_id, type, last_seen, observations_removed) "
          "SELECT id, hostname, app_id, type, last_seen, observations_removed FROM a",
          {dumpRows(keyList), pg::integer(static_cast<long long>(due.grace.count())),
           pg::integer(static_cast<long long>(retentionFor(Category::kAppEmbedded, 1).count())),
           pg::integer(static_cast<long long>(
               retentionFor(Category::kHost, due.disconnectPeriodDays).count())),
           pg::epochMs(due.now - due.margin), pg::text(fence.holder), pg::integer(fence.epoch),
           pg::epochMs(fence.at), pg::epochMs(due.now), pg::text(reason)});
      if (!r.ok()) return r.error();
      for (int i = 0; i < r->rows(); ++i) {
        AuditRecord rec;
        rec.id = r->integer(i, 0);
        rec.at = due.now;
        rec.actor = "scheduler";
        rec.reason = reason;
        rec.hostname = r->text(i, 1);
        rec.appId = r->text(i, 2);
        rec.type = parseType(r->view(i, 3)).value_or(DefenderType::kNone);
        rec.lastSeen = r->epochMs(i, 4);
        rec.observationsRemoved = r->integer(i, 5);
        written.push_back(std::move(rec));
      }
      return Status::success();
    });
    if (!st.ok()) return lost ? leaseLost(fence) : st.error();
    // In `keys` order (the audit ids follow it too).
    std::map<std::string, size_t> order;
    for (size_t i = 0; i < keys.size(); ++i) order.emplace(keys[i], i);
    std::stable_sort(written.begin(), written.end(), [&](const auto& x, const auto& y) {
      return order[hostnameKey(x.hostname)] < order[hostnameKey(y.hostname)];
    });
    return written;
  }

  Result<SweepLease> acquireSweepLease(const std::string& holder, TimePoint now,
                                       Millis ttl) override {
    SweepLease out;
    auto st = inTransaction([&](pg::Connection& c) -> Status {
      // Taken when there is none or it expired, renewed when it is ours; the epoch moves on
      // unless a valid lease is renewed. Replicas racing for it are ordered by the row lock.
      auto r = c.exec(
          "INSERT INTO sweeper_lease AS l (name, holder, epoch, expires_at_ms) "
          "VALUES ('sweeper', $1::text, 1, $3::bigint) ON CONFLICT (name) DO UPDATE SET "
          "epoch = CASE WHEN l.holder = excluded.holder AND l.expires_at_ms > $2::bigint "
          "THEN l.epoch ELSE l.epoch + 1 END, holder = excluded.holder, "
          "expires_at_ms = excluded.expires_at_ms "
          "WHERE l.holder = excluded.holder OR l.expires_at_ms <= $2::bigint "
          "RETURNING holder, epoch, expires_at_ms",
          {pg::text(holder), pg::epochMs(now), pg::epochMs(now + ttl)});
      if (!r.ok()) return r.error();
      if (r->empty()) {
        r = c.exec("SELECT holder, epoch, expires_at_ms FROM sweeper_lease WHERE name = 'sweeper'");
        if (!r.ok()) return r.error();
      }
      if (!r->empty()) {
        out.holder = r->text(0, 0);
        out.epoch = r->integer(0, 1);
        out.expiresAt = r->epochMs(0, 2);
      }
      return Status::success();
    });
    if (!st.ok()) return st.error();
    return out;
  }

  Status releaseSweepLease(const std::string& holder, long long epoch) override {
    auto c = pool_->acquire();
    if (!c.ok()) return c.error();
    auto r = (*c)->exec(
        "UPDATE sweeper_lease SET expires_at_ms = 0 WHERE name = 'sweeper' AND "
        "holder = $1::text AND epoch = $2::bigint",
        {pg::text(holder), pg::integer(epoch)});
    if (!r.ok()) return r.error();
    return Status::success();
  }

  Status saveSettings(const DefenderSettings& settings) override {
    auto c = pool_->acquire();
    if (!c.ok()) return c.error();
    auto r = (*c)->exec(
        "INSERT INTO settings (name, value) VALUES ('disconnectPeriodDays', $1::text) "
        "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        {pg::integer(settings.disconnectPeriodDays)});
    if (!r.ok()) return r.error();
    return Status::success();
  }

  // ---- reads ----

  Result<std::optional<Defender>> findDefender(const std::string& key) override {
    auto c = pool_->acquire();
    if (!c.ok()) return c.error();
    auto r = (*c)->exec(
        std::string("SELECT ") + kDefenderColumns + " FROM defenders WHERE key = $1::text",
        {pg::text(key)});
    if (!r.ok()) return r.error();
    if (r->empty()) return std::optional<Defender>();
    return std::optional<Defender>(readDefender(*r, 0));
  }

  Result<std::vector<Defender>> findDefenders(std::span<const std::string> keys) override {
    std::vector<Defender> out;
    if (keys.empty()) return out;
    auto c = pool_->acquire();
    if (!c.ok()) return c.error();
    nlohmann::json list = nlohmann::json::array();
    for (const auto& k : keys) list.push_back(k);
    auto r = (*c)->exec(std::string("SELECT ") + kDefenderColumns +
                            " FROM defenders WHERE key IN "
                            "(SELECT value COLLATE \"C\" FROM json_array_elements_text($1::json))",
                        {dumpRows(list)});
    if (!r.ok()) return r.error();
    out.reserve(static_cast<size_t>(r->rows()));
    for (int i = 0; i < r->rows(); ++i) out.push_back(readDefender(*r, i));
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

  Result<std::vector<CategorySummary>> summarize(const LivenessCutoff& cutoff) override {
    Where w;
    const auto connected = connectedSql(w, cutoff);
    auto c = pool_->acquire();
    if (!c.ok()) return c.error();
    auto r = (*c)->exec("SELECT category, count(*), count(*) FILTER (WHERE " + connected +
                            ") FROM defenders GROUP BY category",
                        w.params);
    if (!r.ok()) return r.error();
    auto out = emptySummary();
    for (int i = 0; i < r->rows(); ++i) {
      if (auto cat = parseCategory(r->view(i, 0))) {
        auto& row = out[static_cast<size_t>(*cat)];
        row.deployed = r->integer(i, 1);
        row.connected = r->integer(i, 2);
      }
    }
    return out;
  }

  Result<std::vector<CategorySummary>> countOutdated(const DefenderVersion& deployed) override {
    auto c = pool_->acquire();
    if (!c.ok()) return c.error();
    auto r = (*c)->exec(
        "SELECT category, count(*) FROM defenders WHERE version_key IS NOT NULL AND "
        "version_key < $1::bigint GROUP BY category",
        {pg::integer(versionKey(deployed))});
    if (!r.ok()) return r.error();
    auto out = emptySummary();
    for (int i = 0; i < r->rows(); ++i)
      if (auto cat = parseCategory(r->view(i, 0)))
        out[static_cast<size_t>(*cat)].outdated = r->integer(i, 1);
    return out;
  }

  Result<std::vector<TypeCount>> countTypes(const LivenessCutoff& cutoff) override {
    Where w;
    const auto connected = connectedSql(w, cutoff);
    auto c = pool_->acquire();
    if (!c.ok()) return c.error();
    auto r = (*c)->exec("SELECT type, count(*), count(*) FILTER (WHERE " + connected +
                            ") FROM defenders GROUP BY type",
                        w.params);
    if (!r.ok()) return r.error();
    std::vector<TypeCount> out;
    for (const auto& info : allTypes()) out.push_back({info.type, 0, 0});
    for (int i = 0; i < r->rows(); ++i)
      if (auto t = parseType(r->view(i, 0)))
        for (auto& row : out)
          if (row.type == *t) {
            row.deployed = r->integer(i, 1);
            row.connected = r->integer(i, 2);
          }
    return out;
  }

  Result<SilenceCount> countSilence(TimePoint since, TimePoint now, Millis grace) override {
    auto c = pool_->acquire();
    if (!c.ok()) return c.error();
    auto r = (*c)->exec(
        "SELECT count(*), count(*) FILTER (WHERE graceful_at IS NULL AND judged_from < "
        "$3::bigint) FROM defenders WHERE (graceful_at IS NULL OR graceful_at > $1::bigint) AND "
        "judged_from >= $2::bigint",
        {pg::epochMs(since), pg::epochMs(connectedCutoff(since, grace)),
         pg::epochMs(connectedCutoff(now, grace))});
    if (!r.ok()) return r.error();
    return SilenceCount{r->integer(0, 0), r->integer(0, 1)};
  }

  Result<std::vector<std::string>> listDueKeys(Category category, const DueRule& due,
                                               size_t limit) override {
    // removalAt = COALESCE(graceful_at, judged_from + G) + retention ≤ now − margin, the rule
    // evictDefenders re-checks. No index serves it (one on judged_from would cost every
    // heartbeat flush its HOT update): a scan of the category, once per sweep batch.
    auto c = pool_->acquire();
    if (!c.ok()) return c.error();
    const Millis retention = retentionFor(category, due.disconnectPeriodDays);
    auto r = (*c)->exec(
        "SELECT key FROM defenders WHERE category = $1::text AND "
        "COALESCE(graceful_at, judged_from + $2::bigint) <= $3::bigint "
        "ORDER BY COALESCE(graceful_at, judged_from + $2::bigint), key LIMIT $4::bigint",
        {pg::text(categoryName(category)), pg::integer(static_cast<long long>(due.grace.count())),
         pg::epochMs(due.now - due.margin - retention),
         pg::integer(static_cast<long long>(limit))});
    if (!r.ok()) return r.error();
    std::vector<std::string> out;
    out.reserve(static_cast<size_t>(r->rows()));
    for (int i = 0; i < r->rows(); ++i) out.push_back(r->text(i, 0));
    return out;
  }

  Result<std::vector<ClusterCount>> countClusters() override {
    auto c = pool_->acquire();
    if (!c.ok()) return c.error();
    auto r = (*c)->exec(
        "SELECT cluster, count(*) FROM defenders WHERE cluster <> '' GROUP BY cluster "
        "ORDER BY cluster");
    if (!r.ok()) return r.error();
    std::vector<ClusterCount> out;
    for (int i = 0; i < r->rows(); ++i) out.push_back({r->text(i, 0), r->integer(i, 1)});
    return out;
  }

  Result<std::vector<VersionCount>> countVersions() override {
    auto c = pool_->acquire();
    if (!c.ok()) return c.error();
    auto r =
        (*c)->exec("SELECT version, count(*) FROM defenders GROUP BY version ORDER BY version");
    if (!r.ok()) return r.error();
    std::vector<VersionCount> out;
    for (int i = 0; i < r->rows(); ++i) out.push_back({r->text(i, 0), r->integer(i, 1)});
    return out;
  }

  Status forEachDefender(const std::function<bool(const Defender&)>& fn) override {
    auto c = pool_->acquire();
    if (!c.ok()) return c.error();
    return pg::forEachRow(**c, std::string("SELECT ") + kDefenderColumns + " FROM defenders", {},
                          kScanBatch,
                          [&](const pg::Rows& r, int row) { return fn(readDefender(r, row)); });
  }

  Result<long long> countDefenders() override { return count("SELECT count(*) FROM defenders"); }

  Status forEachLiveness(const std::function<bool(const StoredLiveness&)>& fn) override {
    auto c = pool_->acquire();
    if (!c.ok()) return c.error();
    StoredLiveness l;
    return pg::forEachRow(
        **c,
        "SELECT key, type, registered_at, last_seen, judged_from, connected_since, graceful_at, "
        "clock_skew_ms, app_id, fingerprint, "
        "CASE WHEN category = 'appEmbedded' THEN resource_id ELSE '' END FROM defenders",
        {}, kScanBatch, [&](const pg::Rows& r, int row) {
          l.key.assign(r.view(row, 0));  // reuses the buffers: no allocation per row
          l.type = parseType(r.view(row, 1)).value_or(DefenderType::kNone);
          l.registeredAt = r.epochMs(row, 2);
          l.lastSeen = r.epochMs(row, 3);
          l.judgedFrom = r.epochMs(row, 4);
          l.connectedSince = r.epochMs(row, 5);
          l.gracefulDisconnectAt = r.optEpochMs(row, 6);
          l.clockSkewMs = r.optInteger(row, 7);
          l.appId.assign(r.view(row, 8));
          l.fingerprint = static_cast<uint64_t>(r.integer(row, 9));
          l.resourceId.assign(r.view(row, 10));
          return fn(l);
        });
  }

  Result<DefenderSettings> loadSettings() override {
    auto c = pool_->acquire();
    if (!c.ok()) return c.error();
    auto r = (*c)->exec("SELECT value FROM settings WHERE name = 'disconnectPeriodDays'");
    if (!r.ok()) return r.error();
    DefenderSettings out;
    if (!r->empty()) {
      try {
        out.disconnectPeriodDays = std::stoi(r->text(0, 0));
      } catch (...) {
        // A corrupt value falls back to the default.
      }
    }
    return out;
  }

  Result<std::optional<TimePoint>> loadConsoleAlive() override {
    auto c = pool_->acquire();
    if (!c.ok()) return c.error();
    auto r = (*c)->exec("SELECT max(alive_at) FROM replica_alive");
    if (!r.ok()) return r.error();
    if (r->empty() || r->isNull(0, 0)) return std::optional<TimePoint>();
    return std::optional<TimePoint>(r->epochMs(0, 0));
  }

  Result<std::vector<ReplicaAlive>> listReplicasAlive() override {
    auto c = pool_->acquire();
    if (!c.ok()) return c.error();
    auto r =
        (*c)->exec("SELECT replica, alive_at FROM replica_alive ORDER BY replica COLLATE \"C\"");
    if (!r.ok()) return r.error();
    std::vector<ReplicaAlive> out;
    for (int i = 0; i < r->rows(); ++i) out.push_back({r->text(i, 0), r->epochMs(i, 1)});
    return out;
  }

  Result<Page<Observation>> listObservations(const std::string& key, int offset,
                                             int limit) override {
    auto c = pool_->acquire();
    if (!c.ok()) return c.error();
    // count and page from one snapshot.
    auto tx = pg::Transaction::begin(**c, "REPEATABLE READ");
    if (!tx.ok()) return tx.error();
    Page<Observation> page;
    auto n = (*c)->exec(
        "SELECT count(*) FROM observations WHERE defender_id = "
        "(SELECT id FROM defenders WHERE key = $1::text)",
        {pg::text(key)});
    if (!n.ok()) return n.error();
    page.total = n->integer(0, 0);
    auto r = (*c)->exec(
        "SELECT id, kind, time, received_at, fields FROM observations WHERE defender_id = "
        "(SELECT id FROM defenders WHERE key = $1::text) ORDER BY id DESC "
        "LIMIT $2::bigint OFFSET $3::bigint",
        {pg::text(key), pg::integer(limit), pg::integer(offset)});
    if (!r.ok()) return r.error();
    for (int i = 0; i < r->rows(); ++i) {
      Observation o;
      o.id = r->integer(i, 0);
      o.kind = r->text(i, 1);
      o.time = r->epochMs(i, 2);
      o.receivedAt = r->epochMs(i, 3);
      o.fields = nlohmann::json::parse(r->view(i, 4), nullptr, false);
      if (!o.fields.is_object()) o.fields = nlohmann::json::object();
      page.items.push_back(std::move(o));
    }
    if (auto st = tx->commit(); !st.ok()) return st.error();
    return page;
  }

  Result<long long> countObservations() override {
    return count("SELECT count(*) FROM observations");
  }

  Result<Page<AuditRecord>> listAudit(int offset, int limit) override {
    auto c = pool_->acquire();
    if (!c.ok()) return c.error();
    auto tx = pg::Transaction::begin(**c, "REPEATABLE READ");
    if (!tx.ok()) return tx.error();
    Page<AuditRecord> page;
    auto n = (*c)->exec("SELECT count(*) FROM audit");
    if (!n.ok()) return n.error();
    page.total = n->integer(0, 0);
    auto r = (*c)->exec(
        "SELECT id, at, actor, reason, hostname, app_id, type, last_seen, observations_removed "
        "FROM audit ORDER BY id DESC LIMIT $1::bigint OFFSET $2::bigint",
        {pg::integer(limit), pg::integer(offset)});
    if (!r.ok()) return r.error();
    for (int i = 0; i < r->rows(); ++i) {
      AuditRecord a;
      a.id = r->integer(i, 0);
      a.at = r->epochMs(i, 1);
      a.actor = r->text(i, 2);
      a.reason = r->text(i, 3);
      a.hostname = r->text(i, 4);
      a.appId = r->text(i, 5);
      a.type = parseType(r->view(i, 6)).value_or(DefenderType::kNone);
      a.lastSeen = r->epochMs(i, 7);
      a.observationsRemoved = r->integer(i, 8);
      page.items.push_back(std::move(a));
    }
    if (auto st = tx->commit(); !st.ok()) return st.error();
    return page;
  }

 private:
  /// Runs `body` in one transaction on a pooled connection; runs it again (up to kAttempts in
  /// all) when it lost a deadlock or a serialization conflict against another writer.
  template <typename F>
  Status inTransaction(F&& body) {
    auto c = pool_->acquire();
    if (!c.ok()) return c.error();
    Status st;
    for (int attempt = 1; attempt <= kAttempts; ++attempt) {
      auto tx = pg::Transaction::begin(**c);
      if (!tx.ok()) return tx.error();
      st = body(**c);
      if (st.ok()) st = tx->commit();
      if (st.ok()) return st;
      const auto& state = (*c)->lastSqlState();
      if (state != "40P01" && state != "40001") return st;
    }
    return st;
  }

  Status writeIn(pg::Connection& c, const WriteBatch& batch, std::vector<std::string>& missing) {
    std::vector<std::string> keys;
    if (!batch.upserts.empty()) {
      // A report older than the stored row (another writer stored a newer one) changes nothing,
      // nor does one seen before a stored graceful disconnect (a heartbeat another replica still
      // held must not reconnect a Defender that stopped); registered_at is not in the SET list:
      // written once, by the insert.
      nlohmann::json rows = nlohmann::json::array();
      const auto upserts = newestPerKey(batch.upserts, keys);
      for (size_t i = 0; i < upserts.size(); ++i) {
        const Defender& d = *upserts[i];
        rows.push_back({
            {"key", keys[i]},
            {"hostname", d.hostname},
            {"type", typeInfo(d.type).apiName},
            {"category", categoryName(categoryOf(d.type))},
            {"version", d.version},
            {"version_key", optInt(storedVersionKey(d.version))},
            {"cluster", d.cluster},
            {"app_id", d.appId},
            {"container", d.container},
            {"image", imageOf(d)},
            {"resource_id", resourceIdOf(d)},
            {"details", d.details.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)},
            {"fingerprint", static_cast<long long>(descriptiveFingerprint(d))},
            {"registered_at", ms(d.registeredAt)},
            {"last_seen", ms(d.lastSeen)},
            {"judged_from", ms(d.judgedFrom)},
            {"connected_since", ms(d.connectedSince)},
            {"graceful_at", optMs(d.gracefulDisconnectAt)},
            {"clock_skew_ms", optInt(d.clockSkewMs)},
        });
      }
      // ORDER BY key: every writer takes the row locks in the same order.
      auto r = c.exec(
          "INSERT INTO defenders AS d (key, hostname, type, category, version, version_key, "
          "cluster, app_id, container, image, resource_id, details, fingerprint, registered_at, "
          "last_seen, judged_from, connected_since, graceful_at, clock_skew_ms) "
          "SELECT key, hostname, type, category, version, version_key, cluster, app_id, "
          "container, image, resource_id, details, fingerprint, registered_at, last_seen, "
          "judged_from, connected_since, graceful_at, clock_skew_ms "
          "FROM json_to_recordset($1::json) AS r(key text COLLATE \"C\", hostname text, type "
          "text, category text, version text, version_key bigint, cluster text, app_id text, "
          "container text, image text, resource_id text, details text, fingerprint bigint, "
          "registered_at bigint, last_seen bigint, judged_from bigint, connected_since bigint, "
          "graceful_at bigint, clock_skew_ms bigint) ORDER BY key "
          "ON CONFLICT (key) DO UPDATE SET hostname = excluded.hostname, type = excluded.type, "
          "category = excluded.category, version = excluded.version, "
          "version_key = excluded.version_key, cluster = excluded.cluster, "
          "app_id = excluded.app_id, container = excluded.container, image = excluded.image, "
          "resource_id = excluded.resource_id, details = excluded.details, "
          "fingerprint = excluded.fingerprint, "
          "last_seen = GREATEST(d.last_seen, excluded.last_seen), "
          "judged_from = excluded.judged_from, connected_since = excluded.connected_since, "
          "graceful_at = excluded.graceful_at, clock_skew_ms = excluded.clock_skew_ms "
          "WHERE excluded.last_seen >= d.last_seen AND (d.graceful_at IS NULL OR "
          "excluded.graceful_at IS NOT NULL OR excluded.last_seen > d.graceful_at)",
          {dumpRows(rows)});
      if (!r.ok()) return r.error();
    }
    if (!batch.touches.empty()) {
      nlohmann::json rows = nlohmann::json::array();
      const auto touches = newestPerKey(batch.touches, keys);
      for (size_t i = 0; i < touches.size(); ++i) {
        const Defender& d = *touches[i];
        rows.push_back({{"key", keys[i]},
                        {"last_seen", ms(d.lastSeen)},
                        {"judged_from", ms(d.judgedFrom)},
                        {"connected_since", ms(d.connectedSince)},
                        {"graceful_at", optMs(d.gracefulDisconnectAt)},
                        {"clock_skew_ms", optInt(d.clockSkewMs)}});
      }
      // Missing rows are skipped (the join finds nothing); an older report changes nothing.
      static constexpr const char* kTouch =
          "UPDATE defenders AS d SET last_seen = GREATEST(d.last_seen, t.last_seen), "
          "judged_from = t.judged_from, connected_since = t.connected_since, "
          "graceful_at = t.graceful_at, clock_skew_ms = t.clock_skew_ms "
          "FROM json_to_recordset($1::json) AS t(key text COLLATE \"C\", last_seen bigint, "
          "judged_from bigint, connected_since bigint, graceful_at bigint, clock_skew_ms bigint) "
          "WHERE d.key = t.key AND t.last_seen >= d.last_seen AND (d.graceful_at IS NULL OR "
          "t.graceful_at IS NOT NULL OR t.last_seen > d.graceful_at)";
      if (!batch.missingTouches) {
        auto r = c.exec(kTouch, {dumpRows(rows)});
        if (!r.ok()) return r.error();
      } else {
        // The same update, and the keys it found no row for (the statement's snapshot: rows
        // the update skipped as older still exist).
        auto r = c.exec(std::string("WITH u AS (") + kTouch +
                            " RETURNING 1) SELECT t.key FROM json_to_recordset($1::json) AS "
                            "t(key text COLLATE \"C\") WHERE NOT EXISTS (SELECT 1 FROM "
                            "defenders d WHERE d.key = t.key)",
                        {dumpRows(rows)});
        if (!r.ok()) return r.error();
        for (int i = 0; i < r->rows(); ++i) missing.push_back(r->text(i, 0));
      }
    }
    if (!batch.observations.empty()) {
      nlohmann::json rows = nlohmann::json::array();
      long long n = 0;
      for (const auto& [key, o] : batch.observations)
        rows.push_back(
            {{"n", ++n},
             {"key", key},
             {"kind", o.kind},
             {"time", ms(o.time)},
             {"received_at", ms(o.receivedAt)},
             {"fields", o.fields.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)}});
      // Observations of a Defender that is not stored are dropped by the join; ids follow the
      // batch's order.
      auto r = c.exec(
          "INSERT INTO observations (defender_id, kind, time, received_at, fields) "
          "SELECT d.id, o.kind, o.time, o.received_at, o.fields "
          "FROM json_to_recordset($1::json) AS o(n bigint, key text COLLATE \"C\", kind text, "
          "time bigint, received_at bigint, fields text) "
          "JOIN defenders d ON d.key = o.key ORDER BY o.n",
          {dumpRows(rows)});
      if (!r.ok()) return r.error();
    }
    if (batch.consoleAlive) {
      // This replica's own row; rows of replicas gone for a day go (each start is a new id),
      // never the newest alive time (this one is newer).
      const std::string replica = batch.replica.empty() ? kLegacyReplica : batch.replica;
      auto r = c.exec(
          "INSERT INTO replica_alive (replica, alive_at) VALUES ($1::text, $2::bigint) "
          "ON CONFLICT (replica) DO UPDATE SET alive_at = excluded.alive_at",
          {pg::text(replica), pg::epochMs(*batch.consoleAlive)});
      if (!r.ok()) return r.error();
      r = c.exec("DELETE FROM replica_alive WHERE replica <> $1::text AND alive_at < $2::bigint",
                 {pg::text(replica), pg::epochMs(*batch.consoleAlive - kReplicaAliveKept)});
      if (!r.ok()) return r.error();
    }
    return Status::success();
  }

  Result<long long> count(const char* sql) {
    auto c = pool_->acquire();
    if (!c.ok()) return c.error();
    auto r = (*c)->exec(sql);
    if (!r.ok()) return r.error();
    return r->integer(0, 0);
  }

  /// listDefenders, or with `keysOnly` every match's key (no paging) appended there instead.
  Result<Page<Defender>> select(const DefenderQuery& q, const LivenessCutoff& cutoff,
                                std::vector<std::string>* keysOnly) {
    Where w;
    if (q.hostname) w.add("key = " + w.bind(pg::text(hostnameKey(*q.hostname)), "text"));
    if (!q.types.empty()) {
      std::string in;
      for (auto t : q.types) {
        if (!in.empty()) in += ',';
        in += w.bind(pg::text(typeInfo(t).apiName), "text");
      }
      w.add("type IN (" + in + ")");
    }
    if (q.category) w.add("category = " + w.bind(pg::text(categoryName(*q.category)), "text"));
    if (q.connected) {
      const auto connected = connectedSql(w, cutoff);
      w.add(*q.connected ? connected : "NOT " + connected);
    }
    if (q.cluster) w.add("cluster = " + w.bind(pg::text(*q.cluster), "text"));
    // ILIKE: case-insensitive for ASCII, as SQLite's LIKE.
    if (q.clusterContains)
      w.add("cluster ILIKE " + w.bind(pg::text(likePattern(*q.clusterContains)), "text") +
            " ESCAPE '\\'");
    if (q.appId) w.add("app_id = " + w.bind(pg::text(*q.appId), "text"));
    if (q.family) {
      // App IDs are `<family>:<36-character uuid>`: the range finds the candidates through the
      // app_id index, left(…, -37) (all but the last 37 characters) keeps the exact family (a
      // family may itself contain ':').
      std::string from = *q.family, to = *q.family;
      from += ':';
      to += ';';  // the character after ':'
      w.add("app_id >= " + w.bind(pg::text(from), "text") + " AND app_id < " +
            w.bind(pg::text(to), "text") +
            " AND left(app_id, -37) = " + w.bind(pg::text(*q.family), "text"));
    }
    if (q.image) w.add("image = " + w.bind(pg::text(*q.image), "text"));
    if (q.container) w.add("container = " + w.bind(pg::text(*q.container), "text"));
    if (q.version) w.add("version = " + w.bind(pg::text(*q.version), "text"));
    if (q.outdated) {
      const auto below = w.bind(pg::integer(versionKey(q.deployedVersion)), "bigint");
      w.add(*q.outdated ? "(version_key IS NOT NULL AND version_key < " + below + ")"
                        : "(version_key IS NULL OR version_key >= " + below + ")");
    }
    if (q.afterKey && q.sort == SortKey::kHostname)
      w.add(std::string(q.reverse ? "key < " : "key > ") + w.bind(pg::text(*q.afterKey), "text"));
    if (q.search) {
      const auto p = w.bind(pg::text(likePattern(*q.search)), "text");
      std::string any;
      for (const char* column : {"key", "app_id", "cluster", "image", "version", "resource_id"}) {
        if (!any.empty()) any += " OR ";
        any += column;
        any += " ILIKE ";
        any += p;
        any += " ESCAPE '\\'";
      }
      w.add("(" + any + ")");
    }

    auto c = pool_->acquire();
    if (!c.ok()) return c.error();
    // The count and the page from one snapshot.
    std::optional<Result<pg::Transaction>> tx;
    if (q.countTotal && !keysOnly) {
      tx.emplace(pg::Transaction::begin(**c, "REPEATABLE READ"));
      if (!tx->ok()) return tx->error();
    }
    Page<Defender> page;
    if (q.countTotal && !keysOnly) {
      auto n = (*c)->exec("SELECT count(*) FROM defenders" + w.sql, w.params);
      if (!n.ok()) return n.error();
      page.total = n->integer(0, 0);
    }
    std::string order = orderBy(q.sort, q.reverse, w, cutoff);
    if (keysOnly) {
      auto st = pg::forEachRow(**c, "SELECT key FROM defenders" + w.sql + order, w.params,
                               kScanBatch, [&](const pg::Rows& r, int row) {
                                 keysOnly->push_back(r.text(row, 0));
                                 return true;
                               });
      if (!st.ok()) return st.error();
      return page;
    }
    std::string sql = std::string("SELECT ") + kDefenderColumns + " FROM defenders" + w.sql + order;
    sql += " LIMIT " + w.bind(pg::integer(q.limit), "bigint");
    sql += " OFFSET " + w.bind(pg::integer(q.offset), "bigint");
    auto r = (*c)->exec(sql, w.params);
    if (!r.ok()) return r.error();
    page.items.reserve(static_cast<size_t>(r->rows()));
    for (int i = 0; i < r->rows(); ++i) page.items.push_back(readDefender(*r, i));
    if (tx) {
      if (auto st = (**tx).commit(); !st.ok()) return st.error();
    }
    return page;
  }

  std::unique_ptr<pg::Pool> pool_;
};

}  // namespace

int pgSchemaVersion() {
  return kSchemaVersion;
}

Result<std::unique_ptr<Store>> openPgStore(const PgOptions& options) {
  auto pool = pg::Pool::open({options.url, options.poolSize, options.checkoutTimeout});
  if (!pool.ok()) return pool.error();
  auto store = std::make_unique<PgStore>(std::move(pool).value());
  if (auto st = store->migrate(); !st.ok()) return st.error();
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace dc::inventory
