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

constexpr long long kSchemaVersion = 1;

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS history_meta (
  key   TEXT PRIMARY KEY,
  value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS fleet_history (
  at_ms        INTEGER NOT NULL,
  category     TEXT NOT NULL,
  connected    INTEGER NOT NULL,
  disconnected INTEGER NOT NULL,
  evicted      INTEGER NOT NULL,
  PRIMARY KEY (at_ms, category)
);
)sql";

using Stmt = SqliteStatement;

Error failure(sqlite3* db, const std::string& what) {
  return Error::unavailable("fleet history: " + what + ": " + sqlite3_errmsg(db));
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

FleetHistory::FleetHistory(sqlite3* db, Counter counter, HistoryOptions options)
    : db_(db), counter_(std::move(counter)), options_(options) {}

FleetHistory::~FleetHistory() {
  sqlite3_close(db_);
}

Result<std::unique_ptr<FleetHistory>> FleetHistory::open(const std::string& path, Counter counter,
                                                         HistoryOptions options) {
  auto db = openSqliteConnection(path, 5000);
  if (!db.ok()) return db.error();
  std::unique_ptr<FleetHistory> h(new FleetHistory(*db, std::move(counter), options));
  if (auto st = createVersionedTables(*db, kSchema, "history_meta", kSchemaVersion, "history");
      !st.ok())
    return st.error();
  return h;
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

  if (sqlite3_exec(db_, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) != SQLITE_OK)
    return failure(db_, "begin");
  auto rollback = [this](const std::string& what) {
    const Error e = failure(db_, what);
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    return e;
  };
  for (const auto& [category, row] : rows) {
    Stmt s(db_,
           "INSERT OR REPLACE INTO fleet_history (at_ms, category, connected, disconnected, "
           "evicted) VALUES (?1, ?2, ?3, ?4, ?5)");
    if (!s.ok()) return rollback("prepare sample");
    s.integer(1, toEpochMs(minute));
    s.text(2, category);
    s.integer(3, row.connected);
    s.integer(4, row.disconnected);
    s.integer(5, row.evicted);
    if (s.step() != SQLITE_DONE) return rollback("write sample");
  }
  {
    Stmt prune(db_, "DELETE FROM fleet_history WHERE at_ms < ?1");
    if (!prune.ok()) return rollback("prepare prune");
    prune.integer(1, toEpochMs(now - options_.retention));
    if (prune.step() != SQLITE_DONE) return rollback("prune");
  }
  if (sqlite3_exec(db_, "COMMIT", nullptr, nullptr, nullptr) != SQLITE_OK)
    return rollback("commit");
  evictedThisMinute_ = std::move(thisMinute);
  lastMinute_ = minute;
  evicted_.clear();
  return Status::success();
}

Result<std::vector<Sample>> FleetHistory::query(Range range, TimePoint now) const {
  const long long width = bucketWidth(range).count();
  std::lock_guard lock(mu_);
  // SQLite: with max() the bare columns come from the row holding the maximum, so
  // connected/disconnected are those of each bucket's last sample.
  Stmt s(db_,
         "SELECT (at_ms / ?1) * ?1 AS bucket, category, max(at_ms), connected, disconnected, "
         "sum(evicted) FROM fleet_history WHERE at_ms > ?2 AND at_ms <= ?3 "
         "GROUP BY bucket, category ORDER BY bucket, category");
  if (!s.ok()) return failure(db_, "prepare query");
  s.integer(1, width);
  s.integer(2, toEpochMs(now - rangeSpan(range)));
  s.integer(3, toEpochMs(now));
  std::vector<Sample> out;
  int rc;
  while ((rc = s.step()) == SQLITE_ROW) {
    const TimePoint at = fromEpochMs(s.columnInteger(0));
    if (out.empty() || out.back().at != at) out.push_back(Sample{at, {}});
    out.back().counts.push_back(
        {s.columnText(1), s.columnInteger(3), s.columnInteger(4), s.columnInteger(5)});
  }
  if (rc != SQLITE_DONE) return failure(db_, "query");
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
