// Snapshots for cursor paging (docs/api.md "Cursor paging"): the ordered hostname keys that
// matched a list query when its first page was asked for. Each later page renders the current
// rows of its slice of keys, so a client that follows the cursor sees every matching Defender
// exactly once, whatever the sort and however the fleet moves meanwhile (a Defender evicted
// meanwhile is skipped).
//
// Memory: a snapshot stores its keys back to back in one buffer plus a 4-byte end offset per key
// (a Fargate task id of 32 characters: 36 bytes per Defender, 36 MB for 1,000,000 Defenders).
// The cache bounds the number of snapshots, their total bytes and their idle time.
//
// Thread-safe: every public method of SnapshotCache may be called from any thread.
#pragma once

#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/clock.h"
#include "common/status.h"

namespace dc::inventory {

/// An immutable ordered list of hostname keys, stored compactly.
class KeySnapshot {
 public:
  explicit KeySnapshot(const std::vector<std::string>& keys);
  size_t size() const { return ends_.size(); }
  std::string_view at(size_t i) const;
  /// Keys [from, from + count) clipped to the end.
  std::vector<std::string> slice(size_t from, size_t count) const;
  /// Heap bytes held (buffer + offsets).
  size_t bytes() const { return blob_.capacity() + ends_.capacity() * sizeof(uint32_t); }

 private:
  std::string blob_;
  std::vector<uint32_t> ends_;
};

struct SnapshotLimits {
  /// Idle time after which a snapshot is dropped (its cursor then answers cursor_expired).
  Millis ttl = Seconds(300);
  size_t maxSnapshots = 64;
  size_t maxBytes = size_t{256} << 20;
};

/// Counters and gauges for /metrics.
struct SnapshotMetrics {
  size_t snapshots = 0;  // gauge: kept now
  size_t bytes = 0;      // gauge: heap bytes of the kept snapshots
  uint64_t created = 0;  // snapshots taken
  uint64_t dropped = 0;  // dropped before their TTL to stay within the bounds (LRU)
  uint64_t expired = 0;  // cursors refused because their snapshot expired or was dropped
};

class SnapshotCache {
 public:
  /// `clock` must outlive the cache.
  SnapshotCache(const Clock& clock, SnapshotLimits limits);

  /// Keeps `snapshot` and returns its id (16 hex digits, random). Drops expired snapshots, then
  /// the least recently used ones until the new one fits. Errors: kUnavailable
  /// "cursor_capacity" when the snapshot alone exceeds maxBytes.
  Result<std::string> put(std::shared_ptr<const KeySnapshot> snapshot);

  /// The snapshot `id`, marked used now. Errors: kNotFound "cursor_expired" when it is unknown,
  /// idle longer than the TTL, or was dropped to stay within the bounds.
  Result<std::shared_ptr<const KeySnapshot>> get(const std::string& id);

  SnapshotMetrics metrics() const;
  const SnapshotLimits& limits() const { return limits_; }

 private:
  struct Entry {
    std::shared_ptr<const KeySnapshot> keys;
    TimePoint lastUsed{};
    std::list<std::string>::iterator lru;  // position in lru_ (front = most recent)
  };
  void dropLocked(std::unordered_map<std::string, Entry>::iterator it);
  void expireLocked(TimePoint now);

  const Clock& clock_;
  const SnapshotLimits limits_;
  mutable std::mutex mutex_;
  std::unordered_map<std::string, Entry> entries_;
  std::list<std::string> lru_;
  size_t bytes_ = 0;
  uint64_t created_ = 0;
  uint64_t dropped_ = 0;
  uint64_t expired_ = 0;
  uint64_t idState_;
};

}  // namespace dc::inventory
