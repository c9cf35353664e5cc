// Counters and a latency histogram shared by all worker threads, and the progress and summary
// lines built from them.
//
// Thread-safety: every `record*`/`add*` method may be called from any thread (relaxed atomics);
// `snapshot` reads a consistent-enough copy for reporting.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "common/clock.h"

namespace dc::sim {

/// Heartbeat latency histogram buckets, ~19% wide from 20 µs (see stats.cpp).
inline constexpr size_t kLatencyBuckets = 80;

struct StatsSnapshot {
  uint64_t heartbeats = 0;               // heartbeat requests sent (any outcome)
  uint64_t heartbeatsOk = 0;             // 200 with a well-formed reply
  uint64_t registered = 0;               // replies with "registered": true
  uint64_t disconnects = 0;              // graceful disconnects sent
  uint64_t abruptStops = 0;              // tasks that fell silent
  uint64_t observations = 0;             // observations sent (in batches)
  uint64_t badReplies = 0;               // 200 replies that were not a well-formed heartbeat reply
  int64_t alive = 0;                     // Defenders currently running
  std::array<uint64_t, 600> byStatus{};  // non-200 replies by HTTP status; [0] = no response
  std::array<uint64_t, kLatencyBuckets> latency{};  // heartbeat latency histogram

  uint64_t errors() const;
  /// Latency at quantile `q` (0..1) in milliseconds: the upper bound of the bucket holding it;
  /// 0 when there are no samples.
  double latencyMillis(double q) const;
  /// Element-wise `*this - earlier` of the counters (alive is kept as is).
  StatsSnapshot since(const StatsSnapshot& earlier) const;
};

class Stats {
 public:
  /// A heartbeat got `status` (0 = no response) after `micros`: counts it, feeds the latency
  /// histogram and, for a status other than 200, the error counts.
  void recordHeartbeat(int status, int64_t micros);
  /// A non-heartbeat request (disconnect, observations) got a non-200 `status`.
  void recordError(int status);
  void addRegistered() { registered_.fetch_add(1, std::memory_order_relaxed); }
  void addHeartbeatOk() { heartbeatsOk_.fetch_add(1, std::memory_order_relaxed); }
  void addBadReply() { badReplies_.fetch_add(1, std::memory_order_relaxed); }
  void addDisconnect() { disconnects_.fetch_add(1, std::memory_order_relaxed); }
  void addAbruptStop() { abruptStops_.fetch_add(1, std::memory_order_relaxed); }
  void addObservations(uint64_t n) { observations_.fetch_add(n, std::memory_order_relaxed); }
  void addAlive(int64_t delta) { alive_.fetch_add(delta, std::memory_order_relaxed); }

  StatsSnapshot snapshot() const;

 private:
  std::atomic<uint64_t> heartbeats_{0}, heartbeatsOk_{0}, registered_{0}, disconnects_{0},
      abruptStops_{0}, observations_{0}, badReplies_{0};
  std::atomic<int64_t> alive_{0};
  std::array<std::atomic<uint64_t>, 600> byStatus_{};
  std::array<std::atomic<uint64_t>, kLatencyBuckets> latency_{};
};

/// The histogram bucket of a latency in microseconds.
size_t latencyBucket(int64_t micros);

/// One progress line over the window `window` (counts since `prev`) at `elapsed` since start:
/// `t=15s alive=100 hb=350 hb/s=20.0 ok=348 registered=100 disconnects=1 stops=1 obs=0
///  errors=2 [429:1 net:1] p50=0.41ms p99=3.20ms`
/// (hb, ok, registered, disconnects, stops, obs and errors are totals; hb/s, p50 and p99 cover the
/// window).
std::string formatProgress(const StatsSnapshot& now, const StatsSnapshot& prev, Millis elapsed,
                           Millis window);
/// The final line: totals, average hb/s over `elapsed`, whole-run p50/p99/max bucket.
std::string formatSummary(const StatsSnapshot& total, Millis elapsed);

}  // namespace dc::sim
