// Pure parts of the fleet simulator: fleet generation, the due-time heap, churn, the protocol
// decisions, stats, and a Shard driven by a ManualClock over a fake transport. No network, no
// sleeps.
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>
#include <regex>
#include <set>

#include "appid/app_id.h"
#include "common/time_format.h"
#include "tests/fleet_sim/fake_transport.h"
#include "tools/fleet_sim/churn.h"
#include "tools/fleet_sim/fleet.h"
#include "tools/fleet_sim/protocol.h"
#include "tools/fleet_sim/schedule.h"
#include "tools/fleet_sim/shard.h"
#include "tools/fleet_sim/simulator.h"
#include "tools/fleet_sim/stats.h"

using namespace dc;
using namespace dc::sim;
using nlohmann::json;
using test::FakeTransport;

namespace {

const TimePoint kStart = *parseRfc3339("2026-03-01T12:00:00Z");

Fleet testFleet(int families = 5, int clusters = 2) {
  Rng rng(7);
  FleetSpec spec;
  spec.families = families;
  spec.clusters = clusters;
  auto fleet = makeFleet(spec, rng);
  REQUIRE(fleet.ok());
  return *fleet;
}

Response ok(double nextSeconds, bool registered = false) {
  Response r;
  r.status = 200;
  r.body = json{{"hostname", "x"},
                {"connected", true},
                {"registered", registered},
                {"intervalSeconds", 30},
                {"nextHeartbeatSeconds", nextSeconds}}
               .dump();
  return r;
}

bool isTaskId(const std::string& s) {
  return std::regex_match(s, std::regex("[0-9a-f]{32}"));
}

}  // namespace

TEST_CASE("fleet: families have valid names, one App ID each, realistic images") {
  Fleet fleet = testFleet(25, 3);
  REQUIRE(fleet.families.size() == 25);
  std::set<std::string> names;
  std::set<std::string> appIds;
  for (const Family& f : fleet.families) {
    CHECK(appid::validateFamily(f.name).ok());
    names.insert(f.name);
    auto id = appid::parse(f.appId);
    REQUIRE(id.ok());
    CHECK(id->family == f.name);
    appIds.insert(f.appId);
    CHECK(std::regex_match(
        f.image, std::regex("123456789012\\.dkr\\.ecr\\.us-east-1\\.amazonaws\\.com/" + f.name +
                            ":v[0-9]+\\.[0-9]+\\.[0-9]+")));
    CHECK(std::regex_match(f.version, std::regex("[0-9]{2}\\.[0-9]{2}\\.[0-9]{3}")));
  }
  CHECK(names.size() == 25);
  CHECK(appIds.size() == 25);
  CHECK(fleet.families[0].name == "checkout-api");
  CHECK(fleet.families[1].name == "payments-worker");
  CHECK(fleet.families[20].name == "checkout-api-2");
  CHECK(fleet.families[0].cluster == "prod-web");
  CHECK(fleet.families[3].cluster == "prod-web");
  CHECK(fleet.cumulativeWeights.back() == 1.0);
}

TEST_CASE("fleet: tasks have ECS task ids and ARNs; a seed reproduces them") {
  Fleet fleet = testFleet();
  Rng a(42), b(42);
  Task t1 = newTask(fleet, 2, kStart, a);
  Task t2 = newTask(fleet, 2, kStart, b);
  CHECK(t1.taskId == t2.taskId);
  CHECK(isTaskId(t1.taskId));
  CHECK(taskArn(fleet, t1) == "arn:aws:ecs:us-east-1:123456789012:task/prod-web/" + t1.taskId);
  CHECK(t1.certificateExpiration > kStart + std::chrono::days(700));
  CHECK(t1.certificateExpiration <= kStart + std::chrono::days(3 * 365));
  std::set<std::string> ids;
  for (int i = 0; i < 1000; ++i) ids.insert(randomTaskId(a));
  CHECK(ids.size() == 1000);
}

TEST_CASE("fleet: bigger families get more tasks, every family is picked") {
  Fleet fleet = testFleet(5);
  Rng rng(1);
  std::vector<int> counts(5);
  for (int i = 0; i < 10000; ++i) ++counts[pickFamily(fleet, rng)];
  for (int c : counts) CHECK(c > 0);
  CHECK(counts[0] > counts[4]);
}

TEST_CASE("fleet: the spec is validated") {
  FleetSpec spec;
  CHECK(validateFleetSpec(spec).ok());
  spec.account = "12345";
  CHECK(validateFleetSpec(spec).error().field == "account");
  spec = {};
  spec.region = "US East";
  CHECK(validateFleetSpec(spec).error().field == "region");
  spec = {};
  spec.region = "eu-central-1";
  CHECK(validateFleetSpec(spec).ok());
  spec.families = 0;
  CHECK(validateFleetSpec(spec).error().field == "families");
}

TEST_CASE("schedule: entries come out in due order, only when due, stale ones skipped") {
  DueQueue q;
  std::vector<uint32_t> generation = {1, 1, 1};
  auto gen = [&](uint32_t s) { return generation[s]; };
  q.push(kStart + Seconds(30), 0, 1);
  q.push(kStart + Seconds(10), 1, 1);
  q.push(kStart + Seconds(20), 2, 1);
  CHECK(*q.earliest() == kStart + Seconds(10));
  CHECK_FALSE(q.popDue(kStart + Seconds(5), gen));
  auto e = q.popDue(kStart + Seconds(25), gen);
  REQUIRE(e);
  CHECK(e->slot == 1);
  generation[2] = 2;  // slot 2 was stopped: its entry is stale
  e = q.popDue(kStart + Seconds(25), gen);
  CHECK_FALSE(e);
  CHECK(q.size() == 1);
  e = q.popDue(kStart + Seconds(30), gen);
  REQUIRE(e);
  CHECK(e->slot == 0);
  CHECK(q.empty());
}

TEST_CASE("churn: the rate becomes whole stops, the fraction carries, kinds alternate") {
  ChurnPlanner churn(90, kStart);
  CHECK(churn.due(kStart) == 0);
  CHECK(churn.due(kStart + Seconds(10)) == 15);
  CHECK(churn.due(kStart + Seconds(5)) == 0);  // backwards clock

  ChurnPlanner slow(1, kStart);
  CHECK(slow.due(kStart + Seconds(30)) == 0);
  CHECK(slow.due(kStart + Seconds(60)) == 1);
  CHECK(slow.due(kStart + Seconds(119)) == 0);
  CHECK(slow.due(kStart + Seconds(121)) == 1);

  CHECK(slow.nextKind() == StopKind::kGraceful);
  CHECK(slow.nextKind() == StopKind::kAbrupt);
  CHECK(slow.nextKind() == StopKind::kGraceful);

  ChurnPlanner none(0, kStart);
  CHECK(none.due(kStart + std::chrono::hours(1)) == 0);
}

TEST_CASE("protocol: the heartbeat body carries the Defender object fields") {
  Fleet fleet = testFleet();
  Rng rng(3);
  Task task = newTask(fleet, 1, kStart, rng);
  json b = json::parse(heartbeatBody(fleet, task, kStart + Millis(1500)));
  const Family& f = fleet.families[1];
  CHECK(b["hostname"] == task.taskId);
  CHECK(b["type"] == "fargate");
  CHECK(b["version"] == f.version);
  CHECK(b["cluster"] == f.cluster);
  CHECK(b["appID"] == f.appId);
  CHECK(b["container"] == f.name);
  CHECK(b["collections"] == json::array({"All"}));
  const json& cm = b["cloudMetadata"];
  CHECK(cm["provider"] == "aws");
  CHECK(cm["accountID"] == "123456789012");
  CHECK(cm["region"] == "us-east-1");
  CHECK(cm["resourceID"] == taskArn(fleet, task));
  CHECK(cm["awsExecutionEnv"] == "AWS_ECS_FARGATE");
  CHECK(cm["image"] == f.image);
  CHECK(cm["name"] == f.name);
  CHECK(b["features"].is_object());
  CHECK(b["status"].is_object());
  CHECK(b["systemInfo"].is_object());
  CHECK(parseRfc3339(b["certificateExpiration"].get<std::string>()) == task.certificateExpiration);
  CHECK(b["time"] == "2026-03-01T12:00:01.500Z");

  CHECK(json::parse(disconnectBody(task.taskId)) == json{{"hostname", task.taskId}});

  json o = json::parse(observationsBody(fleet, task, 20, kStart, Seconds(30), rng));
  CHECK(o["hostname"] == task.taskId);
  REQUIRE(o["observations"].size() == 20);
  for (const json& obs : o["observations"]) {
    CHECK(std::set<std::string>{"process", "network", "dns", "filesystem"}.count(obs["kind"]) == 1);
    auto t = parseRfc3339(obs["time"].get<std::string>());
    REQUIRE(t);
    CHECK(*t <= kStart);
    CHECK(*t >= kStart - Seconds(30));
    CHECK(obs["fields"].is_object());
  }
}

TEST_CASE("protocol: heartbeat replies are parsed strictly") {
  auto r = parseHeartbeatReply(
      R"({"hostname":"a","connected":true,"registered":true,"intervalSeconds":30,"nextHeartbeatSeconds":28.734})");
  REQUIRE(r.ok());
  CHECK(r->registered);
  CHECK(*r->intervalSeconds == 30);
  CHECK(*r->nextHeartbeatSeconds == Approx(28.734));
  CHECK_FALSE(parseHeartbeatReply("not json").ok());
  CHECK_FALSE(parseHeartbeatReply("[1]").ok());
  CHECK_FALSE(parseHeartbeatReply(R"({"nextHeartbeatSeconds":"soon"})").ok());
  CHECK_FALSE(parseHeartbeatReply(R"({"registered":"yes"})").ok());
  auto empty = parseHeartbeatReply("{}");
  REQUIRE(empty.ok());
  CHECK_FALSE(empty->nextHeartbeatSeconds);
}

TEST_CASE("protocol: when to heartbeat next") {
  Rng rng(5);
  SchedulePolicy policy;

  SECTION("200: after nextHeartbeatSeconds, to the millisecond") {
    auto n = nextHeartbeat(ok(28.734, true), kStart, 0, policy, rng);
    CHECK(n.outcome == Outcome::kOk);
    CHECK(n.registered);
    CHECK(n.due == kStart + Millis(28'734));
  }
  SECTION("200 without nextHeartbeatSeconds: intervalSeconds, else the default") {
    Response r{200, R"({"intervalSeconds":12})", {}, {}};
    CHECK(nextHeartbeat(r, kStart, 0, policy, rng).due == kStart + Seconds(12));
    r.body = "{}";
    CHECK(nextHeartbeat(r, kStart, 0, policy, rng).due == kStart + Seconds(30));
  }
  SECTION("the interval override wins over the Console's interval") {
    policy.intervalOverride = Millis(2'000);
    CHECK(nextHeartbeat(ok(28.7), kStart, 0, policy, rng).due == kStart + Seconds(2));
  }
  SECTION("absurd intervals are clamped") {
    CHECK(nextHeartbeat(ok(-5), kStart, 0, policy, rng).due == kStart);
    CHECK(nextHeartbeat(ok(1e12), kStart, 0, policy, rng).due == kStart + policy.maxDelay);
  }
  SECTION("429 and 503 with Retry-After: exactly then") {
    Response r{429, R"({"code":"rate_limited","message":"slow down"})", 7.0, {}};
    auto n = nextHeartbeat(r, kStart, 0, policy, rng);
    CHECK(n.outcome == Outcome::kRetryAfter);
    CHECK(n.due == kStart + Seconds(7));
    r.status = 503;
    r.retryAfterSeconds = 0.5;
    CHECK(nextHeartbeat(r, kStart, 3, policy, rng).due == kStart + Millis(500));
  }
  SECTION("failures back off exponentially with jitter, capped") {
    Response net;  // no response
    for (int i = 0; i < 50; ++i) {
      auto first = nextHeartbeat(net, kStart, 0, policy, rng);
      CHECK(first.outcome == Outcome::kFailed);
      CHECK(first.due >= kStart + Millis(500));
      CHECK(first.due <= kStart + Millis(1000));
      auto fourth = nextHeartbeat(net, kStart, 3, policy, rng).due;
      CHECK(fourth >= kStart + Millis(4000));
      CHECK(fourth <= kStart + Millis(8000));
      auto late = nextHeartbeat(net, kStart, 30, policy, rng).due;
      CHECK(late >= kStart + Seconds(15));
      CHECK(late <= kStart + Seconds(30));
    }
    Response bad{200, "oops", {}, {}};
    CHECK(nextHeartbeat(bad, kStart, 0, policy, rng).outcome == Outcome::kFailed);
    Response noRetryAfter{503, "{}", {}, {}};
    CHECK(nextHeartbeat(noRetryAfter, kStart, 0, policy, rng).outcome == Outcome::kFailed);
  }
}

TEST_CASE("protocol: Retry-After values") {
  CHECK(parseRetryAfter("7") == 7.0);
  CHECK(parseRetryAfter(" 1.5 ") == 1.5);
  CHECK_FALSE(parseRetryAfter("Wed, 21 Oct 2015 07:28:00 GMT"));
  CHECK_FALSE(parseRetryAfter("-1"));
  CHECK_FALSE(parseRetryAfter(""));
  CHECK(validateConsoleUrl("http://127.0.0.1:8084").ok());
  CHECK(validateConsoleUrl("https://console.example.com/").ok());
  CHECK_FALSE(validateConsoleUrl("127.0.0.1:8084").ok());
  CHECK_FALSE(validateConsoleUrl("http://host:1/api").ok());
}

TEST_CASE("stats: latency percentiles, progress and summary lines") {
  CHECK(latencyBucket(0) == 0);
  size_t prev = 0;
  for (int64_t us = 1; us < 50'000'000; us = us * 11 / 10 + 1) {
    size_t b = latencyBucket(us);
    CHECK(b >= prev);
    prev = b;
  }
  CHECK(prev == kLatencyBuckets - 1);

  Stats stats;
  for (int i = 0; i < 98; ++i) stats.recordHeartbeat(200, 400);  // 0.4 ms
  stats.recordHeartbeat(429, 10'000);
  stats.recordHeartbeat(0, 10'000);
  for (int i = 0; i < 98; ++i) stats.addHeartbeatOk();
  stats.addAlive(100);
  StatsSnapshot s = stats.snapshot();
  CHECK(s.heartbeats == 100);
  CHECK(s.errors() == 2);
  CHECK(s.latencyMillis(0.5) >= 0.4);
  CHECK(s.latencyMillis(0.5) < 0.5);
  CHECK(s.latencyMillis(0.99) >= 10.0);
  CHECK(s.latencyMillis(0.99) < 12.0);
  std::string line = formatProgress(s, StatsSnapshot{}, Seconds(15), Seconds(5));
  CHECK(line.starts_with("t=15s alive=100 hb=100 hb/s=20.0 ok=98 "));
  CHECK(line.find("errors=2 [net:1 429:1] p50=0.") != std::string::npos);
  std::string summary = formatSummary(s, Seconds(10));
  CHECK(summary.starts_with("summary: duration=10.0s alive=100 hb=100 avg-hb/s=10.0"));
}

TEST_CASE("shard: a ramp registers Defenders in order, then they follow the Console's timing") {
  ManualClock clock(kStart);
  Fleet fleet = testFleet();
  FakeTransport transport;
  transport.reply = [](const test::Request&) { return ok(10, true); };
  Stats stats;
  Shard shard(fleet, {}, transport, stats, clock, 1);
  Rng rng(9);
  for (int i = 0; i < 10; ++i) {
    shard.addTask(newTask(fleet, static_cast<uint32_t>(i % 5), kStart, rng), kStart + Seconds(i));
  }
  CHECK(shard.step() == kStart + Seconds(1));
  CHECK(transport.requests.size() == 1);
  clock.advance(Millis(4'500));
  CHECK(shard.step() == kStart + Seconds(5));
  CHECK(transport.requests.size() == 5);
  clock.advance(Seconds(5));  // t = 9.5 s: Defenders 5..9 have registered; Defender 0 is next
  CHECK(shard.step() == kStart + Seconds(10));
  CHECK(transport.requests.size() == 10);
  clock.advance(Millis(500));  // t = 10: the first heartbeat again
  shard.step();
  CHECK(transport.requests.size() == 11);
  CHECK(json::parse(transport.requests[10].body)["hostname"] ==
        json::parse(transport.requests[0].body)["hostname"]);
  auto s = stats.snapshot();
  CHECK(s.registered == 11);
  CHECK(s.alive == 10);
}

TEST_CASE("shard: churn stops tasks half gracefully, half abruptly, and replaces them") {
  ManualClock clock(kStart);
  Fleet fleet = testFleet();
  FakeTransport transport;
  Stats stats;
  ShardOptions options;
  options.churnPerMinute = 60;
  Shard shard(fleet, options, transport, stats, clock, 2);
  Rng rng(9);
  for (int i = 0; i < 20; ++i) shard.addTask(newTask(fleet, 0, kStart, rng), kStart);
  shard.step();
  auto before = shard.aliveHostnames();
  CHECK(transport.count(kHeartbeatPath) == 20);

  clock.advance(Seconds(10));
  shard.step();
  auto s = stats.snapshot();
  CHECK(s.disconnects == 5);
  CHECK(s.abruptStops == 5);
  CHECK(transport.count(kDisconnectPath) == 5);
  CHECK(shard.aliveCount() == 20);
  auto after = shard.aliveHostnames();
  std::set<std::string> old(before.begin(), before.end());
  int fresh = 0;
  for (const auto& h : after) fresh += old.count(h) == 0 ? 1 : 0;
  CHECK(fresh == 10);

  // The replacements register at once; the stopped tasks never heartbeat again.
  std::set<std::string> disconnected;
  for (const auto& r : transport.requests) {
    if (r.path == kDisconnectPath) disconnected.insert(json::parse(r.body)["hostname"]);
  }
  size_t sent = transport.requests.size();
  clock.advance(Millis(1));
  shard.step();
  CHECK(transport.count(kHeartbeatPath) == 30);
  clock.advance(Seconds(31));
  shard.step();
  for (size_t i = sent; i < transport.requests.size(); ++i) {
    if (transport.requests[i].path != kHeartbeatPath) continue;
    auto h = json::parse(transport.requests[i].body)["hostname"].get<std::string>();
    CHECK(disconnected.count(h) == 0);
    CHECK(std::find(after.begin(), after.end(), h) != after.end());
  }
}

TEST_CASE("shard: one-time stops after the ramp pick registered Defenders and are not replaced") {
  ManualClock clock(kStart);
  Fleet fleet = testFleet();
  FakeTransport transport;
  Stats stats;
  ShardOptions options;
  options.stopAbruptly = 3;
  options.stopGracefully = 2;
  options.stopAt = kStart + Seconds(10);
  Shard shard(fleet, options, transport, stats, clock, 3);
  Rng rng(9);
  for (int i = 0; i < 10; ++i) shard.addTask(newTask(fleet, 0, kStart, rng), kStart + Seconds(i));
  clock.advance(Seconds(9));
  shard.step();
  CHECK(shard.aliveCount() == 10);
  clock.advance(Seconds(1));
  shard.step();
  CHECK(shard.aliveCount() == 5);
  CHECK(transport.count(kDisconnectPath) == 2);
  clock.advance(Seconds(60));
  shard.step();
  CHECK(shard.aliveCount() == 5);
  auto s = stats.snapshot();
  CHECK(s.abruptStops == 3);
  CHECK(s.disconnects == 2);
  CHECK(s.alive == 5);
}

TEST_CASE("shard: observations follow the per-Defender rate; disconnectAll says goodbye") {
  ManualClock clock(kStart);
  Fleet fleet = testFleet();
  FakeTransport transport;
  transport.reply = [](const test::Request& r) {
    if (r.path == kHeartbeatPath) return ok(30);
    return Response{200, R"({"accepted":1})", {}, {}};
  };
  Stats stats;
  ShardOptions options;
  options.observationsPerMinute = 4;
  Shard shard(fleet, options, transport, stats, clock, 4);
  Rng rng(9);
  for (int i = 0; i < 3; ++i) shard.addTask(newTask(fleet, 1, kStart, rng), kStart);
  shard.step();
  CHECK(transport.count(kObservationsPath) == 0);
  clock.advance(Seconds(30));
  shard.step();
  CHECK(transport.count(kObservationsPath) == 3);
  CHECK(stats.snapshot().observations == 6);  // 4/min over 30 s, 3 Defenders

  shard.disconnectAll();
  CHECK(transport.count(kDisconnectPath) == 3);
  CHECK(shard.aliveCount() == 0);
  CHECK(stats.snapshot().alive == 0);
}

TEST_CASE("shard: a Defender honours Retry-After and backs off on failures") {
  ManualClock clock(kStart);
  Fleet fleet = testFleet();
  FakeTransport transport;
  int calls = 0;
  transport.reply = [&calls](const test::Request&) {
    ++calls;
    if (calls == 1) return Response{429, R"({"code":"rate_limited"})", 7.0, {}};
    if (calls == 2) return Response{0, "", {}, "Connection"};
    return ok(30, true);
  };
  Stats stats;
  Shard shard(fleet, {}, transport, stats, clock, 5);
  Rng rng(9);
  shard.addTask(newTask(fleet, 0, kStart, rng), kStart);
  std::string host = shard.aliveHostnames().at(0);
  CHECK(shard.step() == kStart + Seconds(7));
  clock.advance(Millis(6'999));
  shard.step();
  CHECK(calls == 1);
  clock.advance(Millis(1));
  TimePoint retry = shard.step();  // network failure: back off 0.5–1 s
  CHECK(calls == 2);
  CHECK(retry >= clock.now() + Millis(500));
  CHECK(retry <= clock.now() + Millis(1000));
  clock.set(retry);
  CHECK(shard.step() == retry + Seconds(30));
  CHECK(*shard.nextDueOf(host) == retry + Seconds(30));
  auto s = stats.snapshot();
  CHECK(s.byStatus[429] == 1);
  CHECK(s.byStatus[0] == 1);
  CHECK(s.heartbeatsOk == 1);
}

TEST_CASE("simulator: options are validated once") {
  SimulatorConfig c;
  c.http.connections = 2;
  CHECK(validateConfig(c).ok());
  c.http.connections = 1;
  CHECK(validateConfig(c).error().field == "connections");
  c = {};
  c.http.connections = 2;
  c.stopAbruptly = 60;
  c.stopGracefully = 60;
  CHECK(validateConfig(c).error().field == "stop-abruptly");
  c = {};
  c.http.connections = 2;
  c.http.consoleUrl = "localhost:8084";
  CHECK(validateConfig(c).error().field == "console");
  c = {};
  c.http.connections = 2;
  c.intervalOverrideSeconds = 0;
  CHECK(validateConfig(c).error().field == "interval-override");
}
