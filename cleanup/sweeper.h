// Eviction of disconnected Defenders (DESIGN §5): a pure `sweep(now)` and the Boost.Asio timer
// that triggers it.
//
// Rules: category appEmbedded (types fargate, appEmbedded, eksFargate) is evicted when
// now ≥ disconnectedAt + 1 h (fixed, seed); every other category when
// now ≥ disconnectedAt + disconnectPeriodDays (setting, read at each sweep). Each Defender goes
// with all its observations, in bounded batches (one transaction each), so heartbeats keep
// flowing during a large sweep; every eviction leaves an audit record.
//
// Several replicas may share one database (DESIGN §7): only the replica holding the sweeper
// lease sweeps (docs/operations.md "Which replica sweeps"). It renews the lease every few
// seconds and before each batch; each batch deletes under the lease's epoch (a fencing token)
// and re-checks due-ness on the stored rows, so a replica that lost the lease (paused past it)
// deletes nothing, and a Defender that heartbeated at another replica stays.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "cleanup/outage_guard.h"
#include "common/clock.h"
#include "common/status.h"
#include "inventory/inventory.h"

namespace boost::asio {
class io_context;
}

namespace dc::cleanup {

struct SweepOptions {
  /// Time between sweeps. Removal happens in [removalAt, removalAt + period]. Default 60 s.
  Millis period = Seconds(60);
  /// Defenders per deleting transaction.
  size_t batchSize = 200;
  /// Outage guard thresholds. The guard is judged at each sweep, so `period` should not
  /// exceed the grace G (defaults: 60 s ≤ 90 s).
  OutageOptions outage;
  /// Heartbeats received but not yet recorded (e.g. connections waiting for a worker of the
  /// defender channel). While it is > 0 the sweep does not act — a Defender must not be
  /// evicted because the Console is behind — for at most one grace period in a row, so that a
  /// channel that stays behind cannot stop cleanup for ever. Unset = never waits.
  std::function<size_t()> heartbeatsWaiting;
  /// Nice value (0..19) of the scheduler's sweep thread: above the defender channel's workers
  /// (10), so that a long sweep does not delay heartbeats (docs/benchmarks.md, B4).
  int threadNice = 15;
  /// Called after each committed eviction batch with its audit records (e.g. to copy them into
  /// the general audit log); runs on the sweeping thread. Unset = nothing.
  std::function<void(const std::vector<inventory::AuditRecord>&)> onEvicted;
  /// The sweeper lease: how long it is valid after each renewal, and how often the holder
  /// renews it (and the other replicas try to take it). A replica that stops (crash, pause)
  /// is replaced within leaseTtl + leaseRenewEvery. leaseTtl must exceed leaseRenewEvery with
  /// room for a slow database write.
  Millis leaseTtl = Seconds(15);
  Millis leaseRenewEvery = Seconds(5);
  /// Eviction waits this much past removalAt, in memory and in the deleting statement's
  /// re-check: room for heartbeats other replicas received but have not written yet (at most
  /// one flush interval behind while their storage keeps up). The Console sets twice the flush
  /// interval (docs/operations.md); 0 = removal at removalAt exactly.
  Millis unflushedMargin{0};
};

struct SweepReport {
  size_t evicted = 0;
  size_t observationsRemoved = 0;
  size_t batches = 0;
  Millis took{0};
  bool deferred = false;  // nothing done: heartbeats were still waiting to be recorded
  bool paused = false;    // nothing evicted: the outage guard holds evictions
  bool stopped = false;   // ended early by requestStop(); the rest goes at the next start
  bool noLease = false;   // nothing (more) evicted: this replica does not hold the sweeper lease
  size_t refreshed = 0;   // candidates whose stored row was not due: read back into memory
};

/// The sweeper lease as this replica last saw it.
struct LeaseView {
  std::string replica;  // this replica's id
  bool held = false;    // held by this replica and not expired
  std::string holder;   // "" until the lease was first read
  long long epoch = 0;
  TimePoint expiresAt{};
};

class Sweeper {
 public:
  Sweeper(inventory::Inventory& inventory, SweepOptions options);
  const SweepOptions& options() const { return options_; }

  /// Evicts every Defender due at `now` (minus unflushedMargin), if this replica holds the
  /// sweeper lease: taken or renewed first, and before each batch, as holdLease() does; without
  /// it nothing is evicted (`noLease`). Stops at the first storage error (what was evicted
  /// before it stays evicted; the rest is retried at the next sweep). Lease times are read
  /// from the Inventory's clock.
  Result<SweepReport> sweep(TimePoint now);

  /// Takes the sweeper lease, or renews it once it was renewed leaseRenewEvery ago (a store
  /// write only then). Returns whether this replica holds it at `now`. Logs when the lease is
  /// taken or lost. Called by the scheduler every leaseRenewEvery and by sweep(); one thread.
  bool holdLease(TimePoint now);
  /// Gives the lease up if held (at a Console stop), so that another replica takes it at once.
  void releaseLease();
  LeaseView lease(TimePoint now) const;

  /// Ends a running sweep after its current batch (and every later sweep at once), so that a
  /// Console stop does not wait for a long sweep. Thread-safe; not undone.
  void requestStop() { stopRequested_ = true; }

  /// Prometheus text: sweeps, evictions, last sweep duration, outage guard (with, at `now`, how
  /// long evictions have been paused and how many due evictions that holds back), this
  /// replica's id and the sweeper lease.
  std::string metricsText(TimePoint now) const;

  /// While the outage guard pauses evictions: for how long (since the incident started) and how
  /// many Defenders are due for eviction at `now` but held back. Zeros when not paused.
  struct HeldBack {
    Millis pausedFor{0};
    size_t due = 0;
  };
  HeldBack heldBack(TimePoint now) const;

  /// The outage guard (status and operator resume for the Console API).
  OutageGuard& outageGuard() { return guard_; }

 private:
  inventory::Inventory& inventory_;
  SweepOptions options_;
  OutageGuard guard_;
  std::atomic<uint64_t> deferred_{0};
  std::optional<TimePoint> deferredSince_;  // sweep thread only
  std::atomic<uint64_t> sweeps_{0};
  std::atomic<uint64_t> failures_{0};
  std::atomic<uint64_t> evicted_{0};
  std::atomic<long long> lastSweepMs_{0};
  std::atomic<bool> stopRequested_{false};
  // The sweeper lease: written by the sweeping thread, read by metrics.
  void noteLeaseLost(TimePoint now, const std::string& why);
  mutable std::mutex leaseMutex_;
  inventory::SweepLease lease_;  // as last read
  bool held_ = false;            // lease_ is ours (valid until lease_.expiresAt)
  TimePoint renewedAt_{};
  bool leaseErrorLogged_ = false;  // sweeping thread only
  std::atomic<uint64_t> leaseAcquired_{0};
  std::atomic<uint64_t> leaseLost_{0};
  std::atomic<uint64_t> leaseErrors_{0};
  std::atomic<uint64_t> withoutLease_{0};
  std::atomic<uint64_t> refreshed_{0};
};

/// Runs sweeper.sweep(clock.now()) every `period` and sweeper.holdLease(clock.now()) at start
/// and every leaseRenewEvery, on Boost.Asio steady timers, on its own thread; stop() gives the
/// lease up. A thin trigger: all decisions are in Sweeper.
class SweepScheduler {
 public:
  SweepScheduler(Sweeper& sweeper, const Clock& clock, Millis period);
  ~SweepScheduler();
  void start();
  void stop();  // idempotent; waits for a running sweep to finish

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace dc::cleanup
