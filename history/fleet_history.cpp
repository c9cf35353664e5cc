#include "history/fleet_history.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include <set>
#include <thread>

#include <spdlog/spdlog.h>

#include "common/sqlite_tables.h"

namespace dc::history {

namespace {

/// The fleet_history table, version 1 (the same on both backends).
const sql::Migration kMigrations[] = {{1, R"sql(
CREATE TABLE IF NOT EXISTS fleet_history (
  at_ms        BIGINT NOT NULL,
  category     TEXT NOT NULL,
  connected    BIGINT NOT NULL,
  disconnected BIGINT NOT NULL,
  evicted      BIGINT NOT NULL,
  PRIMARY KEY (at_ms, category)
);
)sql",
                                       ""}};

Error failure(const Error& e, const std::string& what) {
  Error out = e;
  out.message = "fleet history: " + what + ": " + e.message;
  return out;
}

}  // namespace

std::optional<Range> parseRange(std::string_view text) {
  if (text == "hour") return Range::kHour;
  if (text == "day") return Range::kDay;
  if (text == "month") return Range::kMonth;
  return std::nullopt;
}

Millis rangeSpan(Range r) {
  switch (r) {
    case Range::kHour:
      return std::chrono::hours(1);
    case Range::kDay:
      return std::chrono::hours(24);
    case Range::kMonth:
      return std::chrono::hours(24 * 30);
  }
  return std::chrono::hours(1);
}

Millis bucketWidth(Range r) {
  switch (r) {
    case Range::kHour:
      return std::chrono::minutes(1);
    case Range::kDay:
      return std::chrono::minutes(10);
    case Range::kMonth:
      return std::chrono::hours(6);
  }
  return std::chrono::minutes(1);
}

FleetHistory::FleetHistory(std::shared_ptr<sql::Database> db, Counter counter,
                           HistoryOptions options)
    : db_(std::move(db)), counter_(std::move(counter)), options_(options) {}

FleetHistory::~FleetHistory() = default;

Result<std::unique_ptr<FleetHistory>> FleetHistory::open(std::shared_ptr<sql::Database> db,
                                                         Counter counter, HistoryOptions options) {
  if (auto st = db->migrate("history", kMigrations); !st.ok()) return st.error();
  return std::unique_ptr<FleetHistory>(
      new FleetHistory(std::move(db), std::move(counter), options));
}

void FleetHistory::noteEvicted(std::string_view category, long long n) {
  std::lock_guard lock(mu_);
  auto it = evicted_.find(category);
  if (it == evicted_.end())
    evicted_.emplace(std::string(category), n);
  else
    it->second += n;
}

Status FleetHistory::sample(TimePoint now) {
  auto counts = counter_();
  if (!counts.ok()) return counts.error();
  const TimePoint minute = std::chrono::floor<std::chrono::minutes>(now);
  std::lock_guard lock(mu_);
  // Evictions of this minute: those already written for it (a repeated sample) and the new ones.
  auto thisMinute = lastMinute_ == minute ? evictedThisMinute_ : decltype(evictedThisMinute_){};
  for (const auto& [category, n] : evicted_) thisMinute[category] += n;
  std::map<std::string, CategoryCounts, std::less<>> rows;
  for (const auto& c : *counts) rows[c.category] = c;
  for (const auto& [category, n] : thisMinute) {
    rows[category].category = category;
    rows[category].evicted = n;
  }

  // Replicas on one database each sample the same minute: the connected/disconnected counts of
  // the last one stand, and the evictions (counted by the replica that evicts) are never lowered.
  auto st = db_->transaction([&](sql::Database& tx) -> Status {
    for (const auto& [category, row] : rows) {
      auto w = tx.run(
          "INSERT INTO fleet_history (at_ms, category, connected, disconnected, evicted) "
          "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (at_ms, category) DO UPDATE SET "
          "connected = excluded.connected, disconnected = excluded.disconnected, evicted = "
          "CASE WHEN excluded.evicted > fleet_history.evicted THEN excluded.evicted "
          "ELSE fleet_history.evicted END",
          {toEpochMs(minute), category, row.connected, row.disconnected, row.evicted});
      if (!w.ok()) return failure(w.error(), "write sample");
    }
    auto prune =
        tx.run("DELETE FROM fleet_history WHERE at_ms < $1", {toEpochMs(now - options_.retention)});
    if (!prune.ok()) return failure(prune.error(), "prune");
    return Status::success();
  });
  if (!st.ok()) return st;
  evictedThisMinute_ = std::move(thisMinute);
  lastMinute_ = minute;
  evicted_.clear();
  return Status::success();
}

Result<std::vector<Sample>> FleetHistory::query(Range range, TimePoint now) const {
  const long long width = bucketWidth(range).count();
  // Each bucket's last sample (per category) gives connected/disconnected; evicted is summed.
  auto rows = db_->run(
      "SELECT s.bucket, h.category, h.connected, h.disconnected, s.evicted FROM fleet_history h "
      "JOIN (SELECT (at_ms / $1) * $1 AS bucket, category, MAX(at_ms) AS last_ms, "
      "SUM(evicted) AS evicted FROM fleet_history WHERE at_ms > $2 AND at_ms <= $3 "
      "GROUP BY 1, 2) s ON h.category = s.category AND h.at_ms = s.last_ms "
      "ORDER BY s.bucket, h.category",
      {width, toEpochMs(now - rangeSpan(range)), toEpochMs(now)});
  if (!rows.ok()) return failure(rows.error(), "query");
  std::vector<Sample> out;
  for (const auto& r : *rows) {
    const TimePoint at = fromEpochMs(r.integer(0));
    if (out.empty() || out.back().at != at) out.push_back(Sample{at, {}});
    out.back().counts.push_back({r.text(1), r.integer(2), r.integer(3), r.integer(4)});
  }
  return out;
}

struct HistorySampler::Impl {
  FleetHistory& history;
  const Clock& clock;
  Millis period;
  boost::asio::io_context io;
  boost::asio::steady_timer timer{io};
  std::thread thread;

  Impl(FleetHistory& h, const Clock& c, Millis p) : history(h), clock(c), period(p) {}

  void arm() {
    timer.expires_after(period);
    timer.async_wait([this](const boost::system::error_code& ec) {
      if (ec) return;  // cancelled
      if (auto st = history.sample(clock.now()); !st.ok())
        spdlog::warn("fleet history sample not taken: {}", st.error().message);
      arm();
    });
  }
};

HistorySampler::HistorySampler(FleetHistory& history, const Clock& clock, Millis period)
    : impl_(std::make_unique<Impl>(history, clock, period)) {}

HistorySampler::~HistorySampler() {
  stop();
}

void HistorySampler::start() {
  if (auto st = impl_->history.sample(impl_->clock.now()); !st.ok())
    spdlog::warn("fleet history sample not taken: {}", st.error().message);
  impl_->arm();
  impl_->thread = std::thread([this] { impl_->io.run(); });
}

void HistorySampler::stop() {
  if (!impl_->thread.joinable()) return;
  boost::asio::post(impl_->io, [this] { impl_->timer.cancel(); });
  impl_->thread.join();
}

}  // namespace dc::history
