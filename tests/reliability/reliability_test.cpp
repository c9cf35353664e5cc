// Reliability at reduced scale (docs/reliability.md): storage faults, overload, the Console's own
// slowness, the outage guard, schema refusal and transactional migrations. Manual clock; faults
// injected through the Store interface (tests/support/faulty_store.h).
#include <catch2/catch.hpp>

#include <cstdlib>

#include <httplib.h>
#include <sqlite3.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <set>
#include <thread>

#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "auth/service.h"
#include "cleanup/sweeper.h"
#include "heartbeat/channel.h"
#include "inventory/inventory.h"
#include "inventory/sqlite_store.h"
#include "main/console_app.h"
#include "support/faulty_store.h"
#include "support/found.h"
#include "support/numbered.h"
#include "web/http_listener.h"
#include "web/routes.h"

using namespace dc;
using namespace dc::inventory;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

const TimePoint kT0 = TimePoint(Millis(1'800'000'000'000));
const std::string kAppId = "checkout:0b7e6c4e-3f4b-4b7b-9d3c-1a2b3c4d5e6f";

Defender reported(const std::string& host) {
  Defender d;
  d.hostname = host;
  d.type = DefenderType::kFargate;
  d.appId = kAppId;
  d.cluster = "prod";
  return d;
}

/// Captures log lines of the default logger for the life of the object.
struct LogCapture {
  std::shared_ptr<spdlog::sinks::ringbuffer_sink_mt> sink =
      std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(1000);
  std::shared_ptr<spdlog::logger> previous = spdlog::default_logger();
  LogCapture() { spdlog::set_default_logger(std::make_shared<spdlog::logger>("test", sink)); }
  ~LogCapture() { spdlog::set_default_logger(previous); }
  size_t count(const std::string& needle) {
    size_t n = 0;
    for (const auto& line : sink->last_formatted())
      if (line.find(needle) != std::string::npos) ++n;
    return n;
  }
};

struct Faulty {
  ManualClock clock{kT0};
  std::unique_ptr<Store> sqlite = std::move(openSqliteStore({":memory:"})).value();
  testing::FaultyStore store{*sqlite};
  std::unique_ptr<Inventory> inv;
  /// With the flusher thread unless `flusher` is false (the test then calls flush()).
  explicit Faulty(InventoryOptions o = {}, bool flusher = true) {
    inv = std::make_unique<Inventory>(store, clock, o);
    REQUIRE(inv->start(flusher).ok());
  }
};

std::string tempDb(const std::string& name) {
  const auto dir = std::filesystem::temp_directory_path() /
                   ("dc-rel-" + name + dc::testing::numbered("-", ::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir.string();
}

}  // namespace

// ---- 5. storage faults ------------------------------------------------------------------------

TEST_CASE("storage fault: writes answer 503, reads keep working, one log line, self-recovery") {
  LogCapture log;
  Faulty f;
  REQUIRE(f.inv->recordHeartbeat(reported("known")).ok());
  REQUIRE(f.inv->flush().ok());

  f.store.failWrites("database or disk is full");
  REQUIRE_FALSE(f.inv->flush().ok());                            // the flusher notices the fault
  for (int i = 0; i < 5; ++i) CHECK_FALSE(f.inv->flush().ok());  // retried, still failing

  // A registration needs durability: refused, nothing kept.
  auto reg = f.inv->recordHeartbeat(reported("newcomer"));
  REQUIRE_FALSE(reg.ok());
  CHECK(reg.error().kind == ErrorKind::kUnavailable);
  CHECK(reg.error().code == "storage_unavailable");
  CHECK(reg.error().message.find("database or disk is full") != std::string::npos);
  CHECK(f.inv->metrics().defenders == 1);
  // Observations and disconnects too.
  auto obs = f.inv->recordObservations("known", {{0, "process", kT0, kT0, {{"k", 1}}}});
  CHECK(obs.error().code == "storage_unavailable");
  CHECK(f.inv->recordDisconnect("known").error().code == "storage_unavailable");
  // A connected Defender's refresh is liveness only: accepted, kept in memory.
  f.clock.advance(30s);
  CHECK(f.inv->recordHeartbeat(reported("known")).ok());

  // Reads keep working and see the newest liveness.
  auto found = f.inv->find("known");
  REQUIRE(found.ok());
  REQUIRE(found->has_value());
  CHECK((**found).lastSeen == kT0 + 30s);
  CHECK(f.inv->list({}).ok());
  CHECK(f.inv->summary().ok());

  CHECK(log.count("storage does not accept writes") == 1);  // one line per episode
  CHECK(f.inv->metrics().storageFaultEpisodes == 1);
  CHECK(f.inv->metrics().storageFailing);

  // Space returns: the next flush stores what was kept, and writes are accepted again.
  f.store.failWrites("");
  REQUIRE(f.inv->flush().ok());
  CHECK_FALSE(f.inv->metrics().storageFailing);
  CHECK(log.count("storage accepts writes again") == 1);
  auto stored = f.sqlite->findDefender("known");
  REQUIRE(dc::testing::found(stored));
  CHECK((**stored).lastSeen == kT0 + 30s);
  CHECK(f.inv->recordHeartbeat(reported("newcomer")).ok());  // committed by the flusher
  CHECK(dc::testing::found(f.sqlite->findDefender("newcomer")));
}

TEST_CASE("storage fault: the channel's 503 carries a Retry-After spread per Defender") {
  Faulty f;
  f.store.failWrites("attempt to write a readonly database");
  (void)f.inv->flush();
  heartbeat::DefenderChannel channel(*f.inv, {});
  std::set<int> delays;
  for (int i = 0; i < 40; ++i) {
    const json body{
        {"hostname", dc::testing::numbered("task-", i)}, {"type", "fargate"}, {"appID", kAppId}};
    auto r = channel.heartbeat(body.dump());
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == "storage_unavailable");
    CHECK(r.error().retryAfterSeconds >= 5);
    CHECK(r.error().retryAfterSeconds <= 20);
    delays.insert(r.error().retryAfterSeconds);
  }
  CHECK(delays.size() >= 5);  // 40 Defenders refused at once do not come back together
}

TEST_CASE("retryAfterSeconds stays in range; the stable part follows the hostname") {
  const heartbeat::RetryAfterRange range{5, 20};
  std::set<int> forOne, forMany;
  // 5,000 draws: the ends 5 and 20 each have a chance of 1/72 per draw (stable share 0 or 7 and
  // random 0 or 8), so 500 draws missed one about once in 500 runs.
  for (int i = 0; i < 5000; ++i) {
    const int a = heartbeat::retryAfterSeconds("task-1", range);
    const int b = heartbeat::retryAfterSeconds(dc::testing::numbered("task-", i), range);
    REQUIRE((a >= 5 && a <= 20 && b >= 5 && b <= 20));
    forOne.insert(a);
    forMany.insert(b);
  }
  CHECK(forMany.size() == 16);  // every second of [5, 20] used across a fleet
  CHECK(forOne.size() <= 9);    // one Defender: its stable share + a random one of 0..8
  CHECK(heartbeat::retryAfterSeconds("x", {7, 7}) == 7);
}

TEST_CASE("newer schema refuses start-up clearly; a failing migration changes nothing") {
  const std::string dir = tempDb("schema");
  const std::string path = dir + "/console.db";
  {
    // A database written by a newer Console.
    sqlite3* db = nullptr;
    REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
    const std::string sql =
        "CREATE TABLE schema_version (version INTEGER NOT NULL);"
        "INSERT INTO schema_version VALUES (" +
        std::to_string(sqliteSchemaVersion() + 1) + ");";
    REQUIRE(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr) == SQLITE_OK);
    sqlite3_close(db);
  }
  ConsoleConfig c;
  // Either Console front (tests/CMakeLists.txt runs both).
  if (const char* front = std::getenv("DC_TEST_CONSOLE_FRONT")) c.consoleFront = front;
  if (const char* front = std::getenv("DC_TEST_DEFENDER_FRONT")) c.defenderFront = front;
  c.dataDir = dir;
  c.consolePort = c.defenderPort = 0;
  c.uiDir = "/nonexistent";
  ManualClock clock{kT0};
  ConsoleApp app(c, clock, "test");
  auto st = app.start(false);
  REQUIRE_FALSE(st.ok());
  CHECK(st.error().code == "schema_too_new");
  CHECK(st.error().message.find("newer Defender Console") != std::string::npos);

  // Transactional migration: the last table of the migration exists already, so the migration
  // fails half-way; every table it created before must be rolled back with it.
  std::filesystem::remove(path);
  {
    sqlite3* db = nullptr;
    REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
    REQUIRE(sqlite3_exec(db, "CREATE TABLE console_state (x)", nullptr, nullptr, nullptr) ==
            SQLITE_OK);
    sqlite3_close(db);
  }
  auto store = openSqliteStore({path});
  REQUIRE_FALSE(store.ok());
  {
    sqlite3* db = nullptr;
    REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
    sqlite3_stmt* q = nullptr;
    REQUIRE(sqlite3_prepare_v2(db,
                               "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT "
                               "IN ('console_state', 'schema_version')",
                               -1, &q, nullptr) == SQLITE_OK);
    std::vector<std::string> leftovers;
    while (sqlite3_step(q) == SQLITE_ROW)
      leftovers.emplace_back(reinterpret_cast<const char*>(sqlite3_column_text(q, 0)));
    sqlite3_finalize(q);
    CHECK(leftovers.empty());
    REQUIRE(sqlite3_prepare_v2(db, "SELECT count(*) FROM schema_version", -1, &q, nullptr) ==
            SQLITE_OK);
    REQUIRE(sqlite3_step(q) == SQLITE_ROW);
    CHECK(sqlite3_column_int(q, 0) == 0);  // still version 0
    sqlite3_finalize(q);
    sqlite3_close(db);
  }
  std::filesystem::remove_all(dir);
}

TEST_CASE("restart: the downtime discount is in memory at once, stored in bounded chunks") {
  ManualClock clock{kT0};
  auto store = std::move(openSqliteStore({":memory:"})).value();
  {
    Inventory before(*store, clock, {});
    REQUIRE(before.start().ok());
    for (int i = 0; i < 35; ++i)
      REQUIRE(before.recordHeartbeat(reported(dc::testing::numbered("t", i))).ok());
    clock.advance(10s);
    before.stop();  // every row judged from kT0; the Console alive at kT0 + 10 s
  }
  auto storedFrom = [&](TimePoint t) {
    size_t n = 0;
    REQUIRE(store
                ->forEachLiveness([&](const StoredLiveness& l) {
                  n += l.judgedFrom == t ? 1 : 0;
                  return true;
                })
                .ok());
    return n;
  };
  auto connectedFargate = [](Inventory& inv) {
    auto rows = inv.summary();  // from memory: no flush
    REQUIRE(rows.ok());
    return (*rows)[static_cast<size_t>(Category::kAppEmbedded)].connected;
  };
  InventoryOptions o;
  o.maxFlushRows = 10;

  clock.advance(2h);
  const TimePoint restart = clock.now();
  Inventory first(*store, clock, o);
  REQUIRE(first.start(false).ok());
  CHECK(connectedFargate(first) == 35);  // judged from the restart before anything is written
  CHECK(storedFrom(restart) == 0);
  REQUIRE(first.flush().ok());
  CHECK(storedFrom(restart) == 10);                 // one chunk
  CHECK(**store->loadConsoleAlive() == kT0 + 10s);  // not moved on while the discount is unstored

  // A crash now (this Inventory is simply never flushed again): the next start discounts the
  // 25 unstored Defenders too, because "alive" did not move on.
  clock.advance(1h);
  const TimePoint second = clock.now();
  Inventory next(*store, clock, o);
  REQUIRE(next.start(false).ok());
  CHECK(connectedFargate(next) == 35);
  for (int i = 0; i < 3; ++i) REQUIRE(next.flush().ok());
  CHECK(storedFrom(second) == 30);
  CHECK(**store->loadConsoleAlive() == kT0 + 10s);
  REQUIRE(next.flush().ok());
  CHECK(storedFrom(second) == 35);
  CHECK(**store->loadConsoleAlive() == second);  // complete: alive moves on
  clock.advance(91s);
  CHECK(connectedFargate(next) == 0);  // judged from the second start, then G
}

TEST_CASE("a bounded flush writes durable writes and the oldest refreshes first") {
  ManualClock clock{kT0};
  auto store = std::move(openSqliteStore({":memory:"})).value();
  InventoryOptions o;
  o.maxFlushRows = 10;
  o.flushInterval = Millis(3'600'000);  // the flusher writes only what a request waits for
  Inventory inv(*store, clock, o);
  REQUIRE(inv.start().ok());
  auto host = [](int i) { return dc::testing::numbered("t", i); };
  for (int i = 0; i < 25; ++i) REQUIRE(inv.recordHeartbeat(reported(host(i))).ok());
  for (int i = 0; i < 25; ++i) {  // refreshes, one second apart: pending, not yet written
    clock.advance(1s);
    REQUIRE(inv.recordHeartbeat(reported(host(i))).ok());
  }
  auto storedLastSeen = [&](int i) { return (*store->findDefender(host(i)))->lastSeen; };
  CHECK(storedLastSeen(0) == kT0);
  REQUIRE(inv.flush().ok());
  for (int i = 0; i < 10; ++i) CHECK(storedLastSeen(i) == kT0 + Seconds(i + 1));
  for (int i = 10; i < 25; ++i) CHECK(storedLastSeen(i) == kT0);
  CHECK(inv.metrics().pendingWrites == 15);
  // A registration waiting to be stored goes with the next chunk, whatever the queue.
  REQUIRE(inv.recordHeartbeat(reported("late")).ok());  // returns once committed
  CHECK(dc::testing::found(store->findDefender("late")));
  REQUIRE(inv.flush().ok());
  while (inv.metrics().pendingWrites > 0) REQUIRE(inv.flush().ok());
  for (int i = 0; i < 25; ++i) CHECK(storedLastSeen(i) == kT0 + Seconds(i + 1));
}

TEST_CASE("restart: an unchanged Defender's first heartbeat writes only its liveness columns") {
  ManualClock clock{kT0};
  auto inner = std::move(openSqliteStore({":memory:"})).value();
  testing::FaultyStore store(*inner);
  {
    Inventory before(store, clock, {});
    REQUIRE(before.start().ok());
    REQUIRE(before.recordHeartbeat(reported("same")).ok());
    before.stop();
  }
  REQUIRE(store.upsertsWritten() == 1);
  clock.advance(5s);
  Inventory inv(store, clock, {});
  REQUIRE(inv.start(false).ok());
  CHECK(*inv.recordHeartbeat(reported("same")) == HeartbeatOutcome::kRefreshed);
  REQUIRE(inv.flush().ok());
  CHECK(store.upsertsWritten() == 1);  // the stored fingerprint matched: a touch
  CHECK(store.touchesWritten() >= 1);
  clock.advance(5s);
  Defender changed = reported("same");
  changed.version = "33.00.001";
  REQUIRE(inv.recordHeartbeat(changed).ok());
  REQUIRE(inv.flush().ok());
  CHECK(store.upsertsWritten() == 2);
  CHECK((*inner->findDefender("same"))->version == "33.00.001");
}

// ---- 3. the Console's own slowness ------------------------------------------------------------

TEST_CASE("pause detector: reports a sleep that overran the plan beyond the threshold") {
  PauseDetector d(Millis(5000));
  const auto t = std::chrono::steady_clock::time_point{} + 1h;
  CHECK_FALSE(d.overslept(1s, t, t + 1s));
  CHECK_FALSE(d.overslept(1s, t, t + 6s));  // 5 s over exactly is on schedule
  auto gap = d.overslept(1s, t, t + 61s);
  REQUIRE(gap);
  CHECK(*gap == 60s);
  CHECK_FALSE(d.overslept(10ms, t, t + 5s));
  CHECK_FALSE(PauseDetector(Millis(0)).overslept(1s, t, t + 1h));
}

TEST_CASE("a pause of the Console does not disconnect or evict Defenders that kept sending") {
  Faulty f;
  cleanup::Sweeper sweeper(*f.inv, {});
  REQUIRE(f.inv->recordHeartbeat(reported("silent-before")).ok());  // goes silent at kT0
  f.clock.advance(5min);
  REQUIRE(f.inv->recordHeartbeat(reported("steady")).ok());
  REQUIRE(f.inv->flush().ok());
  const TimePoint pausedAt = f.clock.now() + 10s;
  f.clock.advance(65min);  // the Console did not run: "steady"'s heartbeats waited meanwhile
  auto before = f.inv->find("steady");
  CHECK_FALSE(f.inv->judge(**before, f.clock.now()).connected);  // what a naive judge would say

  CHECK(f.inv->noteResumed(pausedAt) == 1);
  auto after = f.inv->find("steady");
  CHECK(f.inv->judge(**after, f.clock.now()).connected);
  auto report = sweeper.sweep(f.clock.now());
  REQUIRE(report.ok());
  CHECK(report->evicted == 1);  // only the one silent before the pause
  CHECK(dc::testing::found(f.inv->find("steady")));
  CHECK_FALSE(dc::testing::found(f.inv->find("silent-before")));
  CHECK(f.inv->metrics().pausesDetected == 1);
}

TEST_CASE("a stalled database stalls neither reads nor refreshes; the sweep does not act") {
  InventoryOptions o;
  o.readWaitForWriter = Millis(20);
  Faulty f(o);
  REQUIRE(f.inv->recordHeartbeat(reported("a")).ok());
  REQUIRE(f.inv->flush().ok());
  f.store.stallWrites();
  f.clock.advance(30s);
  REQUIRE(f.inv->recordHeartbeat(reported("a")).ok());  // refresh: in memory, not blocked
  std::thread flusher([&] { (void)f.inv->flush(); });
  f.store.awaitStalled();
  // The writer is stuck in the store; a read still answers, with the newest liveness.
  auto page = f.inv->list({});
  REQUIRE(page.ok());
  REQUIRE(page->items.size() == 1);
  CHECK(page->items.front().lastSeen == kT0 + 30s);
  f.store.release();
  flusher.join();
}

TEST_CASE("the sweep waits while heartbeats wait for a worker, at most one grace period") {
  Faulty f;
  size_t waiting = 3;
  cleanup::SweepOptions so;
  so.heartbeatsWaiting = [&] { return waiting; };
  cleanup::Sweeper sweeper(*f.inv, so);
  REQUIRE(f.inv->recordHeartbeat(reported("a")).ok());
  f.clock.advance(2h);
  auto r = sweeper.sweep(f.clock.now());
  REQUIRE(r.ok());
  CHECK(r->deferred);
  CHECK(dc::testing::found(f.inv->find("a")));
  f.clock.advance(60s);
  CHECK(sweeper.sweep(f.clock.now())->deferred);
  f.clock.advance(31s);  // behind for more than G = 90 s: cleanup must not stop for ever
  r = sweeper.sweep(f.clock.now());
  CHECK_FALSE(r->deferred);
  CHECK(r->evicted == 1);
  waiting = 0;
  CHECK_FALSE(sweeper.sweep(f.clock.now())->deferred);
  CHECK(sweeper.metricsText(kT0).find("dc_sweeps_deferred_total 2") != std::string::npos);
}

// ---- 4. outage guard --------------------------------------------------------------------------

namespace {

struct Fleet {
  Faulty f;
  cleanup::Sweeper sweeper{*f.inv, {}};
  explicit Fleet(int n) {
    for (int i = 0; i < n; ++i) REQUIRE(f.inv->recordHeartbeat(reported(name(i))).ok());
    REQUIRE(f.inv->flush().ok());
  }
  static std::string name(int i) { return dc::testing::numbered("task-", i); }
  /// Advances 30 s; Defenders [from, to) heartbeat; one sweep.
  cleanup::SweepReport step(int from, int to) {
    f.clock.advance(30s);
    for (int i = from; i < to; ++i) REQUIRE(f.inv->recordHeartbeat(reported(name(i))).ok());
    auto r = sweeper.sweep(f.clock.now());
    REQUIRE(r.ok());
    return *r;
  }
};

}  // namespace

TEST_CASE("outage guard: half the fleet silent at once pauses evictions until it returns") {
  LogCapture log;
  Fleet fleet(40);
  // Tasks 0..19 go silent (an outage between them and the Console); 20..39 keep sending.
  bool paused = false;
  for (int s = 0; s < 4; ++s) paused = fleet.step(20, 40).paused;
  CHECK(paused);
  auto st = fleet.sweeper.outageGuard().status();
  CHECK(st.paused);
  CHECK(st.incidents == 1);
  REQUIRE(st.incident);
  CHECK(st.incident->atStart.fleet == 40);
  CHECK(st.incident->atStart.silent == 20);
  CHECK(log.count("outage guard: 20 of 40 Defenders") == 1);
  CHECK(fleet.sweeper.metricsText(kT0).find("dc_evictions_paused 1") != std::string::npos);

  // Two hours: far beyond the 1 h App-Embedded rule, and still nothing is evicted.
  for (int s = 0; s < 240; ++s) CHECK(fleet.step(20, 40).evicted == 0);
  CHECK(fleet.f.inv->metrics().defenders == 40);
  CHECK(fleet.sweeper.outageGuard().status().incidents == 1);  // one incident, not one per sweep
  CHECK(log.count("outage guard: 20 of") == 1);

  // The outage ends: 15 of the 20 come back; the guard ends by itself, and the 5 still silent
  // for hours are evicted at the next sweep.
  auto r = fleet.step(5, 40);
  CHECK_FALSE(r.paused);
  CHECK(r.evicted == 5);
  st = fleet.sweeper.outageGuard().status();
  CHECK_FALSE(st.paused);
  REQUIRE(st.incident);
  CHECK(st.incident->endedBy == "fleet returned");
  CHECK(fleet.sweeper.metricsText(kT0).find("dc_outage_incidents_total 1") != std::string::npos);
}

TEST_CASE("outage guard: an operator resumes; small fleets and slow attrition never pause") {
  SECTION("operator resume") {
    Fleet fleet(30);
    for (int s = 0; s < 4; ++s) (void)fleet.step(10, 30);  // 10 of 30: one third, no pause
    CHECK_FALSE(fleet.sweeper.outageGuard().status().paused);
    Fleet big(30);
    for (int s = 0; s < 4; ++s) (void)big.step(15, 30);  // 15 of 30: paused
    CHECK(big.sweeper.outageGuard().status().paused);
    for (int s = 0; s < 130; ++s) CHECK(big.step(15, 30).evicted == 0);
    CHECK(big.sweeper.outageGuard().resume(big.f.clock.now(), "alice"));
    auto r = big.step(15, 30);
    CHECK_FALSE(r.paused);
    CHECK(r.evicted == 15);  // the operator decided these are gone
    CHECK(big.sweeper.outageGuard().status().incident->endedBy == "resumed by alice");
    CHECK_FALSE(big.sweeper.outageGuard().resume(big.f.clock.now(), "alice"));  // nothing active
  }
  SECTION("a fleet smaller than minFleet") {
    Fleet fleet(19);
    for (int s = 0; s < 130; ++s) (void)fleet.step(0, 0);  // all silent
    CHECK(fleet.sweeper.outageGuard().status().incidents == 0);
    CHECK(fleet.f.inv->metrics().defenders == 0);  // evicted after 1 h as usual
  }
  SECTION("silence spread over more than one grace period") {
    Fleet fleet(40);
    // One more Defender stops every 2 minutes: never half of the fleet within 90 s.
    for (int s = 0; s < 160; ++s) {
      const int stopped = std::min(40, s / 4);
      (void)fleet.step(stopped, 40);
    }
    CHECK(fleet.sweeper.outageGuard().status().incidents == 0);
    CHECK(fleet.f.inv->metrics().evictions > 0);
  }
}

// ---- 2. overload ------------------------------------------------------------------------------

TEST_CASE("overload: registrations waiting to be stored are bounded; beyond, 503 overloaded") {
  InventoryOptions o;
  o.maxPendingDurable = 3;
  o.durableTimeout = Millis(0);  // nobody flushes here: every commit wait times out at once
  Faulty f(o, /*flusher=*/false);
  for (int i = 0; i < 3; ++i) {
    auto r = f.inv->recordHeartbeat(reported(dc::testing::numbered("r", i)));
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == "storage_unavailable");  // kept, not yet durable
  }
  auto over = f.inv->recordHeartbeat(reported("r3"));
  REQUIRE_FALSE(over.ok());
  CHECK(over.error().code == "overloaded");
  CHECK(f.inv->metrics().defenders == 3);  // nothing kept beyond the bound
  CHECK(f.inv->metrics().overloadRefusals == 1);
  // A retry of a kept registration is not new work: it waits for the same commit.
  CHECK(f.inv->recordHeartbeat(reported("r0")).error().code == "storage_unavailable");
  REQUIRE(f.inv->flush().ok());
  CHECK(f.inv->metrics().pendingWrites == 0);
  CHECK(f.inv->recordHeartbeat(reported("r0")).ok());  // committed: a plain refresh now
  CHECK(f.inv->recordHeartbeat(reported("r3")).error().code == "storage_unavailable");  // room
}

namespace {

int rawConnect(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  return fd;
}

const char* const kAdminPassword = "reliability-admin-password";

ConsoleConfig smallConsole(const std::string& dataDir) {
  ConsoleConfig c;
  // Either Console front (tests/CMakeLists.txt runs both).
  if (const char* front = std::getenv("DC_TEST_CONSOLE_FRONT")) c.consoleFront = front;
  if (const char* front = std::getenv("DC_TEST_DEFENDER_FRONT")) c.defenderFront = front;
  c.dataDir = dataDir;
  c.consolePort = c.defenderPort = 0;
  c.uiDir = "/nonexistent";
  c.flushInterval = Millis(50);
  c.pauseThreshold = Millis(0);  // the manual clock jumps; a slow machine must not look paused
  c.plainHttp = true;
  c.adminPassword = kAdminPassword;
  c.passwordIterations = 1000;
  return c;
}

/// A client of the Console API, signed in as the admin.
std::unique_ptr<httplib::Client> apiClient(ConsoleApp& app) {
  auto c = std::make_unique<httplib::Client>("127.0.0.1", app.consolePort());
  c->set_basic_auth("admin", kAdminPassword);
  return c;
}

/// A client of the defender channel with a Console-wide enrolment credential.
std::unique_ptr<httplib::Client> channelClient(ConsoleApp& app) {
  auto credential = app.auth().issueCredential("", "reliability_test");
  REQUIRE(credential.ok());
  auto c = std::make_unique<httplib::Client>("127.0.0.1", app.defenderPort());
  c->set_bearer_token_auth(credential->secret.c_str());
  return c;
}

}  // namespace

TEST_CASE(
    "overload: beyond the channel's queue, 503 + Retry-After; the Console API still answers") {
  const std::string dir = tempDb("overload");
  ConsoleConfig c = smallConsole(dir);
  c.defenderThreads = 1;
  c.defenderMaxQueued = 1;
  // The cpp-httplib front's admission control: a connection holds a worker for its life, so
  // idle connections fill the queue (the event-driven front sheds requests, not connections:
  // tests/integration/defender_channel_test.cpp).
  c.defenderFront = "httplib";
  ManualClock clock{kT0};
  ConsoleApp app(c, clock, "test");
  REQUIRE(app.start(false).ok());
  // An idle connection holds the only worker; a second one fills the queue.
  auto api_ = apiClient(app);
  httplib::Client& api = *api_;
  auto awaitMetric = [&](const std::string& line) {
    // accept() runs on the listener's thread: wait until it has handed the connection on.
    for (int i = 0; i < 5000 && api.Get("/metrics")->body.find(line) == std::string::npos; ++i)
      std::this_thread::yield();
    REQUIRE(api.Get("/metrics")->body.find(line) != std::string::npos);
  };
  const int holder = rawConnect(app.defenderPort());
  awaitMetric("dc_defender_channel_busy 1\n");
  const int queued = rawConnect(app.defenderPort());
  awaitMetric("dc_defender_channel_queued 1\n");

  std::set<std::string> delays;
  for (int i = 0; i < 30; ++i) {
    auto channel_ = channelClient(app);
    httplib::Client& channel = *channel_;
    const json body{
        {"hostname", dc::testing::numbered("task-", i)}, {"type", "fargate"}, {"appID", kAppId}};
    auto r = channel.Post("/api/v1/defender/heartbeat", body.dump(), "application/json");
    REQUIRE(r);
    CHECK(r->status == 503);
    CHECK(json::parse(r->body)["code"] == "overloaded");
    const int after = std::stoi(r->get_header_value("Retry-After"));
    CHECK((after >= 5 && after <= 20));
    delays.insert(r->get_header_value("Retry-After"));
    // Operators are served meanwhile: the Console API has its own workers.
    auto s = api.Get("/api/v1/defenders/summary");
    REQUIRE(s);
    CHECK(s->status == 200);
  }
  CHECK(delays.size() >= 5);
  // A shed request is answered before its body is read: the stable share of the delay follows
  // the client address, not the hostname in the body. Every request here comes from 127.0.0.1,
  // so all 30 delays lie in that address's window of the random share (0..8 s), whatever their
  // hostnames; a stable share read from the (never read) body would spread them over 5..20.
  int own = 20;  // 5 + the address's stable share: the smallest of many draws (random share 0)
  for (int i = 0; i < 500; ++i) own = std::min(own, heartbeat::retryAfterSeconds("127.0.0.1", {}));
  for (const auto& d : delays) {
    CHECK(std::stoi(d) >= own);
    CHECK(std::stoi(d) <= own + 8);
  }
  CHECK(api.Get("/metrics")->body.find("dc_defender_channel_shed_total 30") != std::string::npos);
  CHECK(app.inventory().metrics().defenders == 0);  // nothing queued without bound, nothing kept
  ::close(holder);
  ::close(queued);
  auto channel_ = channelClient(app);
  httplib::Client& channel = *channel_;
  const json body{{"hostname", "task-0"}, {"type", "fargate"}, {"appID", kAppId}};
  int status = 0;
  for (int i = 0; i < 200 && status != 200; ++i) {  // the worker frees when those close
    auto r = channel.Post("/api/v1/defender/heartbeat", body.dump(), "application/json");
    status = r ? r->status : 0;
  }
  CHECK(status == 200);
  app.stop();
  std::filesystem::remove_all(dir);
}

TEST_CASE("reconnect storm after a restart: every Defender absorbed, no errors, no duplicates") {
  const int defenders = [] {
    const char* v = std::getenv("DC_STORM_DEFENDERS");
    return v && *v ? std::atoi(v) : 2000;
  }();
  const std::string dir = tempDb("storm");
  ManualClock clock{kT0};
  auto send = [&](ConsoleApp& app, int threads, bool expectRegistered) {
    std::atomic<int> errors{0}, registered{0};
    std::vector<std::unique_ptr<httplib::Client>> clients;
    for (int t = 0; t < threads; ++t) clients.push_back(channelClient(app));
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t)
      pool.emplace_back([&, t] {
        httplib::Client& ch = *clients[t];
        ch.set_keep_alive(true);
        ch.set_tcp_nodelay(true);  // else each request waits on a delayed ACK (Nagle)
        for (int i = t; i < defenders; i += threads) {
          const json body{{"hostname", dc::testing::numbered("task-", i)},
                          {"type", "fargate"},
                          {"appID", kAppId}};
          auto r = ch.Post("/api/v1/defender/heartbeat", body.dump(), "application/json");
          if (!r || r->status != 200) {
            ++errors;
            continue;
          }
          if (json::parse(r->body)["registered"].get<bool>()) ++registered;
        }
      });
    for (auto& p : pool) p.join();
    CHECK(errors == 0);
    CHECK(registered == (expectRegistered ? defenders : 0));
  };
  {
    ConsoleApp app(smallConsole(dir), clock, "test");
    REQUIRE(app.start(false).ok());
    send(app, 8, true);
    app.stop();
  }
  clock.advance(10min);  // the Console was down; the fleet kept running
  ConsoleApp app(smallConsole(dir), clock, "test");
  REQUIRE(app.start(false).ok());
  const auto started = std::chrono::steady_clock::now();
  send(app, 16, false);  // the whole fleet at once: refreshes, not registrations
  const auto took = std::chrono::duration_cast<Millis>(std::chrono::steady_clock::now() - started);
  WARN("reconnect storm: " << defenders << " Defenders in " << took.count() << " ms");
  auto api_ = apiClient(app);
  httplib::Client& api = *api_;
  auto r = api.Get("/api/v1/defenders?limit=1");
  REQUIRE(r);
  CHECK(std::stoi(r->get_header_value("Total-Count")) == defenders);  // one row per hostname
  CHECK(app.inventory().metrics().reconnections == 0);
  app.stop();
  std::filesystem::remove_all(dir);
}

TEST_CASE("HTTP: eviction status and operator resume") {
  const std::string dir = tempDb("guard");
  ManualClock clock{kT0};
  ConsoleConfig c = smallConsole(dir);
  c.outageMinFleet = 4;
  ConsoleApp app(c, clock, "test");
  REQUIRE(app.start(false).ok());
  auto ch_ = channelClient(app);
  httplib::Client& ch = *ch_;
  auto api_ = apiClient(app);
  httplib::Client& api = *api_;
  for (int i = 0; i < 4; ++i)
    REQUIRE(ch.Post("/api/v1/defender/heartbeat",
                    json{{"hostname", dc::testing::numbered("t", i)},
                         {"type", "fargate"},
                         {"appID", kAppId}}
                        .dump(),
                    "application/json")
                ->status == 200);
  auto status = json::parse(api.Get("/api/v1/defenders/eviction-status")->body);
  CHECK(status["paused"] == false);
  CHECK(status["incident"].is_null());
  CHECK(status["threshold"] == 0.5);
  CHECK(status["minFleet"] == 4);
  clock.advance(120s);  // all four silent within one grace period
  REQUIRE(app.sweeper().sweep(clock.now()).ok());
  status = json::parse(api.Get("/api/v1/defenders/eviction-status")->body);
  CHECK(status["paused"] == true);
  CHECK(status["incident"]["silent"] == 4);
  CHECK(status["incident"]["fleet"] == 4);
  CHECK(status["incident"]["endedAt"].is_null());
  CHECK(api.Get("/metrics")->body.find("dc_evictions_paused 1") != std::string::npos);
  auto resumed = api.Post("/api/v1/defenders/eviction-status/resume", "", "application/json");
  REQUIRE(resumed);
  CHECK(resumed->status == 200);
  status = json::parse(resumed->body);
  CHECK(status["paused"] == false);
  CHECK(status["incident"]["endedBy"] == "resumed by admin");  // the signed-in user
  auto again = api.Post("/api/v1/defenders/eviction-status/resume", "", "application/json");
  CHECK(again->status == 409);
  CHECK(json::parse(again->body)["code"] == "not_paused");
  app.stop();
  std::filesystem::remove_all(dir);
}

TEST_CASE("start-up: until ready, the Console API answers 503 starting; the probes answer") {
  // ConsoleApp listens before it creates the first user; this is the window in between.
  auto store = std::move(openSqliteStore({":memory:"})).value();
  ManualClock clock{kT0};
  Inventory inv(*store, clock, {});
  REQUIRE(inv.start().ok());
  std::atomic<bool> ready{false};
  web::ListenerOptions lo;
  lo.host = "127.0.0.1";
  lo.threads = 2;
  web::HttpListener listener(lo);
  web::ConsoleApiOptions api;
  api.version = "test";
  api.ready = [&ready] { return ready.load(); };
  web::registerConsoleApi(listener.server(), inv, api);
  REQUIRE(listener.start().ok());
  httplib::Client client("127.0.0.1", listener.port());

  for (const char* path : {"/api/v1/defenders", "/api/v1/defenders/summary", "/metrics"}) {
    INFO(path);
    auto r = client.Get(path);
    REQUIRE(r);
    CHECK(r->status == 503);
    CHECK(r->get_header_value("Retry-After") == "1");
    CHECK(json::parse(r->body)["code"] == "starting");
  }
  CHECK(client.Get("/healthz")->status == 200);  // alive
  auto notReady = client.Get("/readyz");
  CHECK(notReady->status == 503);
  CHECK(json::parse(notReady->body)["code"] == "starting");

  ready = true;
  CHECK(client.Get("/api/v1/defenders")->status == 200);
  CHECK(client.Get("/readyz")->status == 200);
  listener.stop();
  inv.stop();
}

// ---- 7. paging and export while the fleet moves ------------------------------------------------

namespace {

/// `n` Fargate Defenders stored before the Console starts, all registered and last seen in the
/// same millisecond (kT0): sorting by lastSeen ties them all.
void seedFleet(const ConsoleConfig& c, int n) {
  auto store = openSqliteStore({c.databasePath()});
  REQUIRE(store.ok());
  WriteBatch batch;
  for (int i = 0; i < n; ++i) {
    Defender d = reported("task-" + std::to_string(10000 + i));
    d.registeredAt = d.lastSeen = d.judgedFrom = d.connectedSince = kT0;
    batch.upserts.push_back(d);
  }
  REQUIRE((*store)->write(batch).ok());
}

/// Heartbeats `count` Defenders out of `n` (a stride fixed by `round`) one millisecond later:
/// they move to the end of a lastSeen sort.
void heartbeatSome(ConsoleApp& app, ManualClock& clock, int n, int count, int round) {
  clock.advance(1ms);
  for (int k = 0; k < count; ++k) {
    const int i = (k * 7 + round * 13) % n;
    REQUIRE(app.inventory().recordHeartbeat(reported("task-" + std::to_string(10000 + i))).ok());
  }
}

}  // namespace

TEST_CASE("cursor paging by lastSeen while the fleet heartbeats sees every Defender once") {
  const std::string dir = tempDb("cursor");
  ManualClock clock{kT0};
  ConsoleConfig c = smallConsole(dir);
  constexpr int kFleet = 250;
  seedFleet(c, kFleet);
  ConsoleApp app(c, clock, "test");
  REQUIRE(app.start(false).ok());
  auto api_ = apiClient(app);
  httplib::Client& api = *api_;
  for (int pass = 0; pass < 5; ++pass) {
    for (const bool reverse : {false, true}) {
      std::multiset<std::string> seen;
      std::string cursor = "start";
      int pages = 0;
      for (; !cursor.empty() && pages < 20; ++pages) {
        auto res = api.Get("/api/v1/defenders?sort=lastSeen&limit=50&reverse=" +
                           std::string(reverse ? "true" : "false") + "&cursor=" + cursor);
        REQUIRE(res);
        REQUIRE(res->status == 200);
        CHECK(res->get_header_value("Total-Count") == std::to_string(kFleet));
        for (const auto& d : json::parse(res->body)) seen.insert(d["hostname"].get<std::string>());
        cursor = res->get_header_value("Next-Cursor");
        // 50 of the fleet heartbeat between two pages.
        heartbeatSome(app, clock, kFleet, 50, pass * 10 + pages);
      }
      CHECK(pages == 5);
      CHECK(seen.size() == kFleet);
      CHECK(std::set<std::string>(seen.begin(), seen.end()).size() == kFleet);
    }
  }
  // /names follows the same cursor.
  auto first = api.Get("/api/v1/defenders/names?sort=lastSeen&limit=200&cursor=start");
  REQUIRE(first);
  REQUIRE(first->status == 200);
  CHECK(json::parse(first->body).size() == 200);
  const std::string next = first->get_header_value("Next-Cursor");
  REQUIRE_FALSE(next.empty());
  auto rest = api.Get("/api/v1/defenders/names?limit=200&cursor=" + next);
  CHECK(json::parse(rest->body).size() == 50);
  CHECK_FALSE(rest->has_header("Next-Cursor"));
  // Bad and expired cursors: 400 / 410 with stable codes.
  auto bad = api.Get("/api/v1/defenders?cursor=%20nonsense");
  CHECK(bad->status == 400);
  CHECK(json::parse(bad->body)["code"] == "invalid_parameter");
  CHECK(json::parse(bad->body)["field"] == "cursor");
  clock.advance(c.cursorTtl + 1s);
  auto expired = api.Get("/api/v1/defenders/names?limit=200&cursor=" + next);
  CHECK(expired->status == 410);
  CHECK(json::parse(expired->body)["code"] == "cursor_expired");
  app.stop();
  std::filesystem::remove_all(dir);
}

TEST_CASE("a CSV download sorted by lastSeen while Defenders heartbeat holds each one once") {
  const std::string dir = tempDb("download");
  ManualClock clock{kT0};
  ConsoleConfig c = smallConsole(dir);
  constexpr int kFleet = 2500;
  seedFleet(c, kFleet);
  ConsoleApp app(c, clock, "test");
  REQUIRE(app.start(false).ok());
  for (int run = 0; run < 3; ++run) {
    auto api_ = apiClient(app);
    httplib::Client& api = *api_;
    // A small receive buffer: the Console writes the first page and waits for this client, so
    // the heartbeats below land while the download is under way.
    api.set_socket_options([](int sock) {
      int size = 4096;
      ::setsockopt(sock, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
    });
    std::string body;
    bool moved = false;
    auto res = api.Get(
        "/api/v1/defenders/download?sort=lastSeen" + std::string(run == 1 ? "&reverse=true" : ""),
        [&](const char* data, size_t len) {
          body.append(data, len);
          if (!moved) {
            moved = true;
            heartbeatSome(app, clock, kFleet, 500, run);
          }
          return true;
        });
    REQUIRE(res);
    REQUIRE(res->status == 200);
    std::multiset<std::string> rows;
    std::istringstream lines(body);
    std::string line;
    std::getline(lines, line);  // header
    while (std::getline(lines, line))
      if (!line.empty()) rows.insert(line.substr(0, line.find(',')));
    CHECK(rows.size() == kFleet);
    CHECK(std::set<std::string>(rows.begin(), rows.end()).size() == kFleet);
  }
  app.stop();
  std::filesystem::remove_all(dir);
}

// ---- 8c. a deliberate mass scale-down -----------------------------------------------------------

TEST_CASE("scale-down: graceful disconnects never trip the guard; a paused guard shows its cost") {
  const std::string dir = tempDb("scaledown");
  ManualClock clock{kT0};
  ConsoleConfig c = smallConsole(dir);
  ConsoleApp app(c, clock, "test");
  REQUIRE(app.start(false).ok());
  auto api_ = apiClient(app);
  httplib::Client& api = *api_;
  auto heartbeatAll = [&](int from, int to) {
    for (int i = from; i < to; ++i)
      REQUIRE(app.inventory().recordHeartbeat(reported("task-" + std::to_string(i))).ok());
  };
  // 220 tasks; 200 stop and say so (graceful disconnect): nothing silent, nothing paused.
  heartbeatAll(0, 220);
  for (int i = 0; i < 200; ++i)
    REQUIRE(app.inventory().recordDisconnect("task-" + std::to_string(i)).ok());
  for (int minute = 1; minute <= 70; ++minute) {
    clock.advance(60s);
    heartbeatAll(200, 220);
    auto report = app.sweeper().sweep(clock.now());
    REQUIRE(report.ok());
    CHECK_FALSE(report->paused);
  }
  CHECK(app.inventory().metrics().evictions == 200);  // one hour after they disconnected

  // 200 more register, then 180 of them are stopped without a word (killed): the guard trips,
  // and the page and /metrics tell for how long and how many evictions are held back.
  heartbeatAll(1000, 1200);
  clock.advance(10s);
  heartbeatAll(1000, 1020);
  heartbeatAll(200, 220);
  for (int minute = 1; minute <= 90; ++minute) {
    clock.advance(60s);
    heartbeatAll(1000, 1020);
    heartbeatAll(200, 220);
    REQUIRE(app.sweeper().sweep(clock.now()).ok());
  }
  auto status = json::parse(api.Get("/api/v1/defenders/eviction-status")->body);
  REQUIRE(status["paused"] == true);
  CHECK(status["incident"]["silent"] == 180);
  // Tripped at the first sweep after the grace period (t0 + 10 s + 2 min); 90 min of sweeps.
  CHECK(status["pausedSeconds"] == 88 * 60);
  // The 180 silent ones are due one hour after their disconnect (judgedFrom + G).
  CHECK(status["heldBack"] == 180);
  const std::string metrics = api.Get("/metrics")->body;
  CHECK(metrics.find("dc_evictions_paused_seconds 5280\n") != std::string::npos);
  CHECK(metrics.find("dc_evictions_held_back 180\n") != std::string::npos);
  // The operator resumes: the stopped tasks are evicted at the next sweep.
  REQUIRE(api.Post("/api/v1/defenders/eviction-status/resume", "", "application/json")->status ==
          200);
  clock.advance(60s);
  heartbeatAll(1000, 1020);
  heartbeatAll(200, 220);
  REQUIRE(app.sweeper().sweep(clock.now()).ok());
  CHECK(app.inventory().metrics().evictions == 380);
  status = json::parse(api.Get("/api/v1/defenders/eviction-status")->body);
  CHECK(status["pausedSeconds"] == 0);
  CHECK(status["heldBack"] == 0);
  CHECK(api.Get("/metrics")->body.find("dc_evictions_held_back 0\n") != std::string::npos);
  app.stop();
  std::filesystem::remove_all(dir);
}

TEST_CASE("one Console per database: a second one on the same data directory is refused") {
  const std::string dir = tempDb("instance-lock");
  ManualClock clock{kT0};
  ConsoleApp first(smallConsole(dir), clock, "test");
  REQUIRE(first.start(false).ok());
  const auto before = std::filesystem::last_write_time(dir + "/console.db");

  ConsoleApp second(smallConsole(dir), clock, "test");
  auto refused = second.start(false);
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.error().code == "already_running");
  CHECK(refused.error().field == "data-dir");
  CHECK(refused.error().message.find(std::to_string(::getpid())) != std::string::npos);
  // Refused before it read or wrote anything: no downtime discount written by the second.
  CHECK(std::filesystem::last_write_time(dir + "/console.db") == before);
  // The database and the files beside it are owner-only.
  const auto perms = std::filesystem::status(dir + "/console.db").permissions();
  CHECK((perms & (std::filesystem::perms::group_all | std::filesystem::perms::others_all)) ==
        std::filesystem::perms::none);

  first.stop();  // the lock goes with the stop: the next Console starts
  ConsoleApp third(smallConsole(dir), clock, "test");
  CHECK(third.start(false).ok());
  third.stop();
  std::filesystem::remove_all(dir);
}
