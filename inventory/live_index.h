// Ordered in-memory views of the Defenders' liveness, so that the reads the Console serves most
// (per-category counts; one type's connected or disconnected Defenders in hostname order, at any
// offset) are answered in O(log n) without the Store (DESIGN §3, §4).
//
// Per type, the index keeps
//  - every Defender without a graceful disconnect ordered by judgedFrom: the connected ones at a
//    cutoff (now − G) are those with judgedFrom ≥ cutoff, counted by rank; the oldest are the
//    first eviction candidates;
//  - the gracefully disconnected ones ordered by their disconnect time (eviction candidates);
//  - two hostname-key-ordered sets with ranks: connected and disconnected as of the cutoff last
//    applied (`advance`). Passing time moves Defenders from one to the other; `advance` moves
//    exactly those whose judgedFrom lies between the old and the new cutoff.
// Keys are referenced by address: a key string must stay at the same address from add() until
// remove() (the node-based map of the inventory guarantees that).
//
// Not thread-safe: the inventory calls it under its state mutex.
#pragma once

#include <array>
#include <climits>
#include <cstdint>
#include <string>
#include <vector>

#include <ext/pb_ds/assoc_container.hpp>
#include <ext/pb_ds/tree_policy.hpp>

#include "common/clock.h"
#include "inventory/defender.h"
#include "inventory/liveness.h"

namespace dc::inventory {

class LiveIndex {
 public:
  /// The liveness inputs the index orders by.
  struct Entry {
    DefenderType type = DefenderType::kNone;
    TimePoint judgedFrom{};
    bool graceful = false;   // gracefully disconnected: disconnected whatever the time
    TimePoint gracefulAt{};  // when, if graceful
  };

  /// Drops everything and sets the cutoff that add() classifies against.
  void reset(TimePoint cutoff);
  void add(const std::string& key, const Entry& e);
  /// add() for many at once (start-up): inserts in each tree's own order, which keeps the trees'
  /// working set in cache (1,000,000 entries: 6.3 s with add() in hash-map order, 2.0 s sorted;
  /// docs/benchmarks.md B5).
  void addAll(std::vector<std::pair<const std::string*, Entry>> entries);
  void remove(const std::string& key, const Entry& e);
  /// remove(key, before) + add(key, after), skipping the unchanged parts.
  void update(const std::string& key, const Entry& before, const Entry& after);

  /// Reclassifies for `cutoff` (= now − G); cheap when time moved little since the last call.
  void advance(TimePoint cutoff);

  size_t deployed(DefenderType t) const;
  /// Defenders of `t` connected at `cutoff`: no graceful disconnect, judgedFrom ≥ cutoff.
  /// Independent of advance().
  size_t connected(DefenderType t, TimePoint cutoff) const;

  /// Eviction candidates of type `t`, at most `limit`: the gracefully disconnected with
  /// gracefulAt ≤ `gracefulBy` (oldest first), then the others with judgedFrom ≤ `silentBy`
  /// (oldest first). The caller derives both bounds from its retention rule.
  std::vector<std::string> due(DefenderType t, TimePoint gracefulBy, TimePoint silentBy,
                               size_t limit) const;
  /// How many due() would return without a limit, in O(log n).
  size_t countDue(DefenderType t, TimePoint gracefulBy, TimePoint silentBy) const;

  /// Keys of type `t` that are connected (or disconnected) as of the last advance(), in key
  /// order (descending when `reverse`), from `offset`, at most `limit`; `total` gets the count.
  std::vector<std::string> page(DefenderType t, bool connected, bool reverse, size_t offset,
                                size_t limit, size_t& total) const;

 private:
  struct KeyLess {
    bool operator()(const std::string* a, const std::string* b) const { return *a < *b; }
  };
  using ByJudged =
      __gnu_pbds::tree<std::pair<long long, uintptr_t>, __gnu_pbds::null_type,
                       std::less<std::pair<long long, uintptr_t>>, __gnu_pbds::rb_tree_tag,
                       __gnu_pbds::tree_order_statistics_node_update>;
  using ByKey =
      __gnu_pbds::tree<const std::string*, __gnu_pbds::null_type, KeyLess, __gnu_pbds::rb_tree_tag,
                       __gnu_pbds::tree_order_statistics_node_update>;
  static constexpr size_t kTypeCount = 17;
  struct PerType {
    ByJudged judged;     // not gracefully disconnected, by (judgedFrom, key address)
    ByJudged graceful;   // gracefully disconnected, by (gracefulAt, key address)
    ByKey connected;     // as of applied_
    ByKey disconnected;  // as of applied_, graceful ones included
    size_t deployed = 0;
  };
  static size_t slot(DefenderType t) { return static_cast<size_t>(t); }
  static long long ms(TimePoint t) { return t.time_since_epoch().count(); }
  bool connectedNow(const Entry& e) const {
    return connectedAt(e.judgedFrom, e.graceful, TimePoint(Millis(applied_)));
  }

  std::array<PerType, kTypeCount> types_;
  long long applied_ = LLONG_MIN;  // cutoff (ms) the key sets reflect
};

}  // namespace dc::inventory
