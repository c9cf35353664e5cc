// Eviction of disconnected Defenders (DESIGN §5): a pure `sweep(now)` and the Boost.Asio timer
// that triggers it.
//
// Rules: category appEmbedded (types fargate, appEmbedded, eksFargate) is evicted when
// now ≥ disconnectedAt + 1 h (fixed, seed); every other category when
// now ≥ disconnectedAt + disconnectPeriodDays (setting, read at each sweep). Each Defender goes
// with all its observations, in bounded batches (one transaction each), so heartbeats keep
// flowing during a large sweep; every eviction leaves an audit record.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <optional>

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
};

struct SweepReport {
  size_t evicted = 0;
  size_t observationsRemoved = 0;
  size_t batches = 0;
  Millis took{0};
  bool deferred = false;  // nothing done: heartbeats were still waiting to be recorded
  bool paused = false;    // nothing evicted: the outage guard holds evictions
  bool stopped = false;   // ended early by requestStop(); the rest goes at the next start
};

class Sweeper {
 public:
  Sweeper(inventory::Inventory& inventory, SweepOptions options);
  const SweepOptions& options() const { return options_; }

  /// Evicts every Defender due at `now`. Stops at the first storage error (what was evicted
  /// before it stays evicted; the rest is retried at the next sweep).
  Result<SweepReport> sweep(TimePoint now);

  /// Ends a running sweep after its current batch (and every later sweep at once), so that a
  /// Console stop does not wait for a long sweep. Thread-safe; not undone.
  void requestStop() { stopRequested_ = true; }

  /// Prometheus text: sweeps, evictions, last sweep duration, outage guard (with, at `now`, how
  /// long evictions have been paused and how many due evictions that holds back).
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
};

/// Runs sweeper.sweep(clock.now()) every `period` on a Boost.Asio steady timer, on its own
/// thread. A thin trigger: all decisions are in Sweeper::sweep.
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
