// When each simulated Defender is due next: a min-heap keyed by due time.
//
// One heap per worker thread holds that worker's Defenders, so half a million Defenders cost one
// 16-byte entry each, not a thread or a timer each. Entries are cancelled lazily: each slot has a
// generation, and an entry whose generation is stale is skipped when it reaches the top.
#pragma once

#include <cstdint>
#include <optional>
#include <queue>
#include <vector>

#include "common/clock.h"

namespace dc::sim {

class DueQueue {
 public:
  struct Entry {
    TimePoint due;
    uint32_t slot = 0;
    uint32_t generation = 0;
  };

  /// Schedules `slot` (at its current `generation`) for `due`.
  void push(TimePoint due, uint32_t slot, uint32_t generation);

  /// Removes and returns the earliest entry due at or before `now` whose generation still
  /// matches `currentGeneration(slot)`; skips and drops stale entries. Nullopt when nothing live is
  /// due. `GenerationOf` is callable as `uint32_t(uint32_t slot)`.
  template <typename GenerationOf>
  std::optional<Entry> popDue(TimePoint now, GenerationOf&& currentGeneration) {
    while (!heap_.empty()) {
      const Entry& top = heap_.top();
      if (top.generation != currentGeneration(top.slot)) {
        heap_.pop();
        continue;
      }
      if (top.due > now) return std::nullopt;
      Entry e = top;
      heap_.pop();
      return e;
    }
    return std::nullopt;
  }

  /// The earliest due time of any entry (live or stale), if any.
  std::optional<TimePoint> earliest() const;
  /// Entries held, stale ones included.
  size_t size() const { return heap_.size(); }
  bool empty() const { return heap_.empty(); }

 private:
  struct Later {
    bool operator()(const Entry& a, const Entry& b) const { return a.due > b.due; }
  };
  std::priority_queue<Entry, std::vector<Entry>, Later> heap_;
};

}  // namespace dc::sim
