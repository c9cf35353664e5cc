// GET /api/v1/defenders/history against the real Console (docs/api.md "Fleet history"): samples
// taken on a ManualClock, evictions counted by category, ranges and refused parameters.
#include <catch2/catch.hpp>

#include <cstdlib>

#include <httplib.h>

#include <nlohmann/json.hpp>

#include "auth/crypto.h"
#include "auth/service.h"
#include "cleanup/sweeper.h"
#include "common/time_format.h"
#include "history/fleet_history.h"
#include "main/console_app.h"

using namespace dc;
using namespace std::chrono_literals;
using nlohmann::json;

TEST_CASE("fleet history API: per-minute counts by category, evictions, ranges") {
  const TimePoint t0 = TimePoint(Millis(1'800'000'000'000LL - 1'800'000'000'000LL % 21'600'000));
  ManualClock clock{t0};
  ConsoleConfig c;
  // Either Console front (tests/CMakeLists.txt runs both).
  if (const char* front = std::getenv("DC_TEST_CONSOLE_FRONT")) c.consoleFront = front;
  c.database = ":memory:";
  c.host = "127.0.0.1";
  c.consolePort = 0;
  c.defenderPort = 0;
  c.uiDir = DC_SOURCE_DIR "/web/ui";
  c.flushInterval = Millis(50);
  c.plainHttp = true;
  c.adminPassword = "history-admin-password";
  c.passwordIterations = 1000;
  ConsoleApp app(c, clock, "test");
  REQUIRE(app.start(/*startScheduler=*/false).ok());
  REQUIRE(app.auth().createUser("auditor1", "auditor1-password", auth::Role::kAuditor).ok());
  const httplib::Headers auditor = {
      {"Authorization", "Basic " + auth::base64("auditor1:auditor1-password")}};
  httplib::Client console("127.0.0.1", app.consolePort());
  httplib::Client channel("127.0.0.1", app.defenderPort());
  auto enrol = app.auth().issueCredential("", "test");
  REQUIRE(enrol.ok());
  for (const char* host : {"a1", "a2", "a3"})
    REQUIRE(channel
                .Post("/api/v1/defender/heartbeat", {{"Authorization", "Bearer " + enrol->secret}},
                      json{{"hostname", host},
                           {"type", "fargate"},
                           {"version", "32.07.123"},
                           {"appID", "checkout:0b7e6c4e-3f4b-4b7b-9d3c-1a2b3c4d5e6f"}}
                          .dump(),
                      "application/json")
                ->status == 200);
  REQUIRE(app.fleetHistory().sample(clock.now()).ok());
  // Three hours on, all three are past the App-Embedded hour: the sweep evicts them.
  clock.advance(3h);
  REQUIRE(app.sweeper().sweep(clock.now())->evicted == 3);
  REQUIRE(app.fleetHistory().sample(clock.now()).ok());

  auto get = [&](const std::string& query) {
    auto r = console.Get(("/api/v1/defenders/history" + query).c_str(), auditor);
    REQUIRE(r);
    INFO(r->body);
    return std::make_pair(r->status, json::parse(r->body));
  };
  auto [status, day] = get("?range=day");
  INFO(day.dump());
  REQUIRE(status == 200);
  CHECK(day.at("range") == "day");
  CHECK(day.at("bucketSeconds") == 600);
  CHECK(day.at("retentionDays") == 30);
  CHECK(day.at("to") == formatRfc3339(clock.now()));
  const json& samples = day.at("samples");
  REQUIRE(samples.size() == 2);
  CHECK(samples[0].at("time") == formatRfc3339(t0));
  CHECK(samples[0].at("counts").at("appEmbedded") ==
        json{{"connected", 3}, {"disconnected", 0}, {"evicted", 0}});
  CHECK(samples[1].at("time") == formatRfc3339(t0 + 3h));
  CHECK(samples[1].at("counts").at("appEmbedded") ==
        json{{"connected", 0}, {"disconnected", 0}, {"evicted", 3}});
  CHECK(samples[1].at("counts").at("host").at("connected") == 0);

  // The default range is the last hour: only the newer sample.
  auto [hourStatus, hour] = get("");
  REQUIRE(hourStatus == 200);
  CHECK(hour.at("range") == "hour");
  CHECK(hour.at("samples").size() == 1);

  for (auto [query, field] : std::vector<std::pair<std::string, std::string>>{
           {"?range=week", "range"}, {"?range=day&since=x", "since"}}) {
    auto [bad, body] = get(query);
    CHECK(bad == 400);
    CHECK(body.at("code") == "invalid_parameter");
    CHECK(body.at("field") == field);
  }
  CHECK(console.Get("/api/v1/defenders/history")->status == 401);
}
