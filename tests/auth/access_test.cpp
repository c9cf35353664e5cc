// Access control against the real Console: the route × principal matrix over the one permission
// table, App ID scoping of Defender credentials, revocation through the API, token expiry, TLS by
// default (generated certificate, reused on restart), mutual TLS on the defender channel, and
// no secret in the logs.
#include <catch2/catch.hpp>

#include <httplib.h>

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>

#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "auth/crypto.h"
#include "auth/permissions.h"
#include "auth/service.h"
#include "auth/tls.h"
#include "heartbeat/channel.h"
#include "main/console_app.h"

using namespace dc;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

const TimePoint kT0 = TimePoint(Millis(1'800'000'000'000));
const std::string kAdminPassword = "matrix-admin-password";
const std::string kAppX = "checkout:0b7e6c4e-3f4b-4b7b-9d3c-1a2b3c4d5e6f";
const std::string kAppY = "payments:7a1d2c3b-4e5f-4a6b-8c7d-9e0f1a2b3c4d";

std::string tempDir(const std::string& name) {
  auto dir = std::filesystem::temp_directory_path() /
             ("dc-access-test-" + std::to_string(::getpid())) / name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir.string();
}

ConsoleConfig plainConfig() {
  ConsoleConfig c;
  c.database = ":memory:";
  c.host = "127.0.0.1";
  c.consolePort = 0;
  c.defenderPort = 0;
  c.uiDir = DC_SOURCE_DIR "/web/ui";
  c.flushInterval = Millis(50);
  c.plainHttp = true;
  c.adminPassword = kAdminPassword;
  c.passwordIterations = 1000;
  // The same suite against either defender-channel front (tests/CMakeLists.txt runs both).
  if (const char* front = std::getenv("DC_TEST_DEFENDER_FRONT")) c.defenderFront = front;
  if (const char* front = std::getenv("DC_TEST_CONSOLE_FRONT")) c.consoleFront = front;
  return c;
}

void startOrFail(ConsoleApp& app) {
  const Status st = app.start(/*startScheduler=*/false);
  if (!st.ok()) FAIL("Console did not start: " << st.error().message);
}

json heartbeatBody(const std::string& host, const std::string& appId,
                   const std::string& type = "fargate") {
  json j{{"hostname", host}, {"type", type}, {"version", "32.07.123"}, {"cluster", "prod"}};
  if (!appId.empty()) j["appID"] = appId;
  return j;
}

std::string basicHeader(const std::string& user, const std::string& password) {
  return "Basic " + auth::base64(user + ":" + password);
}

// One request per route of the permission table: a concrete path and body that the route
// answers with `permitted` when the caller may call it. Mutating routes get requests that are
// refused for their content (400/404), so the matrix leaves the Console as it found it.
struct RouteCase {
  std::string method;
  std::string pattern;  // as in the permission table
  std::string path;
  std::string body;
  int permitted;
  /// The issue's rule, written down independently of auth/permissions.cpp: auditor reads;
  /// defenderManager also deletes Defenders, embeds, manages image entrypoint data, Defender
  /// settings and credentials; admin everything, including users.
  auth::Access access;
};

std::vector<RouteCase> routeCases() {
  return {
      {"POST", "/api/v1/authenticate", "/api/v1/authenticate", "{}", 400, auth::Access::kPublic},
      {"GET", "/healthz", "/healthz", "", 200, auth::Access::kPublic},
      {"GET", "/readyz", "/readyz", "", 200, auth::Access::kPublic},
      {"GET", "/api/v1/_ping", "/api/v1/_ping", "", 200, auth::Access::kPublic},
      {"GET", "/api/v1/defenders", "/api/v1/defenders", "", 200, auth::Access::kAuditor},
      {"GET", "/api/v1/defenders/names", "/api/v1/defenders/names", "", 200,
       auth::Access::kAuditor},
      {"GET", "/api/v1/defenders/summary", "/api/v1/defenders/summary", "", 200,
       auth::Access::kAuditor},
      {"GET", "/api/v1/defenders/clusters", "/api/v1/defenders/clusters", "", 200,
       auth::Access::kAuditor},
      {"GET", "/api/v1/defenders/types", "/api/v1/defenders/types", "", 200,
       auth::Access::kAuditor},
      {"GET", "/api/v1/defenders/versions", "/api/v1/defenders/versions", "", 200,
       auth::Access::kAuditor},
      {"GET", "/api/v1/defenders/history", "/api/v1/defenders/history?range=day", "", 200,
       auth::Access::kAuditor},
      {"GET", "/api/v1/defenders/download", "/api/v1/defenders/download", "", 200,
       auth::Access::kAuditor},
      {"GET", "/api/v1/defenders/app-ids", "/api/v1/defenders/app-ids", "", 200,
       auth::Access::kAuditor},
      {"GET", "/api/v1/defenders/eviction-status", "/api/v1/defenders/eviction-status", "", 200,
       auth::Access::kAuditor},
      {"GET", "/api/v1/defenders/([^/]+)", "/api/v1/defenders/matrix-host", "", 200,
       auth::Access::kAuditor},
      {"GET", "/api/v1/settings/defender", "/api/v1/settings/defender", "", 200,
       auth::Access::kAuditor},
      {"GET", "/api/v1/profiles/app-embedded", "/api/v1/profiles/app-embedded", "", 200,
       auth::Access::kAuditor},
      {"GET", "/api/v1/profiles/app-embedded/([^/]+)", "/api/v1/profiles/app-embedded/matrix-host",
       "", 200, auth::Access::kAuditor},
      {"GET", "/api/v1/audit/defenders", "/api/v1/audit/defenders", "", 200,
       auth::Access::kAuditor},
      {"GET", "/api/v1/audit/events", "/api/v1/audit/events", "", 200, auth::Access::kAuditor},
      {"GET", "/api/v1/audit/events/download", "/api/v1/audit/events/download", "", 200,
       auth::Access::kAuditor},
      {"GET", "/api/v1/images/entrypoints", "/api/v1/images/entrypoints", "", 200,
       auth::Access::kAuditor},
      {"GET", "/api/v1/registry", "/api/v1/registry?search=nginx&compact=true", "", 200,
       auth::Access::kAuditor},
      {"GET", "/api/v1/version", "/api/v1/version", "", 200, auth::Access::kAuditor},
      {"GET", "/api/v1/openapi.json", "/api/v1/openapi.json", "", 200, auth::Access::kAuditor},
      {"GET", "/metrics", "/metrics", "", 200, auth::Access::kAuditor},
      {"GET", "/api/v1/users/current", "/api/v1/users/current", "", 200, auth::Access::kAuditor},
      {"GET", "/api/v1/views", "/api/v1/views", "", 200, auth::Access::kAuditor},
      {"POST", "/api/v1/views", "/api/v1/views", "{}", 400, auth::Access::kAuditor},
      {"DELETE", "/api/v1/views/([^/]+)", "/api/v1/views/no-such-view", "", 404,
       auth::Access::kAuditor},
      // Idempotent: deleting an unknown Defender is a no-op (204).
      {"DELETE", "/api/v1/defenders/([^/]+)", "/api/v1/defenders/no-such-defender", "", 204,
       auth::Access::kDefenderManager},
      // Refused for its content (no filter): a permitted call would delete Defenders.
      {"POST", "/api/v1/defenders/delete", "/api/v1/defenders/delete", "{}", 400,
       auth::Access::kDefenderManager},
      {"POST", "/api/v1/settings/defender", "/api/v1/settings/defender", "{}", 400,
       auth::Access::kDefenderManager},
      {"POST", "/api/v1/defenders/eviction-status/resume",
       "/api/v1/defenders/eviction-status/resume", "", 409, auth::Access::kDefenderManager},
      {"POST", "/api/v1/defenders/fargate.json", "/api/v1/defenders/fargate.json?consoleaddr=c",
       "{}", 400, auth::Access::kDefenderManager},
      {"POST", "/api/v1/defenders/fargate.yaml", "/api/v1/defenders/fargate.yaml?consoleaddr=c", "",
       400, auth::Access::kDefenderManager},
      {"POST", "/api/v1/images/entrypoints", "/api/v1/images/entrypoints", "{}", 400,
       auth::Access::kDefenderManager},
      {"DELETE", "/api/v1/images/entrypoints", "/api/v1/images/entrypoints?image=nope", "", 404,
       auth::Access::kDefenderManager},
      {"GET", "/api/v1/defenders/image-name", "/api/v1/defenders/image-name", "", 200,
       auth::Access::kDefenderManager},
      // Refused for its content (no consoleaddr): a permitted call would issue a credential.
      {"GET", "/api/v1/defenders/install-bundle", "/api/v1/defenders/install-bundle", "", 400,
       auth::Access::kDefenderManager},
      {"GET", "/api/v1/credentials", "/api/v1/credentials", "", 200,
       auth::Access::kDefenderManager},
      {"POST", "/api/v1/credentials", "/api/v1/credentials", "{}", 400,
       auth::Access::kDefenderManager},
      {"DELETE", "/api/v1/credentials/([^/]+)", "/api/v1/credentials/0000000000000000", "", 404,
       auth::Access::kDefenderManager},
      {"GET", "/api/v1/registry/credentials", "/api/v1/registry/credentials", "", 200,
       auth::Access::kDefenderManager},
      {"POST", "/api/v1/registry/credentials", "/api/v1/registry/credentials", "{}", 400,
       auth::Access::kDefenderManager},
      {"DELETE", "/api/v1/registry/credentials/([^/]+)", "/api/v1/registry/credentials/nope", "",
       404, auth::Access::kDefenderManager},
      {"GET", "/api/v1/users", "/api/v1/users", "", 200, auth::Access::kAdmin},
      {"POST", "/api/v1/users", "/api/v1/users", "{}", 400, auth::Access::kAdmin},
      {"PUT", "/api/v1/users/([^/]+)", "/api/v1/users/nobody", R"({"role":"auditor"})", 404,
       auth::Access::kAdmin},
      {"DELETE", "/api/v1/users/([^/]+)", "/api/v1/users/nobody", "", 404, auth::Access::kAdmin},
  };
}

std::vector<RouteCase> channelCases() {
  return {
      {"GET", "/healthz", "/healthz", "", 200, auth::Access::kPublic},
      {"POST", "/api/v1/defender/heartbeat", "/api/v1/defender/heartbeat",
       heartbeatBody("matrix-host", kAppX).dump(), 200, auth::Access::kDefender},
      {"POST", "/api/v1/defender/disconnect", "/api/v1/defender/disconnect",
       R"({"hostname":"no-such-defender"})", 404, auth::Access::kDefender},
      {"POST", "/api/v1/defender/observations", "/api/v1/defender/observations", "{}", 400,
       auth::Access::kDefender},
  };
}

httplib::Result send(httplib::Client& c, const RouteCase& rc, const httplib::Headers& h) {
  if (rc.method == "GET") return c.Get(rc.path.c_str(), h);
  if (rc.method == "DELETE") return c.Delete(rc.path.c_str(), h);
  if (rc.method == "PUT") return c.Put(rc.path.c_str(), h, rc.body, "application/json");
  return c.Post(rc.path.c_str(), h, rc.body, "application/json");
}

}  // namespace

TEST_CASE("access matrix: every route × every principal answers the exact status") {
  ManualClock clock{kT0};
  ConsoleConfig cfg = plainConfig();
  cfg.failedSignInsAllowed = 1'000'000;  // the wrong-password column must stay 401, not 429
  ConsoleApp app(cfg, clock, "test");
  startOrFail(app);
  httplib::Client console("127.0.0.1", app.consolePort());
  httplib::Client channel("127.0.0.1", app.defenderPort());
  auto& auth = app.auth();
  REQUIRE(auth.createUser("auditor1", "auditor1-password", auth::Role::kAuditor).ok());
  REQUIRE(auth.createUser("manager1", "manager1-password", auth::Role::kDefenderManager).ok());
  auto enrol = auth.issueCredential("", "matrix");
  REQUIRE(enrol.ok());
  // A Defender for the {hostname} reads.
  REQUIRE(channel
              .Post("/api/v1/defender/heartbeat", {{"Authorization", "Bearer " + enrol->secret}},
                    heartbeatBody("matrix-host", kAppX).dump(), "application/json")
              ->status == 200);

  // Tokens from POST /api/v1/authenticate: one that expires before the matrix, one that lasts.
  auto login = [&](const std::string& user, const std::string& pw) {
    auto r = console.Post("/api/v1/authenticate", json{{"username", user}, {"password", pw}}.dump(),
                          "application/json");
    REQUIRE(r);
    INFO(r->body);
    REQUIRE(r->status == 200);
    return json::parse(r->body).at("token").get<std::string>();
  };
  const std::string stale = login("admin", kAdminPassword);
  clock.advance(31min);
  const std::string auditorToken = login("auditor1", "auditor1-password");

  enum class P { kNone, kWrongPassword, kExpiredToken, kAuditor, kManager, kAdmin, kDefender };
  const std::vector<std::pair<P, std::string>> principals = {
      {P::kNone, "no credentials"},
      {P::kWrongPassword, "wrong password"},
      {P::kExpiredToken, "expired token"},
      {P::kAuditor, "auditor (token)"},
      {P::kManager, "defenderManager (Basic)"},
      {P::kAdmin, "admin (Basic)"},
      {P::kDefender, "Defender credential"},
  };
  auto headersOf = [&](P p) -> httplib::Headers {
    switch (p) {
      case P::kNone:
        return {};
      case P::kWrongPassword:
        return {{"Authorization", basicHeader("auditor1", "not-the-password")}};
      case P::kExpiredToken:
        return {{"Authorization", "Bearer " + stale}};
      case P::kAuditor:
        return {{"Authorization", "Bearer " + auditorToken}};
      case P::kManager:
        return {{"Authorization", basicHeader("manager1", "manager1-password")}};
      case P::kAdmin:
        return {{"Authorization", basicHeader("admin", kAdminPassword)}};
      case P::kDefender:
        return {{"Authorization", "Bearer " + enrol->secret}};
    }
    return {};
  };
  auto roleOf = [](P p) -> std::optional<auth::Role> {
    if (p == P::kAuditor) return auth::Role::kAuditor;
    if (p == P::kManager) return auth::Role::kDefenderManager;
    if (p == P::kAdmin) return auth::Role::kAdmin;
    return std::nullopt;
  };

  auto expected = [&](auth::Access access, P p, int permitted) {
    if (access == auth::Access::kPublic) return permitted;
    if (p == P::kNone || p == P::kWrongPassword || p == P::kExpiredToken) return 401;
    if (access == auth::Access::kDefender) return p == P::kDefender ? permitted : 401;
    if (p == P::kDefender) return 403;
    return auth::roleAllows(*roleOf(p), access) ? permitted : 403;
  };

  // Every route of both tables has a case, and every case is in a table.
  const auto consoleCases = routeCases();
  const auto defenderCases = channelCases();
  auto covered = [](const std::vector<auth::RoutePermission>& table,
                    const std::vector<RouteCase>& cases) {
    CHECK(table.size() == cases.size());
    for (const auto& p : table) {
      INFO(p.method << " " << p.pattern);
      CHECK(std::any_of(cases.begin(), cases.end(), [&](const RouteCase& c) {
        return c.method == p.method && c.pattern == p.pattern;
      }));
    }
  };
  covered(auth::consolePermissions(), consoleCases);
  covered(auth::defenderChannelPermissions(), defenderCases);

  size_t cells = 0;
  auto walk = [&](httplib::Client& client, const std::vector<auth::RoutePermission>& table,
                  const std::vector<RouteCase>& cases) {
    for (const auto& rc : cases) {
      const auto access = auth::findPermission(table, rc.method, rc.pattern);
      REQUIRE(access.has_value());
      INFO("permission table: " << rc.method << " " << rc.pattern);
      CHECK(*access == rc.access);
      for (const auto& [p, label] : principals) {
        auto r = send(client, rc, headersOf(p));
        INFO(rc.method << " " << rc.path << " as " << label);
        REQUIRE(r);
        INFO(r->body.substr(0, 300));
        const int want = expected(*access, p, rc.permitted);
        CHECK(r->status == want);
        if (want == 401) CHECK(r->get_header_value("WWW-Authenticate").rfind("Bearer", 0) == 0);
        if (r->status == 404) CHECK(json::parse(r->body).at("code") != "not_found");  // routed
        ++cells;
      }
    }
  };
  walk(console, auth::consolePermissions(), consoleCases);
  walk(channel, auth::defenderChannelPermissions(), defenderCases);
  CHECK(cells == (consoleCases.size() + defenderCases.size()) * principals.size());

  // The error codes tell the 401s apart.
  auto code = [&](const httplib::Headers& h) {
    auto r = console.Get("/api/v1/defenders", h);
    return json::parse(r->body).at("code").get<std::string>();
  };
  CHECK(code({}) == "unauthenticated");
  CHECK(code(headersOf(P::kWrongPassword)) == "invalid_credentials");
  CHECK(code(headersOf(P::kExpiredToken)) == "token_expired");
  CHECK(code(headersOf(P::kDefender)) == "defender_credential_refused");
}

TEST_CASE("every route of the permission table is in the OpenAPI document") {
  std::ifstream in(DC_SOURCE_DIR "/web/ui/openapi.json");
  REQUIRE(in);
  const json doc = json::parse(in);
  for (const auto* table : {&auth::consolePermissions(), &auth::defenderChannelPermissions()})
    for (const auto& p : *table) {
      INFO(p.method << " " << p.pattern);
      std::string method = p.method;
      std::transform(method.begin(), method.end(), method.begin(), ::tolower);
      bool found = false;
      for (const auto& [path, item] : doc.at("paths").items()) {
        const std::string asPattern =
            std::regex_replace(path, std::regex(R"(\{[^}]+\})"), "([^/]+)");
        if (asPattern == p.pattern && item.contains(method)) found = true;
      }
      CHECK(found);
    }
}

TEST_CASE("Defender credentials: App ID scope, revocation through the API, install bundle") {
  ManualClock clock{kT0};
  ConsoleApp app(plainConfig(), clock, "test");
  startOrFail(app);
  httplib::Client console("127.0.0.1", app.consolePort());
  console.set_basic_auth("admin", kAdminPassword);
  httplib::Client channel("127.0.0.1", app.defenderPort());

  auto issue = [&](const json& body) {
    auto r = console.Post("/api/v1/credentials", body.dump(), "application/json");
    REQUIRE(r);
    INFO(r->body);
    REQUIRE(r->status == 201);
    return json::parse(r->body);
  };
  const json x = issue({{"scope", "appID"}, {"appID", kAppX}, {"description", "checkout CI"}});
  const json enrol = issue({{"scope", "enrolment"}});
  CHECK(x.at("scope") == "appID");
  CHECK(x.at("appID") == kAppX);
  const std::string credX = x.at("credential");
  auto post = [&](const std::string& credential, const std::string& path, const json& body) {
    auto r = channel.Post(path.c_str(), {{"Authorization", "Bearer " + credential}}, body.dump(),
                          "application/json");
    REQUIRE(r);
    return std::make_pair(r->status, json::parse(r->body));
  };

  // X may report as X, never as Y, nor take over a Y Defender's hostname.
  CHECK(post(credX, "/api/v1/defender/heartbeat", heartbeatBody("task-x", kAppX)).first == 200);
  auto asY = post(credX, "/api/v1/defender/heartbeat", heartbeatBody("task-y", kAppY));
  CHECK(asY.first == 403);
  CHECK(asY.second.at("code") == "app_id_mismatch");
  CHECK(asY.second.at("field") == "appID");
  CHECK(post(credX, "/api/v1/defender/heartbeat", heartbeatBody("host-1", "", "docker")).first ==
        403);
  REQUIRE(post(enrol.at("credential"), "/api/v1/defender/heartbeat", heartbeatBody("task-y", kAppY))
              .first == 200);
  CHECK(
      post(credX, "/api/v1/defender/heartbeat", heartbeatBody("task-y", kAppX)).second.at("code") ==
      "app_id_mismatch");
  CHECK(post(credX, "/api/v1/defender/disconnect", {{"hostname", "task-y"}}).first == 403);
  const json obs{
      {"hostname", "task-y"},
      {"observations",
       {{{"kind", "process"}, {"time", "2027-01-15T08:00:00Z"}, {"fields", json::object()}}}}};
  CHECK(post(credX, "/api/v1/defender/observations", obs).first == 403);
  // Nothing was written by the refused calls: task-y is still Y's and connected.
  auto y = json::parse(console.Get("/api/v1/defenders/task-y")->body);
  CHECK(y.at("appID") == kAppY);
  CHECK(y.at("connected") == true);
  CHECK(json::parse(console.Get("/api/v1/defenders/task-x")->body).at("appID") == kAppX);

  // Revoked through the API: refused at once; the list shows it revoked, without secrets.
  auto del = console.Delete(("/api/v1/credentials/" + x.at("id").get<std::string>()).c_str());
  REQUIRE(del);
  CHECK(del->status == 200);
  auto revoked = post(credX, "/api/v1/defender/heartbeat", heartbeatBody("task-x", kAppX));
  CHECK(revoked.first == 401);
  CHECK(revoked.second.at("code") == "credential_revoked");
  auto list = console.Get("/api/v1/credentials");
  REQUIRE(list->status == 200);
  const json all = json::parse(list->body);
  REQUIRE(all.size() == 2);
  for (const auto& c : all) CHECK(c.at("revoked") == (c.at("id") == x.at("id")));
  CHECK(list->body.find(credX) == std::string::npos);
  CHECK(list->body.find("credential\"") == std::string::npos);

  // Bad requests name the field.
  auto bad = console.Post("/api/v1/credentials", R"({"scope":"appID","appID":"nope"})",
                          "application/json");
  CHECK(bad->status == 400);
  CHECK(json::parse(bad->body).at("field") == "appID");

  // The embed flow puts a credential scoped to the issued App ID into INSTALL_BUNDLE.
  const std::string task = R"({"family":"shop","requiresCompatibilities":["FARGATE"],
    "networkMode":"awsvpc","cpu":"256","memory":"512",
    "containerDefinitions":[{"name":"web","image":"nginx","entryPoint":["/start"]}]})";
  auto embedded = console.Post("/api/v1/defenders/fargate.json?consoleaddr=console.example.com",
                               task, "application/json");
  REQUIRE(embedded);
  INFO(embedded->body);
  REQUIRE(embedded->status == 200);
  const std::string appId = embedded->get_header_value("X-Defender-App-IDs");
  const json doc = json::parse(embedded->body);
  std::string bundle, wsAddress;
  for (const auto& c : doc.at("containerDefinitions"))
    if (c.contains("environment"))
      for (const auto& e : c.at("environment")) {
        if (e.at("name") == "INSTALL_BUNDLE") bundle = e.at("value");
        if (e.at("name") == "WS_ADDRESS") wsAddress = e.at("value");
      }
  CHECK(wsAddress.rfind("ws://console.example.com:", 0) == 0);  // plain-HTTP Console
  auto decoded = auth::base64Decode(bundle);
  REQUIRE(decoded.has_value());
  const json b = json::parse(*decoded);
  CHECK(b.at("appID") == appId);
  const std::string bundled = b.at("credential");
  CHECK(post(bundled, "/api/v1/defender/heartbeat", heartbeatBody("shop-task", appId)).first ==
        200);
  CHECK(post(bundled, "/api/v1/defender/heartbeat", heartbeatBody("shop-task-2", kAppX)).first ==
        403);
}

TEST_CASE("users API: admin manages users; a password change revokes that user's tokens") {
  ManualClock clock{kT0};
  ConsoleApp app(plainConfig(), clock, "test");
  startOrFail(app);
  httplib::Client admin("127.0.0.1", app.consolePort());
  admin.set_basic_auth("admin", kAdminPassword);
  httplib::Client anon("127.0.0.1", app.consolePort());

  auto created = admin.Post(
      "/api/v1/users", R"({"username":"ci","password":"ci-password-1","role":"defenderManager"})",
      "application/json");
  REQUIRE(created);
  CHECK(created->status == 201);
  CHECK(created->body.find("ci-password-1") == std::string::npos);
  CHECK(admin
            .Post("/api/v1/users",
                  R"({"username":"ci","password":"ci-password-1","role":"auditor"})",
                  "application/json")
            ->status == 409);
  auto badRole =
      admin.Post("/api/v1/users", R"({"username":"x","password":"xxxxxxxxxx","role":"root"})",
                 "application/json");
  CHECK(badRole->status == 400);
  CHECK(json::parse(badRole->body).at("field") == "role");

  auto token = anon.Post("/api/v1/authenticate", R"({"username":"ci","password":"ci-password-1"})",
                         "application/json");
  REQUIRE(token->status == 200);
  const json t = json::parse(token->body);
  CHECK(t.at("role") == "defenderManager");
  CHECK(t.at("expiresAt") == "2027-01-15T08:30:00.000Z");
  const httplib::Headers bearer{{"Authorization", "Bearer " + t.at("token").get<std::string>()}};
  auto me = anon.Get("/api/v1/users/current", bearer);
  REQUIRE(me->status == 200);
  CHECK(json::parse(me->body).at("username") == "ci");
  CHECK(anon.Get("/api/v1/users", bearer)->status == 403);

  REQUIRE(admin.Put("/api/v1/users/ci", R"({"password":"ci-password-2"})", "application/json")
              ->status == 200);
  auto after = anon.Get("/api/v1/defenders", bearer);
  CHECK(after->status == 401);
  CHECK(json::parse(after->body).at("code") == "token_revoked");
  CHECK(anon.Post("/api/v1/authenticate", R"({"username":"ci","password":"ci-password-1"})",
                  "application/json")
            ->status == 401);
  CHECK(anon.Post("/api/v1/authenticate", R"({"username":"ci","password":"ci-password-2"})",
                  "application/json")
            ->status == 200);
  CHECK(admin.Delete("/api/v1/users/admin")->status == 409);  // the last admin stays
  CHECK(admin.Delete("/api/v1/users/ci")->status == 200);
  auto users = json::parse(admin.Get("/api/v1/users")->body);
  REQUIRE(users.size() == 1);
  CHECK(users[0].at("username") == "admin");
  CHECK_FALSE(users[0].contains("passwordHash"));
}

TEST_CASE("security headers on the web page and the API") {
  ManualClock clock{kT0};
  ConsoleApp app(plainConfig(), clock, "test");
  startOrFail(app);
  httplib::Client c("127.0.0.1", app.consolePort());
  for (const char* path : {"/", "/index.html", "/api/v1/version", "/healthz"}) {
    auto r = c.Get(path, {{"Authorization", basicHeader("admin", kAdminPassword)}});
    REQUIRE(r);
    INFO(path);
    CHECK(r->status == 200);
    CHECK(r->get_header_value("X-Frame-Options") == "DENY");
    CHECK(r->get_header_value("X-Content-Type-Options") == "nosniff");
    CHECK(r->get_header_value("Referrer-Policy") == "no-referrer");
    const auto csp = r->get_header_value("Content-Security-Policy");
    CHECK(csp.find("frame-ancestors 'none'") != std::string::npos);
    CHECK(csp.find("script-src 'self'") != std::string::npos);
  }
  CHECK(c.Get("/api/v1/version", {{"Authorization", basicHeader("admin", kAdminPassword)}})
            ->get_header_value("Cache-Control") == "no-store");
  // The page itself loads without credentials (it signs in), the data does not.
  CHECK(c.Get("/")->status == 200);
  CHECK(c.Get("/api/v1/defenders")->status == 401);
}

TEST_CASE("TLS: HTTPS by default with a generated certificate that is reused; mutual TLS") {
  const std::string dataDir = tempDir("tls");
  ManualClock clock{kT0};
  ConsoleConfig cfg = plainConfig();
  cfg.plainHttp = false;
  cfg.database = dataDir + "/console.db";
  cfg.dataDir = dataDir;
  std::string fingerprint;
  {
    ConsoleApp app(cfg, clock, "test");
    startOrFail(app);
    REQUIRE(app.tls());
    CHECK(app.tlsCertFile() == dataDir + "/tls/console.crt");
    CHECK((std::filesystem::status(dataDir + "/tls/console.key").permissions() &
           std::filesystem::perms::all) ==
          (std::filesystem::perms::owner_read | std::filesystem::perms::owner_write));
    CHECK((std::filesystem::status(dataDir + "/token.key").permissions() &
           std::filesystem::perms::all) ==
          (std::filesystem::perms::owner_read | std::filesystem::perms::owner_write));
    fingerprint = auth::certificateFingerprint(app.tlsCertFile());
    CHECK(fingerprint.size() == 95);

    httplib::SSLClient tls("127.0.0.1", app.consolePort());  // like curl -k
    tls.enable_server_certificate_verification(false);
    auto health = tls.Get("/healthz");
    REQUIRE(health);
    CHECK(health->status == 200);
    tls.set_basic_auth("admin", kAdminPassword);
    auto list = tls.Get("/api/v1/defenders");
    REQUIRE(list);
    CHECK(list->status == 200);
    // Verified against the generated certificate (its SANs include 127.0.0.1).
    httplib::SSLClient verified("127.0.0.1", app.consolePort());
    verified.set_ca_cert_path(app.tlsCertFile().c_str());
    verified.enable_server_certificate_verification(true);
    auto v = verified.Get("/healthz");
    REQUIRE(v);
    CHECK(v->status == 200);
    // Plain HTTP to the HTTPS port gets no HTTP answer.
    httplib::Client plain("127.0.0.1", app.consolePort());
    plain.set_read_timeout(2, 0);
    auto p = plain.Get("/healthz");
    CHECK((!p || p->status != 200));
    // The defender channel speaks HTTPS too.
    httplib::SSLClient ch("127.0.0.1", app.defenderPort());
    ch.enable_server_certificate_verification(false);
    auto chHealth = ch.Get("/healthz");
    REQUIRE(chHealth);
    CHECK(chHealth->status == 200);
  }
  {
    ConsoleApp again(cfg, clock, "test");
    startOrFail(again);
    CHECK(auth::certificateFingerprint(again.tlsCertFile()) == fingerprint);  // reused
  }

  SECTION("mutual TLS on the defender channel") {
    // With TLS 1.3 a client without a certificate learns of the refusal only when it writes its
    // request, and httplib's SSL client writes with write(2): on a socket the Console already
    // closed, that raises SIGPIPE, which the Console's own process ignores (main/main.cpp).
    std::signal(SIGPIPE, SIG_IGN);
    // A client identity: a second generated key pair, which is also the accepted client CA.
    const std::string clientDir = tempDir("client");
    auto client = auth::ensureSelfSignedCertificate(clientDir, {});
    REQUIRE(client.ok());
    ConsoleConfig m = cfg;
    m.defenderClientCa = client->certFile;
    ConsoleApp app(m, clock, "test");
    startOrFail(app);
    auto enrol = app.auth().issueCredential("", "mtls");
    REQUIRE(enrol.ok());
    const httplib::Headers h{{"Authorization", "Bearer " + enrol->secret}};
    const std::string body = heartbeatBody("mtls-host", kAppX).dump();

    httplib::SSLClient without("127.0.0.1", app.defenderPort());
    without.enable_server_certificate_verification(false);
    auto refused = without.Post("/api/v1/defender/heartbeat", h, body, "application/json");
    CHECK_FALSE(refused);  // the handshake fails

    httplib::SSLClient with("127.0.0.1", app.defenderPort(), client->certFile, client->keyFile);
    with.enable_server_certificate_verification(false);
    auto accepted = with.Post("/api/v1/defender/heartbeat", h, body, "application/json");
    REQUIRE(accepted);
    CHECK(accepted->status == 200);
    // The Console API listener does not ask for client certificates.
    httplib::SSLClient api("127.0.0.1", app.consolePort());
    api.enable_server_certificate_verification(false);
    auto ok = api.Get("/healthz");
    REQUIRE(ok);
    CHECK(ok->status == 200);
  }
}

TEST_CASE("no password, token or credential is written to the logs") {
  std::ostringstream captured;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(captured);
  auto previous = spdlog::default_logger();
  spdlog::set_default_logger(std::make_shared<spdlog::logger>("capture", sink));
  spdlog::set_level(spdlog::level::trace);
  std::vector<std::string> secrets;
  {
    ManualClock clock{kT0};
    ConsoleConfig cfg = plainConfig();
    cfg.adminPassword.clear();  // generated on first start
    ConsoleApp app(cfg, clock, "test");
    startOrFail(app);
    auto generated = app.takeGeneratedAdminPassword();
    REQUIRE(generated.has_value());
    CHECK_FALSE(app.takeGeneratedAdminPassword().has_value());  // handed out once
    secrets.push_back(*generated);
    httplib::Client c("127.0.0.1", app.consolePort());
    c.set_basic_auth("admin", *generated);
    REQUIRE(c.Post("/api/v1/users",
                   R"({"username":"eve","password":"eve-secret-password","role":"auditor"})",
                   "application/json")
                ->status == 201);
    secrets.push_back("eve-secret-password");
    REQUIRE(c.Put("/api/v1/users/eve", R"({"password":"eve-second-password"})", "application/json")
                ->status == 200);
    secrets.push_back("eve-second-password");
    auto login =
        c.Post("/api/v1/authenticate", R"({"username":"eve","password":"eve-second-password"})",
               "application/json");
    REQUIRE(login->status == 200);
    secrets.push_back(json::parse(login->body).at("token"));
    CHECK(c.Post("/api/v1/authenticate", R"({"username":"eve","password":"wrong-secret-guess"})",
                 "application/json")
              ->status == 401);
    secrets.push_back("wrong-secret-guess");
    auto cred = c.Post("/api/v1/credentials", R"({"scope":"enrolment"})", "application/json");
    REQUIRE(cred->status == 201);
    secrets.push_back(json::parse(cred->body).at("credential"));
    auto embedded =
        c.Post("/api/v1/defenders/fargate.json?consoleaddr=console.example.com",
               R"({"family":"logs","requiresCompatibilities":["FARGATE"],"networkMode":"awsvpc",
            "cpu":"256","memory":"512",
            "containerDefinitions":[{"name":"web","image":"nginx","entryPoint":["/start"]}]})",
               "application/json");
    REQUIRE(embedded->status == 200);
    const json doc = json::parse(embedded->body);
    for (const auto& e : doc.at("containerDefinitions")[1].at("environment"))
      if (e.at("name") == "INSTALL_BUNDLE")
        secrets.push_back(
            json::parse(*auth::base64Decode(e.at("value").get<std::string>())).at("credential"));
    app.stop();
  }
  spdlog::set_default_logger(previous);
  const std::string log = captured.str();
  CHECK(log.find("user eve created") != std::string::npos);  // the capture works
  REQUIRE(secrets.size() == 7);
  for (const auto& s : secrets) {
    INFO("secret " << s.substr(0, 6) << "…");
    CHECK(log.find(s) == std::string::npos);
  }
}

TEST_CASE("a start that fails creates no admin, so a generated password is never lost") {
  const std::string dataDir = tempDir("failed-start");
  const std::string notPem = dataDir + "/not-a-certificate.pem";
  std::ofstream(notPem) << "not a certificate\n";
  ManualClock clock{kT0};
  ConsoleConfig cfg = plainConfig();
  cfg.plainHttp = false;
  cfg.adminPassword.clear();
  cfg.database = dataDir + "/console.db";
  cfg.dataDir = dataDir;
  cfg.tlsCert = notPem;
  cfg.tlsKey = notPem;
  {
    ConsoleApp app(cfg, clock, "test");
    const Status st = app.start(false);
    REQUIRE_FALSE(st.ok());
    CHECK(st.error().code == "tls_invalid");
    CHECK(app.auth().listUsers().empty());
    CHECK_FALSE(app.takeGeneratedAdminPassword().has_value());
  }
  cfg.tlsCert.clear();
  cfg.tlsKey.clear();
  ConsoleApp app(cfg, clock, "test");
  startOrFail(app);
  CHECK(app.takeGeneratedAdminPassword().has_value());
  CHECK(app.auth().listUsers().size() == 1);
}

TEST_CASE("scopeAllows: enrolment, exact App ID, and the UUID for intrinsic families") {
  using heartbeat::scopeAllows;
  CHECK(scopeAllows("", kAppX));
  CHECK(scopeAllows("", ""));
  CHECK(scopeAllows(kAppX, kAppX));
  CHECK_FALSE(scopeAllows(kAppX, kAppY));
  CHECK_FALSE(scopeAllows(kAppX, ""));
  // Same UUID under another literal family: still another App ID.
  CHECK_FALSE(scopeAllows(kAppX, "other:0b7e6c4e-3f4b-4b7b-9d3c-1a2b3c4d5e6f"));
  // Issued for {"Ref":"Family"}: reported with the family CloudFormation resolved.
  const std::string intrinsic = R"({"Ref":"Family"}:0b7e6c4e-3f4b-4b7b-9d3c-1a2b3c4d5e6f)";
  CHECK(scopeAllows(intrinsic, "payments:0b7e6c4e-3f4b-4b7b-9d3c-1a2b3c4d5e6f"));
  CHECK_FALSE(scopeAllows(intrinsic, "payments:7a1d2c3b-4e5f-4a6b-8c7d-9e0f1a2b3c4d"));
}
