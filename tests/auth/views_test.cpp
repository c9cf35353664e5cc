// Saved views (docs/api.md "Saved views") against the real Console: each user's own named filter
// sets — create, replace, list, delete — validated like the list's filters, bounded per user,
// and invisible to other users.
#include <catch2/catch.hpp>

#include <cstdlib>

#include <httplib.h>

#include <nlohmann/json.hpp>

#include "auth/crypto.h"
#include "auth/service.h"
#include "main/console_app.h"
#include "tests/support/numbered.h"
#include "views/saved_views.h"

using namespace dc;
using nlohmann::json;

namespace {

const TimePoint kT0 = TimePoint(Millis(1'800'000'000'000));

ConsoleConfig viewsConfig() {
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
  c.adminPassword = "views-admin-password";
  c.passwordIterations = 1000;
  return c;
}

httplib::Headers basic(const std::string& user, const std::string& password) {
  return {{"Authorization", "Basic " + auth::base64(user + ":" + password)}};
}

}  // namespace

TEST_CASE("saved views: per user, validated like the list's filters, bounded") {
  ManualClock clock{kT0};
  ConsoleApp app{viewsConfig(), clock, "test"};
  REQUIRE(app.start(/*startScheduler=*/false).ok());
  REQUIRE(
      app.auth().createUser("manager1", "manager1-password", auth::Role::kDefenderManager).ok());
  REQUIRE(app.auth().createUser("auditor1", "auditor1-password", auth::Role::kAuditor).ok());
  httplib::Client console("127.0.0.1", app.consolePort());
  const auto manager = basic("manager1", "manager1-password");
  const auto auditor = basic("auditor1", "auditor1-password");
  auto post = [&](const json& body, const httplib::Headers& who) {
    auto r = console.Post("/api/v1/views", who, body.dump(), "application/json");
    REQUIRE(r);
    return r;
  };
  auto list = [&](const httplib::Headers& who) {
    auto r = console.Get("/api/v1/views", who);
    REQUIRE(r);
    REQUIRE(r->status == 200);
    return json::parse(r->body);
  };

  auto created = post({{"name", "Disconnected Fargate"},
                       {"filter", {{"type", {"fargate", "eksFargate"}}, {"connected", false}}}},
                      manager);
  INFO(created->body);
  REQUIRE(created->status == 201);
  json view = json::parse(created->body);
  CHECK(view.at("filter") == json{{"type", "fargate,eksFargate"}, {"connected", "false"}});
  CHECK(view.at("createdAt") == "2027-01-15T08:00:00.000Z");

  clock.advance(std::chrono::minutes(5));
  auto replaced =
      post({{"name", "Disconnected Fargate"}, {"filter", {{"cluster", "prod"}}}}, manager);
  REQUIRE(replaced->status == 200);
  json mine = list(manager);
  REQUIRE(mine.size() == 1);
  CHECK(mine[0].at("filter") == json{{"cluster", "prod"}});
  CHECK(mine[0].at("createdAt") == "2027-01-15T08:00:00.000Z");
  CHECK(mine[0].at("updatedAt") == "2027-01-15T08:05:00.000Z");

  // Another user sees none of them, keeps their own, and cannot delete the manager's.
  CHECK(list(auditor).empty());
  REQUIRE(post({{"name", "Mine"}, {"filter", json::object()}}, auditor)->status == 201);
  CHECK(list(auditor).size() == 1);
  CHECK(console.Delete("/api/v1/views/Disconnected%20Fargate", auditor)->status == 404);
  CHECK(list(manager).size() == 1);

  SECTION("refused: unknown filter, paging, bad names, missing fields") {
    auto code = [&](const json& body) {
      auto r = post(body, manager);
      INFO(body.dump() << " -> " << r->body);
      CHECK(r->status == 400);
      return json::parse(r->body).at("field").get<std::string>();
    };
    CHECK(code({{"name", "x"}, {"filter", {{"clustr", "a"}}}}) == "filter.clustr");
    CHECK(code({{"name", "x"}, {"filter", {{"limit", "5"}}}}) == "filter.limit");
    CHECK(code({{"name", "x"}, {"filter", {{"type", "nope"}}}}) == "filter.type");
    CHECK(code({{"name", "x"}, {"filter", {{"connected", "maybe"}}}}) == "filter.connected");
    CHECK(code({{"name", ""}, {"filter", json::object()}}) == "name");
    CHECK(code({{"name", "   "}, {"filter", json::object()}}) == "name");
    CHECK(code({{"name", "a/b"}, {"filter", json::object()}}) == "name");
    CHECK(code({{"name", std::string(65, 'v')}, {"filter", json::object()}}) == "name");
    CHECK(code({{"name", "x"}}) == "filter");
    CHECK(code({{"filter", json::object()}}) == "name");
    CHECK(code({{"name", "x"}, {"filter", json::object()}, {"extra", 1}}) == "extra");
    // Bounded like the query string the page applies a view as.
    CHECK(code({{"name", "x"}, {"filter", {{"search", std::string(1025, 'a')}}}}) ==
          "filter.search");
    CHECK(code({{"name", "x"},
                {"filter", {{"type", json(std::vector<std::string>(1000, "fargate"))}}}}) ==
          "filter.type");
    CHECK(list(manager).size() == 1);
  }

  SECTION("delete: 200, then 404 unknown_view") {
    auto gone = console.Delete("/api/v1/views/Disconnected%20Fargate", manager);
    REQUIRE(gone->status == 200);
    CHECK(json::parse(gone->body) == json{{"name", "Disconnected Fargate"}, {"deleted", true}});
    CHECK(list(manager).empty());
    auto again = console.Delete("/api/v1/views/Disconnected%20Fargate", manager);
    CHECK(again->status == 404);
    CHECK(json::parse(again->body).at("code") == "unknown_view");
  }

  SECTION("at most 100 views per user; replacing one at the limit still works") {
    for (size_t i = 1; i < views::kMaxViewsPerUser; ++i)
      REQUIRE(post({{"name", testing::numbered("view ", static_cast<long long>(i))},
                    {"filter", {{"cluster", "c"}}}},
                   manager)
                  ->status == 201);
    CHECK(list(manager).size() == views::kMaxViewsPerUser);
    auto over = post({{"name", "one too many"}, {"filter", json::object()}}, manager);
    CHECK(over->status == 409);
    CHECK(json::parse(over->body).at("code") == "view_limit");
    CHECK(post({{"name", "view 7"}, {"filter", {{"search", "x"}}}}, manager)->status == 200);
    // The auditor's own limit is separate.
    CHECK(post({{"name", "Second"}, {"filter", json::object()}}, auditor)->status == 201);
  }
}
