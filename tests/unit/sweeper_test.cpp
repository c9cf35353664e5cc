// Eviction rules (DESIGN §5) on a manual clock, and randomized races on real threads.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "cleanup/sweeper.h"
#include "inventory/inventory.h"
#include "inventory/pg_store.h"
#include "inventory/sqlite_store.h"
#include "tests/support/faulty_store.h"
#include "tests/support/found.h"
#include "tests/support/numbered.h"
#include "tests/support/postgres.h"

using namespace dc;
using namespace dc::inventory;
using namespace std::chrono_literals;

namespace {

cleanup::SweepOptions sweepOptions(size_t batchSize) {
  cleanup::SweepOptions o;
  o.period = std::chrono::seconds(60);
  o.batchSize = batchSize;
  return o;
}

// 2026-03-08 06:00 UTC: the US switch to daylight saving time happens an hour later (07:00 UTC),
// inside the one-hour eviction window. Nothing may depend on it.
const TimePoint kT0 = TimePoint(Millis(1'772'949'600'000));

Defender reported(const std::string& host, DefenderType type = DefenderType::kFargate) {
  Defender d;
  d.hostname = host;
  d.type = type;
  d.appId = type == DefenderType::kFargate ? "fam:0b7e6c4e-3f4b-4b7b-9d3c-1a2b3c4d5e6f" : "";
  return d;
}

struct Fixture {
  ManualClock clock{kT0};
  std::unique_ptr<Store> store = std::move(openSqliteStore({":memory:"})).value();
  Inventory inv{*store, clock, InventoryOptions{}};
  cleanup::Sweeper sweeper{inv, sweepOptions(100)};
  Fixture() { REQUIRE(inv.start().ok()); }

  bool present(const std::string& host) { return dc::testing::found(inv.find(host)); }
  size_t sweep() {
    auto r = sweeper.sweep(clock.now());
    REQUIRE(r.ok());
    return r->evicted;
  }
};

}  // namespace

TEST_CASE("sweep: App-Embedded evicted exactly one hour after disconnect, never earlier") {
  Fixture f;
  for (auto type : {DefenderType::kFargate, DefenderType::kAppEmbedded, DefenderType::kEksFargate})
    REQUIRE(f.inv.recordHeartbeat(reported(std::string(typeInfo(type).apiName), type)).ok());
  // disconnectedAt = lastSeen + G (90 s); removal at +1 h.
  f.clock.advance(90s + 1h - 1s);
  CHECK(f.sweep() == 0);  // 59:59 stays
  CHECK(f.present("fargate"));
  f.clock.advance(1s);
  CHECK(f.sweep() == 3);
  CHECK_FALSE(f.present("fargate"));
  CHECK_FALSE(f.present("appEmbedded"));
  CHECK_FALSE(f.present("eksFargate"));
}

TEST_CASE("sweep: a requested stop ends the sweep and keeps the rest for the next start") {
  Fixture f;
  for (int i = 0; i < 250; ++i)
    REQUIRE(f.inv.recordHeartbeat(reported(dc::testing::numbered("t", i))).ok());
  f.clock.advance(90s + 1h);  // all 250 due
  f.sweeper.requestStop();    // what SweepScheduler::stop does on a Console stop
  auto r = f.sweeper.sweep(f.clock.now());
  REQUIRE(r.ok());
  CHECK(r->stopped);
  CHECK(r->evicted == 0);
  CHECK(f.inv.list({})->total == 250);
  // A sweeper of the next start evicts them.
  cleanup::Sweeper next(f.inv, sweepOptions(100));
  CHECK(next.sweep(f.clock.now())->evicted == 250);
}

TEST_CASE("scheduler: a stop during a sweep longer than the lease renewal period returns") {
  // The lease timer expires while a sweep runs; its handler is then already queued when stop()
  // cancels the timers, so cancelling does not reach it: it must not arm the timer again (the
  // scheduler thread then never ended and a Console stopping during a long sweep hung).
  ManualClock clock{kT0};
  auto store = std::move(openSqliteStore({":memory:"})).value();
  Inventory inv{*store, clock, InventoryOptions{}};
  REQUIRE(inv.start().ok());
  std::mutex m;
  std::condition_variable cv;
  bool entered = false, release = false;
  cleanup::SweepOptions o = sweepOptions(100);
  o.leaseRenewEvery = 10ms;
  // Called by each sweep once it holds the lease: the first one blocks until released.
  o.heartbeatsWaiting = [&] {
    std::unique_lock lock(m);
    entered = true;
    cv.notify_all();
    cv.wait(lock, [&] { return release; });
    return size_t{0};
  };
  cleanup::Sweeper sweeper{inv, o};
  cleanup::SweepScheduler scheduler(sweeper, clock, 10ms);
  scheduler.start();
  {
    std::unique_lock lock(m);
    REQUIRE(cv.wait_for(lock, 10s, [&] { return entered; }));
  }
  std::this_thread::sleep_for(100ms);  // the lease timer (10 ms) expires meanwhile
  std::atomic<bool> stopped{false};
  std::thread stopper([&] {
    scheduler.stop();
    stopped = true;
  });
  std::this_thread::sleep_for(50ms);  // stop() has asked for the timers to be cancelled
  {
    std::lock_guard lock(m);
    release = true;
  }
  cv.notify_all();
  for (int i = 0; i < 1000 && !stopped; ++i) std::this_thread::sleep_for(10ms);
  if (!stopped) {
    // The scheduler thread runs on: nothing can end it, so end the process with the verdict.
    FAIL_CHECK("SweepScheduler::stop() did not return within 10 s");
    std::fflush(nullptr);
    std::_Exit(1);
  }
  stopper.join();
  CHECK_FALSE(sweeper.lease(clock.now()).held);  // given up at the stop
}

TEST_CASE("sweep: other types follow disconnectPeriodDays, untouched by the one-hour rule") {
  Fixture f;
  REQUIRE(f.inv.recordHeartbeat(reported("node", DefenderType::kDaemonset)).ok());
  REQUIRE(f.inv.recordHeartbeat(reported("host", DefenderType::kServerLinux)).ok());
  REQUIRE(f.inv.recordHeartbeat(reported("fn", DefenderType::kServerless)).ok());
  f.clock.advance(2h);
  CHECK(f.sweep() == 0);
  REQUIRE(f.inv.updateSettings({3}).ok());  // applies at the next sweep
  f.clock.set(kT0 + 90s + 24h);
  CHECK(f.sweep() == 0);  // default 1 day no longer applies
  f.clock.set(kT0 + 90s + 72h - 1s);
  CHECK(f.sweep() == 0);
  f.clock.set(kT0 + 90s + 72h);
  CHECK(f.sweep() == 3);
}

TEST_CASE("sweep: a graceful disconnect starts the hour at once") {
  Fixture f;
  REQUIRE(f.inv.recordHeartbeat(reported("t")).ok());
  f.clock.advance(10s);
  REQUIRE(f.inv.recordDisconnect("t").ok());
  f.clock.advance(1h - 1ms);
  CHECK(f.sweep() == 0);
  f.clock.advance(1ms);
  CHECK(f.sweep() == 1);
}

TEST_CASE("sweep: a Defender that registered and never heartbeated again") {
  // Rule: registration is a heartbeat, so disconnectedAt = registeredAt + G and removal follows.
  Fixture f;
  REQUIRE(f.inv.recordHeartbeat(reported("once")).ok());
  f.clock.advance(90s + 1h - 1ms);
  CHECK(f.sweep() == 0);  // not before the hour
  CHECK(f.present("once"));
  f.clock.advance(1ms);
  CHECK(f.sweep() == 1);
  CHECK_FALSE(f.present("once"));
}

TEST_CASE("sweep: 1,000 tasks stop, 1,000 keep running; an hour later exactly the 1,000 go") {
  Fixture f;
  for (int i = 0; i < 2000; ++i) {
    const std::string host = dc::testing::numbered("task-", i);
    REQUIRE(f.inv.recordHeartbeat(reported(host)).ok());
    std::vector<Observation> obs;
    for (int k = 0; k < 3; ++k) obs.push_back({0, "process", kT0, kT0, {{"k", k}}});
    REQUIRE(f.inv.recordObservations(host, obs).ok());
  }
  // Half of the fleet going silent at once would pause evictions at the default outage-guard
  // threshold (tested in outage_guard_test); here the stop is deliberate.
  auto options = sweepOptions(100);
  options.outage.threshold = 0.75;
  cleanup::Sweeper sweeper(f.inv, options);
  // Odd tasks keep heartbeating every 30 s for 62 minutes; even tasks went silent at kT0.
  for (int step = 0; step < 124; ++step) {
    f.clock.advance(30s);
    for (int i = 1; i < 2000; i += 2)
      REQUIRE(f.inv.recordHeartbeat(reported(dc::testing::numbered("task-", i))).ok());
    auto report = sweeper.sweep(f.clock.now());
    REQUIRE(report.ok());
    // The silent half disconnected at kT0 + 90 s: none of it goes before the hour is over.
    if (f.clock.now() < kT0 + 90s + 1h) CHECK(report->evicted == 0);
  }
  DefenderQuery all;
  all.limit = 250;
  auto page = f.inv.list(all);
  REQUIRE(page.ok());
  CHECK(page->total == 1000);
  for (const auto& d : page->items) CHECK(std::stoi(d.hostname.substr(5)) % 2 == 1);
  CHECK(*f.store->countObservations() == 3000);
  auto audit = f.inv.audit(0, 1);
  CHECK(audit->total == 1000);
  CHECK(audit->items.front().observationsRemoved == 3);
  CHECK(f.inv.metrics().evictions == 1000);
}

TEST_CASE("sweep: a Console that was down two hours does not evict its fleet on start") {
  ManualClock clock{kT0};
  auto store = std::move(openSqliteStore({":memory:"})).value();
  {
    Inventory inv(*store, clock, {});
    REQUIRE(inv.start().ok());
    for (int i = 0; i < 50; ++i)
      REQUIRE(inv.recordHeartbeat(reported(dc::testing::numbered("t", i))).ok());
    REQUIRE(inv.recordHeartbeat(reported("already-gone")).ok());
    REQUIRE(inv.recordDisconnect("already-gone").ok());
    inv.stop();
  }
  clock.advance(2h);
  Inventory inv(*store, clock, {});
  REQUIRE(inv.start().ok());
  cleanup::Sweeper sweeper(inv, {});
  auto r = sweeper.sweep(clock.now());
  REQUIRE(r.ok());
  CHECK(r->evicted == 1);  // only the one that had disconnected before the outage
  // The others get a full grace period from the restart, then the usual hour.
  clock.advance(90s + 1h - 1s);
  CHECK(sweeper.sweep(clock.now())->evicted == 0);
  clock.advance(1s);
  CHECK(sweeper.sweep(clock.now())->evicted == 50);
}

TEST_CASE("sweep races: heartbeats, deletes, observations and sweeps on real threads", "[race]") {
  ManualClock clock{kT0};
  auto store = std::move(openSqliteStore({":memory:"})).value();
  InventoryOptions io;
  io.flushInterval = 5ms;
  Inventory inv(*store, clock, io);
  REQUIRE(inv.start().ok());
  // Half the fleet is meant to go silent here; the outage guard (its own tests) must not hold
  // the evictions this test waits for.
  cleanup::SweepOptions raceOptions = sweepOptions(7);
  raceOptions.outage.minFleet = std::numeric_limits<size_t>::max();  // guard off
  cleanup::Sweeper sweeper(inv, raceOptions);

  constexpr int kLive = 60, kDying = 60, kChurn = 30;
  auto live = [](int i) { return dc::testing::numbered("live-", i); };
  auto dying = [](int i) { return dc::testing::numbered("dying-", i); };
  auto churn = [](int i) { return dc::testing::numbered("churn-", i); };
  for (int i = 0; i < kLive; ++i) REQUIRE(inv.recordHeartbeat(reported(live(i))).ok());
  for (int i = 0; i < kDying; ++i) REQUIRE(inv.recordHeartbeat(reported(dying(i))).ok());

  std::atomic<bool> stop{false};
  std::atomic<uint64_t> passes[2] = {0, 0};
  std::atomic<int> failures{0};  // Catch2 assertions are not thread-safe: count, check after
  std::vector<std::thread> threads;
  // Two heartbeat threads keep the live set fresh; each completes full passes.
  for (int t = 0; t < 2; ++t)
    threads.emplace_back([&, t] {
      while (!stop) {
        for (int i = t; i < kLive; i += 2)
          if (!inv.recordHeartbeat(reported(live(i))).ok()) ++failures;
        ++passes[t];
      }
    });
  // Churn: heartbeats, observations and manual deletes on the same hostnames.
  threads.emplace_back([&] {
    std::mt19937 rng(42);
    while (!stop) {
      const auto h = churn(static_cast<int>(rng() % kChurn));
      switch (rng() % 3) {
        case 0:
          (void)inv.recordHeartbeat(reported(h));
          break;
        case 1:
          (void)inv.recordObservations(h, {{0, "network", kT0, kT0, {{"port", 443}}}});
          break;
        default:
          (void)inv.remove(h, "test");
      }
      (void)inv.recordObservations(live(static_cast<int>(rng() % kLive)),
                                   {{0, "dns", kT0, kT0, {{"q", "x"}}}});
    }
  });
  threads.emplace_back([&] {
    while (!stop)
      if (!sweeper.sweep(clock.now()).ok()) ++failures;
  });
  // Time moves 15 s per step, but only after both heartbeat threads finished a full pass since
  // the previous step, so every live Defender was seen within the last two steps (< G).
  for (int step = 0; step < 300; ++step) {
    const uint64_t a = passes[0], b = passes[1];
    while ((passes[0] < a + 1 || passes[1] < b + 1)) std::this_thread::yield();
    clock.advance(15s);
  }
  stop = true;
  for (auto& t : threads) t.join();
  CHECK(failures == 0);
  REQUIRE(inv.flush().ok());
  REQUIRE(sweeper.sweep(clock.now()).ok());

  // Never a live Defender evicted.
  auto audit = inv.audit(0, 250);
  REQUIRE(audit.ok());
  for (long long off = 0; off < audit->total; off += 250) {
    auto page = inv.audit(static_cast<int>(off), 250);
    REQUIRE(page.ok());
    for (const auto& a : page->items)
      if (a.actor == "scheduler") CHECK(a.hostname.rfind("live-", 0) != 0);
  }
  for (int i = 0; i < kLive; ++i) CHECK(dc::testing::found(inv.find(live(i))));
  // Every silent Defender is gone (75 minutes passed).
  for (int i = 0; i < kDying; ++i) CHECK_FALSE(dc::testing::found(inv.find(dying(i))));
  // No orphaned observations: each stored observation belongs to a stored Defender, and the
  // in-memory inventory matches the store.
  DefenderQuery q;
  q.limit = 250;
  long long owned = 0, rows = 0;
  for (q.offset = 0;; q.offset += 250) {
    auto page = inv.list(q);
    REQUIRE(page.ok());
    rows = page->total;
    for (const auto& d : page->items) owned += inv.observations(d.hostname, 0, 1)->total;
    if (page->items.size() < 250) break;
  }
  CHECK(owned == *store->countObservations());
  CHECK(static_cast<size_t>(rows) == inv.metrics().defenders);
}

// ---- several replicas on one database (DESIGN §7, docs/operations.md "Which replica sweeps") --

namespace {

InventoryOptions replicaOptions(const std::string& id) {
  InventoryOptions o;
  o.replicaId = id;
  o.downtimeThreshold = 5s;  // the Console uses its pause threshold
  return o;
}

/// Where the replicas' database is: a SQLite file (two Store instances on it) or a schema of
/// the PostgreSQL server scripts/with-postgres.sh started (cases tagged [postgres]).
enum class Backend { kSqliteFile, kPostgres };

/// Two replicas "replica-a" and "replica-b" on one database: two Store instances (a's wrapped
/// for fault injection), two Inventories, two Sweepers, one manual clock. `fleet` registers at
/// a before b starts, so both know it.
struct Replicas {
  ManualClock clock{kT0};
  Backend backend;
  std::filesystem::path path;  // SQLite
  std::string url;             // PostgreSQL
  std::unique_ptr<Store> storeA, storeB;
  std::unique_ptr<dc::testing::FaultyStore> faultyA;
  std::unique_ptr<Inventory> a, b;
  std::unique_ptr<cleanup::Sweeper> sweepA, sweepB;

  explicit Replicas(Backend where, const std::vector<std::string>& fleet = {}) : backend(where) {
    static int n = 0;
    if (backend == Backend::kPostgres) {
      url = dc::testing::freshPostgresSchema();
    } else {
      path = std::filesystem::temp_directory_path() /
             (dc::testing::numbered("dc-replicas-", ::getpid()) + dc::testing::numbered("-", ++n) +
              ".db");
      removeFiles();
    }
    storeA = open();
    storeB = open();
    faultyA = std::make_unique<dc::testing::FaultyStore>(*storeA);
    a = std::make_unique<Inventory>(*faultyA, clock, replicaOptions("replica-a"));
    REQUIRE(a->start().ok());
    for (const auto& host : fleet) REQUIRE(a->recordHeartbeat(reported(host)).ok());
    b = std::make_unique<Inventory>(*storeB, clock, replicaOptions("replica-b"));
    REQUIRE(b->start().ok());
    sweepA = std::make_unique<cleanup::Sweeper>(*a, sweepOptions(100));
    sweepB = std::make_unique<cleanup::Sweeper>(*b, sweepOptions(100));
  }
  ~Replicas() {
    sweepA.reset();
    sweepB.reset();
    if (a) a->stop();
    if (b) b->stop();
    a.reset();
    b.reset();
    faultyA.reset();
    storeA.reset();
    storeB.reset();
    removeFiles();
  }
  std::unique_ptr<Store> open() const {
    auto s = backend == Backend::kPostgres ? openPgStore({url}) : openSqliteStore({path.string()});
    if (!s.ok()) FAIL("open store: " << s.error().message);
    return std::move(s).value();
  }
  void removeFiles() const {
    if (backend != Backend::kSqliteFile) return;
    for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(path.string() + suffix);
  }
  long long audited() { return storeB->listAudit(0, 1)->total; }
  bool stored(const std::string& host) { return dc::testing::found(storeB->findDefender(host)); }
};

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

}  // namespace

// Each replica case runs on a SQLite file and on PostgreSQL ([postgres]: under
// scripts/with-postgres.sh, the ctest entry sweeper_test_postgres).
#define REPLICA_CASE(name, body)                  \
  static void body(Backend);                      \
  TEST_CASE(name) {                               \
    body(Backend::kSqliteFile);                   \
  }                                               \
  TEST_CASE(name " (PostgreSQL)", "[postgres]") { \
    body(Backend::kPostgres);                     \
  }                                               \
  static void body(Backend backend)

REPLICA_CASE("replicas: one holds the sweeper lease at a time; expiry hands it on, epoch higher",
             leaseHandover) {
  Replicas r(backend);
  CHECK(r.sweepA->holdLease(r.clock.now()));
  CHECK_FALSE(r.sweepB->holdLease(r.clock.now()));
  for (int i = 0; i < 10; ++i) {  // a renews every 5 s: b never gets it
    r.clock.advance(5s);
    CHECK(r.sweepA->holdLease(r.clock.now()));
    CHECK_FALSE(r.sweepB->holdLease(r.clock.now()));
  }
  CHECK(r.sweepA->lease(r.clock.now()).held);
  CHECK(r.sweepA->lease(r.clock.now()).epoch == 1);
  CHECK(r.sweepB->lease(r.clock.now()).holder == "replica-a");
  // a stops renewing (paused, or gone): its lease ends 15 s after its last renewal.
  r.clock.advance(14s);
  CHECK_FALSE(r.sweepB->holdLease(r.clock.now()));
  r.clock.advance(1s);
  CHECK_FALSE(r.sweepA->lease(r.clock.now()).held);
  CHECK(r.sweepB->holdLease(r.clock.now()));
  CHECK(r.sweepB->lease(r.clock.now()).epoch == 2);
  CHECK_FALSE(r.sweepA->holdLease(r.clock.now()));  // a resumes: b holds it
  const std::string ma = r.sweepA->metricsText(r.clock.now());
  CHECK(contains(ma, "dc_replica_info{replica=\"replica-a\"} 1\n"));
  CHECK(contains(ma, "dc_sweeper_lease_held 0\n"));
  CHECK(contains(ma, "dc_sweeper_lease_holder{holder=\"replica-b\"} 1\n"));
  CHECK(contains(ma, "dc_sweeper_lease_epoch 2\n"));
  CHECK(contains(ma, "dc_sweeper_lease_lost_total 1\n"));
  const std::string mb = r.sweepB->metricsText(r.clock.now());
  CHECK(contains(mb, "dc_sweeper_lease_held 1\n"));
  CHECK(contains(mb, "dc_sweeper_lease_acquired_total 1\n"));
  // b gives it up (a Console stop): a takes it at once, epoch 3.
  r.sweepB->releaseLease();
  CHECK_FALSE(r.sweepB->lease(r.clock.now()).held);
  CHECK(r.sweepA->holdLease(r.clock.now()));
  CHECK(r.sweepA->lease(r.clock.now()).epoch == 3);
}

REPLICA_CASE("replicas: only the lease holder sweeps; the other says so and evicts nothing",
             onlyHolderSweeps) {
  Replicas r(backend, {"t-1", "t-2"});
  auto options = sweepOptions(100);
  options.leaseTtl = 2h;  // a holds it across the hour without renewing in between
  options.leaseRenewEvery = 5min;
  r.sweepA = std::make_unique<cleanup::Sweeper>(*r.a, options);
  r.sweepB = std::make_unique<cleanup::Sweeper>(*r.b, options);
  REQUIRE(r.sweepA->holdLease(r.clock.now()));
  r.clock.advance(90s + 1h);
  auto skipped = r.sweepB->sweep(r.clock.now());
  REQUIRE(skipped.ok());
  CHECK(skipped->noLease);
  CHECK(skipped->evicted == 0);
  CHECK(r.stored("t-1"));
  CHECK(contains(r.sweepB->metricsText(r.clock.now()), "dc_sweeps_without_lease_total 1\n"));
  auto swept = r.sweepA->sweep(r.clock.now());  // renewed first: the same epoch
  REQUIRE(swept.ok());
  CHECK_FALSE(swept->noLease);
  CHECK(swept->evicted == 2);
  CHECK(r.sweepA->lease(r.clock.now()).epoch == 1);
  CHECK(r.audited() == 2);
}

REPLICA_CASE("replicas: a sweeper paused past its lease deletes nothing after it resumes",
             pausedSweeper) {
  Replicas r(backend, {"gone"});
  r.clock.advance(90s + 1h);  // due for both replicas
  REQUIRE(r.sweepA->holdLease(r.clock.now()));
  // a chose its candidates and is held before its delete until its lease expired and b took
  // it over (a SIGSTOP, a long GC-like stall, a frozen VM).
  bool tookOver = false;
  r.faultyA->beforeEvict([&] {
    r.clock.advance(16s);
    tookOver = r.sweepB->holdLease(r.clock.now());
  });
  auto report = r.sweepA->sweep(r.clock.now());
  REQUIRE(report.ok());
  REQUIRE(tookOver);
  CHECK(report->noLease);
  CHECK(report->evicted == 0);
  CHECK(r.stored("gone"));
  CHECK(r.audited() == 0);                       // no audit row either
  CHECK(dc::testing::found(r.a->find("gone")));  // back in a's memory
  CHECK_FALSE(r.sweepA->lease(r.clock.now()).held);
  r.faultyA->beforeEvict({});
  // a's next sweep does nothing; b, the holder, evicts.
  CHECK(r.sweepA->sweep(r.clock.now())->noLease);
  auto swept = r.sweepB->sweep(r.clock.now());
  REQUIRE(swept.ok());
  CHECK(swept->evicted == 1);
  CHECK_FALSE(r.stored("gone"));
  CHECK(r.audited() == 1);
}

REPLICA_CASE(
    "replicas: a Defender whose lastSeen moved on in the database after the "
    "candidates were chosen is not evicted",
    movedOn) {
  Replicas r(backend, {"late", "silent", "elsewhere"});
  // "elsewhere" keeps heartbeating at b only: a's memory of it stays at its registration.
  for (int i = 0; i < 130; ++i) {
    r.clock.advance(30s);
    REQUIRE(r.b->recordHeartbeat(reported("elsewhere")).ok());
  }
  REQUIRE(r.b->flush().ok());
  // At a, all three are due now; "late" heartbeats at b after a chose them, before a deletes.
  REQUIRE(r.sweepA->holdLease(r.clock.now()));
  bool heartbeated = false;
  r.faultyA->beforeEvict([&] {
    if (heartbeated) return;
    heartbeated = true;
    REQUIRE(r.b->recordHeartbeat(reported("late")).ok());  // a reconnection: durable at once
  });
  auto report = r.sweepA->sweep(r.clock.now());
  REQUIRE(report.ok());
  CHECK(report->evicted == 1);
  CHECK(report->refreshed == 2);
  CHECK_FALSE(r.stored("silent"));
  CHECK(r.stored("late"));
  CHECK(r.stored("elsewhere"));
  auto audit = r.storeB->listAudit(0, 10);
  REQUIRE(audit->total == 1);
  CHECK(audit->items.front().hostname == "silent");
  // a read both back from the database: connected, not due any more.
  for (const char* host : {"late", "elsewhere"}) {
    auto d = r.a->find(host);
    REQUIRE(dc::testing::found(d));
    CHECK(r.a->judge(**d, r.clock.now()).connected);
  }
  CHECK(r.a->countDue(r.clock.now()) == 0);
  CHECK(r.sweepA->sweep(r.clock.now())->evicted == 0);
}

TEST_CASE("sweep: the margin for unflushed heartbeats of other replicas delays removal") {
  ManualClock clock{kT0};
  auto store = std::move(openSqliteStore({":memory:"})).value();
  Inventory inv(*store, clock, {});
  REQUIRE(inv.start().ok());
  auto options = sweepOptions(100);
  options.unflushedMargin = 2s;
  cleanup::Sweeper sweeper(inv, options);
  REQUIRE(inv.recordHeartbeat(reported("t")).ok());
  clock.advance(90s + 1h);  // removalAt
  CHECK(sweeper.sweep(clock.now())->evicted == 0);
  clock.advance(2s - 1ms);
  CHECK(sweeper.sweep(clock.now())->evicted == 0);
  clock.advance(1ms);
  CHECK(sweeper.sweep(clock.now())->evicted == 1);
}

REPLICA_CASE("replicas: restarting one while another runs discounts nothing; all down does",
             downtime) {
  Replicas r(backend, {"d"});
  r.sweepB.reset();
  r.b->stop();
  r.b.reset();
  // b is down for two hours; "d" keeps heartbeating at a, which writes its alive time.
  for (int i = 0; i < 240; ++i) {
    r.clock.advance(30s);
    REQUIRE(r.a->recordHeartbeat(reported("d")).ok());
    REQUIRE(r.a->flush().ok());
  }
  const TimePoint lastHeartbeat = r.clock.now();
  r.clock.advance(1s);  // a's newest alive time is 1 s old when b starts again
  {
    Inventory b2(*r.storeB, r.clock, replicaOptions("replica-b2"));
    REQUIRE(b2.start(false).ok());
    CHECK(b2.metrics().pendingWrites == 0);  // no discount to write
    auto d = b2.find("d");
    REQUIRE(dc::testing::found(d));
    CHECK((*d)->judgedFrom == lastHeartbeat);  // as stored: nothing discounted
    auto alive = r.storeB->listReplicasAlive();
    REQUIRE(alive.ok());
    std::set<std::string> ids;
    for (const auto& row : *alive) ids.insert(row.replica);
    CHECK(ids == std::set<std::string>{"replica-a", "replica-b", "replica-b2"});
    b2.stop();
  }
  // Now every replica stops; two hours later one starts: the Console was down.
  r.sweepA.reset();
  r.a->stop();
  r.clock.advance(2h);
  Inventory b3(*r.storeB, r.clock, replicaOptions("replica-b3"));
  REQUIRE(b3.start(false).ok());
  CHECK(b3.metrics().pendingWrites == 1);  // the discount, written behind
  auto d = b3.find("d");
  REQUIRE(dc::testing::found(d));
  CHECK((*d)->judgedFrom == r.clock.now());  // judged from the restart
  CHECK(b3.judge(**d, r.clock.now()).connected);
  b3.stop();
}
