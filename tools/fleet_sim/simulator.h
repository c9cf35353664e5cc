// The fleet simulator: a fleet of simulated Fargate Defenders split over a few worker threads.
//
// Each worker thread owns one Shard (its Defenders and their due-time heap) and one Transport
// (keep-alive HTTP clients). Defender i belongs to worker i % threads. Initial registrations are
// spread evenly over the ramp; churn and one-time stops are split between the workers.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "tools/fleet_sim/fleet.h"
#include "tools/fleet_sim/shard.h"
#include "tools/fleet_sim/stats.h"
#include "tools/fleet_sim/transport.h"

namespace dc::sim {

/// Everything the simulator is told on the command line. Validated once by `validateConfig`.
struct SimulatorConfig {
  FleetSpec fleet;
  HttpTransportOptions http;  // console URL, credential; `connections` is the total
  int defenders = 100;
  double rampSeconds = 10;
  double churnPerMinute = 0;
  std::optional<double> intervalOverrideSeconds;
  int threads = 2;
  double durationSeconds = 0;  // 0 = until interrupted
  uint64_t seed = 1;
  double observationsPerMinute = 0;  // per Defender
  int stopAbruptly = 0;
  int stopGracefully = 0;
  bool disconnectOnExit = false;
  double progressSeconds = 5;
};

/// OK, or an "invalid_option" error naming the option.
Status validateConfig(const SimulatorConfig& config);

/// Makes worker `index`'s Transport (called once per worker, on the constructing thread).
using TransportFactory = std::function<std::unique_ptr<Transport>(int index)>;

class Simulator {
 public:
  /// Builds the fleet and its tasks (deterministic for a seed, App IDs aside). `clock` must
  /// outlive the Simulator. Errors: an invalid config.
  static Result<std::unique_ptr<Simulator>> create(const SimulatorConfig& config,
                                                   const Clock& clock,
                                                   const TransportFactory& makeTransport);

  /// Runs the workers until `durationSeconds` pass on the clock or `interrupt` becomes true, then
  /// stops them (sending graceful disconnects first if `disconnectOnExit`). Calls `report` with a
  /// progress line every `progressSeconds` and with the summary line at the end. Returns the
  /// final counters. Call once.
  StatsSnapshot run(const std::atomic<bool>& interrupt,
                    const std::function<void(const std::string&)>& report);

  const Fleet& fleet() const { return fleet_; }
  const Stats& stats() const { return stats_; }

 private:
  Simulator(const SimulatorConfig& config, const Clock& clock);
  void work(size_t index);

  SimulatorConfig config_;
  const Clock& clock_;
  Fleet fleet_;
  Stats stats_;
  std::vector<std::unique_ptr<Transport>> transports_;
  std::vector<std::unique_ptr<Shard>> shards_;
  std::atomic<bool> stop_{false};
  std::mutex mutex_;
  std::condition_variable wake_;
};

}  // namespace dc::sim
