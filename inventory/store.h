// The narrow storage interface of the inventory (DESIGN §7). Domain code talks to this header
// only; SQL lives in the implementations (sqlite_store.cpp, pg_store.cpp). One conformance suite
// (tests/unit/store_conformance_test.cpp) runs against every implementation.
//
// Thread-safety: every method may be called from any thread. Within one Store, writers are
// serialised by the caller (inventory::Inventory owns the single writer); readers may run
// concurrently. Several Stores may write one database (see write() for the rules that hold).
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
  std::optional<TimePoint> consoleAlive;
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
  /// The newest `WriteBatch::consoleAlive` written: when the Console was last known running.
  virtual Result<std::optional<TimePoint>> loadConsoleAlive() = 0;

  /// Newest observations of Defender `key`, newest first; `total` counts all of them.
  virtual Result<Page<Observation>> listObservations(const std::string& key, int offset,
                                                     int limit) = 0;
  virtual Result<long long> countObservations() = 0;

  /// Audit records, newest first.
  virtual Result<Page<AuditRecord>> listAudit(int offset, int limit) = 0;
};

}  // namespace dc::inventory
