// Liveness judgement and the live Inventory on a manual clock (no sleeps).
#include <catch2/catch.hpp>

#include <atomic>
#include <set>
#include <thread>

#include "inventory/inventory.h"
#include "inventory/live_index.h"
#include "inventory/snapshots.h"
#include "inventory/sqlite_store.h"
#include "tests/support/found.h"
#include "tests/support/numbered.h"

using namespace dc;
using namespace dc::inventory;
using namespace std::chrono_literals;

namespace {

const TimePoint kT0 = TimePoint(Millis(1'800'000'000'000));

Defender reported(const std::string& host, DefenderType type = DefenderType::kFargate) {
  Defender d;
  d.hostname = host;
  d.type = type;
  d.version = "32.07.123";
  d.cluster = "prod";
  d.details = {{"cloudMetadata", nlohmann::json::object()}};
  return d;
}

struct Fixture {
  ManualClock clock{kT0};
  std::unique_ptr<Store> store = std::move(openSqliteStore({":memory:"})).value();
  std::unique_ptr<Inventory> inv = std::make_unique<Inventory>(*store, clock, InventoryOptions{});
  Fixture() { REQUIRE(inv->start(/*startFlusher=*/true).ok()); }

  std::optional<Defender> get(const std::string& host) {
    auto lookup = inv->find(host);
    dc::testing::found(lookup);  // fails the test with the error if the lookup failed
    return *lookup;
  }
  Liveness live(const std::string& host) { return inv->judge(*get(host), clock.now()); }
};

}  // namespace

TEST_CASE("liveness: connected within grace, disconnected after, graceful at once") {
  Defender d = reported("a");
  d.judgedFrom = d.lastSeen = d.connectedSince = kT0;
  const LivenessPolicy p{30s, 90s};
  CHECK(judge(d, kT0 + 90s, p, 1).connected);
  auto l = judge(d, kT0 + 90s + 1ms, p, 1);
  CHECK_FALSE(l.connected);
  CHECK(l.disconnectedAt == kT0 + 90s);
  CHECK(l.lastModified == kT0 + 90s);
  CHECK(l.removalAt == kT0 + 90s + 1h);  // fargate: always one hour

  d.type = DefenderType::kServerLinux;
  CHECK(judge(d, kT0 + 2h, p, 3).removalAt == kT0 + 90s + 72h);

  d.gracefulDisconnectAt = kT0 + 10s;
  l = judge(d, kT0 + 11s, p, 1);
  CHECK_FALSE(l.connected);
  CHECK(l.disconnectedAt == kT0 + 10s);
}

TEST_CASE("inventory: register, refresh, timeout, reconnect, graceful disconnect") {
  Fixture f;
  CHECK(*f.inv->recordHeartbeat(reported("Task-1")) == HeartbeatOutcome::kRegistered);
  // Registration is durable before the call returns.
  CHECK(dc::testing::found(f.store->findDefender("task-1")));

  f.clock.advance(30s);
  CHECK(*f.inv->recordHeartbeat(reported("task-1")) == HeartbeatOutcome::kRefreshed);
  CHECK(f.get("task-1")->lastSeen == kT0 + 30s);  // visible before any flush
  CHECK(f.live("task-1").connected);
  CHECK(f.live("task-1").lastModified == kT0);

  f.clock.advance(91s);
  CHECK_FALSE(f.live("task-1").connected);
  CHECK(f.live("task-1").disconnectedAt == kT0 + 120s);
  CHECK(f.live("task-1").removalAt == kT0 + 120s + 1h);

  CHECK(*f.inv->recordHeartbeat(reported("task-1")) == HeartbeatOutcome::kReconnected);
  CHECK(f.live("task-1").connected);
  CHECK(f.live("task-1").lastModified == kT0 + 121s);

  f.clock.advance(5s);
  auto d = f.inv->recordDisconnect("TASK-1");
  REQUIRE(d.ok());
  CHECK_FALSE(f.live("task-1").connected);
  CHECK(f.live("task-1").disconnectedAt == kT0 + 126s);
  CHECK((*f.store->findDefender("task-1"))->gracefulDisconnectAt == kT0 + 126s);

  CHECK_FALSE(f.inv->recordDisconnect("nobody").ok());
}

TEST_CASE("inventory: Defender clock skew of hours does not change liveness") {
  Fixture f;
  REQUIRE(f.inv->recordHeartbeat(reported("skewed"), kT0 - 5h).ok());
  REQUIRE(f.inv->recordHeartbeat(reported("ahead"), kT0 + 9h).ok());
  CHECK(f.get("skewed")->lastSeen == kT0);
  CHECK(f.get("skewed")->clockSkewMs == -5 * 3600 * 1000LL);
  CHECK(f.get("ahead")->clockSkewMs == 9 * 3600 * 1000LL);
  f.clock.advance(60s);
  CHECK(f.live("skewed").connected);
  CHECK(f.live("ahead").connected);
  f.clock.advance(31s);
  CHECK_FALSE(f.live("ahead").connected);
}

TEST_CASE("inventory: coalesced heartbeats are flushed in one batch and lists see them") {
  Fixture f;
  for (int i = 0; i < 100; ++i)
    REQUIRE(f.inv->recordHeartbeat(reported(dc::testing::numbered("h", i))).ok());
  f.clock.advance(20s);
  for (int i = 0; i < 100; ++i)
    REQUIRE(f.inv->recordHeartbeat(reported(dc::testing::numbered("h", i))).ok());
  DefenderQuery q;
  q.limit = 250;
  auto page = f.inv->list(q);
  REQUIRE(page.ok());
  CHECK(page->total == 100);
  for (const auto& d : page->items) CHECK(d.lastSeen == kT0 + 20s);
  REQUIRE(f.inv->flush().ok());
  CHECK((*f.store->findDefender("h7"))->lastSeen == kT0 + 20s);
  CHECK(f.inv->metrics().pendingWrites == 0);
}

TEST_CASE("inventory: eviction re-checks liveness; a late heartbeat wins") {
  Fixture f;
  REQUIRE(f.inv->recordHeartbeat(reported("stale")).ok());
  REQUIRE(f.inv->recordHeartbeat(reported("saved")).ok());
  REQUIRE(
      f.inv->recordObservations("stale", {Observation{0, "process", kT0, kT0, {{"p", 1}}}}).ok());
  f.clock.advance(90s + 1h - 1s);
  auto lease = f.inv->acquireSweepLease(f.clock.now(), 1h);
  REQUIRE(lease.ok());
  const LeaseFence fence{f.inv->replicaId(), lease->epoch, f.clock.now()};
  CHECK(f.inv->evictDue(Category::kAppEmbedded, f.clock.now(), 100, 0ms, fence)
            ->evicted.empty());  // 59:59
  f.clock.advance(1s);
  // "saved" heartbeats just before the sweep: its pending heartbeat is written before the
  // candidates are chosen, so only "stale" is a candidate.
  REQUIRE(f.inv->recordHeartbeat(reported("saved")).ok());
  auto evicted = f.inv->evictDue(Category::kAppEmbedded, f.clock.now(), 100, 0ms, fence);
  REQUIRE(evicted.ok());
  CHECK(evicted->candidates == 1);
  REQUIRE(evicted->evicted.size() == 1);
  CHECK(evicted->evicted.front().hostname == "stale");
  CHECK(evicted->evicted.front().observationsRemoved == 1);
  CHECK_FALSE(f.get("stale").has_value());
  CHECK(f.get("saved").has_value());
  // An evicted Defender that comes back registers anew with no old data.
  CHECK(*f.inv->recordHeartbeat(reported("stale")) == HeartbeatOutcome::kRegistered);
  CHECK(f.inv->observations("stale", 0, 10)->total == 0);
}

TEST_CASE("inventory: manual delete removes observations and leaves an audit record") {
  Fixture f;
  REQUIRE(f.inv->recordHeartbeat(reported("x")).ok());
  REQUIRE(f.inv
              ->recordObservations("x", {Observation{0, "dns", kT0, kT0, {{"q", "a.com"}}},
                                         Observation{0, "dns", kT0, kT0, {{"q", "b.com"}}}})
              .ok());
  auto rec = f.inv->remove("X", "admin");
  REQUIRE(rec.ok());
  CHECK(rec->actor == "admin");
  CHECK(rec->observationsRemoved == 2);
  CHECK(*f.store->countObservations() == 0);
  CHECK(f.inv->audit(0, 10)->total == 1);
  CHECK(f.inv->remove("x", "admin").error().kind == ErrorKind::kNotFound);
  CHECK(f.inv->recordObservations("x", {Observation{}}).error().kind == ErrorKind::kNotFound);
}

TEST_CASE("inventory: Console downtime does not count against Defenders") {
  ManualClock clock{kT0};
  auto store = std::move(openSqliteStore({":memory:"})).value();
  {
    Inventory inv(*store, clock, {});
    REQUIRE(inv.start().ok());
    REQUIRE(inv.recordHeartbeat(reported("alive-at-stop")).ok());
    clock.advance(10s);
    inv.stop();  // final flush records the Console alive at kT0 + 10 s
  }
  clock.advance(2h);  // the Console was down two hours
  Inventory inv(*store, clock, {});
  REQUIRE(inv.start(false).ok());
  auto d = *inv.find("alive-at-stop");
  REQUIRE(d.has_value());
  CHECK(d->lastSeen == kT0);
  auto l = inv.judge(*d, clock.now());
  CHECK(l.connected);
  clock.advance(91s);
  l = inv.judge(**inv.find("alive-at-stop"), clock.now());
  CHECK_FALSE(l.connected);
  CHECK(l.disconnectedAt == kT0 + 10s + 2h + 90s);
}

TEST_CASE("inventory: observations are rate-limited per Defender") {
  ManualClock clock{kT0};
  auto store = std::move(openSqliteStore({":memory:"})).value();
  InventoryOptions io;
  io.observationsPerSecond = 10;
  io.observationBurst = 20;
  Inventory inv(*store, clock, io);
  REQUIRE(inv.start().ok());
  REQUIRE(inv.recordHeartbeat(reported("busy")).ok());
  REQUIRE(inv.recordHeartbeat(reported("quiet")).ok());
  const std::vector<Observation> fifteen(15, Observation{0, "dns", kT0, kT0, {}});
  REQUIRE(inv.recordObservations("busy", fifteen).ok());
  auto refused = inv.recordObservations("busy", fifteen);
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.error().kind == ErrorKind::kRateLimited);
  CHECK(refused.error().code == "observation_rate_limited");
  CHECK(inv.recordObservations("quiet", fifteen).ok());  // per Defender
  clock.advance(1s);                                     // +10 tokens: 5 left + 10 = 15
  CHECK(inv.recordObservations("busy", fifteen).ok());
  CHECK(*store->countObservations() == 45);
}

TEST_CASE(
    "inventory: one type's connected or disconnected list and the summary come from memory "
    "and agree with the Store's filters as time passes") {
  Fixture f;
  // 60 Fargate Defenders heartbeating at staggered times, 10 daemonsets, 5 graceful stops.
  for (int i = 0; i < 60; ++i) {
    REQUIRE(f.inv->recordHeartbeat(reported(dc::testing::numbered("f", 100 + i))).ok());
    f.clock.advance(2s);
  }
  for (int i = 0; i < 10; ++i)
    REQUIRE(
        f.inv->recordHeartbeat(reported(dc::testing::numbered("d", i), DefenderType::kDaemonset))
            .ok());
  for (int i = 0; i < 5; ++i)
    REQUIRE(f.inv->recordDisconnect(dc::testing::numbered("f", 150 + i)).ok());
  // A Defender that changes type moves to the other type's lists.
  REQUIRE(f.inv->recordHeartbeat(reported("f159", DefenderType::kDaemonset)).ok());

  auto expectSame = [&](bool connected, bool reverse, int offset) {
    DefenderQuery q;
    q.types = {DefenderType::kFargate};
    q.connected = connected;
    q.reverse = reverse;
    q.offset = offset;
    q.limit = 7;
    auto fromIndex = f.inv->list(q);
    REQUIRE(f.inv->flush().ok());
    auto fromStore = f.store->listDefenders(q, {f.clock.now(), InventoryOptions{}.liveness.grace});
    REQUIRE(fromIndex.ok());
    REQUIRE(fromStore.ok());
    CHECK(fromIndex->total == fromStore->total);
    std::vector<std::string> a, b;
    for (const auto& d : fromIndex->items) a.push_back(d.hostname);
    for (const auto& d : fromStore->items) b.push_back(d.hostname);
    CHECK(a == b);
    return fromIndex->total;
  };
  auto summaryOf = [&](Category c) {
    const auto summary = f.inv->summary();
    REQUIRE(summary.ok());
    for (const auto& row : *summary)
      if (row.category == c) return row;
    return CategorySummary{c, -1, -1};
  };

  // f100+i was seen at 2i s; now is 120 s, so the cutoff (now − 90 s) is 30 s: f115..f158 are
  // connected except the 5 graceful stops (39), f100..f114 and the graceful ones are not (20).
  CHECK(expectSame(true, false, 0) == 39);
  CHECK(expectSame(false, false, 0) == 20);
  expectSame(true, true, 3);
  expectSame(false, false, 18);
  CHECK(summaryOf(Category::kAppEmbedded).deployed == 59);
  CHECK(summaryOf(Category::kAppEmbedded).connected == 39);
  CHECK(summaryOf(Category::kContainer).deployed == 11);
  CHECK(summaryOf(Category::kContainer).connected == 11);

  // 40 s later the cutoff is 70 s: f135..f158 minus the graceful ones stay connected.
  f.clock.advance(40s);
  CHECK(expectSame(true, false, 0) == 19);
  CHECK(expectSame(false, false, 2) == 40);
  CHECK(summaryOf(Category::kAppEmbedded).connected == 19);
  expectSame(false, true, 0);

  // A timed-out Defender heartbeats again: connected in the list and the counts at once.
  REQUIRE(*f.inv->recordHeartbeat(reported("f100")) == HeartbeatOutcome::kReconnected);
  CHECK(expectSame(true, false, 0) == 20);
  CHECK(summaryOf(Category::kAppEmbedded).connected == 20);

  // Deletion and a clock that steps back 30 s (cutoff 40 s: f120..f158 minus the graceful
  // ones, plus f100) keep the index exact.
  REQUIRE(f.inv->remove("f101", "admin").ok());
  f.clock.set(f.clock.now() - 30s);
  CHECK(expectSame(true, false, 0) == 35);
  CHECK(summaryOf(Category::kAppEmbedded).connected == 35);
  CHECK(summaryOf(Category::kAppEmbedded).deployed == 58);
  expectSame(false, false, 0);
}

TEST_CASE("inventory: a reporter that may not update the stored App ID changes nothing") {
  Fixture f;
  Defender x = reported("task-1");
  x.appId = "famx:11111111-1111-4111-8111-111111111111";
  REQUIRE(f.inv->recordHeartbeat(x).ok());
  Defender y = reported("task-1");
  y.appId = "famy:22222222-2222-4222-8222-222222222222";
  const auto onlyY = [&](const std::string& stored) { return stored == y.appId; };
  f.clock.advance(Seconds(5));
  auto refused = f.inv->recordHeartbeat(y, std::nullopt, onlyY);
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.error().code == "app_id_mismatch");
  CHECK(f.inv->appIdOf("task-1") == x.appId);
  CHECK(f.get("task-1")->appId == x.appId);
  CHECK(f.get("task-1")->lastSeen == kT0);  // the refused heartbeat did not count
  // The first reporter may go on; a new hostname needs no permission.
  const auto onlyX = [&](const std::string& stored) { return stored == x.appId; };
  CHECK(f.inv->recordHeartbeat(x, std::nullopt, onlyX).ok());
  Defender fresh = reported("task-2");
  fresh.appId = y.appId;
  CHECK(f.inv->recordHeartbeat(fresh, std::nullopt, onlyY).ok());
}

TEST_CASE("live index: eviction candidates follow disconnectedAt + retention, oldest first") {
  const std::vector<std::string> keys = {"g", "s", "y", "h", "old"};  // stable addresses
  LiveIndex index;
  index.reset(kT0 - 90s);
  index.add(keys[0], {DefenderType::kFargate, kT0 - 2h, true, kT0 - 61min});  // graceful, due
  index.add(keys[1], {DefenderType::kFargate, kT0 - 1h - 90s});               // silent, exactly due
  index.add(keys[2], {DefenderType::kFargate, kT0 - 1h - 89s});               // 1 s short
  index.add(keys[3], {DefenderType::kServerLinux, kT0 - 2h});
  index.add(keys[4], {DefenderType::kFargate, kT0 - 5h});  // silent longest
  auto due = [&](DefenderType t, Millis retention, size_t limit) {
    return index.due(t, kT0 - retention, kT0 - retention - 90s, limit);
  };
  // Graceful ones first, then the silent ones oldest first.
  CHECK(due(DefenderType::kFargate, 1h, 100) == std::vector<std::string>{"g", "old", "s"});
  CHECK(due(DefenderType::kFargate, 1h, 2) == std::vector<std::string>{"g", "old"});
  CHECK(due(DefenderType::kServerLinux, 24h, 100).empty());
  CHECK(index.due(DefenderType::kServerLinux, kT0 + 23h - 24h, kT0 + 23h - 24h - 90s, 100) ==
        std::vector<std::string>{"h"});
  // A heartbeat moves a Defender out of the candidates; a graceful disconnect moves it in.
  index.update(keys[4], {DefenderType::kFargate, kT0 - 5h}, {DefenderType::kFargate, kT0});
  index.update(keys[2], {DefenderType::kFargate, kT0 - 1h - 89s},
               {DefenderType::kFargate, kT0 - 1h - 89s, true, kT0 - 2h});
  CHECK(due(DefenderType::kFargate, 1h, 100) == std::vector<std::string>{"y", "g", "s"});
  index.remove(keys[0], {DefenderType::kFargate, kT0 - 2h, true, kT0 - 61min});
  CHECK(due(DefenderType::kFargate, 1h, 100) == std::vector<std::string>{"y", "s"});
}

TEST_CASE("live index: addAll builds the same index as one add() per entry") {
  std::vector<std::string> keys;
  for (int i = 0; i < 500; ++i) keys.push_back(dc::testing::numbered("k", (i * 7919) % 1000));
  auto entryOf = [](int i) {
    LiveIndex::Entry e{i % 3 == 0 ? DefenderType::kFargate : DefenderType::kDaemonset,
                       kT0 - Millis((i * 104729) % 600000)};
    if (i % 11 == 0) {
      e.graceful = true;
      e.gracefulAt = kT0 - Millis(i * 10);
    }
    return e;
  };
  LiveIndex one, bulk;
  one.reset(kT0 - 90s);
  bulk.reset(kT0 - 90s);
  std::vector<std::pair<const std::string*, LiveIndex::Entry>> entries;
  for (int i = 0; i < 500; ++i) {
    one.add(keys[static_cast<size_t>(i)], entryOf(i));
    entries.emplace_back(&keys[static_cast<size_t>(i)], entryOf(i));
  }
  bulk.addAll(entries);
  for (auto t : {DefenderType::kFargate, DefenderType::kDaemonset}) {
    CHECK(one.deployed(t) == bulk.deployed(t));
    CHECK(one.connected(t, kT0 - 90s) == bulk.connected(t, kT0 - 90s));
    for (bool connected : {true, false}) {
      size_t n1 = 0, n2 = 0;
      CHECK(one.page(t, connected, false, 0, 1000, n1) ==
            bulk.page(t, connected, false, 0, 1000, n2));
      CHECK(n1 == n2);
    }
    CHECK(one.due(t, kT0, kT0 - 60s, 1000) == bulk.due(t, kT0, kT0 - 60s, 1000));
    CHECK_FALSE(one.due(t, kT0, kT0 - 60s, 1000).empty());
  }
}

namespace {

const std::string kArnA = "arn:aws:ecs:eu-west-1:123456789012:task/prod/task-1";
const std::string kArnB = "arn:aws:ecs:eu-west-1:123456789012:task/prod/other-task";

Defender withResource(const std::string& host, const std::string& arn,
                      DefenderType type = DefenderType::kFargate) {
  Defender d = reported(host, type);
  d.details["cloudMetadata"]["resourceID"] = arn;
  return d;
}

template <typename R>
bool conflict(const R& r) {
  return !r.ok() && r.error().kind == ErrorKind::kConflict && r.error().code == "identity_conflict";
}

std::string storedResource(Fixture& f, const std::string& host) {
  return f.get(host)->details["cloudMetadata"].value("resourceID", "");
}

}  // namespace

TEST_CASE("inventory: a known Fargate hostname reported from another task ARN is refused") {
  Fixture f;
  REQUIRE(f.inv->recordHeartbeat(withResource("task-1", kArnA)).ok());
  f.clock.advance(5s);

  auto refused = f.inv->recordHeartbeat(withResource("TASK-1", kArnB));
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.error().kind == ErrorKind::kConflict);
  CHECK(refused.error().code == "identity_conflict");
  CHECK(refused.error().field == "cloudMetadata.resourceID");
  // Nothing written: the record keeps the first task's ARN and liveness.
  REQUIRE(f.inv->flush().ok());
  CHECK(storedResource(f, "task-1") == kArnA);
  CHECK(f.get("task-1")->lastSeen == kT0);
  CHECK((*f.store->findDefender("task-1"))->details["cloudMetadata"]["resourceID"] == kArnA);

  // The other task's observations and disconnect for that hostname are refused the same way.
  auto obs =
      f.inv->recordObservations("task-1", {Observation{0, "process", kT0, kT0, {{"p", 1}}}}, kArnB);
  CHECK(conflict(obs));
  CHECK(*f.store->countObservations() == 0);
  auto gone = f.inv->recordDisconnect("task-1", kArnB);
  CHECK(conflict(gone));
  CHECK(f.live("task-1").connected);
  CHECK(f.inv->metrics().identityConflicts == 3);

  // The first task goes on; without a resourceID (an older Defender) nothing is checked.
  CHECK(
      f.inv->recordObservations("task-1", {Observation{0, "process", kT0, kT0, {{"p", 1}}}}, kArnA)
          .ok());
  CHECK(f.inv->recordObservations("task-1", {Observation{0, "dns", kT0, kT0, {{"q", "a"}}}}).ok());
  CHECK(*f.inv->recordHeartbeat(withResource("task-1", kArnA)) == HeartbeatOutcome::kRefreshed);
  CHECK(f.inv->metrics().identityConflicts == 3);
}

TEST_CASE("inventory: resource pinning — adopted late, kept over restarts, freed by eviction") {
  Fixture f;
  // First heartbeat without resourceID (task metadata not read yet): the first ARN reported
  // later is adopted, and from then on pinned.
  REQUIRE(f.inv->recordHeartbeat(reported("task-2")).ok());
  f.clock.advance(5s);
  CHECK(f.inv->recordHeartbeat(withResource("task-2", kArnA)).ok());
  CHECK(storedResource(f, "task-2") == kArnA);
  CHECK(conflict(f.inv->recordHeartbeat(withResource("task-2", kArnB))));
  // A later heartbeat without resourceID keeps the pin.
  CHECK(f.inv->recordHeartbeat(reported("task-2")).ok());
  CHECK(conflict(f.inv->recordHeartbeat(withResource("task-2", kArnB))));

  // Kept over a restart of the Console (loaded with the liveness columns).
  REQUIRE(f.inv->recordHeartbeat(withResource("task-2", kArnA)).ok());
  f.inv->stop();
  f.inv = std::make_unique<Inventory>(*f.store, f.clock, InventoryOptions{});
  REQUIRE(f.inv->start(true).ok());
  CHECK(conflict(f.inv->recordHeartbeat(withResource("task-2", kArnB))));
  CHECK(storedResource(f, "task-2") == kArnA);

  // Deleted (or evicted) and registered again: a new record, no conflict.
  REQUIRE(f.inv->remove("task-2", "admin").ok());
  CHECK(*f.inv->recordHeartbeat(withResource("task-2", kArnB)) == HeartbeatOutcome::kRegistered);
  CHECK(storedResource(f, "task-2") == kArnB);

  // Other types: a host name is legitimately reused by a replacement machine (new instance id),
  // so a different resourceID updates the record as before.
  REQUIRE(f.inv->recordHeartbeat(withResource("ip-10-0-0-1", "i-0aaa", DefenderType::kServerLinux))
              .ok());
  CHECK(f.inv->recordHeartbeat(withResource("ip-10-0-0-1", "i-0bbb", DefenderType::kServerLinux))
            .ok());
  CHECK(storedResource(f, "ip-10-0-0-1") == "i-0bbb");
  CHECK(f.inv->metrics().identityConflicts == 1);  // counted since the restart
}

TEST_CASE("cursor snapshots: compact keys; TTL after last use, count and memory bounds (LRU)") {
  const KeySnapshot keys({"a", "bc", "", "def"});
  CHECK(keys.size() == 4);
  CHECK(keys.at(1) == "bc");
  CHECK(keys.at(2).empty());
  CHECK(keys.slice(1, 2) == std::vector<std::string>{"bc", ""});
  CHECK(keys.slice(3, 10) == std::vector<std::string>{"def"});
  CHECK(keys.slice(9, 10).empty());

  ManualClock clock{kT0};
  auto snap = [](int n) {
    std::vector<std::string> k;
    for (int i = 0; i < n; ++i) k.push_back("task-" + std::to_string(1000 + i));  // 9 bytes
    return std::make_shared<const KeySnapshot>(k);
  };
  const size_t hundred = snap(100)->bytes();
  SnapshotCache cache(clock, {.ttl = 60s, .maxSnapshots = 3, .maxBytes = 4 * hundred});
  auto a = *cache.put(snap(100));
  auto b = *cache.put(snap(100));
  CHECK(a != b);
  CHECK(cache.get(a).ok());
  // TTL counts from the last use.
  clock.advance(40s);
  CHECK(cache.get(a).ok());
  clock.advance(40s);
  CHECK(cache.get(a).ok());  // used 40 s ago
  auto gone = cache.get(b);  // idle for 80 s
  REQUIRE_FALSE(gone.ok());
  CHECK(gone.error().code == "cursor_expired");
  CHECK(cache.metrics().snapshots == 1);

  // Count bound: the least recently used goes first.
  auto c = *cache.put(snap(100));
  auto d = *cache.put(snap(100));
  CHECK(cache.get(a).ok());        // a is now the most recently used
  auto e = *cache.put(snap(100));  // 4th: drops c
  CHECK_FALSE(cache.get(c).ok());
  CHECK(cache.get(a).ok());
  CHECK(cache.get(d).ok());
  CHECK(cache.get(e).ok());
  CHECK(cache.metrics().dropped == 1);
  // Memory bound: a snapshot of twice the size drops the least recently used (a) to fit.
  auto big = *cache.put(snap(200));
  CHECK(cache.metrics().bytes <= 4 * hundred);
  CHECK(cache.get(big).ok());
  CHECK_FALSE(cache.get(a).ok());
  CHECK(cache.get(e).ok());
  // Larger than the whole bound: refused, nothing dropped.
  const size_t before = cache.metrics().snapshots;
  auto huge = cache.put(snap(500));
  REQUIRE_FALSE(huge.ok());
  CHECK(huge.error().code == "cursor_capacity");
  CHECK(cache.metrics().snapshots == before);
  CHECK(cache.metrics().expired == 3);  // b, c, a refused
}

TEST_CASE("cursor snapshots: concurrent takers and readers stay within the bounds") {
  ManualClock clock{kT0};
  SnapshotCache cache(clock, {.ttl = 60s, .maxSnapshots = 8, .maxBytes = size_t{1} << 20});
  std::vector<std::thread> threads;
  std::atomic<int> found{0};
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) {
        auto id = cache.put(std::make_shared<const KeySnapshot>(
            std::vector<std::string>{"task-" + std::to_string(t), std::to_string(i)}));
        if (!id.ok()) continue;  // counted below (Catch assertions are not thread-safe)
        if (auto got = cache.get(*id); got.ok() && (*got)->size() == 2) ++found;
        if (i % 50 == 0) clock.advance(1s);
      }
    });
  for (auto& th : threads) th.join();
  const auto m = cache.metrics();
  CHECK(m.created == 800);
  CHECK(m.snapshots <= 8);
  CHECK(m.snapshots + m.dropped == 800);
  CHECK(found.load() + static_cast<int>(m.expired) == 800);
}
