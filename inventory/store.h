// The narrow storage interface of the inventory (DESIGN §7). Domain code talks to this header
// only; SQL lives in the implementations (sqlite_store.cpp, pg_store.cpp). One conformance suite
// (tests/unit/store_conformance_test.cpp) runs against every implementation.
//
// Thread-safety: every method may be called from any thread. Within one Store, writers are
// serialised by the caller (inventory::Inventory owns the single writer of its replica); readers
// may run concurrently. Several Stores (replicas) may write one database: see write() for the
// rules that hold; eviction is fenced by the sweeper lease and re-checked on the stored rows
// (evictDefenders).
// Errors: kUnavailable when the database is busy, read-only or full; kNotFound where stated.
#pragma once

#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "inventory/defender.h"
#include "inventory/query.h"

namespace dc::inventory {

/// Console-wide Defender settings (`/api/v1/settings/defender`).
struct DefenderSettings {
  /// Days after which disconnected non-App-Embedded Defenders are evicted. 1..365, default 1.
  int disconnectPeriodDays = 1;
};

/// One runtime observation reported by a Defender (DESIGN §2 "observation").
struct Observation {
  long long id = 0;                                  // assigned by the store
  std::string kind;                                  // "process", "network", "dns" or "filesystem"
  TimePoint time{};                                  // event time as reported by the Defender (UTC)
  TimePoint receivedAt{};                            // Console receive time (UTC)
  nlohmann::json fields = nlohmann::json::object();  // kind-specific fields
};

/// One audit record: an eviction or a manual delete (DESIGN §5).
struct AuditRecord {
  long long id = 0;
  TimePoint at{};      // when the removal committed (UTC)
  std::string actor;   // "scheduler" for evictions, else the user who deleted
  std::string reason;  // e.g. "disconnected for 1h (appEmbedded)", "manual delete"
  std::string hostname;
  std::string appId;
  DefenderType type = DefenderType::kNone;
  TimePoint lastSeen{};
  long long observationsRemoved = 0;
};

/// A unit of write-behind work (see Store::write).
struct WriteBatch {
  std::vector<Defender> upserts;
  std::vector<Defender> touches;
  std::vector<std::pair<std::string, Observation>> observations;  // (hostname key, observation)
  /// When set: replica `replica` was running at this time (its own row; DESIGN §4 "the Console
  /// was down" means no replica was alive).
  std::optional<TimePoint> consoleAlive;
  /// The replica id `consoleAlive` belongs to; "" stands for kLegacyReplica.
  std::string replica;
  /// When set: the hostname keys of `touches` that found no stored row (deleted or evicted,
  /// e.g. by another replica) are appended here once the batch committed. Unset: not looked
  /// for (no extra work).
  std::vector<std::string>* missingTouches = nullptr;
  bool empty() const {
    return upserts.empty() && touches.empty() && observations.empty() && !consoleAlive;
  }
};

/// The liveness columns of one stored Defender: what start-up loads into memory.
struct StoredLiveness {
  std::string key;  // hostnameKey of the hostname
  DefenderType type = DefenderType::kNone;
  TimePoint registeredAt{};
  TimePoint lastSeen{};
  TimePoint judgedFrom{};
  TimePoint connectedSince{};
  std::optional<TimePoint> gracefulDisconnectAt;
  std::optional<long long> clockSkewMs;
  std::string appId;  // as last reported ("" when none): Defender credentials are checked on it
  uint64_t fingerprint = 0;  // descriptiveFingerprint() of the stored row; 0 = unknown
  /// cloudMetadata.resourceID of App-Embedded-category Defenders (the pinned task ARN); "" for
  /// other categories or when none was reported.
  std::string resourceId;
};

/// The replica id of the alive time stored before replicas had their own rows (a database
/// written by a Console that kept one "alive" time); migrations move that time to this id.
inline constexpr const char* kLegacyReplica = "console";

/// When one replica was last known running (its newest `WriteBatch::consoleAlive`).
struct ReplicaAlive {
  std::string replica;
  TimePoint aliveAt{};
};

/// Store::countSilence: the fleet connected at a past time, and its part silent now.
struct SilenceCount {
  long long fleet = 0;
  long long silent = 0;
};

/// The sweeper lease (docs/operations.md "Which replica sweeps"): one row; the replica that
/// holds it is the only one that evicts.
struct SweepLease {
  std::string holder;     // replica id
  long long epoch = 0;    // fencing token: moves on every time the lease is taken, not renewed
  TimePoint expiresAt{};  // UTC; from then on any replica may take it
};

/// The lease a deleting statement runs under: it deletes only while the lease row has this
/// holder and epoch and has not expired at `at`.
struct LeaseFence {
  std::string holder;
  long long epoch = 0;
  TimePoint at{};
};

/// The eviction rule (inventory/liveness.h) as the deleting statement re-checks it on the stored
/// row: due ⇔ COALESCE(graceful_at, judged_from + grace) + retention(category) ≤ now − margin,
/// retention = 1 h for category appEmbedded, else disconnectPeriodDays days. The margin covers
/// heartbeats that other replicas received but have not written yet.
struct DueRule {
  TimePoint now{};
  Millis margin{0};
  Millis grace{};  // G
  int disconnectPeriodDays = 1;
};

/// Liveness columns the SQL filters need, computed by the caller at one `now`.
struct LivenessCutoff {
  TimePoint now{};
  Millis grace{};  // G
};

class Store {
 public:
  virtual ~Store() = default;

  // ---- writes (serialised by the caller) ----

  /// Applies one batch in one transaction, in this order: `upserts` (insert or replace, keyed by
  /// hostnameKey; a Defender not stored yet gets a new internal id, so old observations never
  /// reattach), `touches` (only the liveness columns of existing rows; missing rows skipped),
  /// `observations` (appended to their Defender; those whose Defender is missing are dropped),
  /// and `consoleAlive` when set. Nothing is written if any part fails.
  ///
  /// Rules that hold when several writers (Console replicas) share one database, and within a
  /// batch that names a hostname twice (as if its rows were applied one after the other):
  /// - one row per hostname key, whichever writer registers it first;
  /// - `registeredAt` is written once, when the row is inserted; an upsert of a stored row keeps
  ///   the stored value;
  /// - `lastSeen` only moves forward: an upsert or touch whose lastSeen is older than the stored
  ///   one changes nothing (it reports an older state than another writer already stored); one
  ///   with the same lastSeen is applied (a graceful disconnect keeps lastSeen).
  virtual Status write(const WriteBatch& batch) = 0;

  /// Deletes each Defender in `keys` with all its observations and appends one audit record
  /// per removed Defender (filled from the stored row plus `actor`, `reason`, `at`), all in one
  /// transaction. Missing keys are skipped. Returns the audit records written.
  virtual Result<std::vector<AuditRecord>> removeDefenders(std::span<const std::string> keys,
                                                           const std::string& actor,
                                                           const std::string& reason,
                                                           TimePoint at) = 0;

  /// Eviction (DESIGN §5, §7): in one transaction, deletes each Defender of `keys` that is
  /// still due by `due` on its stored row — a Defender whose stored lastSeen/judgedFrom moved
  /// on since the keys were chosen stays — with all its observations, and appends one audit
  /// record per removed Defender (actor "scheduler", `reason`, at `due.now`), but only while
  /// the sweeper lease matches `fence` (checked in the deleting statement itself). Missing or
  /// no longer due keys are skipped. Returns the audit records written, in `keys` order.
  /// Errors: kConflict "sweep_lease_lost" when the lease has another holder or epoch or has
  /// expired at `fence.at` — nothing deleted, no audit record.
  virtual Result<std::vector<AuditRecord>> evictDefenders(std::span<const std::string> keys,
                                                          const DueRule& due,
                                                          const LeaseFence& fence,
                                                          const std::string& reason) = 0;

  /// Takes or renews the sweeper lease for `holder` until `now + ttl`: taken when there is none,
  /// when it expired at `now`, or renewed when `holder` holds it. Taking it (not renewing a
  /// valid one) moves the epoch on. Returns the lease as it stands afterwards: held by `holder`
  /// iff `.holder == holder` (else it names the replica that holds it until `.expiresAt`).
  virtual Result<SweepLease> acquireSweepLease(const std::string& holder, TimePoint now,
                                               Millis ttl) = 0;
  /// Gives the lease up (expires it) when `holder` holds it with `epoch`, so that another
  /// replica takes it at once instead of after its time-to-live; else does nothing.
  virtual Status releaseSweepLease(const std::string& holder, long long epoch) = 0;

  virtual Status saveSettings(const DefenderSettings& settings) = 0;

  // ---- reads ----

  virtual Result<std::optional<Defender>> findDefender(const std::string& key) = 0;

  /// The stored Defenders among `keys`, in no particular order; missing keys are skipped.
  virtual Result<std::vector<Defender>> findDefenders(std::span<const std::string> keys) = 0;

  /// Filters, sorts (hostname tie-breaker) and pages. `total` counts all matches.
  virtual Result<Page<Defender>> listDefenders(const DefenderQuery& query,
                                               const LivenessCutoff& cutoff) = 0;

  /// The hostname keys of every match of `query` (its filters and sort; offset, limit and
  /// countTotal ignored), in list order, read by one statement: a consistent snapshot.
  virtual Result<std::vector<std::string>> listKeys(const DefenderQuery& query,
                                                    const LivenessCutoff& cutoff) = 0;

  virtual Result<std::vector<CategorySummary>> summarize(const LivenessCutoff& cutoff) = 0;

  /// Per Defender type (allTypes() order, zeros included): the stored Defenders and those
  /// connected at `cutoff` (the rule of kConnectedSql, inventory/liveness.h).
  virtual Result<std::vector<TypeCount>> countTypes(const LivenessCutoff& cutoff) = 0;

  /// The outage guard's counts on the stored rows (Inventory::silence): Defenders connected at
  /// `since` (no graceful disconnect at or before it, judgedFrom ≥ since − `grace`), and of
  /// them those disconnected at `now` without a graceful disconnect (judgedFrom < now − grace).
  /// On a database several replicas write, the fleet as every replica heard it.
  virtual Result<SilenceCount> countSilence(TimePoint since, TimePoint now, Millis grace) = 0;

  /// The keys of up to `limit` stored Defenders of `category` that are due for eviction by
  /// `due` — the rule evictDefenders re-checks, on the stored rows — earliest removal first
  /// (hostname key as tie-breaker). Candidates for the sweeper on a database several replicas
  /// write: a Defender only another replica saw is among them.
  virtual Result<std::vector<std::string>> listDueKeys(Category category, const DueRule& due,
                                                       size_t limit) = 0;

  /// Per category (all four, in Category order), only `outdated` filled: the stored Defenders
  /// whose reported version parses and is older than `deployed` (dc::judgeVersion).
  virtual Result<std::vector<CategorySummary>> countOutdated(const DefenderVersion& deployed) = 0;

  /// Every non-empty cluster name with the number of stored Defenders reporting it, ordered by
  /// name (byte order).
  virtual Result<std::vector<ClusterCount>> countClusters() = 0;
  /// Every reported version ("" included) with its number of Defenders, by version.
  virtual Result<std::vector<VersionCount>> countVersions() = 0;

  /// Streams every stored Defender to `fn`. Stops early if `fn` returns false.
  virtual Status forEachDefender(const std::function<bool(const Defender&)>& fn) = 0;

  /// How many Defenders are stored.
  virtual Result<long long> countDefenders() = 0;

  /// Streams the liveness columns of every stored Defender to `fn` (start-up warm-up: no
  /// descriptive fields, no JSON). Stops early if `fn` returns false.
  virtual Status forEachLiveness(const std::function<bool(const StoredLiveness&)>& fn) = 0;

  virtual Result<DefenderSettings> loadSettings() = 0;
  /// The newest `WriteBatch::consoleAlive` written by any replica: when some replica of the
  /// Console was last known running.
  virtual Result<std::optional<TimePoint>> loadConsoleAlive() = 0;
  /// Every replica's newest alive time, by replica id. Rows of replicas not heard of for a day
  /// (older than a day before another replica's newest write) are pruned.
  virtual Result<std::vector<ReplicaAlive>> listReplicasAlive() = 0;

  /// Newest observations of Defender `key`, newest first; `total` counts all of them.
  virtual Result<Page<Observation>> listObservations(const std::string& key, int offset,
                                                     int limit) = 0;
  virtual Result<long long> countObservations() = 0;

  /// Audit records, newest first.
  virtual Result<Page<AuditRecord>> listAudit(int offset, int limit) = 0;
};

}  // namespace dc::inventory
