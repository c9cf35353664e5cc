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
#include <memory>

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
  size_t batchSize = 500;
};

struct SweepReport {
  size_t evicted = 0;
  size_t observationsRemoved = 0;
  size_t batches = 0;
  Millis took{0};
};

class Sweeper {
 public:
  Sweeper(inventory::Inventory& inventory, SweepOptions options);

  /// Evicts every Defender due at `now`. Stops at the first storage error (what was evicted
  /// before it stays evicted; the rest is retried at the next sweep).
  Result<SweepReport> sweep(TimePoint now);

  /// Prometheus text: sweeps, evictions, last sweep duration.
  std::string metricsText() const;

 private:
  inventory::Inventory& inventory_;
  SweepOptions options_;
  std::atomic<uint64_t> sweeps_{0};
  std::atomic<uint64_t> failures_{0};
  std::atomic<uint64_t> evicted_{0};
  std::atomic<long long> lastSweepMs_{0};
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
