#include "tools/fleet_sim/schedule.h"

namespace dc::sim {

void DueQueue::push(TimePoint due, uint32_t slot, uint32_t generation) {
  heap_.push(Entry{due, slot, generation});
}

std::optional<TimePoint> DueQueue::earliest() const {
  if (heap_.empty()) return std::nullopt;
  return heap_.top().due;
}

}  // namespace dc::sim
