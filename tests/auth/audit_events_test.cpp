// The general audit log (docs/security.md "Audit log") against the real Console: one HTTP test
// per event kind (who, when, from which address, what — never a secret), the filters, the
// refused parameters, the CSV download, and the bounded retention of audit::AuditLog.
#include <catch2/catch.hpp>

#include <cstdlib>

#include <httplib.h>

#include <nlohmann/json.hpp>

#include "audit/log.h"
#include "auth/crypto.h"
#include "auth/service.h"
#include "cleanup/sweeper.h"
#include "common/time_format.h"
#include "main/console_app.h"
#include "tests/support/numbered.h"
#include "tests/support/sql_backends.h"

using namespace dc;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

const TimePoint kT0 = TimePoint(Millis(1'800'000'000'000));
const std::string kAdminPassword = "audit-admin-password";
const std::string kAppX = "checkout:0b7e6c4e-3f4b-4b7b-9d3c-1a2b3c4d5e6f";

ConsoleConfig auditConfig() {
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
  c.adminPassword = kAdminPassword;
  c.passwordIterations = 1000;
  c.failedSignInsAllowed = 1'000'000;
  return c;
}

httplib::Headers basic(const std::string& user, const std::string& password) {
  return {{"Authorization", "Basic " + auth::base64(user + ":" + password)}};
}

// A started Console with an admin client, a manager and an auditor.
struct Fixture {
  ManualClock clock{kT0};
  ConsoleApp app{auditConfig(), clock, "test"};
  std::unique_ptr<httplib::Client> console;
  httplib::Headers admin = basic("admin", kAdminPassword);
  httplib::Headers manager = basic("manager1", "manager1-password");
  httplib::Headers auditor = basic("auditor1", "auditor1-password");

  Fixture() {
    const Status st = app.start(/*startScheduler=*/false);
    if (!st.ok()) FAIL("Console did not start: " << st.error().message);
    console = std::make_unique<httplib::Client>("127.0.0.1", app.consolePort());
    REQUIRE(
        app.auth().createUser("manager1", "manager1-password", auth::Role::kDefenderManager).ok());
    REQUIRE(app.auth().createUser("auditor1", "auditor1-password", auth::Role::kAuditor).ok());
  }

  // GET /api/v1/audit/events?<query> as the auditor; the items, checked 200.
  json events(const std::string& query) {
    auto r = console->Get(("/api/v1/audit/events?" + query).c_str(), auditor);
    REQUIRE(r);
    INFO(r->body);
    REQUIRE(r->status == 200);
    return json::parse(r->body);
  }

  // The one newest event of `kind`, checked to exist.
  json newest(const std::string& kind) {
    json items = events("kind=" + kind + "&limit=1");
    REQUIRE(items.size() == 1);
    return items[0];
  }

  httplib::Result post(const std::string& path, const std::string& body,
                       const httplib::Headers& who) {
    return console->Post(path.c_str(), who, body, "application/json");
  }
};

void checkWhoWhenWhere(const json& e, const std::string& user, TimePoint at) {
  CHECK(e.at("user") == user);
  CHECK(e.at("time") == formatRfc3339(at));
  CHECK(e.at("address") == "127.0.0.1");
}

}  // namespace

TEST_CASE("audit: sign-ins, failed sign-ins (password and Basic) and refused actions") {
  Fixture f;
  auto ok = f.post("/api/v1/authenticate",
                   json{{"username", "manager1"}, {"password", "manager1-password"}}.dump(), {});
  REQUIRE(ok->status == 200);
  checkWhoWhenWhere(f.newest("signin"), "manager1", kT0);

  f.clock.advance(5s);
  auto bad = f.post("/api/v1/authenticate",
                    json{{"username", "manager1"}, {"password", "guess-1"}}.dump(), {});
  REQUIRE(bad->status == 401);
  json failed = f.newest("signin.failed");
  checkWhoWhenWhere(failed, "manager1", kT0 + 5s);
  CHECK(failed.at("detail").at("method") == "password");
  CHECK(failed.dump().find("guess-1") == std::string::npos);  // never the password

  f.clock.advance(1s);
  auto basicBad = f.console->Get("/api/v1/defenders", basic("auditor1", "guess-2"));
  REQUIRE(basicBad->status == 401);
  failed = f.newest("signin.failed");
  checkWhoWhenWhere(failed, "auditor1", kT0 + 6s);
  CHECK(failed.at("detail").at("method") == "basic");
  CHECK(failed.dump().find("guess-2") == std::string::npos);

  // No credentials at all (the page before sign-in) is not a failed sign-in.
  const auto before = f.events("kind=signin.failed").size();
  REQUIRE(f.console->Get("/api/v1/defenders")->status == 401);
  CHECK(f.events("kind=signin.failed").size() == before);

  f.clock.advance(1s);
  auto refused = f.post("/api/v1/settings/defender", R"({"disconnectPeriodDays":3})", f.auditor);
  REQUIRE(refused->status == 403);
  json denied = f.newest("access.refused");
  checkWhoWhenWhere(denied, "auditor1", kT0 + 7s);
  CHECK(denied.at("detail").at("method") == "POST");
  CHECK(denied.at("detail").at("path") == "/api/v1/settings/defender");
  CHECK(denied.at("detail").at("code") == "forbidden");
}

TEST_CASE("audit: settings, users, Defender credentials and registry credentials") {
  Fixture f;
  const int before = f.app.inventory().settings().disconnectPeriodDays;
  REQUIRE(f.post("/api/v1/settings/defender", R"({"disconnectPeriodDays":9})", f.manager)->status ==
          200);
  json settings = f.newest("settings.changed");
  checkWhoWhenWhere(settings, "manager1", kT0);
  CHECK(settings.at("detail") ==
        json{{"setting", "disconnectPeriodDays"}, {"from", before}, {"to", 9}});
  // A refused change is not a change.
  REQUIRE(f.post("/api/v1/settings/defender", R"({"disconnectPeriodDays":0})", f.manager)->status ==
          400);
  CHECK(f.events("kind=settings.changed").size() == 1);

  REQUIRE(f.post("/api/v1/users",
                 R"({"username":"ops2","password":"ops2-password-1","role":"auditor"})", f.admin)
              ->status == 201);
  json created = f.newest("user.created");
  checkWhoWhenWhere(created, "admin", kT0);
  CHECK(created.at("detail") == json{{"username", "ops2"}, {"role", "auditor"}});
  CHECK(created.dump().find("ops2-password-1") == std::string::npos);
  auto put = f.console->Put("/api/v1/users/ops2", f.admin,
                            R"({"password":"ops2-password-2","role":"defenderManager"})",
                            "application/json");
  REQUIRE(put->status == 200);
  json updated = f.newest("user.updated");
  CHECK(updated.at("detail") ==
        json{{"username", "ops2"}, {"passwordChanged", true}, {"role", "defenderManager"}});
  CHECK(updated.dump().find("ops2-password-2") == std::string::npos);
  REQUIRE(f.console->Delete("/api/v1/users/ops2", f.admin)->status == 200);
  CHECK(f.newest("user.deleted").at("detail") == json{{"username", "ops2"}});

  auto issued =
      f.post("/api/v1/credentials",
             json{{"scope", "appID"}, {"appID", kAppX}, {"description", "ci"}}.dump(), f.manager);
  REQUIRE(issued->status == 201);
  const json cred = json::parse(issued->body);
  json credEvent = f.newest("credential.issued");
  checkWhoWhenWhere(credEvent, "manager1", kT0);
  CHECK(credEvent.at("detail").at("id") == cred.at("id"));
  CHECK(credEvent.at("detail").at("appID") == kAppX);
  CHECK(credEvent.at("detail").at("source") == "api");
  CHECK(credEvent.dump().find(cred.at("credential").get<std::string>()) == std::string::npos);
  REQUIRE(
      f.console
          ->Delete(("/api/v1/credentials/" + cred.at("id").get<std::string>()).c_str(), f.manager)
          ->status == 200);
  CHECK(f.newest("credential.revoked").at("detail").at("id") == cred.at("id"));

  REQUIRE(f.post("/api/v1/registry/credentials",
                 R"({"_id":"hub","type":"basic","accountID":"robot","secret":"hunter2-secret"})",
                 f.manager)
              ->status == 201);
  json reg = f.newest("registry_credential.stored");
  checkWhoWhenWhere(reg, "manager1", kT0);
  CHECK(reg.at("detail").at("_id") == "hub");
  CHECK(reg.at("detail").at("replaced") == false);
  CHECK(reg.dump().find("hunter2-secret") == std::string::npos);
  REQUIRE(f.console->Delete("/api/v1/registry/credentials/hub", f.manager)->status == 200);
  CHECK(f.newest("registry_credential.deleted").at("detail") == json{{"_id", "hub"}});
}

TEST_CASE("audit: manual delete, eviction, App ID issuance, install bundle, entrypoints") {
  Fixture f;
  auto enrol = f.app.auth().issueCredential("", "test");
  REQUIRE(enrol.ok());
  httplib::Client channel("127.0.0.1", f.app.defenderPort());
  for (const char* host : {"keep-me", "delete-me"})
    REQUIRE(channel
                .Post("/api/v1/defender/heartbeat", {{"Authorization", "Bearer " + enrol->secret}},
                      json{{"hostname", host},
                           {"type", "fargate"},
                           {"version", "32.07.123"},
                           {"appID", kAppX}}
                          .dump(),
                      "application/json")
                ->status == 200);

  REQUIRE(f.console->Delete("/api/v1/defenders/delete-me", f.manager)->status == 200);
  json deleted = f.newest("defender.deleted");
  checkWhoWhenWhere(deleted, "manager1", kT0);
  CHECK(deleted.at("detail").at("hostname") == "delete-me");
  CHECK(deleted.at("detail").at("appID") == kAppX);
  CHECK(deleted.at("detail").at("reason") == "manual delete");
  // The no-op second delete writes nothing more.
  REQUIRE(f.console->Delete("/api/v1/defenders/delete-me", f.manager)->status == 200);
  CHECK(f.events("kind=defender.deleted").size() == 1);

  // App-Embedded Defenders go one hour after they disconnect (docs/api.md).
  f.clock.advance(3h);
  auto swept = f.app.sweeper().sweep(f.clock.now());
  REQUIRE(swept.ok());
  REQUIRE(swept->evicted == 1);
  json evicted = f.newest("defender.evicted");
  CHECK(evicted.at("user") == "scheduler");
  CHECK(evicted.at("address") == "");
  CHECK(evicted.at("detail").at("hostname") == "keep-me");
  // The Defender audit keeps answering as before, with both removals.
  auto old = f.console->Get("/api/v1/audit/defenders", f.auditor);
  REQUIRE(old->status == 200);
  CHECK(json::parse(old->body).size() == 2);

  const std::string task = R"({"family":"shop","requiresCompatibilities":["FARGATE"],
    "networkMode":"awsvpc","cpu":"256","memory":"512",
    "containerDefinitions":[{"name":"web","image":"nginx","entryPoint":["/start"]}]})";
  auto embedded =
      f.post("/api/v1/defenders/fargate.json?consoleaddr=console.example.com", task, f.manager);
  REQUIRE(embedded->status == 200);
  json appIds = f.newest("appid.issued");
  checkWhoWhenWhere(appIds, "manager1", f.clock.now());
  CHECK(appIds.at("detail").at("appIDs") ==
        json::array({embedded->get_header_value("X-Defender-App-IDs")}));
  CHECK(appIds.at("detail").at("format") == "json");

  auto bundle =
      f.console->Get("/api/v1/defenders/install-bundle?consoleaddr=console.example.com", f.manager);
  REQUIRE(bundle->status == 200);
  json bundleEvent = f.newest("credential.issued");
  CHECK(bundleEvent.at("user") == "manager1");
  CHECK(bundleEvent.at("detail").at("source") == "install-bundle");

  REQUIRE(f.post("/api/v1/images/entrypoints",
                 R"({"image":"registry.example.com/shop:1","entrypoint":["/run"]})", f.manager)
              ->status < 300);
  CHECK(f.newest("image_entrypoint.stored").at("detail") ==
        json{{"image", "registry.example.com/shop:1"}});
  auto forgotten = f.console->Delete(
      "/api/v1/images/entrypoints?image=registry.example.com%2Fshop%3A1", f.manager);
  REQUIRE(forgotten->status == 200);
  json forgot = f.newest("image_entrypoint.deleted");
  checkWhoWhenWhere(forgot, "manager1", f.clock.now());
  CHECK(forgot.at("detail") == json{{"image", "registry.example.com/shop:1"}});
  // A refused delete (nothing stored) is not recorded.
  CHECK(f.console->Delete("/api/v1/images/entrypoints?image=nope", f.manager)->status == 404);
  CHECK(f.events("kind=image_entrypoint.deleted").size() == 1);
}

TEST_CASE("audit events API: filters, paging, refused parameters and the CSV download") {
  Fixture f;
  // Three failed sign-ins an hour apart, one with a formula as its user name.
  for (const char* user : {"alice", "bob", "=HYPERLINK(\"x\")"}) {
    f.post("/api/v1/authenticate", json{{"username", user}, {"password", "x"}}.dump(), {});
    f.clock.advance(1h);
  }
  f.post("/api/v1/authenticate",
         json{{"username", "auditor1"}, {"password", "auditor1-password"}}.dump(), {});

  auto page = f.console->Get("/api/v1/audit/events?kind=signin.failed&limit=2", f.auditor);
  REQUIRE(page->status == 200);
  CHECK(page->get_header_value("Total-Count") == "3");
  json items = json::parse(page->body);
  REQUIRE(items.size() == 2);
  CHECK(items[0].at("user") == "=HYPERLINK(\"x\")");  // newest first
  CHECK(items[1].at("user") == "bob");
  CHECK(f.events("kind=signin.failed&offset=2").at(0).at("user") == "alice");

  CHECK(f.events("user=bob").size() == 1);
  // since inclusive, until exclusive.
  json window = f.events("kind=signin.failed&since=" + formatRfc3339(kT0 + 1h) +
                         "&until=" + formatRfc3339(kT0 + 2h));
  REQUIRE(window.size() == 1);
  CHECK(window[0].at("user") == "bob");

  for (auto [query, field] :
       std::vector<std::pair<std::string, std::string>>{{"kind=nope", "kind"},
                                                        {"since=yesterday", "since"},
                                                        {"limit=0", "limit"},
                                                        {"hostnme=x", "hostnme"}}) {
    auto r = f.console->Get(("/api/v1/audit/events?" + query).c_str(), f.auditor);
    INFO(query << " → " << r->body);
    CHECK(r->status == 400);
    CHECK(json::parse(r->body).at("code") == "invalid_parameter");
    CHECK(json::parse(r->body).at("field") == field);
  }
  CHECK(f.console->Get("/api/v1/audit/events/download?kinds=x", f.auditor)->status == 400);
  // Auditors read it; without credentials it is 401.
  CHECK(f.console->Get("/api/v1/audit/events")->status == 401);

  auto csv = f.console->Get("/api/v1/audit/events/download?kind=signin.failed", f.auditor);
  REQUIRE(csv->status == 200);
  CHECK(csv->get_header_value("Content-Type") == "text/csv; charset=utf-8");
  CHECK(csv->body.rfind("id,time,kind,user,address,detail\r\n", 0) == 0);
  // The formula is neutralised (a leading ') and quoted; every row is there.
  CHECK(csv->body.find(",\"'=HYPERLINK(\"\"x\"\")\",") != std::string::npos);
  CHECK(csv->body.find(",alice,127.0.0.1,") != std::string::npos);
  size_t rows = 0;
  for (char c : csv->body) rows += c == '\n';
  CHECK(rows == 4);  // header + 3
}

TEST_CASE("audit log retention: by age and by count, oldest first", "[audit-store]") {
  ManualClock clock{kT0};
  audit::AuditRetention keep;
  keep.maxAge = 24h;
  keep.maxEvents = 3;
  keep.pruneEvery = 1'000'000;  // only explicit prunes here
  auto log = audit::AuditLog::open(dc::test::testDatabase("audit"), clock, keep);
  REQUIRE(log.ok());
  for (int i = 0; i < 5; ++i) {
    REQUIRE((*log)
                ->record(audit::kSignIn, dc::testing::numbered("u", i), "10.0.0.1", json::object())
                .ok());
    clock.advance(1h);
  }
  auto pruned = (*log)->prune(clock.now());
  REQUIRE(pruned.ok());
  CHECK(*pruned == 2);
  auto left = (*log)->list({});
  REQUIRE(left.ok());
  REQUIRE(left->total == 3);
  CHECK(left->items.front().user == "u4");
  CHECK(left->items.back().user == "u2");
  // A day later than the newest (u4 at T0+4h): everything is older than maxAge.
  clock.set(kT0 + 4h + 24h + 1ms);
  REQUIRE((*log)->prune(clock.now()).ok());
  CHECK((*log)->list({})->total == 0);

  // record() prunes by itself every pruneEvery writes.
  keep.pruneEvery = 2;
  auto selfPruning = audit::AuditLog::open(dc::test::testDatabase("audit"), clock, keep);
  REQUIRE(selfPruning.ok());
  for (int i = 0; i < 6; ++i)
    REQUIRE((*selfPruning)->record(audit::kSignIn, "v", "", json::object()).ok());
  CHECK((*selfPruning)->list({})->total == 3);
}
