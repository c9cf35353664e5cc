// EmbedService: query parameters, statuses, App ID records and the image-entrypoint API.
#include <catch2/catch.hpp>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "auth/crypto.h"
#include "embed/handler.h"
#include "embed/store.h"
#include "tests/embed/embed_test_util.h"

using namespace dc;
using namespace dc::embed;
using json = nlohmann::json;

namespace {

const char* kSeedTask =
    R"({ "containerDefinitions": [ { "name": "web", "image": "nginx", "entryPoint": [ "/http_server" ] } ], "cpu": "256", "executionRoleArn": "arn:aws:iam::112233445566:role/ecsTaskExecutionRole", "family": "webserver", "memory": "512", "networkMode": "awsvpc", "requiresCompatibilities": [ "FARGATE" ] })";

std::string header(const HttpResponse& r, const std::string& name) {
  for (const auto& [k, v] : r.headers)
    if (k == name) return v;
  return {};
}

/// A store whose every call fails, as a locked or broken database would.
class FailingStore final : public EmbedStore {
 public:
  Status recordIssued(const std::vector<IssuedAppId>&) override { return down(); }
  Result<Page<IssuedAppId>> listIssued(std::string_view, size_t, size_t) override { return down(); }
  Result<std::optional<IssuedAppId>> findIssuedByUuid(std::string_view) override { return down(); }
  Result<std::vector<IssuedAppId>> findIssuedByUuids(const std::vector<std::string>&) override {
    return down();
  }
  Status putImage(const ImageEntrypoint&) override { return down(); }
  Result<std::optional<ImageEntrypoint>> findImage(std::string_view) override { return down(); }
  Result<bool> deleteImage(std::string_view) override { return down(); }
  Result<Page<ImageEntrypoint>> listImages(std::string_view, size_t, size_t) override {
    return down();
  }

 private:
  static Error down() { return Error::unavailable("database is locked"); }
};

struct Fixture {
  MemoryEmbedStore store;
  ManualClock clock{TimePoint(Millis(1795000000000))};
  EmbedService service{store, clock, EmbedConfig{}, test::sequentialUuids()};
};

}  // namespace

TEST_CASE("the vendor's Jenkins request works as written", "[embed][handler]") {
  // curl ... https://$C/api/v1/defenders/fargate.json?consoleaddr=$C -X POST
  //   -H "Content-Type:application/json" --data-binary "@fargate.json"
  Fixture f;
  EmbedRequest req{kSeedTask,
                   "application/json",
                   {{"consoleaddr", "console.example.com:8083"}},
                   EndpointFormat::kJson};
  const HttpResponse r = f.service.embed(req);
  REQUIRE(r.status == 200);
  CHECK(r.contentType == "application/json");
  const json out = json::parse(r.body);  // what `jq .` needs: one JSON document
  const auto& containers = out.at("containerDefinitions");
  REQUIRE(containers.size() == 2);
  CHECK(containers[0].at("entryPoint") == json::array({"/var/lib/twistlock/fargate/defender",
                                                       "fargate", "entrypoint", "/http_server"}));
  CHECK(containers[1].at("name") == "TwistlockDefender");
  const std::string appId = "webserver:00000000-0000-4000-8000-000000000001";
  CHECK(header(r, "X-Defender-App-IDs") == appId);
  bool sawWs = false;
  for (const auto& e : containers[1].at("environment")) {
    if (e.at("name") == "WS_ADDRESS") {
      CHECK(e.at("value") == "wss://console.example.com:8084");
      sawWs = true;
    }
  }
  CHECK(sawWs);

  CHECK(f.service.isIssued(appId));
  CHECK_FALSE(f.service.isIssued("webserver:00000000-0000-4000-8000-000000000002"));
  CHECK_FALSE(f.service.isIssued("other:00000000-0000-4000-8000-000000000001"));

  const HttpResponse list = f.service.listAppIds({});
  REQUIRE(list.status == 200);
  CHECK(header(list, "Total-Count") == "1");
  const json ids = json::parse(list.body);
  REQUIRE(ids.size() == 1);
  CHECK(ids[0].at("appID") == appId);
  CHECK(ids[0].at("family") == "webserver");
  CHECK(ids[0].at("format") == "native-json");
  CHECK(ids[0].at("issuedAt") == "2026-11-18T11:06:40.000Z");
}

TEST_CASE("App ID listing filters and pages", "[embed][handler]") {
  Fixture f;
  for (int i = 0; i < 3; ++i) {
    f.clock.advance(Millis(1000));
    REQUIRE(
        f.service.embed({kSeedTask, "", {{"consoleaddr", "c"}}, EndpointFormat::kJson}).status ==
        200);
  }
  auto page = f.service.listAppIds({{"family", "webserver"}, {"offset", "1"}, {"limit", "1"}});
  REQUIRE(page.status == 200);
  CHECK(header(page, "Total-Count") == "3");
  const json items = json::parse(page.body);
  REQUIRE(items.size() == 1);
  CHECK(items[0].at("uuid") == "00000000-0000-4000-8000-000000000002");
  CHECK(json::parse(f.service.listAppIds({{"family", "nope"}}).body).empty());
  CHECK(f.service.listAppIds({{"limit", "0"}}).status == 400);
  CHECK(f.service.listAppIds({{"limit", "251"}}).status == 400);
  CHECK(f.service.listAppIds({{"offset", "-1"}}).status == 400);
}

TEST_CASE("query parameters are validated, never guessed", "[embed][handler]") {
  Fixture f;
  const auto code = [&](QueryParams q) {
    const HttpResponse r = f.service.embed({kSeedTask, "", std::move(q), EndpointFormat::kJson});
    if (r.status == 200) return std::string("ok");
    CHECK(r.status == 400);
    CHECK(r.error.has_value());
    return json::parse(r.body).at("code").get<std::string>() + "/" +
           json::parse(r.body).at("field").get<std::string>();
  };
  CHECK(code({}) == "missing_parameter/consoleaddr");
  CHECK(code({{"consoleaddr", "https://c.example.com"}}) == "invalid_parameter/consoleaddr");
  CHECK(code({{"consoleaddr", "bad host"}}) == "invalid_parameter/consoleaddr");
  CHECK(code({{"consoleaddr", "c.example.com:99999"}}) == "invalid_parameter/consoleaddr");
  CHECK(code({{"consoleaddr", "[fd00::1]:8083"}}) == "ok");
  CHECK(code({{"consoleaddr", "10.1.2.3"}}) == "ok");
  CHECK(code({{"consoleaddr", "a"}, {"consoleaddr", "b"}}) == "invalid_parameter/consoleaddr");
  CHECK(code({{"consoleaddr", "c"}, {"defenderType", "docker"}}) ==
        "invalid_parameter/defenderType");
  CHECK(code({{"consoleaddr", "c"}, {"defenderType", "appEmbedded"}}) == "ok");
  CHECK(code({{"consoleaddr", "c"}, {"filesystemMonitoring", "1"}}) ==
        "invalid_parameter/filesystemMonitoring");
  CHECK(code({{"consoleaddr", "c"}, {"filesystemMonitoring", "TRUE"}}) == "ok");
  CHECK(code({{"consoleaddr", "c"}, {"cloudFormation", "true"}}) ==
        "format_mismatch/cloudFormation");
  CHECK(code({{"consoleaddr", "c"}, {"interpreter", std::string(300, 'x')}}) ==
        "invalid_parameter/interpreter");
}

TEST_CASE("IPv6 console address is bracketed in WS_ADDRESS", "[embed][handler]") {
  Fixture f;
  const HttpResponse r =
      f.service.embed({kSeedTask, "", {{"consoleaddr", "[fd00::1]"}}, EndpointFormat::kJson});
  REQUIRE(r.status == 200);
  CHECK_THAT(r.body, Catch::Contains("wss://[fd00::1]:8084"));
}

TEST_CASE("oversized bodies are refused before parsing", "[embed][handler]") {
  Fixture f;
  const std::string big(2 * 1024 * 1024, ' ');
  const HttpResponse r = f.service.embed({big, "", {{"consoleaddr", "c"}}, EndpointFormat::kYaml});
  CHECK(r.status == 413);
  CHECK(json::parse(r.body).at("code") == "too_large");
}

TEST_CASE("a storage failure is a 503 and no document is returned", "[embed][handler]") {
  FailingStore store;
  ManualClock clock{TimePoint(Millis(0))};
  EmbedService service{store, clock, EmbedConfig{}, test::sequentialUuids()};
  const HttpResponse r =
      service.embed({kSeedTask, "", {{"consoleaddr", "c"}}, EndpointFormat::kJson});
  CHECK(r.status == 503);
  CHECK(json::parse(r.body).at("code") == "storage_unavailable");
  CHECK_FALSE(service.isIssued("webserver:00000000-0000-4000-8000-000000000001"));
  CHECK(service.listAppIds({}).status == 503);
}

TEST_CASE("image entrypoint API: delete by image reference", "[embed][handler]") {
  Fixture f;
  REQUIRE(f.service.putImageEntrypoint(R"({"image": "redis", "cmd": ["redis-server"]})").status ==
          200);
  REQUIRE(f.service.putImageEntrypoint(R"({"image": "nginx:1.27", "cmd": ["nginx"]})").status ==
          200);
  // Any spelling of the same image (normalized as by POST).
  auto del = f.service.deleteImageEntrypoint({{"image", "docker.io/library/redis:latest"}});
  REQUIRE(del.status == 200);
  CHECK(json::parse(del.body) ==
        json{{"image", "docker.io/library/redis:latest"}, {"deleted", true}});
  CHECK_FALSE(f.store.findImage("docker.io/library/redis:latest")->has_value());
  CHECK(f.store.findImage("docker.io/library/nginx:1.27")->has_value());
  // Gone already: 404 naming the image; nothing else touched.
  auto again = f.service.deleteImageEntrypoint({{"image", "redis"}});
  CHECK(again.status == 404);
  CHECK(json::parse(again.body).at("code") == "unknown_image");
  for (const auto& [query, code] : std::vector<std::pair<QueryParams, std::string>>{
           {{}, "missing_parameter"},
           {{{"image", "has space"}}, "invalid_image"},
           {{{"image", "nginx:1.27"}, {"prefix", "x"}}, "invalid_parameter"}}) {
    auto r = f.service.deleteImageEntrypoint(query);
    CHECK(r.status == 400);
    CHECK(json::parse(r.body).at("code") == code);
  }
  CHECK(f.store.findImage("docker.io/library/nginx:1.27")->has_value());
}

TEST_CASE("image entrypoint API: add, list, and use in an embed", "[embed][handler]") {
  Fixture f;
  auto put = f.service.putImageEntrypoint(
      R"({"image": "example.com/team/app:3", "entrypoint": ["/init", "--"], "cmd": ["serve"]})");
  REQUIRE(put.status == 200);
  CHECK(json::parse(put.body).at("image") == "example.com/team/app:3");
  CHECK(json::parse(put.body).at("source") == "api");

  CHECK(f.service.putImageEntrypoint(R"({"image": "x"})").status == 400);
  CHECK(f.service.putImageEntrypoint(R"({"image": "x", "entrypoint": "/bin/sh -c"})").status ==
        400);
  CHECK(f.service.putImageEntrypoint(R"({"image": "x", "cmd": [1]})").status == 400);
  CHECK(f.service.putImageEntrypoint(R"({"image": "x", "cmd": ["a"], "extra": 1})").status == 400);
  CHECK(f.service.putImageEntrypoint(R"({"image": "x", "cmd": ["a"], "cmd": ["b"]})").status ==
        400);
  CHECK(f.service.putImageEntrypoint("not json").status == 400);

  REQUIRE(f.service.putImageEntrypoint(R"({"image": "redis", "cmd": ["redis-server"]})").status ==
          200);
  auto list = f.service.listImageEntrypoints({});
  REQUIRE(list.status == 200);
  CHECK(header(list, "Total-Count") == "2");
  auto one = f.service.listImageEntrypoints({{"image", "redis:latest"}});
  REQUIRE(one.status == 200);
  REQUIRE(json::parse(one.body).size() == 1);
  CHECK(json::parse(one.body)[0].at("image") == "docker.io/library/redis:latest");

  const std::string task =
      R"({"family":"t","networkMode":"awsvpc","requiresCompatibilities":["FARGATE"],)"
      R"("containerDefinitions":[{"name":"app","image":"example.com/team/app:3"}]})";
  auto r = f.service.embed(
      {task, "", {{"consoleaddr", "c"}, {"extractEntrypoint", "true"}}, EndpointFormat::kJson});
  REQUIRE(r.status == 200);
  const json c = json::parse(r.body).at("containerDefinitions")[0];
  CHECK(c.at("entryPoint") == json::array({"/var/lib/twistlock/fargate/defender", "fargate",
                                           "entrypoint", "/init", "--"}));
  CHECK(c.at("command") == json::array({"serve"}));
}

TEST_CASE("a custom install bundle issuer sees each issued App ID", "[embed][handler]") {
  MemoryEmbedStore store;
  ManualClock clock{TimePoint(Millis(0))};
  std::vector<std::string> seen;
  EmbedService service{store, clock, EmbedConfig{}, test::sequentialUuids(),
                       [&](const IssuedDefinition& d) {
                         seen.push_back(d.appId);
                         return json{{"note", "bundle-for-" + d.uuid}}.dump();
                       }};
  auto r = service.embed({kSeedTask, "", {{"consoleaddr", "c"}}, EndpointFormat::kJson});
  REQUIRE(r.status == 200);
  CHECK(seen == std::vector<std::string>{"webserver:00000000-0000-4000-8000-000000000001"});
  const json sc = json::parse(r.body).at("containerDefinitions").back();
  auto bundle = auth::base64Decode(sc.at("environment")[0].at("value").get<std::string>());
  REQUIRE(bundle.has_value());
  // The App ID first, then the issuer's members.
  CHECK(*bundle == R"({"appID":"webserver:00000000-0000-4000-8000-000000000001",)"
                   R"("note":"bundle-for-00000000-0000-4000-8000-000000000001"})");
}

// ---------------------------------------------------------------------------------------------
// Embed output details (docs/embed.md, docs/reliability.md).

namespace {

/// The sidecar (last container) of a protected native or CloudFormation task definition.
json sidecarOf(const json& taskDefinition, const char* containersKey = "containerDefinitions") {
  return taskDefinition.at(containersKey).back();
}

json envOf(const json& container, const char* envKey, const char* nameKey, const char* valueKey,
           const std::string& name) {
  for (const auto& e : container.at(envKey))
    if (e.at(nameKey) == name) return e.at(valueKey);
  return nullptr;
}

}  // namespace

TEST_CASE("the sidecar outlives every app container at task stop", "[embed][handler]") {
  // Before: the sidecar had no stopTimeout (ECS default 30 s) while an app had 120 s.
  Fixture f;
  json task = json::parse(kSeedTask);
  task["containerDefinitions"][0]["stopTimeout"] = 120;
  auto r = f.service.embed({task.dump(), "", {{"consoleaddr", "c"}}, EndpointFormat::kJson});
  REQUIRE(r.status == 200);
  const json sc = sidecarOf(json::parse(r.body));
  REQUIRE(sc.contains("stopTimeout"));
  CHECK(sc.at("stopTimeout").get<int>() >= 120);
}

TEST_CASE("an intrinsic family gives an INSTALL_BUNDLE CloudFormation completes",
          "[embed][handler]") {
  // Before: the bundle's appID was the intrinsic written as text
  // ("{\"Fn::Sub\":...}:uuid"), which the Defender channel refuses (invalid_app_id).
  Fixture f;
  const json resource = {
      {"Type", "AWS::ECS::TaskDefinition"},
      {"Properties",
       {{"Family", {{"Fn::Sub", "${AWS::StackName}-web"}}},
        {"NetworkMode", "awsvpc"},
        {"RequiresCompatibilities", {"FARGATE"}},
        {"ContainerDefinitions",
         {{{"Name", "web"}, {"Image", "nginx"}, {"EntryPoint", {"/http_server"}}}}}}}};
  auto r = f.service.embed({resource.dump(), "", {{"consoleaddr", "c"}}, EndpointFormat::kJson});
  REQUIRE(r.status == 200);
  const json sc = sidecarOf(json::parse(r.body).at("Properties"), "ContainerDefinitions");
  const json bundle = envOf(sc, "Environment", "Name", "Value", "INSTALL_BUNDLE");
  INFO(bundle.dump());
  // Fn::Base64 over Fn::Join of literal text and the family's own intrinsic.
  REQUIRE(bundle.is_object());
  REQUIRE(bundle.contains("Fn::Base64"));
  const json join = bundle.at("Fn::Base64").at("Fn::Join");
  REQUIRE(join.at(0) == "");
  // What CloudFormation does on a stack named "shop": evaluate the family, join, encode.
  std::string text;
  for (const auto& part : join.at(1)) {
    if (part.is_string()) {
      CHECK(part.get<std::string>().find("Fn::") == std::string::npos);  // never stringified
      text += part.get<std::string>();
    } else {
      CHECK(part == json{{"Fn::Sub", "${AWS::StackName}-web"}});
      text += "shop-web";
    }
  }
  const json decoded = json::parse(text);
  CHECK(decoded.at("appID") == "shop-web:00000000-0000-4000-8000-000000000001");
  CHECK(decoded.at("consoleHost") == "c");
}

TEST_CASE("a bare describe taskDefinition object becomes a register input", "[embed][handler]") {
  // `aws ecs describe-task-definition ... | jq .taskDefinition`: before, the read-only fields
  // stayed and AWS refused the output.
  Fixture f;
  json td = json::parse(kSeedTask);
  td["taskDefinitionArn"] = "arn:aws:ecs:us-east-1:112233445566:task-definition/webserver:3";
  td["revision"] = 3;
  td["status"] = "ACTIVE";
  td["requiresAttributes"] = json::array({{{"name", "ecs.capability.execution-role-awslogs"}}});
  td["compatibilities"] = {"EC2", "FARGATE"};
  td["registeredAt"] = "2026-11-18T11:06:40.000Z";
  td["registeredBy"] = "arn:aws:iam::112233445566:root";
  auto r = f.service.embed({td.dump(), "", {{"consoleaddr", "c"}}, EndpointFormat::kJson});
  REQUIRE(r.status == 200);
  const json out = json::parse(r.body);
  for (const char* k : {"taskDefinitionArn", "revision", "status", "requiresAttributes",
                        "compatibilities", "registeredAt", "registeredBy"})
    CHECK_FALSE(out.contains(k));
  for (const char* k : {"family", "containerDefinitions", "cpu", "memory", "networkMode",
                        "executionRoleArn", "requiresCompatibilities"})
    CHECK(out.contains(k));
  // What was dropped is reported.
  const json report = json::parse(header(r, "X-Defender-Embed-Report"));
  std::vector<std::string> dropped;
  for (const auto& d : report.at("dropped")) dropped.push_back(d.at("field"));
  std::sort(dropped.begin(), dropped.end());
  CHECK(dropped == std::vector<std::string>{"compatibilities", "registeredAt", "registeredBy",
                                            "requiresAttributes", "revision", "status",
                                            "taskDefinitionArn"});
}

TEST_CASE("a refused template leaves no Defender credential behind", "[embed][handler]") {
  // The first task definition is fine, the second is not: nothing is issued for either.
  MemoryEmbedStore store;
  ManualClock clock{TimePoint(Millis(0))};
  EmbedConfig config;
  int issued = 0;
  config.issueCredential = [&](const std::string&, const std::string&) -> Result<std::string> {
    ++issued;
    return std::string("secret");
  };
  EmbedService service{store, clock, config, test::sequentialUuids()};
  const auto task = [](const std::string& container) {
    return json{{"Type", "AWS::ECS::TaskDefinition"},
                {"Properties",
                 {{"Family", "f"},
                  {"NetworkMode", "awsvpc"},
                  {"RequiresCompatibilities", {"FARGATE"}},
                  {"ContainerDefinitions",
                   {{{"Name", container}, {"Image", "i"}, {"EntryPoint", {"/x"}}}}}}}};
  };
  const json tmpl = {{"Resources", {{"A", task("good")}, {"B", task("bad name")}}}};
  auto r = service.embed({tmpl.dump(), "", {{"consoleaddr", "c"}}, EndpointFormat::kJson});
  CHECK(r.status == 400);
  CHECK(issued == 0);

  const json ok = {{"Resources", {{"A", task("good")}, {"B", task("other")}}}};
  r = service.embed({ok.dump(), "", {{"consoleaddr", "c"}}, EndpointFormat::kJson});
  CHECK(r.status == 200);
  CHECK(issued == 2);
}

namespace {

const char* kArmTask =
    R"({"family":"t","networkMode":"awsvpc","requiresCompatibilities":["FARGATE"],)"
    R"("runtimePlatform":{"cpuArchitecture":"ARM64","operatingSystemFamily":"LINUX"},)"
    R"("containerDefinitions":[{"name":"app","image":"reg.example.com/team/app:7"}]})";

/// An EmbedService whose registry reader is scripted and records what it was asked.
struct RegistryFixture {
  MemoryEmbedStore store;
  ManualClock clock{TimePoint(Millis(1795000000000))};
  std::vector<RegistryLookup> asked;
  Result<ImageConfig> answer = ImageConfig{{"/entry", "-x"}, {"run"}};
  EmbedConfig config() {
    EmbedConfig c;
    c.readFromRegistry = [this](const RegistryLookup& l) {
      asked.push_back(l);
      return answer;
    };
    return c;
  }
  EmbedRequest request(const std::string& task = kArmTask) {
    return {task,
            "",
            {{"consoleaddr", "c"},
             {"extractEntrypoint", "true"},
             {"registryType", "2"},
             {"registryCredentialID", "ci-pull"}},
            EndpointFormat::kJson};
  }
};

}  // namespace

TEST_CASE("an unknown image's entrypoint is read from its registry once, then stored",
          "[embed][handler][registry]") {
  RegistryFixture f;
  EmbedService service(f.store, f.clock, f.config(), test::sequentialUuids());
  auto r = service.embed(f.request());
  INFO(r.body);
  REQUIRE(r.status == 200);
  REQUIRE(f.asked.size() == 1);
  CHECK(f.asked[0].image == "reg.example.com/team/app:7");
  CHECK(f.asked[0].registryType == "2");
  CHECK(f.asked[0].credentialId == "ci-pull");
  CHECK(f.asked[0].cpuArchitecture == "ARM64");
  CHECK(f.asked[0].budget.count() > 0);
  CHECK(f.asked[0].budget <= std::chrono::milliseconds(15000));
  const json c = json::parse(r.body).at("containerDefinitions")[0];
  CHECK(c.at("entryPoint") == json::array({"/var/lib/twistlock/fargate/defender", "fargate",
                                           "entrypoint", "/entry", "-x"}));
  CHECK(c.at("command") == json::array({"run"}));

  auto stored = f.store.findImage("reg.example.com/team/app:7");
  REQUIRE(stored.ok());
  REQUIRE(stored->has_value());
  CHECK((*stored)->source == "registry");
  CHECK((*stored)->entrypoint == std::vector<std::string>{"/entry", "-x"});

  // The next embed needs no registry call.
  REQUIRE(service.embed(f.request()).status == 200);
  CHECK(f.asked.size() == 1);

  // And /api/v1/registry shows the record.
  auto scan = service.registryScanResults({{"search", "TEAM/app"}, {"compact", "true"}});
  REQUIRE(scan.status == 200);
  const json arr = json::parse(scan.body);
  REQUIRE(arr.size() == 1);
  CHECK(arr[0].at("_id") == "reg.example.com/team/app:7");
  CHECK(
      arr[0].at("repoTag") ==
      json({{"registry", "reg.example.com"}, {"repo", "team/app"}, {"tag", "7"}, {"digest", ""}}));
  CHECK(arr[0].at("entrypoint") == json::array({"/entry", "-x"}));
  CHECK(arr[0].at("source") == "registry");
  CHECK(arr[0].at("scanTime") == "2026-11-18T11:06:40.000Z");  // the ManualClock's time
  CHECK(header(scan, "Total-Count") == "1");
  CHECK(json::parse(service.registryScanResults({{"search", "nothing-like-it"}}).body).empty());
  CHECK(service.registryScanResults({{"compact", "maybe"}}).status == 400);
}

TEST_CASE("a registry failure names the container and image; nothing is issued",
          "[embed][handler][registry]") {
  RegistryFixture f;
  f.answer = Error{ErrorKind::kInvalidArgument, "registry_unauthorized",
                   "image reg.example.com/team/app (7) at registry reg.example.com: the registry "
                   "refused the credentials for manifest 7 (HTTP 401)",
                   "image"};
  EmbedService service(f.store, f.clock, f.config(), test::sequentialUuids());
  auto r = service.embed(f.request());
  CHECK(r.status == 400);
  const json e = json::parse(r.body);
  CHECK(e.at("code") == "registry_unauthorized");
  CHECK(e.at("field") == "containerDefinitions[0].image");
  const std::string message = e.at("message");
  CHECK(message.find("\"app\"") != std::string::npos);
  CHECK(message.find("reg.example.com/team/app") != std::string::npos);
  CHECK(message.find("HTTP 401") != std::string::npos);
  CHECK(json::parse(service.listAppIds({}).body).empty());
  CHECK_FALSE(f.store.findImage("reg.example.com/team/app:7")->has_value());
}

TEST_CASE("registry reads are bounded per request and registryType is checked",
          "[embed][handler][registry]") {
  RegistryFixture f;
  EmbedConfig config = f.config();
  config.registryBudget = std::chrono::milliseconds(0);
  EmbedService spent(f.store, f.clock, config, test::sequentialUuids());
  auto r = spent.embed(f.request());
  CHECK(r.status == 503);
  CHECK(json::parse(r.body).at("code") == "registry_timeout");
  CHECK(f.asked.empty());

  EmbedService service(f.store, f.clock, f.config(), test::sequentialUuids());
  auto req = f.request();
  req.query.erase("registryType");
  req.query.emplace("registryType", "floppy");
  auto bad = service.embed(req);
  CHECK(bad.status == 400);
  CHECK(json::parse(bad.body).at("field") == "registryType");
  CHECK(f.asked.empty());

  // Without a reader (no registry configured) the old answer stands: entrypoint_unknown.
  EmbedService offline(f.store, f.clock, EmbedConfig{}, test::sequentialUuids());
  CHECK(json::parse(offline.embed(f.request()).body).at("code") == "entrypoint_unknown");
}
