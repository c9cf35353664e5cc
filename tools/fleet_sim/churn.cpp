#include "tools/fleet_sim/churn.h"

#include <cmath>

namespace dc::sim {

int64_t ChurnPlanner::due(TimePoint now) {
  if (perMinute_ <= 0 || now <= last_) return 0;
  carry_ += perMinute_ * static_cast<double>((now - last_).count()) / 60'000.0;
  last_ = now;
  double whole = std::floor(carry_);
  carry_ -= whole;
  return static_cast<int64_t>(whole);
}

StopKind ChurnPlanner::nextKind() {
  return (stops_++ % 2 == 0) ? StopKind::kGraceful : StopKind::kAbrupt;
}

}  // namespace dc::sim
