// Two Console replicas on one PostgreSQL database (InventoryOptions::sharedDatabase): the
// database is the truth, memory is each replica's write-behind buffer and read cache. A list on
// any replica sees what any replica acknowledged once that replica flushed (docs/operations.md
// "What each replica sees"). Manual clock, no sleeps; the cases run under
// scripts/with-postgres.sh (ctest entry shared_inventory_test_postgres).
#include <catch2/catch.hpp>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "cleanup/sweeper.h"
#include "inventory/inventory.h"
#include "inventory/pg_store.h"
#include "tests/support/found.h"
#include "tests/support/numbered.h"
#include "tests/support/postgres.h"

using namespace dc;
using namespace dc::inventory;
using namespace std::chrono_literals;

namespace {

const TimePoint kT0 = TimePoint(Millis(1'780'000'000'000));

Defender reported(const std::string& host, DefenderType type = DefenderType::kServerLinux,
                  const std::string& cluster = "") {
  Defender d;
  d.hostname = host;
  d.type = type;
  d.cluster = cluster;
  d.version = "32.07.123";
  if (type == DefenderType::kFargate) d.appId = "fam:0b7e6c4e-3f4b-4b7b-9d3c-1a2b3c4d5e6f";
  return d;
}

InventoryOptions sharedOptions(const std::string& id) {
  InventoryOptions o;
  o.replicaId = id;
  o.sharedDatabase = true;
  o.downtimeThreshold = 5s;
  // The flusher writes refreshes only when the test says so (flush()); durable writes wake it.
  o.flushInterval = 1h;
  return o;
}

cleanup::SweepOptions sweepOptions() {
  cleanup::SweepOptions o;
  o.batchSize = 100;
  o.unflushedMargin = 2s;  // what the Console sets on PostgreSQL (2 × the flush interval)
  return o;
}

/// Replicas "replica-a" and "replica-b": two Stores (openPgStore) on one fresh schema, two
/// Inventories in shared-database mode, two Sweepers, one manual clock. Both start on an empty
/// database: neither has the other's Defenders in memory.
struct Replicas {
  ManualClock clock{kT0};
  std::string url = dc::testing::freshPostgresSchema();
  std::unique_ptr<Store> storeA = open(), storeB = open();
  std::unique_ptr<Inventory> a, b;
  std::unique_ptr<cleanup::Sweeper> sweepA, sweepB;

  Replicas() {
    a = std::make_unique<Inventory>(*storeA, clock, sharedOptions("replica-a"));
    b = std::make_unique<Inventory>(*storeB, clock, sharedOptions("replica-b"));
    REQUIRE(a->start().ok());
    REQUIRE(b->start().ok());
    sweepA = std::make_unique<cleanup::Sweeper>(*a, sweepOptions());
    sweepB = std::make_unique<cleanup::Sweeper>(*b, sweepOptions());
  }
  ~Replicas() {
    sweepA.reset();
    sweepB.reset();
    a->stop();
    b->stop();
  }
  std::unique_ptr<Store> open() const {
    auto s = openPgStore({url});
    if (!s.ok()) FAIL("open store: " << s.error().message);
    return std::move(s).value();
  }
};

HeartbeatOutcome beat(Inventory& inv, const Defender& d) {
  auto r = inv.recordHeartbeat(d);
  if (!r.ok()) FAIL("heartbeat refused: " << r.error().code << ": " << r.error().message);
  return *r;
}

Defender get(Inventory& inv, const std::string& host) {
  auto d = inv.find(host);
  if (!dc::testing::found(d)) FAIL("Defender " << host << " not found");
  return **d;
}

std::vector<std::string> hostnames(Inventory& inv, const DefenderQuery& q) {
  auto page = inv.list(q);
  if (!page.ok()) FAIL("list failed: " << page.error().message);
  std::vector<std::string> out;
  for (const auto& d : page->items) out.push_back(d.hostname);
  return out;
}

const CategorySummary& row(const std::vector<CategorySummary>& s, Category c) {
  return *std::find_if(s.begin(), s.end(), [&](const auto& r) { return r.category == c; });
}

long long typeDeployed(Inventory& inv, DefenderType t, bool connectedOnly = false) {
  auto counts = inv.typeCounts();
  REQUIRE(counts.ok());
  for (const auto& c : *counts)
    if (c.type == t) return connectedOnly ? c.connected : c.deployed;
  return -1;
}

}  // namespace

TEST_CASE("shared database: a Defender registered on A is found, listed and counted on B",
          "[postgres]") {
  Replicas r;
  CHECK(beat(*r.a, reported("web-1", DefenderType::kServerLinux, "prod")) ==
        HeartbeatOutcome::kRegistered);
  CHECK(beat(*r.a, reported("task-1", DefenderType::kFargate)) == HeartbeatOutcome::kRegistered);
  CHECK(beat(*r.b, reported("web-2", DefenderType::kServerLinux, "dev")) ==
        HeartbeatOutcome::kRegistered);

  // B never saw web-1: found, listed under filters (also the query its in-memory index would
  // have answered), and counted.
  const Defender d = get(*r.b, "web-1");
  CHECK(d.cluster == "prod");
  CHECK(d.registeredAt == kT0);
  CHECK(r.b->judge(d, r.clock.now()).connected);
  // The credential check and observations on B use the stored App ID and row.
  CHECK(r.b->appIdOf("task-1") ==
        std::optional<std::string>(reported("task-1", DefenderType::kFargate).appId));
  std::vector<Observation> seen(1);
  seen[0].kind = "dns";
  seen[0].time = kT0;
  CHECK(r.b->recordObservations("web-1", seen).ok());
  auto observed = r.a->observations("web-1", 0, 10);
  REQUIRE(observed.ok());
  CHECK(observed->total == 1);
  auto many = r.b->findMany({"web-1", "task-1", "web-2", "gone"});
  REQUIRE(many.ok());
  CHECK(many->size() == 3);

  DefenderQuery hosts;
  hosts.types = {DefenderType::kServerLinux};
  hosts.connected = true;  // one type, connected, by hostname: today's in-memory index query
  CHECK(hostnames(*r.b, hosts) == std::vector<std::string>{"web-1", "web-2"});
  CHECK(hostnames(*r.a, hosts) == std::vector<std::string>{"web-1", "web-2"});
  DefenderQuery prod;
  prod.cluster = "prod";
  CHECK(hostnames(*r.b, prod) == std::vector<std::string>{"web-1"});
  DefenderQuery fargate;
  fargate.category = Category::kAppEmbedded;
  CHECK(hostnames(*r.b, fargate) == std::vector<std::string>{"task-1"});
  auto keys = r.b->matchingKeys(DefenderQuery{});
  REQUIRE(keys.ok());
  CHECK(keys->size() == 3);

  for (Inventory* inv : {r.a.get(), r.b.get()}) {
    auto s = inv->summary();
    REQUIRE(s.ok());
    CHECK(row(*s, Category::kHost).deployed == 2);
    CHECK(row(*s, Category::kHost).connected == 2);
    CHECK(row(*s, Category::kAppEmbedded).deployed == 1);
    CHECK(row(*s, Category::kAppEmbedded).connected == 1);
    CHECK(typeDeployed(*inv, DefenderType::kServerLinux) == 2);
    CHECK(typeDeployed(*inv, DefenderType::kFargate, true) == 1);
  }

  // A refresh on A is seen by B once A flushed: within the flush interval.
  r.clock.advance(30s);
  CHECK(beat(*r.a, reported("web-1", DefenderType::kServerLinux, "prod-2")) ==
        HeartbeatOutcome::kRefreshed);
  CHECK(get(*r.b, "web-1").lastSeen == kT0);  // not written by A yet
  CHECK(get(*r.a, "web-1").lastSeen == r.clock.now());
  REQUIRE(r.a->flush().ok());
  CHECK(get(*r.b, "web-1").lastSeen == r.clock.now());
  CHECK(get(*r.b, "web-1").cluster == "prod-2");
  CHECK(hostnames(*r.b, prod).empty());

  // Disconnected on A (durable before the answer): B lists it as disconnected at once.
  REQUIRE(r.a->recordDisconnect("web-1").ok());
  CHECK(hostnames(*r.b, hosts) == std::vector<std::string>{"web-2"});
  auto s = r.b->summary();
  REQUIRE(s.ok());
  CHECK(row(*s, Category::kHost).connected == 1);
}

TEST_CASE(
    "shared database: heartbeats alternating between A and B keep a Defender connected on both; "
    "lastSeen is the newest; B counts no registration",
    "[postgres]") {
  Replicas r;
  REQUIRE(beat(*r.a, reported("alt")) == HeartbeatOutcome::kRegistered);
  for (int i = 0; i < 8; ++i) {
    r.clock.advance(30s);
    Inventory& here = i % 2 == 0 ? *r.b : *r.a;
    Inventory& there = i % 2 == 0 ? *r.a : *r.b;
    // The first heartbeat on B is for a Defender A registered: a refresh, as on one Console
    // (the reply says "registered": false).
    CHECK(beat(here, reported("alt")) == HeartbeatOutcome::kRefreshed);
    REQUIRE(here.flush().ok());
    for (Inventory* inv : {&here, &there}) {
      const Defender d = get(*inv, "alt");
      CHECK(d.lastSeen == r.clock.now());
      CHECK(d.registeredAt == kT0);
      CHECK(d.connectedSince == kT0);
      CHECK(inv->judge(d, r.clock.now()).connected);
    }
  }
  CHECK(r.b->metrics().registrations == 0);
  CHECK(r.b->metrics().reconnections == 0);
  CHECK(r.a->metrics().registrations == 1);

  // Only B hears it for 5 minutes: A's memory alone would call it disconnected; A reads the
  // stored row, and A's next heartbeat is a refresh, not a reconnection.
  for (int i = 0; i < 10; ++i) {
    r.clock.advance(30s);
    REQUIRE(beat(*r.b, reported("alt")) == HeartbeatOutcome::kRefreshed);
  }
  REQUIRE(r.b->flush().ok());
  const Defender seen = get(*r.a, "alt");
  CHECK(seen.lastSeen == r.clock.now());
  CHECK(r.a->judge(seen, r.clock.now()).connected);
  auto s = r.a->summary();
  REQUIRE(s.ok());
  CHECK(row(*s, Category::kHost).connected == 1);
  r.clock.advance(30s);
  CHECK(beat(*r.a, reported("alt")) == HeartbeatOutcome::kRefreshed);
  CHECK(r.a->metrics().reconnections == 0);
  REQUIRE(r.a->flush().ok());
  CHECK(get(*r.b, "alt").lastSeen == r.clock.now());

  // An older state never wins: B's memory is 30 s behind A's write, B's read shows A's.
  CHECK(get(*r.b, "alt").connectedSince == kT0);
}

TEST_CASE(
    "shared database: a Defender only A saw is evicted by B's sweeper when B holds the lease, "
    "not by A without it",
    "[postgres]") {
  Replicas r;
  REQUIRE(beat(*r.a, reported("only-a", DefenderType::kFargate)) == HeartbeatOutcome::kRegistered);
  REQUIRE(beat(*r.a, reported("stays", DefenderType::kFargate)) == HeartbeatOutcome::kRegistered);
  REQUIRE(r.sweepB->holdLease(r.clock.now()));
  // "stays" keeps heartbeating at A; "only-a" goes silent. Due at +G +1 h, swept after the
  // margin for other replicas' unflushed heartbeats.
  for (int i = 0; i < 123; ++i) {
    r.clock.advance(30s);
    REQUIRE(beat(*r.a, reported("stays", DefenderType::kFargate)) == HeartbeatOutcome::kRefreshed);
  }
  REQUIRE(r.a->flush().ok());
  r.clock.set(kT0 + 90s + 1h + 1s);  // due, inside the 2 s margin
  auto early = r.sweepB->sweep(r.clock.now());
  REQUIRE(early.ok());
  CHECK(early->evicted == 0);
  r.clock.set(kT0 + 90s + 1h + 2s);
  REQUIRE(r.sweepB->holdLease(r.clock.now()));

  auto without = r.sweepA->sweep(r.clock.now());  // A does not hold the lease
  REQUIRE(without.ok());
  CHECK(without->noLease);
  CHECK(without->evicted == 0);
  CHECK(dc::testing::found(r.a->find("only-a")));

  auto swept = r.sweepB->sweep(r.clock.now());
  REQUIRE(swept.ok());
  CHECK(swept->evicted == 1);
  auto audit = r.b->audit(0, 10);
  REQUIRE(audit.ok());
  REQUIRE(audit->total == 1);
  CHECK(audit->items.front().hostname == "only-a");
  CHECK(audit->items.front().actor == "scheduler");
  // Gone for both replicas; "stays" (heartbeating at A) is not touched.
  CHECK_FALSE(dc::testing::found(r.a->find("only-a")));
  CHECK_FALSE(dc::testing::found(r.b->find("only-a")));
  CHECK(dc::testing::found(r.b->find("stays")));
  CHECK(r.sweepB->sweep(r.clock.now())->evicted == 0);
  // Its next heartbeat at A registers it anew, as after an eviction on one Console.
  CHECK(beat(*r.a, reported("only-a", DefenderType::kFargate)) == HeartbeatOutcome::kRegistered);
  CHECK(get(*r.b, "only-a").registeredAt == r.clock.now());
}

TEST_CASE("shared database: a delete on A is seen by B", "[postgres]") {
  Replicas r;
  REQUIRE(beat(*r.a, reported("del-1")) == HeartbeatOutcome::kRegistered);
  REQUIRE(beat(*r.a, reported("del-2")) == HeartbeatOutcome::kRegistered);
  REQUIRE(beat(*r.a, reported("del-3")) == HeartbeatOutcome::kRegistered);
  r.clock.advance(30s);
  REQUIRE(beat(*r.b, reported("del-1")) == HeartbeatOutcome::kRefreshed);  // B knows it too
  REQUIRE(r.b->flush().ok());

  REQUIRE(r.a->remove("del-1", "alice").ok());
  CHECK_FALSE(dc::testing::found(r.b->find("del-1")));
  DefenderQuery all;
  CHECK(hostnames(*r.b, all) == std::vector<std::string>{"del-2", "del-3"});
  auto s = r.b->summary();
  REQUIRE(s.ok());
  CHECK(row(*s, Category::kHost).deployed == 2);
  // del-1 heartbeats at B, which still has it in memory as connected: answered as a refresh;
  // B's flush finds no row, B forgets it, and its next heartbeat registers it anew, as after a
  // delete on one Console.
  r.clock.advance(30s);
  CHECK(beat(*r.b, reported("del-1")) == HeartbeatOutcome::kRefreshed);
  REQUIRE(r.b->flush().ok());
  CHECK_FALSE(dc::testing::found(r.a->find("del-1")));
  CHECK_FALSE(r.b->appIdOf("del-1").has_value());
  CHECK(beat(*r.b, reported("del-1")) == HeartbeatOutcome::kRegistered);
  CHECK(get(*r.a, "del-1").registeredAt == r.clock.now());
  REQUIRE(r.b->remove("del-1", "bob").ok());
  auto again = r.a->remove("del-1", "alice");
  REQUIRE_FALSE(again.ok());
  CHECK(again.error().code == "unknown_defender");
  // B deletes a Defender only A saw.
  const std::string both[] = {"del-2", "del-3"};
  auto removed = r.b->removeMany(both, "bob");
  REQUIRE(removed.ok());
  CHECK(removed->size() == 2);
  CHECK(hostnames(*r.a, all).empty());
  auto audit = r.a->audit(0, 10);
  REQUIRE(audit.ok());
  CHECK(audit->total == 4);
}

TEST_CASE("shared database: a replica that stalled while another ran discounts nothing",
          "[postgres]") {
  Replicas r;
  REQUIRE(beat(*r.a, reported("stall-1")) == HeartbeatOutcome::kRegistered);
  REQUIRE(r.a->flush().ok());
  const TimePoint pausedAt = r.clock.now();
  // A did not run for ten minutes; B did, and wrote its alive time.
  r.clock.advance(10min);
  REQUIRE(r.b->flush().ok());
  CHECK(r.a->noteResumed(pausedAt) == 0);
  CHECK(get(*r.a, "stall-1").judgedFrom == kT0);
  DefenderQuery disconnected;
  disconnected.connected = false;
  CHECK(hostnames(*r.b, disconnected) == std::vector<std::string>{"stall-1"});
  // Both stalled (no alive time after the pause began): the Defender is judged from now.
  REQUIRE(beat(*r.a, reported("stall-1")) == HeartbeatOutcome::kReconnected);
  REQUIRE(r.a->flush().ok());
  const TimePoint pausedAgain = r.clock.now();
  r.clock.advance(10min);
  CHECK(r.a->noteResumed(pausedAgain) == 1);
  CHECK(get(*r.a, "stall-1").judgedFrom == r.clock.now());
}

TEST_CASE("shared database: settings saved on A are read by B", "[postgres]") {
  Replicas r;
  DefenderSettings s = r.a->settings();
  s.disconnectPeriodDays = 3;
  REQUIRE(r.a->updateSettings(s).ok());
  CHECK(r.b->settings().disconnectPeriodDays != 3);  // B's copy, until it reloads
  REQUIRE(r.b->reloadSettings().ok());
  CHECK(r.b->settings().disconnectPeriodDays == 3);
}

TEST_CASE("shared database: a graceful disconnect on A is not undone by B's earlier heartbeat",
          "[postgres]") {
  Replicas r;
  REQUIRE(beat(*r.a, reported("gd-1")) == HeartbeatOutcome::kRegistered);
  r.clock.advance(10s);
  // B answers a heartbeat (written behind); before B writes it, the Defender stops gracefully
  // through A.
  REQUIRE(beat(*r.b, reported("gd-1")) == HeartbeatOutcome::kRefreshed);
  r.clock.advance(1s);
  REQUIRE(r.a->recordDisconnect("gd-1").ok());
  REQUIRE(r.b->flush().ok());
  DefenderQuery disconnected;
  disconnected.connected = false;
  for (Inventory* inv : {r.a.get(), r.b.get()}) {
    CHECK(get(*inv, "gd-1").gracefulDisconnectAt == kT0 + 11s);
    auto page = inv->list(disconnected);
    REQUIRE(page.ok());
    REQUIRE(page->items.size() == 1);
    CHECK(page->items.front().gracefulDisconnectAt == kT0 + 11s);
  }
  // Its next heartbeat, at B, makes it connected again everywhere once written. (B answers it
  // as a refresh: it had not seen the disconnect, docs/operations.md "Races between replicas".)
  r.clock.advance(5s);
  beat(*r.b, reported("gd-1"));
  REQUIRE(r.b->flush().ok());
  CHECK_FALSE(get(*r.a, "gd-1").gracefulDisconnectAt.has_value());
  CHECK(get(*r.a, "gd-1").lastSeen == kT0 + 16s);
}

TEST_CASE("shared database: the outage guard's counts include what other replicas heard",
          "[postgres]") {
  Replicas r;
  // Thirty Defenders register at A, then heartbeat only at B (their connections went there);
  // one more registers at A and falls silent for real.
  for (int i = 0; i < 30; ++i)
    REQUIRE(beat(*r.a, reported(dc::testing::numbered("og-", i))) == HeartbeatOutcome::kRegistered);
  REQUIRE(beat(*r.a, reported("og-quiet")) == HeartbeatOutcome::kRegistered);
  for (int round = 0; round < 4; ++round) {
    r.clock.advance(30s);
    for (int i = 0; i < 30; ++i) beat(*r.b, reported(dc::testing::numbered("og-", i)));
    REQUIRE(r.b->flush().ok());
  }
  // At kT0 + 120 s, with G = 90 s: A last heard the thirty at kT0, yet they are not silent.
  const auto s = r.a->silence(kT0 + 60s, r.clock.now());
  CHECK(s.fleet == 31);
  CHECK(s.silent == 1);
}
