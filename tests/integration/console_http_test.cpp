// The real Console over HTTP on port 0, with a manual clock (no sleeps).
#include <catch2/catch.hpp>

#include <httplib.h>

#include <set>

#include <nlohmann/json.hpp>

#include "auth/service.h"
#include "cleanup/sweeper.h"
#include "inventory/inventory.h"
#include "main/console_app.h"

using namespace dc;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

const TimePoint kT0 = TimePoint(Millis(1'800'000'000'000));
const std::string kAppId = "checkout:0b7e6c4e-3f4b-4b7b-9d3c-1a2b3c4d5e6f";
const std::string kAdminPassword = "integration-admin-password";

struct RunningConsole {
  ManualClock clock{kT0};
  ConsoleApp app;
  httplib::Client console;
  httplib::Client channel;

  static ConsoleConfig config() {
    ConsoleConfig c;
    c.database = ":memory:";
    c.host = "127.0.0.1";
    c.consolePort = 0;
    c.defenderPort = 0;
    c.uiDir = "/nonexistent";
    c.flushInterval = Millis(50);
    c.plainHttp = true;
    c.adminPassword = kAdminPassword;
    c.passwordIterations = 1000;
    c.pauseThreshold = Millis(0);  // the manual clock jumps; a slow machine must not look paused
    return c;
  }

  static int started(ConsoleApp& app) {
    const Status st = app.start(/*startScheduler=*/false);
    if (!st.ok()) FAIL("Console did not start: " << st.error().message);
    return app.consolePort();
  }

  RunningConsole()
      : app(config(), clock, "test"),
        console("127.0.0.1", started(app)),
        channel("127.0.0.1", app.defenderPort()) {
    console.set_basic_auth("admin", kAdminPassword);
    // The Console-wide enrolment credential: this suite reports Defenders of several types.
    auto credential = app.auth().issueCredential("", "console_http_test");
    REQUIRE(credential.ok());
    channel.set_bearer_token_auth(credential->secret);
  }

  httplib::Result heartbeat(const json& body) {
    return channel.Post("/api/v1/defender/heartbeat", body.dump(), "application/json");
  }
  json list(const std::string& query, long long* total = nullptr) {
    auto r = console.Get(("/api/v1/defenders" + query).c_str());
    REQUIRE(r);
    INFO(r->body);
    REQUIRE(r->status == 200);
    if (total) *total = std::stoll(r->get_header_value("Total-Count"));
    return json::parse(r->body);
  }
};

json fargate(const std::string& host, const std::string& cluster = "prod") {
  return {{"hostname", host},
          {"type", "fargate"},
          {"appID", kAppId},
          {"cluster", cluster},
          {"version", "32.07.123"},
          {"cloudMetadata",
           {{"provider", "aws"},
            {"accountID", "123456789012"},
            {"region", "us-east-1"},
            {"resourceID", "arn:aws:ecs:us-east-1:123456789012:task/" + cluster + "/" + host}}}};
}

}  // namespace

TEST_CASE("HTTP: heartbeat → list → type=fargate → connected=false after grace → delete") {
  RunningConsole c;
  auto r = c.heartbeat(fargate("task-a"));
  REQUIRE(r);
  REQUIRE(r->status == 200);
  auto reply = json::parse(r->body);
  CHECK(reply["registered"] == true);
  CHECK(reply["intervalSeconds"] == 30.0);
  CHECK(reply["nextHeartbeatSeconds"].get<double>() >= 22.5);
  CHECK(reply["nextHeartbeatSeconds"].get<double>() <= 30.0);
  REQUIRE(
      c.heartbeat({{"hostname", "node-1"}, {"type", "daemonset"}, {"cluster", "k8s"}})->status ==
      200);

  long long total = 0;
  auto all = c.list("", &total);
  CHECK(total == 2);
  // Responses carry the Console's clock (manual here: 2027-01-15T08:00:00Z).
  CHECK(c.console.Get("/api/v1/version")->get_header_value("Date") ==
        "Fri, 15 Jan 2027 08:00:00 GMT");
  auto fg = c.list("?type=fargate&connected=true", &total);
  CHECK(total == 1);
  REQUIRE(fg.size() == 1);
  CHECK(fg[0]["hostname"] == "task-a");
  CHECK(fg[0]["category"] == "appEmbedded");
  CHECK(fg[0]["typeLabel"] == "Fargate");
  CHECK(fg[0]["appID"] == kAppId);
  CHECK(fg[0]["cloudMetadata"]["awsExecutionEnv"] == "");  // always present
  CHECK(fg[0]["features"].is_object());
  CHECK(fg[0]["disconnectedAt"].is_null());

  // The node keeps heartbeating; the task goes silent past the grace period (90 s).
  c.clock.advance(60s);
  REQUIRE(c.heartbeat({{"hostname", "node-1"}, {"type", "daemonset"}})->status == 200);
  c.clock.advance(31s);
  auto down = c.list("?connected=false", &total);
  CHECK(total == 1);
  REQUIRE(down.size() == 1);
  CHECK(down[0]["hostname"] == "task-a");
  CHECK(down[0]["connected"] == false);
  CHECK(down[0]["disconnectedAt"] == "2027-01-15T08:01:30.000Z");
  CHECK(down[0]["removalAt"] == "2027-01-15T09:01:30.000Z");
  c.list("?type=fargate&connected=true", &total);
  CHECK(total == 0);

  auto del = c.console.Delete("/api/v1/defenders/TASK-A");
  REQUIRE(del);
  CHECK(del->status == 200);
  c.list("", &total);
  CHECK(total == 1);
  CHECK(c.console.Delete("/api/v1/defenders/task-a")->status == 404);
  auto audit = c.console.Get("/api/v1/audit/defenders");
  CHECK(json::parse(audit->body)[0]["hostname"] == "task-a");
}

TEST_CASE(
    "HTTP: paging 300 Defenders returns each exactly once for every sort, while 50 heartbeat") {
  RunningConsole c;
  for (int i = 0; i < 300; ++i) {
    char host[16];
    std::snprintf(host, sizeof host, "task-%03d", i);
    REQUIRE(c.heartbeat(fargate(host, i % 2 ? "blue" : "green"))->status == 200);
  }
  for (const char* sort : {"hostname", "type", "category", "version", "cluster", "appID",
                           "lastModified", "connected", "lastSeen"}) {
    for (const char* reverse : {"false", "true"}) {
      INFO(sort << " reverse=" << reverse);
      std::multiset<std::string> seen;
      for (int offset = 0; offset < 300; offset += 50) {
        // 50 of them heartbeat between pages (lastSeen moves; lastModified does not).
        c.clock.advance(1s);
        for (int i = 0; i < 50; ++i) {
          char host[16];
          std::snprintf(host, sizeof host, "task-%03d", i * 6);
          // Same cluster (and so task ARN) as at registration: another ARN is refused 409.
          REQUIRE(c.heartbeat(fargate(host, (i * 6) % 2 ? "blue" : "green"))->status == 200);
        }
        long long total = 0;
        auto page = c.list(
            "?limit=50&offset=" + std::to_string(offset) + "&sort=" + sort + "&reverse=" + reverse,
            &total);
        CHECK(total == 300);
        for (const auto& d : page) seen.insert(d["hostname"].get<std::string>());
      }
      CHECK(seen.size() == 300);
      CHECK(std::set<std::string>(seen.begin(), seen.end()).size() == 300);
    }
  }
}

TEST_CASE("HTTP: a Fargate hostname from another task ARN gets 409 identity_conflict") {
  RunningConsole c;
  REQUIRE(c.heartbeat(fargate("task-a", "prod"))->status == 200);
  auto taken = c.heartbeat(fargate("task-a", "other"));  // another cluster: another task ARN
  REQUIRE(taken);
  CHECK(taken->status == 409);
  CHECK(json::parse(taken->body)["code"] == "identity_conflict");
  CHECK(json::parse(taken->body)["field"] == "cloudMetadata.resourceID");
  const json obs{{"hostname", "task-a"},
                 {"resourceID", "arn:aws:ecs:us-east-1:123456789012:task/other/task-a"},
                 {"observations", {{{"kind", "process"}, {"time", "2026-11-29T19:35:41Z"},
                                    {"fields", json::object()}}}}};
  auto refused = c.channel.Post("/api/v1/defender/observations", obs.dump(), "application/json");
  CHECK(refused->status == 409);
  auto badType = fargate("task-b");
  badType["cloudMetadata"]["resourceID"] = 42;
  auto bad = c.heartbeat(badType);
  CHECK(bad->status == 400);
  CHECK(json::parse(bad->body)["field"] == "cloudMetadata.resourceID");
  auto row = json::parse(c.console.Get("/api/v1/defenders/task-a")->body);
  CHECK(row["cloudMetadata"]["resourceID"] ==
        "arn:aws:ecs:us-east-1:123456789012:task/prod/task-a");
  CHECK(row["cluster"] == "prod");
  CHECK(c.console.Get("/metrics")->body.find("dc_identity_conflicts_total 2\n") !=
        std::string::npos);
}

TEST_CASE("HTTP: bad input gets a 4xx JSON error and leaves the inventory unchanged") {
  RunningConsole c;
  REQUIRE(c.heartbeat(fargate("keep"))->status == 200);
  const std::string big(2 * 1024 * 1024, 'x');
  struct Case {
    std::string name, body;
    int status;
    std::string code;
  };
  const std::vector<Case> cases = {
      {"malformed JSON", R"({"hostname": "x", "type": )", 400, "invalid_json"},
      {"not an object", R"(["x"])", 400, "invalid_body"},
      {"unknown type", R"({"hostname": "x", "type": "toaster"})", 400, "unknown_type"},
      {"missing hostname", R"({"type": "fargate", "appID": ")" + kAppId + R"("})", 400,
       "missing_field"},
      {"bad App ID", R"({"hostname": "x", "type": "fargate", "appID": "web:not-a-uuid"})", 400,
       "invalid_app_id"},
      {"App ID missing for fargate", R"({"hostname": "x", "type": "fargate"})", 400,
       "missing_field"},
      {"hostname wrong type", R"({"hostname": 7, "type": "fargate"})", 400, "invalid_field"},
      {"hostname with a slash", R"({"hostname": "a/b", "type": "docker"})", 400, "invalid_field"},
      {"too deep", std::string(100, '[') + std::string(100, ']'), 400, "too_deep"},
      {"2 MiB body", R"({"hostname": "x", "type": "docker", "version": ")" + big + "\"}", 413,
       "body_too_large"},
  };
  for (const auto& k : cases) {
    INFO(k.name);
    auto r = c.channel.Post("/api/v1/defender/heartbeat", k.body, "application/json");
    REQUIRE(r);
    CHECK(r->status == k.status);
    auto err = json::parse(r->body, nullptr, false);
    REQUIRE(err.is_object());
    CHECK(err["code"] == k.code);
    CHECK_FALSE(err["message"].get<std::string>().empty());
  }
  auto missing = json::parse(
      c.channel.Post("/api/v1/defender/heartbeat", R"({"type":"docker"})", "application/json")
          ->body);
  CHECK(missing["field"] == "hostname");

  long long total = 0;
  auto all = c.list("", &total);
  CHECK(total == 1);
  CHECK(all[0]["hostname"] == "keep");

  // Console API parameters are validated too.
  for (const char* q : {"?limit=0", "?limit=251", "?offset=-1", "?sort=color", "?connected=maybe",
                        "?type=fargate,toaster", "?reverse=2x", "?search=%00"}) {
    INFO(q);
    auto r = c.console.Get((std::string("/api/v1/defenders") + q).c_str());
    CHECK(r->status == 400);
    CHECK(json::parse(r->body).contains("field"));
  }
  auto s = c.console.Post("/api/v1/settings/defender", R"({"disconnectPeriodDays": 0})",
                          "application/json");
  CHECK(s->status == 400);
  CHECK(json::parse(c.console.Get("/api/v1/settings/defender")->body)["disconnectPeriodDays"] == 1);
  CHECK(c.console.Get("/api/v1/nothing-here")->status == 404);
  CHECK(c.console.Get("/api/v1/defenders/download?offset=-1")->status == 400);
}

TEST_CASE("HTTP: type filter takes repeated and comma-separated values; search spans fields") {
  RunningConsole c;
  REQUIRE(c.heartbeat(fargate("t1", "payments"))->status == 200);
  REQUIRE(c.heartbeat({{"hostname", "e1"},
                       {"type", "appEmbedded"},
                       {"appID", "api:1b7e6c4e-3f4b-4b7b-9d3c-1a2b3c4d5e6f"}})
              ->status == 200);
  REQUIRE(c.heartbeat({{"hostname", "h1"}, {"type", "serverLinux"}})->status == 200);
  long long total = 0;
  c.list("?type=fargate&type=appEmbedded", &total);
  CHECK(total == 2);
  c.list("?type=fargate,serverLinux", &total);
  CHECK(total == 2);
  c.list("?search=PAYMENT", &total);
  CHECK(total == 1);
  c.list("?search=api:", &total);
  CHECK(total == 1);
  c.list("?cluster=payments", &total);
  CHECK(total == 1);
  c.list("?appID=" + kAppId, &total);
  CHECK(total == 1);
  auto names = c.console.Get("/api/v1/defenders/names?type=serverLinux");
  CHECK(names->get_header_value("Total-Count") == "1");
  CHECK(json::parse(names->body) == json::array({"h1"}));
  auto summary = json::parse(c.console.Get("/api/v1/defenders/summary")->body);
  for (const auto& row : summary)
    if (row["category"] == "appEmbedded") CHECK(row["connected"] == 2);
}

TEST_CASE("HTTP: observations, profiles, graceful disconnect, eviction after one hour") {
  RunningConsole c;
  REQUIRE(c.heartbeat(fargate("task-x"))->status == 200);
  json obs = {
      {"hostname", "task-x"},
      {"observations",
       {{{"kind", "process"}, {"time", "2027-01-15T08:00:00Z"}, {"fields", {{"path", "/bin/sh"}}}},
        {{"kind", "dns"}, {"time", "2027-01-15T08:00:01Z"}, {"fields", {{"query", "a.io"}}}}}}};
  auto r = c.channel.Post("/api/v1/defender/observations", obs.dump(), "application/json");
  REQUIRE(r->status == 200);
  CHECK(json::parse(r->body)["accepted"] == 2);
  auto bad = obs;
  bad["observations"][0]["kind"] = "telepathy";
  CHECK(c.channel.Post("/api/v1/defender/observations", bad.dump(), "application/json")->status ==
        400);
  bad = obs;
  bad["hostname"] = "unknown-task";
  CHECK(c.channel.Post("/api/v1/defender/observations", bad.dump(), "application/json")->status ==
        404);

  auto profile = json::parse(c.console.Get("/api/v1/profiles/app-embedded/task-x")->body);
  CHECK(profile["appID"] == kAppId);
  CHECK(profile["observationsTotal"] == 2);
  CHECK(profile["observations"][0]["kind"] == "dns");  // newest first
  auto profiles = c.console.Get(("/api/v1/profiles/app-embedded?appID=" + kAppId).c_str());
  CHECK(profiles->get_header_value("Total-Count") == "1");

  auto d =
      c.channel.Post("/api/v1/defender/disconnect", R"({"hostname":"task-x"})", "application/json");
  REQUIRE(d->status == 200);
  long long total = 0;
  c.list("?connected=false", &total);
  CHECK(total == 1);

  c.clock.advance(1h - 1s);
  REQUIRE(c.app.sweeper().sweep(c.clock.now()).ok());
  c.list("", &total);
  CHECK(total == 1);  // 59:59 stays
  c.clock.advance(1s);
  auto report = c.app.sweeper().sweep(c.clock.now());
  REQUIRE(report.ok());
  CHECK(report->evicted == 1);
  CHECK(report->observationsRemoved == 2);
  c.list("", &total);
  CHECK(total == 0);
  CHECK(c.console.Get("/api/v1/profiles/app-embedded/task-x")->status == 404);
  auto audit = json::parse(c.console.Get("/api/v1/audit/defenders")->body);
  REQUIRE(audit.size() == 1);
  CHECK(audit[0]["actor"] == "scheduler");
  CHECK(audit[0]["observationsRemoved"] == 2);
  auto metrics = c.console.Get("/metrics")->body;
  CHECK(metrics.find("dc_evictions_total 1") != std::string::npos);
}

TEST_CASE("HTTP: CSV download is streamed, filtered and neutralises formulas") {
  RunningConsole c;
  for (int i = 0; i < 1200; ++i)
    REQUIRE(c.heartbeat(fargate("t" + std::to_string(i), "=cmd|' /C calc'!A0"))->status == 200);
  REQUIRE(c.heartbeat({{"hostname", "n1"}, {"type", "docker"}})->status == 200);
  auto csv = c.console.Get("/api/v1/defenders/download?type=fargate");
  REQUIRE(csv);
  CHECK(csv->status == 200);
  CHECK(csv->get_header_value("Content-Type").rfind("text/csv", 0) == 0);
  size_t lines = 0;
  for (char ch : csv->body) lines += ch == '\n';
  CHECK(lines == 1201);  // header + every Fargate Defender, across several internal pages
  CHECK(csv->body.find(",'=cmd|' /C calc'!A0,") != std::string::npos);
  CHECK(csv->body.find(",=cmd") == std::string::npos);
}
