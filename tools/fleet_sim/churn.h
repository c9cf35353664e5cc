// Task churn: ECS tasks stop (deployments, scale-in, crashes) and are replaced by new tasks.
//
// `ChurnPlanner` turns a rate (tasks per minute) into a whole number of stops per call, carrying
// the fraction over, and alternates how tasks stop: gracefully (the Defender says goodbye on the
// defender channel) or abruptly (it just falls silent), so half of the stops are each.
#pragma once

#include <cstdint>
#include <optional>

#include "common/clock.h"

namespace dc::sim {

enum class StopKind { kGraceful, kAbrupt };

class ChurnPlanner {
 public:
  /// `perMinute` >= 0; the first call to `due` counts from `start`.
  ChurnPlanner(double perMinute, TimePoint start) : perMinute_(perMinute), last_(start) {}

  /// How many tasks to stop now: rate × time since the previous call, plus the carried fraction.
  /// A clock that goes backwards yields 0.
  int64_t due(TimePoint now);

  /// How the next stopped task stops: graceful, abrupt, graceful, ...
  StopKind nextKind();

 private:
  double perMinute_;
  TimePoint last_;
  double carry_ = 0;
  uint64_t stops_ = 0;
};

}  // namespace dc::sim
