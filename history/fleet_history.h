// The fleet over time (docs/api.md "Fleet history"): every minute the Console records, per
// Defender category, how many Defenders are connected and disconnected and how many were
// evicted since the previous sample, in the table `fleet_history` of its database (schema
// version in `history_meta`, bound parameters only). Samples older than the retention (30 days
// by default) are removed when a sample is taken.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/sql_database.h"
#include "common/status.h"

namespace dc::history {

/// One category's counts at one time. `evicted` counts evictions since the previous sample
/// (summed over a bucket in query()).
struct CategoryCounts {
  std::string category;  // "container", "host", "serverless", "appEmbedded"
  long long connected = 0;
  long long disconnected = 0;
  long long evicted = 0;
  friend bool operator==(const CategoryCounts&, const CategoryCounts&) = default;
};

struct Sample {
  TimePoint at{};  // start of the minute (sample) or of the bucket (query), UTC
  std::vector<CategoryCounts> counts;
};

/// `range` of GET /api/v1/defenders/history: the last hour in 1-minute points, the last day in
/// 10-minute buckets, the last 30 days in 6-hour buckets.
enum class Range { kHour, kDay, kMonth };
std::optional<Range> parseRange(std::string_view text);  // "hour", "day", "month"
Millis rangeSpan(Range r);
Millis bucketWidth(Range r);

struct HistoryOptions {
  Millis retention = std::chrono::hours(24 * 30);
};

class FleetHistory {
 public:
  /// The current connected/disconnected counts per category (the inventory's summary).
  using Counter = std::function<Result<std::vector<CategoryCounts>>()>;

  /// Creates or migrates the table in `db` (either backend; common/sql_database.h).
  /// Errors: kUnavailable when the database fails; "schema_too_new".
  static Result<std::unique_ptr<FleetHistory>> open(std::shared_ptr<sql::Database> db,
                                                    Counter counter, HistoryOptions options = {});
  ~FleetHistory();
  FleetHistory(const FleetHistory&) = delete;
  FleetHistory& operator=(const FleetHistory&) = delete;

  /// Adds `n` evictions of `category` to the next sample. Thread-safe.
  void noteEvicted(std::string_view category, long long n);

  /// Takes the sample of the minute that holds `now` (a second call in the same minute replaces
  /// it, keeping the evictions counted for it), then removes samples older than the retention.
  /// Errors: those of the Counter; kUnavailable when the database refuses (the evictions noted
  /// stay for the next sample).
  Status sample(TimePoint now);

  /// The samples of `range` up to `now`, oldest first, in buckets of bucketWidth(range):
  /// connected/disconnected are the bucket's last sample, evicted the bucket's sum. Buckets with
  /// no sample are left out (the Console was not running).
  Result<std::vector<Sample>> query(Range range, TimePoint now) const;

 private:
  FleetHistory(std::shared_ptr<sql::Database> db, Counter counter, HistoryOptions options);

  std::shared_ptr<sql::Database> db_;
  Counter counter_;
  HistoryOptions options_;
  mutable std::mutex mu_;
  std::map<std::string, long long, std::less<>> evicted_;  // since the last sample
  std::optional<TimePoint> lastMinute_;
  std::map<std::string, long long, std::less<>> evictedThisMinute_;
};

/// Calls history.sample(clock.now()) every `period` (60 s) on a Boost.Asio steady timer on its
/// own thread; a failed sample is logged and retried at the next tick.
class HistorySampler {
 public:
  HistorySampler(FleetHistory& history, const Clock& clock, Millis period = Seconds(60));
  ~HistorySampler();
  void start();
  void stop();  // idempotent

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace dc::history
