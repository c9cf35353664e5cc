// The per-Defender state machine (tools/fleet_sim/defender_machine.h) and the pure helpers of the
// connection engine: driven with plain TimePoints and a seeded Rng. No network, no sleeps.
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include "common/time_format.h"
#include "tools/fleet_sim/connection_engine.h"
#include "tools/fleet_sim/defender_machine.h"

using namespace dc;
using namespace dc::sim;
using nlohmann::json;

namespace {

const TimePoint kT0 = *parseRfc3339("2026-03-01T12:00:00Z");

Response answer(double nextSeconds, bool registered = false) {
  Response r;
  r.status = 200;
  r.body = json{{"connected", true},
                {"registered", registered},
                {"intervalSeconds", 30},
                {"nextHeartbeatSeconds", nextSeconds}}
               .dump();
  return r;
}

Response refused(int status, std::optional<double> retryAfter) {
  Response r;
  r.status = status;
  r.body = R"({"code":"overloaded","message":"busy"})";
  r.retryAfterSeconds = retryAfter;
  return r;
}

DefenderMachine machine() {
  ReconnectPolicy reconnect;
  reconnect.minDelay = Millis(1'000);
  reconnect.maxDelay = Millis(60'000);
  return DefenderMachine(SchedulePolicy{}, reconnect);
}

}  // namespace

TEST_CASE("defender machine: connects at its ramp time and heartbeats at once on connect") {
  auto m = machine();
  m.start(kT0 + Millis(2'500));
  CHECK(m.connectDue() == kT0 + Millis(2'500));
  m.onConnected(kT0 + Millis(2'600));
  CHECK(m.heartbeatDue() == kT0 + Millis(2'600));
}

TEST_CASE(
    "defender machine: a 200 answer schedules the next heartbeat after nextHeartbeatSeconds") {
  Rng rng(1);
  auto m = machine();
  m.onConnected(kT0);
  auto next = m.onHeartbeatAnswer(answer(26.4, true), kT0, rng);
  CHECK(next.outcome == Outcome::kOk);
  CHECK(next.registered);
  CHECK(m.heartbeatDue() == kT0 + Millis(26'400));
  CHECK(m.everAnswered());
}

TEST_CASE("defender machine: Retry-After of a 429/503 answer is honoured exactly") {
  Rng rng(1);
  auto m = machine();
  m.onConnected(kT0);
  for (int status : {429, 503}) {
    auto next = m.onHeartbeatAnswer(refused(status, 7.5), kT0, rng);
    CHECK(next.outcome == Outcome::kRetryAfter);
    CHECK(m.heartbeatDue() == kT0 + Millis(7'500));
  }
  // Without Retry-After a 503 is a failure: exponential backoff with jitter in [50 %, 100 %].
  auto next = m.onHeartbeatAnswer(refused(503, std::nullopt), kT0, rng);
  CHECK(next.outcome == Outcome::kFailed);
  CHECK(m.heartbeatDue() >= kT0 + Millis(500));
  CHECK(m.heartbeatDue() <= kT0 + Millis(1'000));
  m.onHeartbeatAnswer(refused(500, std::nullopt), kT0, rng);
  CHECK(m.heartbeatDue() >= kT0 + Millis(1'000));
  CHECK(m.heartbeatDue() <= kT0 + Millis(2'000));
  CHECK(m.heartbeatFailures() == 2);
  m.onHeartbeatAnswer(answer(30), kT0, rng);
  CHECK(m.heartbeatFailures() == 0);
}

TEST_CASE("defender machine: reconnects with jittered exponential backoff, capped") {
  Rng rng(42);
  auto m = machine();
  m.onConnected(kT0);
  // Window doubles per consecutive failure: [0, 1 s], [0, 2 s], [0, 4 s], … capped at 60 s.
  Millis window(1'000);
  for (int i = 0; i < 10; ++i) {
    if (i == 0) {
      m.onConnectionLost(kT0, rng);
    } else {
      m.onConnectFailed(kT0, Response{}, rng);
    }
    CHECK(m.connectFailures() == i + 1);
    CHECK(m.connectDue() >= kT0);
    CHECK(m.connectDue() <= kT0 + window);
    window = std::min(window * 2, Millis(60'000));
  }
  // A connection resets the count.
  m.onConnected(kT0);
  CHECK(m.connectFailures() == 0);
  m.onConnectionLost(kT0, rng);
  CHECK(m.connectDue() <= kT0 + Millis(1'000));
}

TEST_CASE("defender machine: reconnect jitter spreads a fleet over the window") {
  Rng rng(3);
  ReconnectPolicy p;
  int early = 0, late = 0;
  for (int i = 0; i < 1000; ++i) {
    const Millis d = reconnectDelay(3, p, rng);  // window [0, 8 s]
    REQUIRE(d >= Millis(0));
    REQUIRE(d <= Millis(8'000));
    early += d < Millis(4'000) ? 1 : 0;
    late += d >= Millis(4'000) ? 1 : 0;
  }
  CHECK(early > 400);
  CHECK(late > 400);
}

TEST_CASE("defender machine: a refused upgrade's Retry-After is honoured, else backoff") {
  Rng rng(5);
  auto m = machine();
  m.onConnectFailed(kT0, refused(503, 12), rng);
  CHECK(m.connectDue() == kT0 + Millis(12'000));
  m.onConnectFailed(kT0, refused(429, 3), rng);
  CHECK(m.connectDue() == kT0 + Millis(3'000));
  m.onConnectFailed(kT0, refused(401, std::nullopt), rng);  // not a back-off answer
  CHECK(m.connectDue() <= kT0 + Millis(8'000));             // third failure: window 8 s
}

TEST_CASE("defender machine: a backoff push silences heartbeats and connects") {
  Rng rng(1);
  auto m = machine();
  m.onConnected(kT0);
  m.onHeartbeatAnswer(answer(5), kT0, rng);
  m.onBackoff(12, kT0 + Millis(1'000));
  CHECK(m.heartbeatDue() == kT0 + Millis(13'000));
  // An answer asking for sooner does not shorten it.
  m.onHeartbeatAnswer(refused(503, 2), kT0 + Millis(1'000), rng);
  CHECK(m.heartbeatDue() == kT0 + Millis(13'000));
  // Nor does a reconnect.
  m.onConnectionLost(kT0 + Millis(1'000), rng);
  CHECK(m.connectDue() >= kT0 + Millis(13'000));
  m.onConnected(kT0 + Millis(2'000));
  CHECK(m.heartbeatDue() == kT0 + Millis(13'000));
  // After it, normal scheduling.
  m.onHeartbeatAnswer(answer(30), kT0 + Millis(14'000), rng);
  CHECK(m.heartbeatDue() == kT0 + Millis(44'000));
  // Nonsense values are ignored.
  m.onBackoff(-1, kT0 + Millis(14'000));
  CHECK(m.heartbeatDue() == kT0 + Millis(44'000));
}

TEST_CASE("defender machine: removed -> the next heartbeat's registration is counted") {
  Rng rng(1);
  auto m = machine();
  m.onConnected(kT0);
  m.onHeartbeatAnswer(answer(30, true), kT0, rng);
  CHECK(m.reRegistrations() == 0);
  m.onRemoved();
  CHECK(m.awaitingRegistration());
  m.onHeartbeatAnswer(answer(30, false), kT0 + Millis(30'000), rng);  // not yet registered anew
  CHECK(m.awaitingRegistration());
  m.onHeartbeatAnswer(answer(30, true), kT0 + Millis(60'000), rng);
  CHECK_FALSE(m.awaitingRegistration());
  CHECK(m.reRegistrations() == 1);
}

TEST_CASE("defender machine: settings push changes the interval") {
  Rng rng(1);
  auto m = machine();
  m.onConnected(kT0);
  m.onHeartbeatAnswer(answer(30), kT0, rng);
  m.onSettings(10, kT0 + Millis(1'000));
  CHECK(m.heartbeatDue() == kT0 + Millis(11'000));
  // A reply without nextHeartbeatSeconds/intervalSeconds then uses the pushed interval.
  Response bare;
  bare.status = 200;
  bare.body = R"({"connected":true})";
  m.onHeartbeatAnswer(bare, kT0 + Millis(11'000), rng);
  CHECK(m.heartbeatDue() == kT0 + Millis(21'000));
}

TEST_CASE("defender machine: a stale keep-alive connection retries at once, not as a failure") {
  Rng rng(1);
  auto m = machine();
  m.onConnected(kT0);
  m.onHeartbeatAnswer(answer(30), kT0, rng);
  m.onStaleConnection(kT0 + Millis(30'000));
  CHECK(m.connectDue() == kT0 + Millis(30'000));
  CHECK(m.heartbeatDue() == kT0 + Millis(30'000));
  CHECK(m.connectFailures() == 0);
  // `Connection: close` after an answer: connect again when the next heartbeat is due.
  m.onHeartbeatAnswer(answer(30), kT0 + Millis(30'000), rng);
  m.onClosedAfterAnswer();
  CHECK(m.connectDue() == kT0 + Millis(60'000));
}

TEST_CASE("defender machine: an answer timeout is a failure and drops the connection") {
  Rng rng(1);
  auto m = machine();
  m.onConnected(kT0);
  m.onHeartbeatTimeout(kT0, rng);
  CHECK(m.heartbeatFailures() == 1);
  CHECK(m.connectFailures() == 1);
  CHECK(m.connectDue() <= kT0 + Millis(1'000));
}

TEST_CASE("connection engine: source addresses, shards") {
  auto a = parseSourceAddresses("127.0.0.2-127.0.0.4, 127.0.1.1");
  REQUIRE(a.ok());
  CHECK(*a == std::vector<std::string>{"127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.1.1"});
  auto across = parseSourceAddresses("127.0.0.254-127.0.1.1");
  REQUIRE(across.ok());
  CHECK(across->size() == 4);
  CHECK(parseSourceAddresses("")->empty());
  for (const char* bad :
       {"127.0.0.9-127.0.0.2", "localhost", "127.0.0.1-", "::1", "10.0.0.0-10.1.0.0"}) {
    auto r = parseSourceAddresses(bad);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().field == "source-addresses");
  }
  auto s = parseShard("2/5");
  REQUIRE(s.ok());
  CHECK(s->first == 2);
  CHECK(s->second == 5);
  for (const char* bad : {"5/5", "-1/2", "1", "a/b", "1/0", "1/2x"})
    CHECK_FALSE(parseShard(bad).ok());
  CHECK(shardSize(10, 0, 3) == 4);
  CHECK(shardSize(10, 1, 3) == 3);
  CHECK(shardSize(10, 2, 3) == 3);
  int total = 0;
  for (int i = 0; i < 6; ++i) total += shardSize(100000, i, 6);
  CHECK(total == 100000);
}

TEST_CASE("connection engine: the JSON summary") {
  StatsSnapshot stats;
  stats.heartbeats = 10;
  stats.heartbeatsOk = 8;
  stats.byStatus[503] = 1;
  stats.byStatus[0] = 1;
  ConnectionSnapshot c;
  c.connects = 5;
  c.maxLatencyMicros = 12'500;
  c.closeCodes = {{1001, 5}};
  FalseDisconnectCheck check;
  check.checked = 5;
  check.shownDisconnected = 1;
  check.sample = {"abc"};
  const json j = json::parse(summaryJson(stats, c, 5, 4, Millis(2'000), check));
  CHECK(j["answered"] == 8);
  CHECK(j["errors"] == 2);
  CHECK(j["errorsByStatus"]["503"] == 1);
  CHECK(j["errorsByStatus"]["net"] == 1);
  CHECK(j["latencyMs"]["max"] == 12.5);
  CHECK(j["connections"]["closeCodes"]["1001"] == 5);
  CHECK(j["falseDisconnects"]["shownDisconnected"] == 1);
  CHECK(j["answeredDefenders"] == 4);
  CHECK_FALSE(json::parse(summaryJson(stats, c, 5, 4, Millis(1), std::nullopt))
                  .contains("falseDisconnects"));
}
