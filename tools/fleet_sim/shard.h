// One worker's share of the fleet: its Defenders, their due times, and what happens to them.
//
// A Shard is single-threaded: one worker thread calls `step` in a loop, sleeping until the time
// it returns. Everything time-dependent reads the injected Clock, so tests drive a Shard with a
// ManualClock and call `step` directly — no threads, no sleeps.
#pragma once

#include <atomic>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "tools/fleet_sim/churn.h"
#include "tools/fleet_sim/fleet.h"
#include "tools/fleet_sim/protocol.h"
#include "tools/fleet_sim/schedule.h"
#include "tools/fleet_sim/stats.h"
#include "tools/fleet_sim/transport.h"

namespace dc::sim {

struct ShardOptions {
  SchedulePolicy policy;
  double churnPerMinute = 0;         // this shard's share of the fleet's churn
  double observationsPerMinute = 0;  // per Defender; 0 = send no observations
  int maxObservationsPerBatch = 100;
  int stopAbruptly = 0;    // stopped once at `stopAt`, not replaced
  int stopGracefully = 0;  // disconnected once at `stopAt`, not replaced
  TimePoint stopAt;
};

class Shard {
 public:
  /// `fleet`, `transport`, `stats` and `clock` must outlive the Shard. Churn counts from
  /// `clock.now()` at construction. `seed` seeds the Shard's own Rng (task ids, jitter, victims).
  Shard(const Fleet& fleet, ShardOptions options, Transport& transport, Stats& stats,
        const Clock& clock, uint64_t seed);

  /// Adds a running task whose first heartbeat is due at `firstDue`.
  void addTask(Task task, TimePoint firstDue);

  /// Sends every heartbeat due at the clock's now (re-read after each request), then applies
  /// churn and the one-time stops. Returns when the next heartbeat is due (`now + 1 s` when no
  /// Defender is left). Returns early, without churn, once `*stop` becomes true.
  TimePoint step(const std::atomic<bool>* stop = nullptr);

  /// Sends a graceful disconnect for every running Defender and stops them all. Returns early
  /// once `*abort` becomes true.
  void disconnectAll(const std::atomic<bool>* abort = nullptr);

  size_t aliveCount() const { return alive_; }
  /// Hostnames of the running Defenders (for tests and diagnostics; O(slots)).
  std::vector<std::string> aliveHostnames() const;
  /// When `hostname`'s next heartbeat is due; nullopt if it is not running (O(slots)).
  std::optional<TimePoint> nextDueOf(std::string_view hostname) const;

 private:
  struct Slot {
    Task task;
    TimePoint due;
    TimePoint lastObservationAt;
    double observationCarry = 0;
    uint32_t generation = 0;
    uint8_t failures = 0;  // consecutive failed heartbeats (backoff exponent)
    bool alive = false;
    bool registered = false;  // had at least one successful heartbeat
  };

  void heartbeat(uint32_t slot);
  void sendObservations(Slot& slot, TimePoint now);
  void stop(uint32_t slot, StopKind kind);
  std::optional<uint32_t> randomAliveSlot();
  void applyChurn(TimePoint now);
  void applyOneTimeStops();
  void noteError(std::string_view what, const Response& r);

  const Fleet& fleet_;
  ShardOptions options_;
  Transport& transport_;
  Stats& stats_;
  const Clock& clock_;
  Rng rng_;
  ChurnPlanner churn_;
  DueQueue queue_;
  std::vector<Slot> slots_;
  std::vector<uint32_t> freeSlots_;
  size_t alive_ = 0;
  bool oneTimeStopsDone_ = false;
  std::array<uint64_t, 600> errorsSeen_{};  // for log rate limiting
};

}  // namespace dc::sim
