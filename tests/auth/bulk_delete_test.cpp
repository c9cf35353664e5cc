// POST /api/v1/defenders/delete (docs/api.md) against the real Console: a filter delete removes
// exactly the matching Defenders with one audit record each; the auditor is refused; a request
// without a filter and a count that changed are refused and delete nothing.
#include <catch2/catch.hpp>

#include <cstdlib>

#include <httplib.h>

#include <chrono>

#include <nlohmann/json.hpp>

#include "auth/crypto.h"
#include "auth/service.h"
#include "inventory/inventory.h"
#include "main/console_app.h"
#include "tests/support/numbered.h"

using namespace dc;
using nlohmann::json;

namespace {

const TimePoint kT0 = TimePoint(Millis(1'800'000'000'000));
const std::string kAdminPassword = "bulk-admin-password";

ConsoleConfig bulkConfig() {
  ConsoleConfig c;
  // Either front of each listener (tests/CMakeLists.txt runs both).
  if (const char* front = std::getenv("DC_TEST_DEFENDER_FRONT")) c.defenderFront = front;
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
  return c;
}

httplib::Headers basic(const std::string& user, const std::string& password) {
  return {{"Authorization", "Basic " + auth::base64(user + ":" + password)}};
}

struct Fixture {
  ManualClock clock{kT0};
  ConsoleApp app{bulkConfig(), clock, "test"};
  std::unique_ptr<httplib::Client> console;
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

  void seed(const std::string& prefix, int n, const std::string& cluster,
            const std::string& version = "32.07.123") {
    for (int i = 0; i < n; ++i) {
      inventory::Defender d;
      d.hostname = testing::numbered(prefix, i);
      d.type = inventory::DefenderType::kFargate;
      d.version = version;
      d.cluster = cluster;
      REQUIRE(app.inventory().recordHeartbeat(d).ok());
    }
  }

  httplib::Result bulk(const json& body, const httplib::Headers& who) {
    return console->Post("/api/v1/defenders/delete", who, body.dump(), "application/json");
  }

  long long total(const std::string& query) {
    auto r = console->Get(("/api/v1/defenders?limit=1&" + query).c_str(), auditor);
    REQUIRE(r);
    REQUIRE(r->status == 200);
    return std::stoll(r->get_header_value("Total-Count"));
  }

  long long deletedEvents() {
    auto r = console->Get("/api/v1/audit/events?kind=defender.deleted&limit=1", auditor);
    REQUIRE(r);
    REQUIRE(r->status == 200);
    return std::stoll(r->get_header_value("Total-Count"));
  }
};

}  // namespace

TEST_CASE("bulk delete: a filter delete removes exactly the matching Defenders, audited each") {
  Fixture f;
  f.seed("blue-", 25, "blue");
  f.seed("green-", 7, "green");
  REQUIRE(f.total("cluster=blue") == 25);

  SECTION("the auditor is refused and nothing is deleted") {
    auto r = f.bulk({{"filter", {{"cluster", "blue"}}}, {"expectedCount", 25}}, f.auditor);
    REQUIRE(r);
    CHECK(r->status == 403);
    CHECK(f.total("") == 32);
  }

  SECTION("no filter: 400 naming the field, nothing deleted") {
    for (const json& body : {json::object(), json{{"expectedCount", 32}},
                             json{{"filter", json::object()}, {"expectedCount", 32}},
                             json{{"filter", {{"cluster", ""}}}, {"expectedCount", 32}}}) {
      auto r = f.bulk(body, f.manager);
      REQUIRE(r);
      INFO(body.dump() << " -> " << r->body);
      CHECK(r->status == 400);
      CHECK(json::parse(r->body).at("field") == "filter");
    }
    auto noCount = f.bulk({{"filter", {{"cluster", "blue"}}}}, f.manager);
    CHECK(noCount->status == 400);
    CHECK(json::parse(noCount->body).at("field") == "expectedCount");
    auto paging = f.bulk({{"filter", {{"cluster", "blue"}, {"limit", "5"}}}, {"expectedCount", 5}},
                         f.manager);
    CHECK(paging->status == 400);
    CHECK(json::parse(paging->body).at("field") == "filter.limit");
    auto typo = f.bulk({{"filter", {{"clustr", "blue"}}}, {"expectedCount", 25}}, f.manager);
    CHECK(typo->status == 400);
    CHECK(json::parse(typo->body).at("field") == "filter.clustr");
    CHECK(f.total("") == 32);
    CHECK(f.deletedEvents() == 0);
  }

  SECTION("a count that changed: 409 count_changed, nothing deleted") {
    auto r = f.bulk({{"filter", {{"cluster", "blue"}}}, {"expectedCount", 24}}, f.manager);
    REQUIRE(r);
    CHECK(r->status == 409);
    CHECK(json::parse(r->body).at("code") == "count_changed");
    CHECK(f.total("cluster=blue") == 25);
    CHECK(f.deletedEvents() == 0);
  }

  SECTION("the matching ones go, one audit record each; the others stay") {
    auto r = f.bulk({{"filter", {{"cluster", "blue"}, {"connected", true}}}, {"expectedCount", 25}},
                    f.manager);
    REQUIRE(r);
    INFO(r->body);
    REQUIRE(r->status == 200);
    json body = json::parse(r->body);
    CHECK(body.at("deleted") == 25);
    CHECK(body.at("matched") == 25);
    CHECK(body.at("hostnames").size() == 25);
    CHECK(body.at("hostnamesTruncated") == false);
    CHECK(f.total("cluster=blue") == 0);
    CHECK(f.total("cluster=green") == 7);
    CHECK(f.deletedEvents() == 25);
    auto one = f.console->Get("/api/v1/audit/events?kind=defender.deleted&limit=1", f.auditor);
    json e = json::parse(one->body).at(0);
    CHECK(e.at("user") == "manager1");
    CHECK(e.at("detail").at("bulk") == true);
    CHECK(e.at("detail").at("reason") == "manual delete");
    CHECK(f.console->Get("/api/v1/defenders/blue-3", f.auditor)->status == 404);
  }

  SECTION("by hostnames: unknown ones are skipped; all needs its count") {
    auto r = f.bulk({{"hostnames", {"green-1", "GREEN-1", "green-2", "nope"}}}, f.manager);
    REQUIRE(r);
    REQUIRE(r->status == 200);
    json body = json::parse(r->body);
    CHECK(body.at("deleted") == 2);
    CHECK(body.at("skipped") == 1);
    CHECK(f.deletedEvents() == 2);
    auto all = f.bulk({{"all", true}}, f.manager);
    CHECK(all->status == 400);
    auto everything = f.bulk({{"all", true}, {"expectedCount", 30}}, f.manager);
    REQUIRE(everything->status == 200);
    CHECK(json::parse(everything->body).at("deleted") == 30);
    CHECK(f.total("") == 0);
    CHECK(f.deletedEvents() == 32);
  }
}

TEST_CASE("bulk delete: 10,000 Defenders in one request, in batches") {
  Fixture f;
  f.seed("many-", 10000, "wide");
  // One request for 10,000 Defenders (10 store transactions and one audit transaction). Its
  // duration is a benchmark figure (docs/benchmarks.md), not asserted here; the client waits
  // long enough for a sanitizer build on a loaded machine (cpp-httplib's default is 5 s).
  f.console->set_read_timeout(300, 0);
  auto r = f.bulk({{"filter", {{"cluster", "wide"}}}, {"expectedCount", 10000}}, f.manager);
  REQUIRE(r);
  REQUIRE(r->status == 200);
  json body = json::parse(r->body);
  CHECK(body.at("deleted") == 10000);
  CHECK(body.at("hostnames").size() == 1000);
  CHECK(body.at("hostnamesTruncated") == true);
  CHECK(f.deletedEvents() == 10000);
  CHECK(f.total("") == 0);
}

// The version distribution and the `version` filter (docs/api.md), which the web page's version
// chart uses; a bulk delete takes the same filter.
TEST_CASE("versions: the distribution with upgrade-needed, and the exact version filter") {
  Fixture f;
  f.seed("old-", 4, "c", "32.07.123");
  f.seed("new-", 3, "c", "34.01.132");
  f.seed("odd-", 1, "c", "");
  auto r = f.console->Get("/api/v1/defenders/versions", f.auditor);
  REQUIRE(r);
  REQUIRE(r->status == 200);
  const json versions = json::parse(r->body);
  INFO(versions.dump());
  REQUIRE(versions.size() == 3);
  CHECK(versions[0] ==
        json{{"version", ""}, {"count", 1}, {"outdated", false}, {"compatibleVersion", false}});
  CHECK(versions[1].at("version") == "32.07.123");
  CHECK(versions[1].at("count") == 4);
  CHECK(versions[1].at("outdated") == true);
  CHECK(versions[2].at("version") == "34.01.132");
  CHECK(versions[2].at("count") == 3);
  CHECK(versions[2].at("outdated") == false);
  CHECK(f.console->Get("/api/v1/defenders/versions?x=1", f.auditor)->status == 400);

  CHECK(f.total("version=32.07.123") == 4);
  CHECK(f.total("version=34.01.132&connected=true") == 3);
  CHECK(f.total("version=32.07") == 0);  // exact, not a prefix
  CHECK(f.console->Get("/api/v1/defenders?version=%01", f.auditor)->status == 400);
  auto gone = f.bulk({{"filter", {{"version", "32.07.123"}}}, {"expectedCount", 4}}, f.manager);
  REQUIRE(gone->status == 200);
  CHECK(json::parse(gone->body).at("deleted") == 4);
  CHECK(f.total("") == 4);
}
