// The per-Defender engine (tools/fleet_sim/connection_engine.h) against a real Console on port 0
// (`--defender-front asio`): a few hundred Defenders, each on its own HTTP keep-alive connection
// or WebSocket, all answered and none shown disconnected. No timing assertions.
#include <catch2/catch.hpp>

#include <sys/resource.h>

#include <atomic>
#include <string>
#include <vector>

#include "auth/service.h"
#include "main/console_app.h"
#include "tools/fleet_sim/connection_engine.h"

using namespace dc;
using namespace dc::sim;

namespace {

const TimePoint kT0 = TimePoint(Millis(1'800'000'000'000));
constexpr const char* kAdminPassword = "engine-admin-password";

rlim_t raiseFileLimit() {
  rlimit r{};
  REQUIRE(::getrlimit(RLIMIT_NOFILE, &r) == 0);
  r.rlim_cur = r.rlim_max;
  ::setrlimit(RLIMIT_NOFILE, &r);
  REQUIRE(::getrlimit(RLIMIT_NOFILE, &r) == 0);
  return r.rlim_cur;
}

ConsoleConfig asioConfig() {
  ConsoleConfig c;
  c.database = ":memory:";
  c.host = "127.0.0.1";
  c.consolePort = 0;
  c.defenderPort = 0;
  c.uiDir = "/nonexistent";
  c.flushInterval = Millis(20);
  c.plainHttp = true;
  c.adminPassword = kAdminPassword;
  c.passwordIterations = 1000;
  c.pauseThreshold = Millis(0);
  c.defenderFront = "asio";
  c.defenderIoThreads = 2;
  return c;
}

/// Runs 300 Defenders, each on its own `transport` connection, against a real Console until
/// each had an answer; none shown disconnected, one connection each for the whole run.
void runFleet(WireTransport transport) {
  constexpr int kFleet = 300;
  if (raiseFileLimit() < 2 * kFleet + 200) {
    WARN("RLIMIT_NOFILE too low for " << kFleet << " connections on both ends: NOT RUN");
    return;
  }
  // The Console's clock stands still: every Defender that heartbeated stays connected, so a
  // Defender shown disconnected can only be one whose heartbeats were lost.
  ManualClock consoleClock(kT0);
  ConsoleApp app(asioConfig(), consoleClock, "test");
  const Status st = app.start(/*startScheduler=*/false);
  REQUIRE(st.ok());
  auto issued = app.auth().issueCredential("", "connection_engine_test");
  REQUIRE(issued.ok());

  ConnectionEngineConfig c;
  c.consoleUrl = "http://127.0.0.1:" + std::to_string(app.defenderPort());
  c.credential = issued->secret;
  c.transport = transport;
  c.defenders = kFleet;
  c.rampPerSecond = 1000;
  c.threads = 2;
  c.durationSeconds = 300;  // a cap: the run ends once every Defender had an answer
  c.stopWhenAllAnswered = true;
  c.seed = 11;
  c.schedule.intervalOverride = Millis(1'000);
  c.sourceAddresses = {"127.0.0.2", "127.0.0.3"};
  SystemClock clock;
  auto engine = ConnectionEngine::create(c, clock);
  REQUIRE(engine.ok());
  std::atomic<bool> interrupt{false};
  std::optional<Result<FalseDisconnectCheck>> check;
  (*engine)->run(
      interrupt, [](const std::string&) {},
      [&](std::vector<std::string> alive) {
        check = checkFalseDisconnects("http://127.0.0.1:" + std::to_string(app.consolePort()),
                                      basicAuthorization("admin", kAdminPassword), false,
                                      std::move(alive));
      });
  const StatsSnapshot s = (*engine)->stats();
  const ConnectionSnapshot conn = (*engine)->connections();
  INFO("ok=" << s.heartbeatsOk << " errors=" << s.errors() << " connects=" << conn.connects
             << " failures=" << conn.connectFailures);
  CHECK((*engine)->answeredDefenders() == kFleet);
  CHECK(s.registered == kFleet);
  CHECK(s.errors() == 0);
  CHECK(conn.connects == kFleet);  // one connection each, kept for the whole run
  CHECK(conn.reconnects == 0);
  CHECK(conn.open == 0);  // all closed at the end
  REQUIRE(check.has_value());
  REQUIRE(check->ok());
  CHECK((*check)->checked == kFleet);
  CHECK((*check)->shownDisconnected == 0);
  app.stop();
}

}  // namespace

TEST_CASE("per-Defender engine: 300 Defenders on their own HTTP keep-alive connections") {
  runFleet(WireTransport::kHttp);
}

TEST_CASE("per-Defender engine: 300 Defenders on their own WebSocket") {
  runFleet(WireTransport::kWebSocket);
}
