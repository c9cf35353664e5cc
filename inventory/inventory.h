// The live inventory: the Console's in-memory liveness state of every Defender, written behind
// to a Store in batches (DESIGN §4, §5, §7).
//
// - Heartbeats are coalesced in memory and flushed in one transaction per flush interval
//   (default 1 s). A heartbeat that registers a Defender, or reconnects a disconnected one, is
//   durable before recordHeartbeat returns (group commit: the flusher is woken at once and one
//   transaction serves every waiting request). Observations are durable before return too.
// - The in-memory state is authoritative for liveness: reads overlay it on stored rows, so a
//   heartbeat that was answered is visible to the next read, and eviction re-checks it while it
//   holds the writer, so a Defender that heartbeats during a sweep is never evicted.
// - On a database other replicas share (InventoryOptions::sharedDatabase) the database is the
//   truth and memory this replica's write-behind buffer and read cache: reads, counts and
//   eviction candidates come from the stored rows, this replica's newer state overlaid.
//
// Thread-safety: every public method may be called from any thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "inventory/live_index.h"
#include "inventory/liveness.h"
#include "inventory/store.h"

namespace dc::inventory {

struct InventoryOptions {
  LivenessPolicy liveness;
  /// Longest time a coalesced heartbeat waits before it is written. Default 1 s (DESIGN §7).
  Millis flushInterval = Millis(1000);
  /// Most Defender rows written by one transaction. Durable writes (registrations,
  /// reconnections, disconnects) always go with the next flush; refreshes beyond the cap wait
  /// for the following one, which starts at once. Keeps a durable reply from waiting behind a
  /// huge backlog (after a restart or a stall).
  size_t maxFlushRows = 20000;
  /// How long a request waits for its write to become durable before it gets kUnavailable.
  Millis durableTimeout = Seconds(10);
  /// Observations waiting to be written, across all Defenders; beyond it new batches get
  /// kRateLimited ("observations_backlog").
  size_t maxPendingObservations = 200000;
  /// Per-Defender observation rate: a token bucket refilled at this many observations per
  /// second, holding at most `observationBurst`. Beyond it: kRateLimited
  /// ("observation_rate_limited").
  double observationsPerSecond = 100;
  double observationBurst = 2000;
  /// Registrations, reconnections and disconnects waiting to be committed; beyond it new ones
  /// get kUnavailable ("overloaded") before anything is kept, so memory stays bounded.
  size_t maxPendingDurable = 50000;
  /// How long a read waits for a running flush before it reads the stored rows as they are
  /// (with the in-memory liveness overlaid), so a stalled database does not stall reads.
  Millis readWaitForWriter = Millis(250);
  /// The flusher thread notices when its sleep overran by more than this (a paused or starved
  /// process): Defenders connected when the pause began are then judged from its end, like
  /// after downtime. 0 = off (tests drive noteResumed() themselves).
  Millis pauseThreshold{0};
  /// This replica's id (several Consoles may share one database, DESIGN §7): it names the
  /// replica's alive time and its sweeper lease. Empty = newReplicaId() at construction.
  std::string replicaId;
  /// A gap at start-up since the newest alive time of any replica shorter than this is not
  /// downtime: some replica was running (each writes its alive time at every complete flush),
  /// so nothing is discounted. The Console sets it to the pause threshold. 0 = every gap is.
  Millis downtimeThreshold{0};
  /// The Defender version the Console deploys (`--defender-version`): the `outdated` filter
  /// and the summary's outdated counts compare each Defender's reported version with it.
  DefenderVersion defenderVersion = *parseDeployedVersion(kDefaultDefenderVersion);
  /// The database is shared with other replicas (PostgreSQL; docs/operations.md "What each
  /// replica sees"): it is the truth, and memory is this replica's write-behind buffer and
  /// read cache. Reads go to the Store after this replica's pending writes are flushed, with
  /// its not-yet-written state overlaid where it is newer than the stored row; find, list,
  /// summary and type counts include Defenders only other replicas saw; eviction candidates
  /// come from the stored rows; a Defender this replica does not know, or knows as
  /// disconnected, is read from the Store before a heartbeat, disconnect or observation is
  /// judged. Off (SQLite, one Console): the in-memory liveness table answers as before.
  bool sharedDatabase = false;
};

/// A new replica id, unique per process start: `<host name>-<8 random hex digits>` (host name
/// cut to 40 characters), e.g. "console-2-3fa9c01b".
std::string newReplicaId();

/// Notices that a thread slept far longer than it asked to: the process was paused (SIGSTOP, a
/// frozen VM) or starved of CPU, so heartbeats could not be received meanwhile. Time spent in a
/// slow store write is not a pause: heartbeats are recorded in memory while the writer waits.
/// Pure: the caller passes the monotonic time points.
class PauseDetector {
 public:
  explicit PauseDetector(Millis threshold) : threshold_(threshold) {}
  /// A sleep of `planned` from `began` that ended at `ended`: the pause (the oversleep) when it
  /// exceeds the threshold, else nothing. A threshold of 0 turns detection off.
  std::optional<Millis> overslept(Millis planned, std::chrono::steady_clock::time_point began,
                                  std::chrono::steady_clock::time_point ended) const;

 private:
  Millis threshold_;
};

enum class HeartbeatOutcome {
  kRefreshed,    // a connected Defender heartbeated again
  kRegistered,   // unknown (or evicted) Defender: registered anew
  kReconnected,  // known but disconnected Defender: connected again
};

/// Counters for /metrics. Monotonic unless noted.
struct InventoryMetrics {
  uint64_t heartbeats = 0;
  uint64_t registrations = 0;
  uint64_t reconnections = 0;
  uint64_t gracefulDisconnects = 0;
  uint64_t observationsAccepted = 0;
  uint64_t flushes = 0;
  uint64_t flushFailures = 0;
  uint64_t evictions = 0;
  uint64_t manualDeletes = 0;
  uint64_t storageFaultEpisodes = 0;  // times the store started failing writes
  uint64_t pausesDetected = 0;        // times the Console noticed it had not run on schedule
  uint64_t overloadRefusals = 0;      // writes refused with "overloaded"
  uint64_t identityConflicts = 0;     // requests refused with 409 "identity_conflict"
  bool storageFailing = false;        // gauge: the last write attempt failed
  size_t defenders = 0;               // gauge: Defenders in memory
  size_t pendingWrites = 0;           // gauge: Defenders waiting to be flushed (heartbeats and
                                      // downtime discount not yet stored)
  double lastFlushLagSeconds = 0;     // gauge: age of the oldest heartbeat in the last flush
  double maxFlushLagSeconds = 0;      // gauge: worst lag seen since start
};

class Inventory {
 public:
  /// `store` and `clock` must outlive the Inventory.
  Inventory(Store& store, const Clock& clock, InventoryOptions options);
  ~Inventory();
  Inventory(const Inventory&) = delete;
  Inventory& operator=(const Inventory&) = delete;

  /// Loads settings and the liveness of every stored Defender, discounts Console downtime (a
  /// Defender connected when the Console stopped is judged from now: in memory at once, written
  /// behind in chunks of maxFlushRows), and starts the flusher thread unless `startFlusher` is
  /// false (tests then call flush()). Errors from the Store.
  Status start(bool startFlusher = true);
  /// Flushes what is pending and stops the flusher. Idempotent.
  void stop();

  /// Register-or-refresh. `reported` carries the Defender's descriptive fields; its liveness
  /// fields are ignored and set from the Console's clock. `defenderTime` (the Defender's own
  /// clock, optional) only feeds clockSkewMs. Errors: kUnavailable when a registration could not
  /// be made durable in time.
  ///
  /// `mayUpdate`, when set, is asked under the same lock that records the heartbeat whether a
  /// known Defender, stored under the App ID it is given, may be updated by this reporter (the
  /// defender channel's credential scope check, atomic with the write); refused: kPermissionDenied
  /// "app_id_mismatch" and nothing is written.
  ///
  /// Identity (docs/reliability.md "Identity"): a Fargate/App-Embedded Defender is pinned to the
  /// first `cloudMetadata.resourceID` (task ARN) it reports. A report for its hostname with
  /// another resourceID is refused with kConflict "identity_conflict" (field
  /// cloudMetadata.resourceID), counted in metrics().identityConflicts, and nothing is written.
  /// A report without resourceID is not checked (and does not unpin). Other types are not
  /// pinned: a host name is legitimately reused by a replacement machine.
  Result<HeartbeatOutcome> recordHeartbeat(
      Defender reported, std::optional<TimePoint> defenderTime = {},
      const std::function<bool(const std::string& storedAppId)>& mayUpdate = {});

  /// Graceful disconnect, durable before return. kNotFound for an unknown hostname;
  /// kConflict "identity_conflict" when `resourceId` is given and differs from the pinned one.
  Result<Defender> recordDisconnect(const std::string& hostname, std::string_view resourceId = {});

  /// Appends observations of a known Defender; durable before return. kNotFound when the
  /// Defender is unknown; kRateLimited when the Defender exceeds its observation rate or the
  /// backlog is full; kConflict "identity_conflict" as for recordDisconnect.
  Status recordObservations(const std::string& hostname, std::vector<Observation> batch,
                            std::string_view resourceId = {});

  /// Reads see the newest state. summary() and the lists of one type, connected or not, in
  /// hostname order (no other filter) are answered from the in-memory index, without waiting
  /// for the writer; other lists first write what is pending (their filters and counts run in
  /// the Store). Every row gets the in-memory liveness overlaid. On a shared database every
  /// read first writes what is pending and reads the Store (Defenders only other replicas saw
  /// included); this replica's state is overlaid only where it is newer than the stored row.
  Result<std::optional<Defender>> find(const std::string& hostname);
  /// The App ID the Defender last reported ("" when none), from memory without a storage read;
  /// nullopt when no such Defender is known. For checking Defender credentials per request.
  std::optional<std::string> appIdOf(const std::string& hostname);
  Result<Page<Defender>> list(const DefenderQuery& query);
  /// The hostname keys of every match of `query` (filters and sort; paging ignored), in list
  /// order, read in one statement after what is pending is written: a consistent snapshot for
  /// cursor paging and the CSV download.
  Result<std::vector<std::string>> matchingKeys(const DefenderQuery& query);
  /// The current rows of `keys`, in that order; keys no longer known (evicted or deleted
  /// meanwhile) are skipped. In-memory liveness overlaid as for list().
  Result<std::vector<Defender>> findMany(const std::vector<std::string>& keys);
  Result<std::vector<CategorySummary>> summary();
  /// Deployed and connected Defenders of every type (allTypes() order, zeros included), from
  /// memory with the same rule as summary().
  /// Errors from the Store (shared database only).
  Result<std::vector<TypeCount>> typeCounts();
  /// Every cluster reported by a Defender with its number of Defenders, by name; what is
  /// pending is written first, as for list().
  Result<std::vector<ClusterCount>> clusters();
  /// Every reported version with its number of Defenders, by version; what is pending is
  /// written first, as for list().
  Result<std::vector<VersionCount>> versions();
  Result<Page<Observation>> observations(const std::string& hostname, int offset, int limit);
  Result<Page<AuditRecord>> audit(int offset, int limit);

  /// Manual delete of a Defender and all its observations, with an audit record naming
  /// `actor`. kNotFound for an unknown hostname.
  Result<AuditRecord> remove(const std::string& hostname, const std::string& actor);

  /// Bulk manual delete (`POST /api/v1/defenders/delete`): removes each Defender of `hostnames`
  /// (keys or names) with its observations and an audit record naming `actor`, in transactions
  /// of at most `batch` Defenders each, so that heartbeats and reads are not held up behind one
  /// huge transaction. Hostnames no longer known (evicted or deleted meanwhile) are skipped.
  /// Returns the audit records of the Defenders removed, in the order given. Errors from the
  /// Store; the batches committed before the failing one stay deleted (their records are lost
  /// to the caller only in that case, and are still in the store's audit table).
  Result<std::vector<AuditRecord>> removeMany(std::span<const std::string> hostnames,
                                              const std::string& actor, size_t batch = 1000);

  /// One eviction batch: the audit records written, how many candidates the in-memory index
  /// offered (a candidate that heartbeated meanwhile is skipped), and how many of them the
  /// store kept because their stored row is not due (another replica saw them since): those
  /// were read back into memory.
  struct EvictionBatch {
    std::vector<AuditRecord> evicted;
    size_t candidates = 0;
    size_t refreshed = 0;
  };
  /// Evicts up to `limit` Defenders of `category` whose removalAt ≤ `now − margin`, oldest
  /// first, in one transaction (Store::evictDefenders), under the sweeper lease `fence`.
  /// Candidates come from the in-memory index while the writer is held (on a shared database:
  /// from the stored rows, Store::listDueKeys, so Defenders only other replicas saw are among
  /// them, each re-judged here when this replica knows it), so a Defender that
  /// heartbeated here meanwhile is never evicted; the deleting statement re-checks due-ness on
  /// the stored rows, so one that heartbeated at another replica (written there) is not
  /// either: it is read back into memory. `margin` leaves room for heartbeats other replicas
  /// received but have not written yet (docs/operations.md "Which replica sweeps").
  /// Errors from the Store, e.g. kConflict "sweep_lease_lost" (nothing deleted).
  Result<EvictionBatch> evictDue(Category category, TimePoint now, size_t limit, Millis margin,
                                 const LeaseFence& fence);

  /// This replica's id: the owner of its alive time and its name as sweeper lease holder.
  const std::string& replicaId() const { return replicaId_; }
  /// Takes or renews the sweeper lease for this replica (Store::acquireSweepLease).
  Result<SweepLease> acquireSweepLease(TimePoint now, Millis ttl);
  /// Gives the sweeper lease up if this replica holds it with `epoch`.
  Status releaseSweepLease(long long epoch);

  /// Defenders whose eviction is due at `now` (removalAt ≤ now), all categories, from the
  /// in-memory index: what a sweep would evict, e.g. held back while the outage guard pauses.
  size_t countDue(TimePoint now) const;

  DefenderSettings settings() const;
  /// Validated by the caller (1..365). Durable before return.
  Status updateSettings(const DefenderSettings& settings);
  /// Shared database: takes the settings as any replica last saved them (what settings() and
  /// the removal times shown in lists use; the sweep reads them itself). Errors: kUnavailable,
  /// the settings in memory then stay.
  Status reloadSettings();

  /// Writes what is pending now in one transaction of at most maxFlushRows Defender rows
  /// (durable writes and observations always included). pendingWrites() tells what is left.
  Status flush();

  /// The Console did not run from `pausedAt` until now (a stalled store or a paused process):
  /// every Defender connected at `pausedAt` (no graceful disconnect, judgedFrom ≥ pausedAt − G)
  /// is judged from now, in memory and at the next flush. Returns how many were. Shared
  /// database: none when another replica stored an alive time after `pausedAt` (it ran and kept
  /// the stored liveness; the rows are shared, and judging them from now would hide Defenders
  /// that really went silent meanwhile), nor when those times cannot be read.
  size_t noteResumed(TimePoint pausedAt);

  /// Counts for the outage guard: Defenders connected at `since` (not gracefully disconnected
  /// before it), and of them those disconnected at `now` without a graceful disconnect. Shared
  /// database: on the stored rows (Store::countSilence), which hold what every replica heard —
  /// this replica's memory misses the heartbeats the others took; from memory if that read
  /// fails.
  struct Silence {
    size_t fleet = 0;
    size_t silent = 0;
  };
  Silence silence(TimePoint since, TimePoint now) const;

  /// Since when writes to the store fail (none when healthy).
  std::optional<TimePoint> storageFailingSince() const;

  const LivenessPolicy& liveness() const { return options_.liveness; }
  const Clock& clock() const { return clock_; }
  Liveness judge(const Defender& d, TimePoint now) const;
  InventoryMetrics metrics() const;

 private:
  struct LiveState {
    TimePoint registeredAt{};
    TimePoint lastSeen{};
    TimePoint judgedFrom{};
    TimePoint connectedSince{};
    std::optional<TimePoint> gracefulAt;
    std::optional<long long> clockSkewMs;
    DefenderType type = DefenderType::kNone;
    const std::string* appId = &kNoAppId;  // as last reported (interned in appIds_); checked
                                           // against Defender credentials
    uint64_t fingerprint = 0;       // hash of the descriptive fields last written; 0: unknown
    uint64_t resourceHash = 0;      // resourceHash() of the reported resourceID; 0: none yet
    double observationTokens = -1;  // < 0: bucket not used yet (full)
    TimePoint observationRefill{};
  };
  struct PendingWrite {
    Defender defender;
    bool descriptiveChanged = false;  // upsert the whole row, else only liveness columns
    bool durable = false;             // a registration/reconnect/disconnect: answered only once
                                      // committed, so later heartbeats wait for it too
    TimePoint oldestUnwritten{};      // receive time of the oldest heartbeat not yet written
  };

  inline static const std::string kNoAppId;
  LiveState liveStateOf(const Defender& d);  // stored row → in-memory state; holds stateMutex_
  /// After a delete transaction rolled back: puts the stored rows of `keys` that were dropped
  /// from memory back into the liveness table and index (takes stateMutex_ per row).
  void reloadDropped(std::span<const std::string> keys);
  /// The one shared copy of `appId` (a fleet has far fewer App IDs than Defenders); caller
  /// holds stateMutex_ or runs before the Inventory is shared.
  const std::string* internAppId(const std::string& appId);
  static LiveIndex::Entry indexEntry(const LiveState& s) {
    return {s.type, s.judgedFrom, s.gracefulAt.has_value(), s.gracefulAt.value_or(TimePoint{})};
  }
  /// Shared database: reads the stored row of `key` into the liveness table when it is newer
  /// than what this replica holds (or unknown here); drops the key when the row is gone (deleted
  /// or evicted elsewhere) and nothing of it is waiting to be written here. A failed read
  /// changes nothing and returns the store's error (kUnavailable). Takes stateMutex_ (not held
  /// by the caller).
  Status readThrough(const std::string& key);
  /// Shared database: overlays on the stored row `d` this replica's state of `key` where it is
  /// newer (a pending write, a discount not yet written). Caller holds stateMutex_.
  void overlayShared(const std::string& key, Defender& d) const;
  /// Shared database: the stored row carries a graceful disconnect no earlier than this
  /// replica's newest heartbeat `s` of it, which it does not know of (another replica received
  /// the disconnect; the store refuses this replica's older write, see Store::write).
  static bool storedDisconnectIsNewer(const LiveState& s, const Defender& stored);
  /// The list served from index_, or nullopt when the query needs the Store's filters.
  std::optional<Result<Page<Defender>>> listFromIndex(const DefenderQuery& query);
  void applyLiveState(const LiveState& s, Defender& d) const;
  uint64_t waitTicket();  // the flush generation that will carry what is enqueued now
  /// The pending write of `key`, created (and queued in pendingOrder_) when there is none.
  PendingWrite& pendingFor(const std::string& key, TimePoint now);  // holds stateMutex_
  void markDurable(const std::string& key, PendingWrite& p);        // holds stateMutex_
  Status awaitDurable(uint64_t ticket);
  void flusherLoop();
  std::unique_lock<std::mutex> flushBeforeRead();
  Error storageFault() const;  // caller holds stateMutex_
  /// The identity_conflict refusal when `resourceId` (reported for `hostname`, claimed type
  /// `type`) is not the one pinned in `s`; counts it. Caller holds stateMutex_.
  std::optional<Error> identityConflict(const std::string& hostname, const LiveState& s,
                                        DefenderType type, std::string_view resourceId);
  Status flushLocked();  // caller holds writeMutex_

  Store& store_;
  const Clock& clock_;
  const InventoryOptions options_;
  const std::string replicaId_;

  std::mutex writeMutex_;  // the single writer; taken before stateMutex_

  mutable std::mutex stateMutex_;
  std::unordered_map<std::string, LiveState> live_;        // by hostname key
  std::unordered_set<std::string> appIds_;                 // interned App IDs (never shrinks)
  std::unordered_map<std::string, PendingWrite> pending_;  // by hostname key
  LiveIndex index_;                                        // ordered views of live_
  std::vector<std::pair<std::string, Observation>> pendingObservations_;
  bool urgent_ = false;
  uint64_t openGeneration_ = 1;       // generation that collects new work
  uint64_t committedGeneration_ = 0;  // newest generation whose flush committed
  uint64_t failedGeneration_ = 0;     // newest generation whose flush failed
  Error lastFlushError_;
  std::optional<TimePoint> failingSince_;  // storage fault episode
  size_t pendingDurable_ = 0;              // pending_ entries with `durable`
  std::deque<std::string> pendingOrder_;   // pending_ keys, first pending first (may hold keys
                                           // taken or removed since: skipped)
  std::vector<std::string> durableKeys_;
  size_t inFlight_ =
      0;  // rows taken by the flush being written now      // pending_ keys with `durable`
  std::vector<std::string> discountBacklog_;  // keys judged from the restart, not yet written
  bool backlogged_ = false;                   // the last flush left work behind
  InventoryMetrics metrics_;
  DefenderSettings settings_;
  std::condition_variable wake_;     // flusher wake-up
  std::condition_variable durable_;  // generation committed or failed
  bool stopping_ = false;
  bool started_ = false;
  std::thread flusher_;
};

}  // namespace dc::inventory
