// The real Console over HTTP on port 0, with a manual clock (no sleeps).
#include <catch2/catch.hpp>

#include <httplib.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <regex>
#include <set>

#include <nlohmann/json.hpp>

#include "auth/crypto.h"
#include "auth/service.h"
#include "cleanup/sweeper.h"
#include "inventory/inventory.h"
#include "main/config.h"
#include "main/console_app.h"
#include "tests/support/numbered.h"

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
    // The same suite against either defender-channel front (tests/CMakeLists.txt runs both).
    if (const char* front = std::getenv("DC_TEST_DEFENDER_FRONT")) c.defenderFront = front;
    if (const char* front = std::getenv("DC_TEST_CONSOLE_FRONT")) c.consoleFront = front;
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
  auto again = c.console.Delete("/api/v1/defenders/task-a");  // idempotent: a no-op
  CHECK(again->status == 200);
  CHECK(json::parse(again->body)["alreadyRemoved"] == true);
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
        auto page = c.list(dc::testing::numbered("?limit=50&offset=", offset) + "&sort=" + sort +
                               "&reverse=" + reverse,
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
  const json obs{
      {"hostname", "task-a"},
      {"resourceID", "arn:aws:ecs:us-east-1:123456789012:task/other/task-a"},
      {"observations",
       {{{"kind", "process"}, {"time", "2026-11-29T19:35:41Z"}, {"fields", json::object()}}}}};
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
      {"hostname a dot segment", R"({"hostname": "..", "type": "docker"})", 400, "invalid_field"},
      {"hostname one dot", R"({"hostname": ".", "type": "docker"})", 400, "invalid_field"},
      {"cloudMetadata.accountID a number",
       R"({"hostname": "h", "type": "docker", "cloudMetadata": {"accountID": 5}})", 400,
       "invalid_field"},
      {"too deep", std::string(100, '[') + std::string(100, ']'), 400, "too_deep"},
      {"NUL in a value", R"({"hostname": "x", "type": "docker", "cluster": "c\u0000x"})", 400,
       "invalid_text"},
      {"NUL in a nested key",
       R"({"hostname": "x", "type": "docker", "cloudMetadata": {"a\u0000": "b"}})", 400,
       "invalid_text"},
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
  REQUIRE(summary.size() == 4);  // one row per category, present even when empty
  std::map<std::string, json> rows;
  for (const auto& row : summary) rows[row["category"].get<std::string>()] = row;
  REQUIRE(rows.count("appEmbedded") == 1);
  CHECK(rows["appEmbedded"]["connected"] == 2);
  CHECK(rows["appEmbedded"]["deployed"] == 2);
  CHECK(rows["host"]["connected"] == 1);
  CHECK(rows["container"]["deployed"] == 0);
}

TEST_CASE("HTTP: search spans task ARN, image and version; cluster substring; filter counts",
          "[finding]") {
  RunningConsole c;
  json a = fargate("task-a", "payments-east");
  a["cloudMetadata"]["image"] = "registry.example/checkout-web:7.1";
  a["version"] = "33.01.002";
  REQUIRE(c.heartbeat(a)->status == 200);
  REQUIRE(c.heartbeat(fargate("task-b", "payments-west"))->status == 200);
  REQUIRE(
      c.heartbeat({{"hostname", "h1"}, {"type", "serverLinux"}, {"cluster", "batch"}})->status ==
      200);
  long long total = 0;
  // The task ARN (cloudMetadata.resourceID) names the cluster and the task id.
  auto byArn = c.list("?search=task/payments-west/", &total);
  CHECK(total == 1);
  REQUIRE(byArn.size() == 1);
  CHECK(byArn[0]["hostname"] == "task-b");
  c.list("?search=CHECKOUT-WEB:7", &total);  // the image, case-insensitive
  CHECK(total == 1);
  c.list("?search=33.01", &total);  // the version
  CHECK(total == 1);
  c.list("?search=no-such-thing", &total);
  CHECK(total == 0);
  c.list("?search=_", &total);  // LIKE wildcards match literally
  CHECK(total == 0);
  c.list("?clusterContains=PAYMENTS", &total);
  CHECK(total == 2);
  c.list("?clusterContains=west", &total);
  CHECK(total == 1);
  c.list("?cluster=payments", &total);  // `cluster` stays exact
  CHECK(total == 0);
  auto bad = c.console.Get("/api/v1/defenders?clusterContains=%01");
  REQUIRE(bad);
  CHECK(bad->status == 400);
  CHECK(json::parse(bad->body)["field"] == "clusterContains");

  auto clusters = c.console.Get("/api/v1/defenders/clusters");
  REQUIRE(clusters);
  REQUIRE(clusters->status == 200);
  CHECK(json::parse(clusters->body) ==
        json::parse(R"([{"cluster":"batch","count":1},{"cluster":"payments-east","count":1},)"
                    R"({"cluster":"payments-west","count":1}])"));
  auto unknown = c.console.Get("/api/v1/defenders/clusters?cluster=x");
  REQUIRE(unknown);
  CHECK(unknown->status == 400);

  REQUIRE(c.channel
              .Post("/api/v1/defender/disconnect", json{{"hostname", "task-b"}}.dump(),
                    "application/json")
              ->status == 200);
  auto types = c.console.Get("/api/v1/defenders/types");
  REQUIRE(types);
  REQUIRE(types->status == 200);
  const json rows = json::parse(types->body);
  CHECK(rows.size() == 17);  // every type, zeros included
  std::map<std::string, json> byType;
  for (const auto& r : rows) byType[r["type"].get<std::string>()] = r;
  CHECK(byType["fargate"] == json{{"type", "fargate"},
                                  {"category", "appEmbedded"},
                                  {"deployed", 2},
                                  {"connected", 1},
                                  {"disconnected", 1}});
  CHECK(byType["serverLinux"]["connected"] == 1);
  CHECK(byType["docker"]["deployed"] == 0);
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
    REQUIRE(c.heartbeat(fargate(dc::testing::numbered("t", i), "=cmd|' /C calc'!A0"))->status ==
            200);
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

// ---------------------------------------------------------------------------------------------
// The vendor's automation (issue 15): connectivity check, version, Defender image, install
// bundle; outdated Defenders marked, filtered and counted against --defender-version.

TEST_CASE("HTTP: GET /api/v1/_ping answers 200 without credentials", "[vendor]") {
  RunningConsole c;
  httplib::Client anonymous("127.0.0.1", c.app.consolePort());
  auto r = anonymous.Get("/api/v1/_ping");
  REQUIRE(r);
  CHECK(r->status == 200);
  // Everything else still needs a user.
  CHECK(anonymous.Get("/api/v1/version")->status == 401);
}

TEST_CASE("HTTP: version, image name and image tag carry the deployed Defender version",
          "[vendor]") {
  RunningConsole c;
  auto v = c.console.Get("/api/v1/version");
  REQUIRE(v);
  REQUIRE(v->status == 200);
  const json version = json::parse(v->body);
  REQUIRE(version.is_string());
  CHECK(version == "34.01.132");  // the documented default of --defender-version
  CHECK(v->get_header_value("X-Console-Version") == "test");

  auto img = c.console.Get("/api/v1/defenders/image-name");
  REQUIRE(img);
  REQUIRE(img->status == 200);
  const json image = json::parse(img->body);
  REQUIRE(image.is_string());
  // What the vendor's automation does: extract NN_NN_NNN from the tag, compare with version.
  std::smatch m;
  const std::string text = image.get<std::string>();
  REQUIRE(std::regex_search(text, m, std::regex(R"(:defender_(\d+)_(\d+)_(\d+)$)")));
  CHECK(m[1].str() + "." + m[2].str() + "." + m[3].str() == version.get<std::string>());

  // The embed flow writes the same image into the sidecar.
  auto protectedTask =
      c.console.Post("/api/v1/defenders/fargate.json?consoleaddr=console.example.com",
                     R"({"family":"web","requiresCompatibilities":["FARGATE"],)"
                     R"("networkMode":"awsvpc","cpu":"256","memory":"512",)"
                     R"("containerDefinitions":[{"name":"app","image":"nginx",)"
                     R"("entryPoint":["/run"]}]})",
                     "application/json");
  REQUIRE(protectedTask);
  INFO(protectedTask->body);
  REQUIRE(protectedTask->status == 200);
  bool found = false;
  const json task = json::parse(protectedTask->body);
  for (const auto& ctr : task["containerDefinitions"])
    if (ctr["name"] == "TwistlockDefender") found = ctr["image"] == image;
  CHECK(found);
}

TEST_CASE("HTTP: --defender-version is validated and sets what the Console reports", "[vendor]") {
  const char* ok[] = {"defender-console", "--defender-version", "33.03.138"};
  auto c = parseConfig(3, ok, "test");
  REQUIRE(c.ok());
  CHECK(formatVersion(c->defenderVersion) == "33.03.138");
  for (const char* bad : {"34.1.132", "34.01", "v34.01.132", "latest"}) {
    const char* argv[] = {"defender-console", "--defender-version", bad};
    auto e = parseConfig(3, argv, "test");
    REQUIRE_FALSE(e.ok());
    CHECK(e.error().code == "invalid_config");
    CHECK(e.error().field == "defender-version");
    CHECK(e.error().message.find("--defender-version") != std::string::npos);
  }
  ::setenv("DC_DEFENDER_VERSION", "1.2.3", 1);
  const char* none[] = {"defender-console"};
  auto fromEnv = parseConfig(1, none, "test");
  ::unsetenv("DC_DEFENDER_VERSION");
  REQUIRE_FALSE(fromEnv.ok());
  CHECK(fromEnv.error().message.find("DC_DEFENDER_VERSION") != std::string::npos);

  // A Console started with it reports it and tags its sidecar image with it.
  ManualClock clock{kT0};
  ConsoleConfig config = RunningConsole::config();
  config.defenderVersion = c->defenderVersion;
  ConsoleApp app(config, clock, "test");
  httplib::Client console("127.0.0.1", RunningConsole::started(app));
  console.set_basic_auth("admin", kAdminPassword);
  CHECK(json::parse(console.Get("/api/v1/version")->body) == "33.03.138");
  CHECK(json::parse(console.Get("/api/v1/defenders/image-name")->body) ==
        "defender-console/fargate-defender:defender_33_03_138");
}

TEST_CASE("HTTP: install bundle: vendor shape, a working credential, its scope, bad input",
          "[vendor]") {
  RunningConsole c;
  auto credentialsNow = [&] { return json::parse(c.console.Get("/api/v1/credentials")->body); };
  const size_t before = credentialsNow().size();

  // Bad input: 400 naming the parameter, and no credential issued.
  struct Bad {
    std::string query, code, field;
  };
  for (const auto& bad : {Bad{"", "missing_parameter", "consoleaddr"},
                          Bad{"?consoleaddr=https://x", "invalid_parameter", "consoleaddr"},
                          Bad{"?consoleaddr=x&defenderType=bogus", "unknown_type", "defenderType"},
                          Bad{"?consoleaddr=x&appID=no-uuid", "invalid_app_id", "appID"}}) {
    auto r = c.console.Get(("/api/v1/defenders/install-bundle" + bad.query).c_str());
    REQUIRE(r);
    INFO(bad.query << " -> " << r->body);
    CHECK(r->status == 400);
    const json e = json::parse(r->body);
    CHECK(e["code"] == bad.code);
    CHECK(e["field"] == bad.field);
  }
  CHECK(credentialsNow().size() == before);

  auto decode = [](const json& reply) {
    auto text = auth::base64Decode(reply["installBundle"].get<std::string>());
    REQUIRE(text);
    return json::parse(*text);
  };

  // Console-wide (enrolment): any App ID may report with it.
  auto r = c.console.Get(
      "/api/v1/defenders/install-bundle?consoleaddr=console.example.com&defenderType=fargate");
  REQUIRE(r);
  REQUIRE(r->status == 200);
  CHECK(r->get_header_value("Cache-Control") == "no-store");
  const json reply = json::parse(r->body);
  const json bundle = decode(reply);
  // ws:// under --plain-http; the port is the configured one (this suite binds port 0).
  CHECK(reply["wsAddress"] == "ws://console.example.com:" + bundle["defenderPort"].dump());
  CHECK(bundle["consoleHost"] == "console.example.com");
  CHECK(bundle["appID"] == "");
  httplib::Client defender("127.0.0.1", c.app.defenderPort());
  defender.set_bearer_token_auth(bundle["credential"].get<std::string>());
  CHECK(defender.Post("/api/v1/defender/heartbeat", fargate("bundle-1").dump(), "application/json")
            ->status == 200);

  // Scoped to an App ID: another App ID is refused.
  const std::string other = "payments:7a1d2c3b-4e5f-4a6b-8c7d-9e0f1a2b3c4d";
  auto scoped = c.console.Get(
      ("/api/v1/defenders/install-bundle?consoleaddr=console.example.com&appID=" + other).c_str());
  REQUIRE(scoped);
  REQUIRE(scoped->status == 200);
  const json scopedBundle = decode(json::parse(scoped->body));
  CHECK(scopedBundle["appID"] == other);
  httplib::Client scopedDefender("127.0.0.1", c.app.defenderPort());
  scopedDefender.set_bearer_token_auth(scopedBundle["credential"].get<std::string>());
  json mine = fargate("bundle-2");
  mine["appID"] = other;
  CHECK(
      scopedDefender.Post("/api/v1/defender/heartbeat", mine.dump(), "application/json")->status ==
      200);
  auto refused = scopedDefender.Post("/api/v1/defender/heartbeat", fargate("bundle-3").dump(),
                                     "application/json");
  CHECK(refused->status == 403);

  // Both credentials are listed (and so revocable), naming who asked for them.
  const json creds = credentialsNow();
  REQUIRE(creds.size() == before + 2);
  int fromBundles = 0;
  for (const auto& cred : creds)
    fromBundles +=
        cred["description"] == "install bundle (GET /api/v1/defenders/install-bundle) for admin";
  CHECK(fromBundles == 2);
}

TEST_CASE("HTTP: Defenders older than the deployed version are outdated, filtered, counted",
          "[vendor]") {
  RunningConsole c;
  struct Case {
    std::string host, version;
    bool outdated, compatible;
  };
  const std::vector<Case> cases = {
      {"v-old", "32.07.123", true, true},  // two major releases behind
      {"v-text", "34.1.99", true, true},   // numerically older, though "34.1" > "34.01" as text
      {"v-ancient", "30.00.001", true, false},  // beyond the vendor's n-3 window
      {"v-same", "34.01.132", false, true},    {"v-newer", "34.02.001", false, false},
      {"v-free", "dev-build", false, false},  // unparseable: neither
  };
  for (const auto& k : cases) {
    json hb = fargate(k.host);
    hb["version"] = k.version;
    REQUIRE(c.heartbeat(hb)->status == 200);
  }
  json host = {{"hostname", "h-old"}, {"type", "serverLinux"}, {"version", "33.00.100"}};
  REQUIRE(c.heartbeat(host)->status == 200);

  for (const auto& d : c.list("?limit=250")) {
    if (d["hostname"] == "h-old") {
      CHECK(d["outdated"] == true);
      continue;
    }
    const auto& k = *std::find_if(cases.begin(), cases.end(),
                                  [&](const Case& x) { return x.host == d["hostname"]; });
    INFO(k.host);
    CHECK(d["outdated"] == k.outdated);
    CHECK(d["compatibleVersion"] == k.compatible);
  }

  auto hosts = [&](const std::string& query) {
    long long total = 0;
    std::set<std::string> out;
    for (const auto& d : c.list(query, &total)) out.insert(d["hostname"]);
    CHECK(total == static_cast<long long>(out.size()));
    return out;
  };
  CHECK(hosts("?outdated=true") == std::set<std::string>{"h-old", "v-ancient", "v-old", "v-text"});
  CHECK(hosts("?outdated=false") == std::set<std::string>{"v-free", "v-newer", "v-same"});
  // With the other filters, including the in-memory path (one type + connected).
  CHECK(hosts("?outdated=true&type=fargate&connected=true") ==
        std::set<std::string>{"v-ancient", "v-old", "v-text"});
  long long total = 0;
  const json firstTwo = c.list("?outdated=true&sort=version&reverse=true&limit=2", &total);
  CHECK(total == 4);
  REQUIRE(firstTwo.size() == 2);
  // sort=version orders the reported text, descending here: "34.1.99" > "33.00.100".
  CHECK(firstTwo[0]["hostname"] == "v-text");
  CHECK(firstTwo[1]["hostname"] == "h-old");

  auto names = c.console.Get("/api/v1/defenders/names?outdated=true&category=host");
  REQUIRE(names->status == 200);
  CHECK(json::parse(names->body) == json::array({"h-old"}));

  auto bad = c.console.Get("/api/v1/defenders?outdated=maybe");
  REQUIRE(bad->status == 400);
  CHECK(json::parse(bad->body)["field"] == "outdated");

  auto summary = json::parse(c.console.Get("/api/v1/defenders/summary")->body);
  for (const auto& row : summary) {
    INFO(row.dump());
    if (row["category"] == "appEmbedded")
      CHECK(row["outdated"] == 3);
    else if (row["category"] == "host")
      CHECK(row["outdated"] == 1);
    else
      CHECK(row["outdated"] == 0);
  }

  const std::string metrics = c.console.Get("/metrics")->body;
  CHECK(metrics.find("dc_defenders_outdated{category=\"appEmbedded\"} 3\n") != std::string::npos);
  CHECK(metrics.find("dc_defenders_outdated{category=\"host\"} 1\n") != std::string::npos);

  // Upgrading a Defender (a heartbeat with the deployed version) clears it everywhere.
  json upgraded = fargate("v-old");
  upgraded["version"] = "34.01.132";
  REQUIRE(c.heartbeat(upgraded)->status == 200);
  CHECK(hosts("?outdated=true&type=fargate") == std::set<std::string>{"v-ancient", "v-text"});
  summary = json::parse(c.console.Get("/api/v1/defenders/summary")->body);
  for (const auto& row : summary)
    if (row["category"] == "appEmbedded") CHECK(row["outdated"] == 2);
}

TEST_CASE("HTTP: error bodies carry the vendor's `err` next to code, message and field") {
  RunningConsole c;
  // Console API (a handler's error, an unknown route) and defender channel.
  for (auto* r : {&c.console, &c.channel}) {
    auto notFound = r->Get("/api/v1/nothing-here");
    REQUIRE(notFound);
    auto body = json::parse(notFound->body);
    CHECK(body["code"] == "not_found");
    CHECK(body["err"] == body["message"]);
  }
  auto bad = c.console.Get("/api/v1/defenders?limit=0");
  REQUIRE(bad);
  CHECK(json::parse(bad->body) == json{{"code", "invalid_parameter"},
                                       {"field", "limit"},
                                       {"message", "limit: must be between 1 and 250"},
                                       {"err", "limit: must be between 1 and 250"}});
  auto hb =
      c.channel.Post("/api/v1/defender/heartbeat", R"({"type":"docker"})", "application/json");
  REQUIRE(hb);
  CHECK(json::parse(hb->body) == json{{"code", "missing_field"},
                                      {"field", "hostname"},
                                      {"message", "hostname: is required"},
                                      {"err", "hostname: is required"}});
}

TEST_CASE("HTTP: unknown query parameters are refused, naming the parameter") {
  RunningConsole c;
  REQUIRE(c.heartbeat(fargate("task-a"))->status == 200);
  struct Case {
    std::string path, field;
  };
  for (const auto& k : std::vector<Case>{
           {"/api/v1/defenders?hostnme=task-b", "hostnme"},
           {"/api/v1/defenders?family=checkout&Family=x", "Family"},
           {"/api/v1/defenders?collections=prod", "collections"},  // a vendor filter we lack
           {"/api/v1/defenders/names?provider=aws", "provider"},
           {"/api/v1/defenders/download?hostnme=x", "hostnme"},
           {"/api/v1/defenders/summary?cluster=prod", "cluster"},
           {"/api/v1/audit/defenders?hostname=task-a", "hostname"},
           {"/api/v1/profiles/app-embedded?imag=nginx", "imag"},
           {"/api/v1/profiles/app-embedded/task-a?kind=dns", "kind"},
       }) {
    INFO(k.path);
    auto r = c.console.Get(k.path.c_str());
    REQUIRE(r);
    CHECK(r->status == 400);
    auto body = json::parse(r->body);
    CHECK(body["code"] == "invalid_parameter");
    CHECK(body["field"] == k.field);
    CHECK(body["message"].get<std::string>().rfind(k.field + ": ", 0) == 0);
  }
  // What the vendor's clients send besides filters is accepted: `project` everywhere (one
  // project here), `fields` on the Defender routes (every column is sent anyway).
  long long total = 0;
  c.list("?project=Central+Console&fields=hostname", &total);
  CHECK(total == 1);
  CHECK(c.console.Get("/api/v1/defenders/summary?project=Central+Console")->status == 200);
  CHECK(c.console.Get("/api/v1/audit/defenders?project=x&limit=5")->status == 200);
}

TEST_CASE("HTTP: family filter on list, names, summary and download (exact, case-sensitive)") {
  RunningConsole c;
  const std::string svc = "checkout-svc:1b7e6c4e-3f4b-4b7b-9d3c-1a2b3c4d5e6f";
  REQUIRE(c.heartbeat(fargate("task-a"))->status == 200);  // family checkout
  auto b = fargate("task-b");
  b["appID"] = svc;
  REQUIRE(c.heartbeat(b)->status == 200);
  REQUIRE(c.heartbeat({{"hostname", "node-1"}, {"type", "daemonset"}})->status == 200);

  long long total = 0;
  auto list = c.list("?family=checkout", &total);
  CHECK(total == 1);
  REQUIRE(list.size() == 1);
  CHECK(list[0]["hostname"] == "task-a");
  c.list("?family=checkout-svc", &total);
  CHECK(total == 1);
  c.list("?family=Checkout", &total);  // case-sensitive, like App IDs
  CHECK(total == 0);
  c.list("?family=check", &total);  // exact, not a prefix
  CHECK(total == 0);

  auto names = c.console.Get("/api/v1/defenders/names?family=checkout-svc");
  REQUIRE(names);
  CHECK(json::parse(names->body) == json::array({"task-b"}));

  auto summary = c.console.Get("/api/v1/defenders/summary?family=checkout");
  REQUIRE(summary);
  REQUIRE(summary->status == 200);
  std::map<std::string, json> rows;
  for (const auto& row : json::parse(summary->body)) rows[row["category"].get<std::string>()] = row;
  REQUIRE(rows.size() == 4);
  CHECK(rows["appEmbedded"]["deployed"] == 1);
  CHECK(rows["appEmbedded"]["connected"] == 1);
  CHECK(rows["container"]["deployed"] == 0);  // the daemonset has no family

  auto csv = c.console.Get("/api/v1/defenders/download?family=checkout");
  REQUIRE(csv);
  CHECK(csv->body.find("task-a") != std::string::npos);
  CHECK(csv->body.find("task-b") == std::string::npos);
  CHECK(csv->body.find("node-1") == std::string::npos);
  CHECK(c.console.Get("/api/v1/defenders?family=%01")->status == 400);
}

TEST_CASE("HTTP: null is absent for every optional heartbeat field, cloudMetadata included") {
  RunningConsole c;
  auto first = fargate("task-n");
  first["cloudMetadata"]["image"] = "nginx:1.27";
  REQUIRE(c.heartbeat(first)->status == 200);
  c.clock.advance(20s);
  auto refresh = fargate("task-n");
  refresh["cloudMetadata"]["image"] = nullptr;
  refresh["cloudMetadata"]["region"] = nullptr;
  refresh["version"] = nullptr;
  refresh["collections"] = nullptr;
  auto r = c.heartbeat(refresh);
  REQUIRE(r);
  INFO(r->body);
  CHECK(r->status == 200);  // the refresh is not lost
  auto d = json::parse(c.console.Get("/api/v1/defenders/task-n")->body);
  CHECK(d["lastSeen"] == "2027-01-15T08:00:20.000Z");
  CHECK(d["cloudMetadata"]["image"] == "");  // as if absent: rendered as every absent member
  CHECK(d["cloudMetadata"]["region"] == "");
  CHECK(d["collections"] == json::array());
  auto wrong = fargate("task-n");
  wrong["cloudMetadata"]["image"] = 7;
  CHECK(c.heartbeat(wrong)->status == 400);
}

TEST_CASE("HTTP: DELETE is idempotent: twice, after an eviction, or never known") {
  RunningConsole c;
  REQUIRE(c.heartbeat(fargate("task-d"))->status == 200);
  REQUIRE(c.heartbeat(fargate("task-e"))->status == 200);
  auto first = c.console.Delete("/api/v1/defenders/task-d");
  REQUIRE(first);
  CHECK(first->status == 200);
  auto firstBody = json::parse(first->body);
  CHECK(firstBody["alreadyRemoved"] == false);
  auto again = c.console.Delete("/api/v1/defenders/task-d");
  REQUIRE(again);
  CHECK(again->status == 200);
  auto againBody = json::parse(again->body);
  CHECK(againBody["alreadyRemoved"] == true);
  CHECK(againBody["id"] == firstBody["id"]);  // the earlier removal's record, no new one
  CHECK(againBody["actor"] == "admin");

  // Evicted by the sweep, then deleted by a client that still had it listed.
  c.clock.advance(90s + 1h);
  auto swept = c.app.sweeper().sweep(c.clock.now());
  REQUIRE(swept.ok());
  REQUIRE(swept->evicted == 1);
  auto afterSweep = c.console.Delete("/api/v1/defenders/TASK-E");
  REQUIRE(afterSweep);
  CHECK(afterSweep->status == 200);
  auto evicted = json::parse(afterSweep->body);
  CHECK(evicted["actor"] == "scheduler");
  CHECK(evicted["hostname"] == "task-e");
  CHECK(evicted["alreadyRemoved"] == true);

  auto never = c.console.Delete("/api/v1/defenders/never-seen");
  REQUIRE(never);
  CHECK(never->status == 204);
  CHECK(never->body.empty());
  auto audit = c.console.Get("/api/v1/audit/defenders");
  CHECK(audit->get_header_value("Total-Count") == "2");  // no-ops leave no record
}

TEST_CASE("HTTP: a forged cursor position is refused; an empty limit downloads everything") {
  RunningConsole c;
  for (const char* h : {"task-p1", "task-p2", "task-p3"})
    REQUIRE(c.heartbeat(fargate(h))->status == 200);
  auto first = c.console.Get("/api/v1/defenders/names?cursor=start&limit=1");
  REQUIRE(first);
  REQUIRE(first->status == 200);
  const std::string next = first->get_header_value("Next-Cursor");
  REQUIRE(next.size() > 17);
  const std::string id = next.substr(0, next.find('.'));
  // Past the end of its snapshot (and a position that would wrap around when the limit is
  // added): 400, never a Next-Cursor that sends the client back to the start.
  for (const std::string pos : {"4", "18446744073709551615"}) {
    INFO(pos);
    auto forged =
        c.console.Get(("/api/v1/defenders/names?limit=5&cursor=" + id + "." + pos).c_str());
    REQUIRE(forged);
    CHECK(forged->status == 400);
    CHECK(json::parse(forged->body)["field"] == "cursor");
    CHECK_FALSE(forged->has_header("Next-Cursor"));
  }
  auto end = c.console.Get(("/api/v1/defenders/names?limit=5&cursor=" + id + ".3").c_str());
  REQUIRE(end);
  CHECK(end->status == 200);
  CHECK(json::parse(end->body) == json::array());

  auto csv = c.console.Get("/api/v1/defenders/download?limit=");
  REQUIRE(csv);
  REQUIRE(csv->status == 200);
  CHECK(std::count(csv->body.begin(), csv->body.end(), '\n') == 4);  // header + 3 rows
}

TEST_CASE("HTTP: CSV download says charset=utf-8 and offers a BOM for spreadsheets") {
  RunningConsole c;
  REQUIRE(c.heartbeat(fargate("task-u", "caf\u00e9-\u6771\u4eac"))->status == 200);
  auto csv = c.console.Get("/api/v1/defenders/download");
  REQUIRE(csv);
  CHECK(csv->get_header_value("Content-Type") == "text/csv; charset=utf-8");
  CHECK(csv->body.rfind("hostname,", 0) == 0);  // no BOM unless asked
  CHECK(csv->body.find(",caf\u00e9-\u6771\u4eac,") != std::string::npos);
  auto withBom = c.console.Get("/api/v1/defenders/download?bom=true");
  REQUIRE(withBom);
  CHECK(withBom->body.rfind("\xEF\xBB\xBFhostname,", 0) == 0);
  CHECK(withBom->body.substr(3) == csv->body);
  CHECK(c.console.Get("/api/v1/defenders/download?bom=maybe")->status == 400);
}

TEST_CASE("HTTP: /metrics carries build info and process figures") {
  RunningConsole c;
  auto m = c.console.Get("/metrics");
  REQUIRE(m);
  const std::string& text = m->body;
  CHECK(text.find("dc_build_info{version=\"test\"} 1\n") != std::string::npos);
  auto value = [&](const std::string& name) {
    const auto at = text.find("\n" + name + " ");
    REQUIRE(at != std::string::npos);
    return std::stoll(text.substr(at + name.size() + 2));
  };
  CHECK(value("process_resident_memory_bytes") > 1'000'000);
  CHECK(value("process_open_fds") >= 3);
  CHECK(text.find("dc_open_connections{listener=\"console\"} 1\n") != std::string::npos);
  CHECK(text.find("dc_open_connections{listener=\"defender\"}") != std::string::npos);
}
