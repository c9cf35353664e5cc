// The embed flow inside the real Console: with `--defender-port 0` the protected task definition
// names the port the defender channel was actually bound to (docs/embed.md).
#include <catch2/catch.hpp>

#include <httplib.h>

#include <nlohmann/json.hpp>

#include "auth/crypto.h"
#include "main/console_app.h"

using namespace dc;
using nlohmann::json;

TEST_CASE("with defender port 0 the embed output names the bound port", "[embed][console]") {
  // Before: INSTALL_BUNDLE said "defenderPort": 0 and WS_ADDRESS ended in ":0".
  ManualClock clock{TimePoint(Millis(1'800'000'000'000))};
  ConsoleConfig c;
  c.database = ":memory:";
  c.host = "127.0.0.1";
  c.consolePort = 0;
  c.defenderPort = 0;
  c.uiDir = "/nonexistent";
  c.plainHttp = true;
  c.adminPassword = "embed-port-admin-password";
  c.passwordIterations = 1000;
  ConsoleApp app(c, clock, "test");
  const Status st = app.start(/*startScheduler=*/false);
  if (!st.ok()) FAIL("Console did not start: " << st.error().message);
  const int bound = app.defenderPort();
  REQUIRE(bound > 0);

  httplib::Client console("127.0.0.1", app.consolePort());
  console.set_basic_auth("admin", "embed-port-admin-password");
  const json task = {{"family", "webserver"},
                     {"networkMode", "awsvpc"},
                     {"requiresCompatibilities", {"FARGATE"}},
                     {"containerDefinitions",
                      {{{"name", "web"}, {"image", "nginx"}, {"entryPoint", {"/http_server"}}}}}};
  auto r = console.Post("/api/v1/defenders/fargate.json?consoleaddr=127.0.0.1", task.dump(),
                        "application/json");
  REQUIRE(r);
  INFO(r->body);
  REQUIRE(r->status == 200);
  std::map<std::string, std::string> env;
  const json out = json::parse(r->body);
  for (const auto& e : out.at("containerDefinitions").back().at("environment"))
    env[e.at("name")] = e.at("value");
  CHECK(env.at("WS_ADDRESS") == "ws://127.0.0.1:" + std::to_string(bound));
  auto bundle = auth::base64Decode(env.at("INSTALL_BUNDLE"));
  REQUIRE(bundle.has_value());
  CHECK(json::parse(*bundle).at("defenderPort") == bound);
  CHECK(json::parse(r->get_header_value("X-Defender-Embed-Report")) ==
        json{{"dropped", json::array()}, {"skipped", json::array()}});

  // A refusal keeps every problem through the web layer's error rendering.
  auto refused = console.Post("/api/v1/defenders/fargate.json?consoleaddr=127.0.0.1",
                              R"({"family": "a b", "family": "c", "networkMode": "awsvpc",
                                  "requiresCompatibilities": ["FARGATE"],
                                  "containerDefinitions": [{"name": "x y", "image": "i",
                                                            "entryPoint": ["/x"]}]})",
                              "application/json");
  REQUIRE(refused);
  INFO(refused->body);
  CHECK(refused->status == 400);
  const json err = json::parse(refused->body);
  CHECK(err.at("code") == "duplicate_key");
  REQUIRE(err.at("problems").size() == 3);
  CHECK(err.at("problems")[0].at("field") == "family");
  CHECK(err.at("problems")[1].at("code") == "invalid_family");
  CHECK(err.at("problems")[2].at("code") == "invalid_container_name");
  app.stop();
}
