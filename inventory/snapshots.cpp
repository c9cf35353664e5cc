#include "inventory/snapshots.h"

#include <cassert>
#include <cstdio>
#include <random>

namespace dc::inventory {

KeySnapshot::KeySnapshot(const std::vector<std::string>& keys) {
  size_t total = 0;
  for (const auto& k : keys) total += k.size();
  assert(total <= UINT32_MAX);
  blob_.reserve(total);
  ends_.reserve(keys.size());
  for (const auto& k : keys) {
    blob_ += k;
    ends_.push_back(static_cast<uint32_t>(blob_.size()));
  }
}

std::string_view KeySnapshot::at(size_t i) const {
  const uint32_t begin = i == 0 ? 0 : ends_[i - 1];
  return std::string_view(blob_).substr(begin, ends_[i] - begin);
}

std::vector<std::string> KeySnapshot::slice(size_t from, size_t count) const {
  std::vector<std::string> out;
  for (size_t i = from; i < size() && i - from < count; ++i) out.emplace_back(at(i));
  return out;
}

SnapshotCache::SnapshotCache(const Clock& clock, SnapshotLimits limits)
    : clock_(clock), limits_(limits), idState_(std::random_device{}()) {
  idState_ = (idState_ << 32) ^ std::random_device{}();
}

void SnapshotCache::dropLocked(std::unordered_map<std::string, Entry>::iterator it) {
  bytes_ -= it->second.keys->bytes();
  lru_.erase(it->second.lru);
  entries_.erase(it);
}

void SnapshotCache::expireLocked(TimePoint now) {
  // The least recently used are at the back: expired ones are found there first.
  while (!lru_.empty()) {
    auto it = entries_.find(lru_.back());
    if (now - it->second.lastUsed <= limits_.ttl) break;
    dropLocked(it);
  }
}

Result<std::string> SnapshotCache::put(std::shared_ptr<const KeySnapshot> snapshot) {
  const size_t bytes = snapshot->bytes();
  if (bytes > limits_.maxBytes)
    return Error{ErrorKind::kUnavailable, "cursor_capacity",
                 "the matching Defenders' snapshot (" + std::to_string(bytes >> 20) +
                     " MiB) exceeds the cursor memory bound; narrow the filters or use offset "
                     "paging",
                 "cursor"};
  const TimePoint now = clock_.now();
  std::lock_guard lock(mutex_);
  expireLocked(now);
  while (!lru_.empty() &&
         (entries_.size() >= limits_.maxSnapshots || bytes_ + bytes > limits_.maxBytes)) {
    dropLocked(entries_.find(lru_.back()));
    ++dropped_;
  }
  // A 64-bit splitmix sequence from a random seed: ids are unique within the process and differ
  // across restarts. They need not be secret: a snapshot holds only hostnames, which any Console
  // user may list.
  idState_ += 0x9e3779b97f4a7c15ULL;
  uint64_t z = idState_;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  z ^= z >> 31;
  char id[17];
  std::snprintf(id, sizeof id, "%016llx", static_cast<unsigned long long>(z));
  lru_.emplace_front(id);
  entries_[id] = Entry{std::move(snapshot), now, lru_.begin()};
  bytes_ += bytes;
  ++created_;
  return std::string(id);
}

Result<std::shared_ptr<const KeySnapshot>> SnapshotCache::get(const std::string& id) {
  const TimePoint now = clock_.now();
  std::lock_guard lock(mutex_);
  expireLocked(now);
  auto it = entries_.find(id);
  if (it == entries_.end()) {
    ++expired_;
    return Error{ErrorKind::kNotFound, "cursor_expired",
                 "cursor: this listing's snapshot expired or was dropped; start again with "
                 "cursor=start",
                 "cursor"};
  }
  it->second.lastUsed = now;
  lru_.splice(lru_.begin(), lru_, it->second.lru);
  return it->second.keys;
}

SnapshotMetrics SnapshotCache::metrics() const {
  std::lock_guard lock(mutex_);
  return {entries_.size(), bytes_, created_, dropped_, expired_};
}

}  // namespace dc::inventory
