// The fleet history (history/fleet_history.h): per-minute samples, evictions counted once per
// minute, buckets per range, retention, all on a ManualClock (no sleeps).
#include <catch2/catch.hpp>

#include "history/fleet_history.h"
#include "tests/support/sql_backends.h"

using namespace dc;
using namespace dc::history;
using namespace std::chrono_literals;

namespace {

// A time on a 6-hour (so also 10-minute and minute) boundary, UTC.
const TimePoint kT0 = TimePoint(Millis(1'800'000'000'000LL - 1'800'000'000'000LL % 21'600'000));

struct Fleet {
  std::vector<CategoryCounts> now{{"appEmbedded", 10, 2, 0}, {"host", 5, 0, 0}};
  bool failing = false;
  FleetHistory::Counter counter() {
    return [this]() -> Result<std::vector<CategoryCounts>> {
      if (failing) return Error::unavailable("inventory down");
      return now;
    };
  }
};

const CategoryCounts* find(const Sample& s, const std::string& category) {
  for (const auto& c : s.counts)
    if (c.category == category) return &c;
  return nullptr;
}

}  // namespace

TEST_CASE("history: one sample per minute with the counts and the evictions since the last") {
  Fleet fleet;
  auto h = FleetHistory::open(dc::test::testDatabase("history"), fleet.counter());
  REQUIRE(h.ok());
  auto& history = **h;
  ManualClock clock{kT0 + 10s};

  history.noteEvicted("appEmbedded", 3);
  REQUIRE(history.sample(clock.now()).ok());
  // A second sample in the same minute replaces it and keeps the minute's evictions.
  fleet.now[0].connected = 9;
  history.noteEvicted("appEmbedded", 2);
  clock.advance(30s);
  REQUIRE(history.sample(clock.now()).ok());

  auto got = history.query(Range::kHour, clock.now());
  REQUIRE(got.ok());
  REQUIRE(got->size() == 1);
  CHECK((*got)[0].at == kT0);
  CHECK(*find((*got)[0], "appEmbedded") == CategoryCounts{"appEmbedded", 9, 2, 5});
  CHECK(*find((*got)[0], "host") == CategoryCounts{"host", 5, 0, 0});

  // The next minute starts from zero evictions.
  clock.advance(1min);
  REQUIRE(history.sample(clock.now()).ok());
  got = history.query(Range::kHour, clock.now());
  REQUIRE(got->size() == 2);
  CHECK((*got)[1].at == kT0 + 1min);
  CHECK(find((*got)[1], "appEmbedded")->evicted == 0);

  // A failed count writes nothing and keeps the noted evictions for the next sample.
  history.noteEvicted("host", 4);
  fleet.failing = true;
  clock.advance(1min);
  CHECK_FALSE(history.sample(clock.now()).ok());
  fleet.failing = false;
  clock.advance(1min);
  REQUIRE(history.sample(clock.now()).ok());
  got = history.query(Range::kHour, clock.now());
  REQUIRE(got->size() == 3);
  CHECK((*got)[2].at == kT0 + 3min);
  CHECK(find((*got)[2], "host")->evicted == 4);
}

TEST_CASE("history: day buckets hold the last counts and the sum of evictions; ranges cut") {
  Fleet fleet;
  auto h = FleetHistory::open(dc::test::testDatabase("history"), fleet.counter());
  REQUIRE(h.ok());
  ManualClock clock{kT0};
  for (int i = 0; i < 30; ++i) {  // 08:00 .. 08:29, one eviction a minute
    fleet.now[0].connected = i;
    (*h)->noteEvicted("appEmbedded", 1);
    REQUIRE((*h)->sample(clock.now()).ok());
    clock.advance(1min);
  }
  const TimePoint end = kT0 + 29min;
  auto day = (*h)->query(Range::kDay, end);
  REQUIRE(day.ok());
  REQUIRE(day->size() == 3);
  for (int b = 0; b < 3; ++b) {
    CHECK((*day)[b].at == kT0 + b * 10min);
    CHECK(find((*day)[b], "appEmbedded")->connected == b * 10 + 9);  // the bucket's last sample
    CHECK(find((*day)[b], "appEmbedded")->evicted == 10);
  }
  // The last hour seen from two hours later is empty; the month still has them all.
  CHECK((*h)->query(Range::kHour, end + 2h)->empty());
  auto month = (*h)->query(Range::kMonth, end + 2h);
  REQUIRE(month->size() == 1);
  CHECK(find((*month)[0], "appEmbedded")->evicted == 30);
}

TEST_CASE("history: samples older than the retention go when a sample is taken") {
  Fleet fleet;
  HistoryOptions o;
  o.retention = 1h;
  auto h = FleetHistory::open(dc::test::testDatabase("history"), fleet.counter(), o);
  REQUIRE(h.ok());
  REQUIRE((*h)->sample(kT0).ok());
  REQUIRE((*h)->sample(kT0 + 30min).ok());
  REQUIRE((*h)->query(Range::kHour, kT0 + 30min)->size() == 2);
  REQUIRE((*h)->sample(kT0 + 90min).ok());  // kT0 is now older than an hour
  auto left = (*h)->query(Range::kMonth, kT0 + 90min);
  REQUIRE(left.ok());
  REQUIRE(left->size() == 1);  // kT0+30min and kT0+90min share the 06:00-12:00 bucket
  CHECK(find((*left)[0], "appEmbedded")->connected == 10);
  // In 10-minute buckets: the 08:30 and 09:30 samples, no 08:00 any more.
  auto day = (*h)->query(Range::kDay, kT0 + 90min);
  REQUIRE(day->size() == 2);
  CHECK((*day)[0].at == kT0 + 30min);
  CHECK((*day)[1].at == kT0 + 90min);
}

TEST_CASE("history: ranges") {
  CHECK(parseRange("hour") == Range::kHour);
  CHECK(parseRange("day") == Range::kDay);
  CHECK(parseRange("month") == Range::kMonth);
  CHECK_FALSE(parseRange("week"));
  CHECK_FALSE(parseRange("Hour"));
  CHECK(bucketWidth(Range::kDay) == 10min);
}
