// The connected rule (inventory/liveness.h) is defined once, by inventory::connected(); its other
// forms — the stores' SQL filter kConnectedSql and LiveIndex's ordered counts and key sets — must
// agree with it. Random rows at several `now`s, including ones whose cutoff falls exactly on a
// row's judgedFrom (the boundary: now − judgedFrom = G is still connected).
#include <catch2/catch.hpp>

#include <random>
#include <set>

#include "inventory/live_index.h"
#include "inventory/liveness.h"
#include "inventory/sqlite_store.h"
#include "tests/support/numbered.h"

using namespace dc;
using namespace dc::inventory;

namespace {

const TimePoint kT0 = TimePoint(Millis(1'800'000'000'000));
constexpr Millis kGrace = Seconds(90);
constexpr DefenderType kTypes[] = {DefenderType::kFargate, DefenderType::kAppEmbedded,
                                   DefenderType::kDocker, DefenderType::kServerLinux};

/// `n` Defenders with judgedFrom within [T0 − 5 min, T0 + 1 min] and a graceful disconnect on
/// about a third of them. Fixed seed: the same rows every run.
std::vector<Defender> randomRows(int n) {
  std::mt19937 rng(20261207);
  std::uniform_int_distribution<long long> offsetMs(-300'000, 60'000);
  std::uniform_int_distribution<int> pick(0, 2);
  std::uniform_int_distribution<size_t> typeOf(0, std::size(kTypes) - 1);
  std::vector<Defender> rows;
  for (int i = 0; i < n; ++i) {
    Defender d;
    d.hostname = testing::numbered("host-", i);
    d.type = kTypes[typeOf(rng)];
    d.version = "32.07.123";
    d.details = {{"cloudMetadata", nlohmann::json::object()}};
    d.judgedFrom = kT0 + Millis(offsetMs(rng));
    d.lastSeen = d.judgedFrom;
    d.registeredAt = d.judgedFrom - Seconds(600);
    d.connectedSince = d.registeredAt;
    if (pick(rng) == 0) d.gracefulDisconnectAt = d.judgedFrom + Millis(offsetMs(rng) / 100 + 3000);
    rows.push_back(std::move(d));
  }
  return rows;
}

/// Several `now`s: spread over the rows' range, plus the ones that put the cutoff exactly on
/// some rows' judgedFrom and one millisecond either side of it.
std::vector<TimePoint> nowsFor(const std::vector<Defender>& rows) {
  std::vector<TimePoint> nows;
  for (long long s = -300; s <= 200; s += 37) nows.push_back(kT0 + Seconds(s) + kGrace);
  for (size_t i = 0; i < rows.size(); i += rows.size() / 5)
    for (Millis d : {Millis(-1), Millis(0), Millis(1)})
      nows.push_back(rows[i].judgedFrom + kGrace + d);
  return nows;
}

std::set<std::string> connectedByRule(const std::vector<Defender>& rows, TimePoint now,
                                      std::optional<DefenderType> type = {}) {
  std::set<std::string> out;
  for (const auto& d : rows)
    if ((!type || d.type == *type) && connected(d.judgedFrom, d.gracefulDisconnectAt, now, kGrace))
      out.insert(hostnameKey(d.hostname));
  return out;
}

}  // namespace

TEST_CASE("judge() says connected exactly when the rule does, and the boundary is inclusive") {
  Defender d;
  d.judgedFrom = kT0;
  const LivenessPolicy policy{Seconds(30), kGrace};
  CHECK(connected(kT0, std::nullopt, kT0 + kGrace, kGrace));
  CHECK_FALSE(connected(kT0, std::nullopt, kT0 + kGrace + Millis(1), kGrace));
  CHECK_FALSE(connected(kT0, kT0, kT0, kGrace));
  for (const auto& row : randomRows(300))
    for (TimePoint now : {kT0 - Seconds(60), kT0, kT0 + Seconds(45), kT0 + Seconds(200)}) {
      const Liveness l = judge(row, now, policy, 1);
      CHECK(l.connected == connected(row.judgedFrom, row.gracefulDisconnectAt, now, kGrace));
      CHECK(l.disconnectedAt.has_value() == !l.connected);
    }
}

TEST_CASE("the SQL filter kConnectedSql selects the rows the C++ rule calls connected") {
  const auto rows = randomRows(600);
  auto store = std::move(openSqliteStore({":memory:"})).value();
  WriteBatch batch;
  batch.upserts = rows;
  REQUIRE(store->write(batch).ok());

  for (TimePoint now : nowsFor(rows)) {
    INFO("now = T0 + " << (now - kT0).count() << " ms");
    const LivenessCutoff cutoff{now, kGrace};
    const auto expected = connectedByRule(rows, now);
    DefenderQuery q;
    q.connected = true;
    auto on = store->listKeys(q, cutoff);
    REQUIRE(on.ok());
    CHECK(std::set<std::string>(on->begin(), on->end()) == expected);
    q.connected = false;
    auto off = store->listKeys(q, cutoff);
    REQUIRE(off.ok());
    CHECK(on->size() + off->size() == rows.size());
    for (const auto& key : *off) CHECK_FALSE(expected.contains(key));

    auto summary = store->summarize(cutoff);
    REQUIRE(summary.ok());
    long long connectedTotal = 0;
    for (const auto& c : *summary) connectedTotal += c.connected;
    CHECK(connectedTotal == static_cast<long long>(expected.size()));
  }
}

TEST_CASE("LiveIndex counts and pages the Defenders the C++ rule calls connected") {
  const auto rows = randomRows(600);
  auto entry = [](const Defender& d) {
    return LiveIndex::Entry{d.type, d.judgedFrom, d.gracefulDisconnectAt.has_value(),
                            d.gracefulDisconnectAt.value_or(TimePoint{})};
  };
  std::vector<std::string> keys;  // stable addresses for the index
  keys.reserve(rows.size());
  for (const auto& d : rows) keys.push_back(hostnameKey(d.hostname));
  auto nows = nowsFor(rows);
  std::sort(nows.begin(), nows.end());

  LiveIndex index;
  index.reset(connectedCutoff(nows.front(), kGrace));
  for (size_t i = 0; i < rows.size(); ++i) index.add(keys[i], entry(rows[i]));

  for (TimePoint now : nows) {
    INFO("now = T0 + " << (now - kT0).count() << " ms");
    const TimePoint cutoff = connectedCutoff(now, kGrace);
    index.advance(cutoff);
    for (DefenderType t : kTypes) {
      const auto expected = connectedByRule(rows, now, t);
      CHECK(index.connected(t, cutoff) == expected.size());
      size_t total = 0;
      const auto page = index.page(t, /*connected=*/true, false, 0, rows.size(), total);
      CHECK(total == expected.size());
      CHECK(std::set<std::string>(page.begin(), page.end()) == expected);
    }
  }
}
