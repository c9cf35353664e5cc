// A Store decorator for fault injection (docs/reliability.md): writes can fail like a full disk
// or a read-only database, or stall until released; reads pass through unless told to fail.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <mutex>

#include "inventory/store.h"

namespace dc::testing {

class FaultyStore final : public inventory::Store {
 public:
  explicit FaultyStore(inventory::Store& inner) : inner_(inner) {}

  /// Every write fails with kUnavailable and this SQLite-like message until cleared ("").
  void failWrites(std::string message) {
    std::lock_guard lock(mutex_);
    failure_ = std::move(message);
  }
  /// Writes block until release(); stalled() tells whether one is blocked now.
  void stallWrites() {
    std::lock_guard lock(mutex_);
    stall_ = true;
  }
  void release() {
    {
      std::lock_guard lock(mutex_);
      stall_ = false;
    }
    cv_.notify_all();
  }
  /// Blocks until a write is stalled (a condition, not a timed sleep).
  void awaitStalled() {
    std::unique_lock lock(mutex_);
    cv_.wait(lock, [&] { return stalled_ > 0; });
  }
  /// Runs `hook` inside each evictDefenders call before it reaches the store (on the calling
  /// thread): the replica is held between choosing its candidates and deleting them.
  void beforeEvict(std::function<void()> hook) { beforeEvict_ = std::move(hook); }
  size_t writeAttempts() const { return attempts_; }
  /// Rows passed to successful writes so far: whole-row upserts and liveness-only touches.
  size_t upsertsWritten() const { return upserts_; }
  size_t touchesWritten() const { return touches_; }

  Status write(const inventory::WriteBatch& b) override {
    if (auto st = gate(); !st.ok()) return st;
    auto st = inner_.write(b);
    if (st.ok()) {
      upserts_ += b.upserts.size();
      touches_ += b.touches.size();
    }
    return st;
  }
  Result<std::vector<inventory::AuditRecord>> removeDefenders(std::span<const std::string> keys,
                                                              const std::string& actor,
                                                              const std::string& reason,
                                                              TimePoint at) override {
    if (auto st = gate(); !st.ok()) return st.error();
    return inner_.removeDefenders(keys, actor, reason, at);
  }
  Result<std::vector<inventory::AuditRecord>> evictDefenders(std::span<const std::string> keys,
                                                             const inventory::DueRule& due,
                                                             const inventory::LeaseFence& fence,
                                                             const std::string& reason) override {
    if (auto st = gate(); !st.ok()) return st.error();
    if (beforeEvict_) beforeEvict_();
    return inner_.evictDefenders(keys, due, fence, reason);
  }
  Result<inventory::SweepLease> acquireSweepLease(const std::string& holder, TimePoint now,
                                                  Millis ttl) override {
    if (auto st = gate(); !st.ok()) return st.error();
    return inner_.acquireSweepLease(holder, now, ttl);
  }
  Status releaseSweepLease(const std::string& holder, long long epoch) override {
    if (auto st = gate(); !st.ok()) return st;
    return inner_.releaseSweepLease(holder, epoch);
  }
  Status saveSettings(const inventory::DefenderSettings& s) override {
    if (auto st = gate(); !st.ok()) return st;
    return inner_.saveSettings(s);
  }

  Result<std::optional<inventory::Defender>> findDefender(const std::string& key) override {
    return inner_.findDefender(key);
  }
  Result<inventory::Page<inventory::Defender>> listDefenders(
      const inventory::DefenderQuery& q, const inventory::LivenessCutoff& c) override {
    return inner_.listDefenders(q, c);
  }
  Result<std::vector<std::string>> listKeys(const inventory::DefenderQuery& q,
                                            const inventory::LivenessCutoff& c) override {
    return inner_.listKeys(q, c);
  }
  Result<std::vector<inventory::CategorySummary>> summarize(
      const inventory::LivenessCutoff& c) override {
    return inner_.summarize(c);
  }
  Result<std::vector<inventory::TypeCount>> countTypes(
      const inventory::LivenessCutoff& c) override {
    return inner_.countTypes(c);
  }
  Result<inventory::SilenceCount> countSilence(TimePoint since, TimePoint now,
                                               Millis grace) override {
    return inner_.countSilence(since, now, grace);
  }
  Result<std::vector<std::string>> listDueKeys(inventory::Category category,
                                               const inventory::DueRule& due,
                                               size_t limit) override {
    return inner_.listDueKeys(category, due, limit);
  }
  Result<std::vector<inventory::CategorySummary>> countOutdated(
      const DefenderVersion& deployed) override {
    return inner_.countOutdated(deployed);
  }
  Result<std::vector<inventory::VersionCount>> countVersions() override {
    return inner_.countVersions();
  }
  Result<std::vector<inventory::ClusterCount>> countClusters() override {
    return inner_.countClusters();
  }
  Status forEachDefender(const std::function<bool(const inventory::Defender&)>& fn) override {
    return inner_.forEachDefender(fn);
  }
  Result<std::vector<inventory::Defender>> findDefenders(
      std::span<const std::string> keys) override {
    return inner_.findDefenders(keys);
  }
  Result<long long> countDefenders() override { return inner_.countDefenders(); }
  Status forEachLiveness(const std::function<bool(const inventory::StoredLiveness&)>& fn) override {
    return inner_.forEachLiveness(fn);
  }
  Result<inventory::DefenderSettings> loadSettings() override { return inner_.loadSettings(); }
  Result<std::optional<TimePoint>> loadConsoleAlive() override { return inner_.loadConsoleAlive(); }
  Result<std::vector<inventory::ReplicaAlive>> listReplicasAlive() override {
    return inner_.listReplicasAlive();
  }
  Result<inventory::Page<inventory::Observation>> listObservations(const std::string& key,
                                                                   int offset, int limit) override {
    return inner_.listObservations(key, offset, limit);
  }
  Result<long long> countObservations() override { return inner_.countObservations(); }
  Result<inventory::Page<inventory::AuditRecord>> listAudit(int offset, int limit) override {
    return inner_.listAudit(offset, limit);
  }

 private:
  Status gate() {
    ++attempts_;
    std::unique_lock lock(mutex_);
    if (stall_) {
      ++stalled_;
      cv_.notify_all();
      cv_.wait(lock, [&] { return !stall_; });
      --stalled_;
    }
    if (!failure_.empty()) return Error::unavailable(failure_);
    return Status::success();
  }

  inventory::Store& inner_;
  std::function<void()> beforeEvict_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::string failure_;
  bool stall_ = false;
  int stalled_ = 0;
  std::atomic<size_t> attempts_{0};
  std::atomic<size_t> upserts_{0};
  std::atomic<size_t> touches_{0};
};

}  // namespace dc::testing
