// Runs every case in tests/embed/corpus/ through EmbedService::embed and checks
//  - the exact expected output (expected.json / expected.yaml) or error (error.json);
//  - properties that hold for every successful case, independent of the expected files:
//    every original value is unchanged except the documented fields, argv is exactly
//    launcher + original, the output re-parses to the same tree, a second embed is refused,
//    and each issued App ID is recorded.
//
// Case layout: <case>/input.json or input.yaml (the endpoint follows the extension), optional
// <case>/params (a query string; default "consoleaddr=console.example.com"), and either
// <case>/expected.<ext> or <case>/error.json {"status": 400, "code": "...", "field": "..."}.
// Setting DC_EMBED_UPDATE_CORPUS=1 rewrites expected.<ext> from the current output (review the
// diff before committing).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "auth/crypto.h"
#include "embed/document.h"
#include "embed/handler.h"
#include "embed/store.h"
#include "embed/transform.h"
#include "tests/embed/embed_test_util.h"

namespace fs = std::filesystem;
using namespace dc;
using namespace dc::embed;
using dc::embed::test::fileExists;
using dc::embed::test::readFile;

namespace {

const fs::path kCorpus = DC_EMBED_CORPUS_DIR;

QueryParams parseQuery(std::string q) {
  QueryParams out;
  while (!q.empty() && (q.back() == '\n' || q.back() == '\r' || q.back() == ' ')) q.pop_back();
  size_t pos = 0;
  while (pos < q.size()) {
    size_t amp = q.find('&', pos);
    if (amp == std::string::npos) amp = q.size();
    const std::string kv = q.substr(pos, amp - pos);
    const size_t eq = kv.find('=');
    out.emplace(kv.substr(0, eq), eq == std::string::npos ? "" : kv.substr(eq + 1));
    pos = amp + 1;
  }
  return out;
}

/// Image entrypoints every corpus case can rely on (registry-scan results).
const std::vector<std::tuple<std::string, std::vector<std::string>, std::vector<std::string>>>
    kKnownImages = {
        {"nginx:1.25", {"/docker-entrypoint.sh"}, {"nginx", "-g", "daemon off;"}},
        {"amazon/aws-xray-daemon:3.3.7", {"/xray", "-t", "0.0.0.0:2000", "-b", "0.0.0.0:2000"}, {}},
        {"public.ecr.aws/aws-observability/aws-for-fluent-bit:stable", {}, {"/entrypoint.sh"}},
        {"busybox", {}, {"sh"}},
        {"840364872350.dkr.ecr.us-west-2.amazonaws.com/aws-appmesh-envoy:v1.27.0.0-prod",
         {"/usr/bin/agent"},
         {}},
};

struct Harness {
  MemoryEmbedStore store;
  ManualClock clock{TimePoint(Millis(1795000000000))};
  EmbedService service{store, clock, EmbedConfig{}, test::sequentialUuids()};

  Harness() {
    for (const auto& [image, ep, cmd] : kKnownImages) {
      nlohmann::json body{{"image", image}, {"entrypoint", ep}, {"cmd", cmd}};
      auto r = service.putImageEntrypoint(body.dump());
      REQUIRE(r.status == 200);
    }
  }

  std::optional<ImageConfig> image(const std::string& ref) {
    auto key = normalizeImage(ref);
    if (!key.ok()) return std::nullopt;
    auto found = store.findImage(*key);
    REQUIRE(found.ok());
    if (!found->has_value()) return std::nullopt;
    return ImageConfig{(*found)->entrypoint, (*found)->cmd};
  }
};

// ---------------------------------------------------------------------------------------------
// Property checks: output == input except the documented fields.

struct Spelling {
  bool cfn;
  std::string k(const char* camel) const {
    std::string s = camel;
    if (cfn) s[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(s[0])));
    return s;
  }
};

Node strings(const std::vector<std::string>& v) {
  Node a = Node::array();
  for (const auto& s : v) a.items.push_back(Node::string(s));
  return a;
}

std::optional<std::string> intrinsic(const Spelling& sp, const Node& n) {
  return sp.cfn ? intrinsicName(n) : std::nullopt;
}

const Node& ifArgs(const Node& n) {
  return n.tag.empty() ? n.members[0].value : n;
}

bool isNoValue(const Node& n) {
  if (intrinsicName(n) != "Ref") return false;
  const Node& a = ifArgs(n);
  return a.isString() && a.text == "AWS::NoValue";
}

/// RegisterTaskDefinition's top-level members (ECS API reference).
bool registerField(const std::string& k) {
  static const std::set<std::string> fields = {"family",
                                               "taskRoleArn",
                                               "executionRoleArn",
                                               "networkMode",
                                               "containerDefinitions",
                                               "volumes",
                                               "placementConstraints",
                                               "requiresCompatibilities",
                                               "cpu",
                                               "memory",
                                               "tags",
                                               "pidMode",
                                               "ipcMode",
                                               "proxyConfiguration",
                                               "inferenceAccelerators",
                                               "ephemeralStorage",
                                               "runtimePlatform",
                                               "enableFaultInjection"};
  return fields.count(k) == 1;
}

/// A native input as register input: describe output unwrapped (the wrapper's tags inside),
/// only RegisterTaskDefinition fields at the top.
Node registerView(const Node& in) {
  const Node* td = in.find("taskDefinition") ? in.find("taskDefinition") : &in;
  Node view = Node::object();
  for (const auto& m : td->members)
    if (registerField(m.key)) view.members.push_back(m);
  if (const Node* tags = in.find("tags"); td != &in && tags && !tags->items.empty())
    view.set("tags", *tags);
  return view;
}

class PropertyChecker {
 public:
  PropertyChecker(Harness& h, const std::vector<std::string>& appIds, std::set<std::string> skipped)
      : h_(h), appIds_(appIds), skipped_(std::move(skipped)) {}

  void checkDocument(const Node& in, const Node& out) {
    if (const Node* res = in.find("Resources")) {
      Spelling sp{true};
      REQUIRE(out.isObject());
      REQUIRE(keys(in) == keys(out));
      for (size_t i = 0; i < in.members.size(); ++i) {
        if (in.members[i].key != "Resources") {
          CHECK(in.members[i].value == out.members[i].value);
          continue;
        }
        const Node& outRes = out.members[i].value;
        REQUIRE(keys(*res) == keys(outRes));
        for (size_t r = 0; r < res->members.size(); ++r) {
          const Node& a = res->members[r].value;
          const Node& b = outRes.members[r].value;
          const Node* type = a.find("Type");
          const bool skipped = skipped_.count("Resources." + res->members[r].key + ".Properties");
          if (type && type->isString() && type->text == "AWS::ECS::TaskDefinition" && !skipped)
            checkResource(sp, a, b);
          else
            CHECK(a == b);
        }
      }
    } else if (in.find("Type")) {
      checkResource(Spelling{true}, in, out);
    } else if (in.find("taskDefinition") || in.find("containerDefinitions")) {
      checkTaskDefinition(Spelling{false}, registerView(in), out);
    } else {
      checkTaskDefinition(Spelling{true}, in, out);
    }
    CHECK(taskDefinitions_ == appIds_.size());
  }

 private:
  static std::vector<std::string> keys(const Node& n) {
    std::vector<std::string> k;
    for (const auto& m : n.members) k.push_back(m.key);
    return k;
  }

  void checkResource(const Spelling& sp, const Node& in, const Node& out) {
    REQUIRE(keys(in) == keys(out));
    for (size_t i = 0; i < in.members.size(); ++i) {
      if (in.members[i].key == "Properties")
        checkTaskDefinition(sp, in.members[i].value, out.members[i].value);
      else
        CHECK(in.members[i].value == out.members[i].value);
    }
  }

  void checkTaskDefinition(const Spelling& sp, const Node& in, const Node& out) {
    INFO("task definition " << taskDefinitions_);
    REQUIRE(keys(in) == keys(out));
    family_ = in.find(sp.k("family"));
    REQUIRE(family_);
    for (size_t i = 0; i < in.members.size(); ++i) {
      if (in.members[i].key == sp.k("containerDefinitions"))
        checkContainerList(sp, in.members[i].value, out.members[i].value);
      else
        CHECK(in.members[i].value == out.members[i].value);
    }
    ++taskDefinitions_;
  }

  void checkContainerList(const Spelling& sp, const Node& in, const Node& out) {
    if (intrinsic(sp, in) == "Fn::If") {
      REQUIRE(intrinsicName(out) == "Fn::If");
      const Node& a = ifArgs(in);
      const Node& b = ifArgs(out);
      CHECK(a.items[0] == b.items[0]);
      checkContainerList(sp, a.items[1], b.items[1]);
      checkContainerList(sp, a.items[2], b.items[2]);
      return;
    }
    REQUIRE(out.items.size() == in.items.size() + 1);
    for (size_t i = 0; i < in.items.size(); ++i) {
      const Node& a = in.items[i];
      const Node& b = out.items[i];
      if (intrinsic(sp, a) == "Fn::If") {
        REQUIRE(intrinsicName(b) == "Fn::If");
        CHECK(ifArgs(a).items[0] == ifArgs(b).items[0]);
        for (size_t br = 1; br <= 2; ++br) {
          if (isNoValue(ifArgs(a).items[br]))
            CHECK(ifArgs(a).items[br] == ifArgs(b).items[br]);
          else
            checkContainer(sp, ifArgs(a).items[br], ifArgs(b).items[br]);
        }
      } else {
        checkContainer(sp, a, b);
      }
    }
    checkSidecar(sp, out.items.back());
  }

  void checkContainer(const Spelling& sp, const Node& in, const Node& out) {
    const Node* name = in.find(sp.k("name"));
    INFO("container " << (name ? name->text : "?"));
    // Every original key keeps its place; new keys only from the documented set, at the end.
    const auto inKeys = keys(in);
    const auto outKeys = keys(out);
    REQUIRE(outKeys.size() >= inKeys.size());
    CHECK(std::equal(inKeys.begin(), inKeys.end(), outKeys.begin()));
    const std::set<std::string> documented = {sp.k("entryPoint"),      sp.k("command"),
                                              sp.k("volumesFrom"),     sp.k("dependsOn"),
                                              sp.k("linuxParameters"), sp.k("environment")};
    for (size_t i = inKeys.size(); i < outKeys.size(); ++i)
      CHECK(documented.count(outKeys[i]) == 1);
    for (const auto& m : in.members)
      if (!documented.count(m.key)) CHECK(*out.find(m.key) == m.value);

    // argv: launcher + original (or + the image's entrypoint when the container had none).
    const Node* ep = in.find(sp.k("entryPoint"));
    const Node* outEp = out.find(sp.k("entryPoint"));
    REQUIRE(outEp);
    const Node* cmd = in.find(sp.k("command"));
    const Node* outCmd = out.find(sp.k("command"));
    if (ep && !(ep->isArray() && ep->items.empty())) {
      checkArgv(sp, *ep, *outEp);
      CHECK(((cmd == nullptr) == (outCmd == nullptr)));
      if (cmd && outCmd) CHECK(*cmd == *outCmd);
    } else {
      const Node* image = in.find(sp.k("image"));
      REQUIRE(image);
      auto known = h_.image(image->text);
      REQUIRE(known.has_value());
      Node expected = strings(kLauncherArgv);
      for (const auto& s : known->entrypoint) expected.items.push_back(Node::string(s));
      CHECK(*outEp == expected);
      const bool hadCommand = cmd && !(cmd->isArray() && cmd->items.empty());
      if (hadCommand) {
        CHECK(*outCmd == *cmd);
      } else if (!known->cmd.empty()) {
        REQUIRE(outCmd);
        CHECK(*outCmd == strings(known->cmd));
      } else {
        CHECK(((cmd == nullptr) == (outCmd == nullptr)));
      }
    }

    // volumesFrom and dependsOn: original entries first, then exactly one sidecar entry.
    Node vf = Node::object();
    vf.set(sp.k("sourceContainer"), Node::string("TwistlockDefender"));
    vf.set(sp.k("readOnly"), Node::boolean(false));
    checkAppended(in.find(sp.k("volumesFrom")), out.find(sp.k("volumesFrom")), vf);
    Node dep = Node::object();
    dep.set(sp.k("containerName"), Node::string("TwistlockDefender"));
    dep.set(sp.k("condition"), Node::string("START"));
    checkAppended(in.find(sp.k("dependsOn")), out.find(sp.k("dependsOn")), dep);

    // environment: the original entries untouched, then TW_IMAGE_NAME and TW_CONTAINER_NAME.
    Node expectedEnv = in.find(sp.k("environment")) ? *in.find(sp.k("environment")) : Node::array();
    for (auto [var, key] :
         {std::pair{"TW_IMAGE_NAME", "image"}, std::pair{"TW_CONTAINER_NAME", "name"}}) {
      if (!in.find(sp.k(key))) continue;
      Node e = Node::object();
      e.set(sp.k("name"), Node::string(var));
      e.set(sp.k("value"), *in.find(sp.k(key)));
      expectedEnv.items.push_back(std::move(e));
    }
    REQUIRE(out.find(sp.k("environment")));
    CHECK(*out.find(sp.k("environment")) == expectedEnv);

    // linuxParameters: unchanged except SYS_PTRACE present exactly once in capabilities.add.
    Node lp = in.find(sp.k("linuxParameters")) ? *in.find(sp.k("linuxParameters")) : Node::object();
    Node* caps = lp.find(sp.k("capabilities"));
    if (!caps) caps = &lp.set(sp.k("capabilities"), Node::object());
    Node* add = caps->find(sp.k("add"));
    if (!add) add = &caps->set(sp.k("add"), Node::array());
    if (std::none_of(add->items.begin(), add->items.end(),
                     [](const Node& n) { return n.text == "SYS_PTRACE"; }))
      add->items.push_back(Node::string("SYS_PTRACE"));
    const Node* outLp = out.find(sp.k("linuxParameters"));
    REQUIRE(outLp);
    CHECK(*outLp == lp);
    ++containers_;
  }

  void checkArgv(const Spelling& sp, const Node& in, const Node& out) {
    if (intrinsic(sp, in) == "Fn::If") {
      CHECK(ifArgs(in).items[0] == ifArgs(out).items[0]);
      checkArgv(sp, ifArgs(in).items[1], ifArgs(out).items[1]);
      checkArgv(sp, ifArgs(in).items[2], ifArgs(out).items[2]);
      return;
    }
    Node expected = strings(kLauncherArgv);
    for (const auto& a : in.items) expected.items.push_back(a);
    CHECK(out == expected);
    // Byte for byte, as a separate statement of the same fact for strings.
    for (size_t i = 0; i < in.items.size(); ++i)
      CHECK(out.items[kLauncherArgv.size() + i].text == in.items[i].text);
  }

  static void checkAppended(const Node* in, const Node* out, const Node& entry) {
    REQUIRE(out);
    Node expected = in ? *in : Node::array();
    expected.items.push_back(entry);
    CHECK(*out == expected);
  }

  void checkSidecar(const Spelling& sp, const Node& sc) {
    CHECK(sc.find(sp.k("name"))->text == "TwistlockDefender");
    CHECK(sc.find(sp.k("healthCheck")) != nullptr);
    // Fargate's largest stopTimeout: never stopped before an app container.
    REQUIRE(sc.find(sp.k("stopTimeout")));
    CHECK(sc.find(sp.k("stopTimeout"))->text == "120");
    // The vendor's layout: automation reads entries 0 and 3 by position.
    const auto& envList = sc.find(sp.k("environment"))->items;
    REQUIRE(envList.size() >= 4);
    const char* vendorOrder[] = {"INSTALL_BUNDLE", "DEFENDER_TYPE", "FARGATE_TASK", "WS_ADDRESS"};
    for (size_t i = 0; i < 4; ++i) CHECK(envList[i].find(sp.k("name"))->text == vendorOrder[i]);
    std::map<std::string, const Node*> env;
    for (const auto& e : sc.find(sp.k("environment"))->items)
      env[e.find(sp.k("name"))->text] = e.find(sp.k("value"));
    for (const char* required : {"INSTALL_BUNDLE", "DEFENDER_TYPE", "FARGATE_TASK", "WS_ADDRESS",
                                 "DEFENDER_APP_ID", "FILESYSTEM_MONITORING", "CONSOLE_HOST"})
      CHECK(env.count(required) == 1);
    REQUIRE(taskDefinitions_ < appIds_.size());
    const Node* appId = env["DEFENDER_APP_ID"];
    if (family_->isString() && family_->tag.empty()) {
      CHECK(appId->text == appIds_[taskDefinitions_]);
      CHECK(env["FARGATE_TASK"]->text == family_->text);
      CHECK(h_.service.isIssued(appId->text));
      auto bundle = auth::base64Decode(env["INSTALL_BUNDLE"]->text);
      REQUIRE(bundle.has_value());
      CHECK(nlohmann::json::parse(*bundle).at("appID") == appId->text);
    } else {
      // Intrinsic family: the App ID is Fn::Join(":", [<same intrinsic>, uuid]).
      REQUIRE(intrinsicName(*appId) == "Fn::Join");
      const Node& args = appId->members[0].value;
      CHECK(args.items[1].items[0] == *family_);
      CHECK(*env["FARGATE_TASK"] == *family_);
      const std::string uuid = args.items[1].items[1].text;
      CHECK(h_.service.isIssued("any-family-value:" + uuid));
      // INSTALL_BUNDLE is computed by CloudFormation from the same intrinsic.
      const Node* bundle = env["INSTALL_BUNDLE"];
      REQUIRE(intrinsicName(*bundle) == "Fn::Base64");
      const Node& join = bundle->members[0].value;
      REQUIRE(intrinsicName(join) == "Fn::Join");
      CHECK(join.members[0].value.items[1].items[1] == *family_);
    }
  }

  Harness& h_;
  const std::vector<std::string>& appIds_;
  std::set<std::string> skipped_;  // task definitions reported as skipped: must be unchanged
  const Node* family_ = nullptr;
  size_t taskDefinitions_ = 0;
  size_t containers_ = 0;
};

/// Every string scalar of `in` also occurs in `out` at least as often: nothing was re-quoted,
/// split, joined or expanded.
void collectStrings(const Node& n, std::multiset<std::string>& out) {
  if (n.isString()) out.insert(n.text);
  for (const auto& i : n.items) collectStrings(i, out);
  for (const auto& m : n.members) collectStrings(m.value, out);
}

std::vector<fs::path> corpusCases() {
  std::vector<fs::path> cases;
  for (const auto& e : fs::directory_iterator(kCorpus))
    if (e.is_directory()) cases.push_back(e.path());
  std::sort(cases.begin(), cases.end());
  return cases;
}

}  // namespace

TEST_CASE("embed corpus: expected outputs and properties", "[embed][corpus]") {
  const bool update = std::getenv("DC_EMBED_UPDATE_CORPUS") != nullptr;
  const auto cases = corpusCases();
  REQUIRE(cases.size() >= 10);
  for (const auto& dir : cases) {
    DYNAMIC_SECTION(dir.filename().string()) {
      const bool yaml = fileExists((dir / "input.yaml").string());
      const std::string ext = yaml ? "yaml" : "json";
      EmbedRequest req;
      req.body = readFile((dir / ("input." + ext)).string());
      req.format = yaml ? EndpointFormat::kYaml : EndpointFormat::kJson;
      req.contentType = yaml ? "application/yaml" : "application/json";
      req.query =
          parseQuery(fileExists((dir / "params").string()) ? readFile((dir / "params").string())
                                                           : "consoleaddr=console.example.com");
      Harness h;
      const HttpResponse r = h.service.embed(req);

      if (fileExists((dir / "error.json").string())) {
        const auto expected = nlohmann::json::parse(readFile((dir / "error.json").string()));
        INFO(r.body);
        CHECK(r.status == expected.at("status").get<int>());
        const auto body = nlohmann::json::parse(r.body);
        CHECK(body.at("code") == expected.at("code"));
        if (expected.contains("field")) CHECK(body.at("field") == expected.at("field"));
        if (expected.contains("problems")) {
          // Every problem, in document order: [{"code", "field"}] (field optional).
          const auto& got = body.at("problems");
          REQUIRE(got.size() == expected.at("problems").size());
          for (size_t i = 0; i < got.size(); ++i) {
            const auto& want = expected.at("problems")[i];
            CHECK(got[i].at("code") == want.at("code"));
            if (want.contains("field")) CHECK(got[i].at("field") == want.at("field"));
            if (want.contains("message_contains"))
              CHECK_THAT(got[i].at("message").get<std::string>(),
                         Catch::Contains(want.at("message_contains").get<std::string>()));
          }
          CHECK(body.at("code") == got[0].at("code"));
        }
        if (expected.contains("message_contains"))
          for (const auto& part : expected.at("message_contains"))
            CHECK_THAT(body.at("message").get<std::string>(),
                       Catch::Contains(part.get<std::string>()));
        // Nothing is issued for a refused request.
        auto listed = h.store.listIssued("", 0, 10);
        REQUIRE(listed.ok());
        CHECK(listed->total == 0);
        continue;
      }

      INFO(r.body);
      REQUIRE(r.status == 200);
      CHECK(r.contentType == (yaml ? "application/yaml" : "application/json"));
      const fs::path expectedPath = dir / ("expected." + ext);
      if (update) {
        std::ofstream(expectedPath, std::ios::binary) << r.body;
      } else {
        REQUIRE(fileExists(expectedPath.string()));
        CHECK(r.body == readFile(expectedPath.string()));
      }

      // Properties, on the re-parsed output (so serialisation is covered too).
      auto in = yaml ? parseYaml(req.body) : parseJson(req.body);
      REQUIRE(in.ok());
      auto out = yaml ? parseYaml(r.body) : parseJson(r.body);
      REQUIRE(out.ok());
      auto listed = h.store.listIssued("", 0, 100);
      REQUIRE(listed.ok());
      // Document order == issue order == the sequential UUIDs' order.
      auto records = listed->items;
      std::sort(records.begin(), records.end(),
                [](const IssuedAppId& a, const IssuedAppId& b) { return a.uuid < b.uuid; });
      std::vector<std::string> appIds;
      for (const auto& rec : records) appIds.push_back(rec.appId);
      // The report header; report.json, when present, is its exact expected value.
      std::string reportText;
      for (const auto& [k, v] : r.headers)
        if (k == kReportHeader) reportText = v;
      const auto report = nlohmann::json::parse(reportText);
      if (fileExists((dir / "report.json").string()))
        CHECK(report == nlohmann::json::parse(readFile((dir / "report.json").string())));
      std::set<std::string> skipped;
      for (const auto& sk : report.at("skipped")) skipped.insert(sk.at("resource"));
      PropertyChecker(h, appIds, skipped).checkDocument(*in, *out);

      std::multiset<std::string> before, after;
      const bool native = in->find("taskDefinition") || in->find("containerDefinitions");
      collectStrings(native ? registerView(*in) : *in, before);
      collectStrings(*out, after);
      for (const auto& s : before) CHECK(after.count(s) >= before.count(s));

      // A protected document is never wrapped twice.
      EmbedRequest again = req;
      again.body = r.body;
      const HttpResponse second = h.service.embed(again);
      CHECK(second.status == 409);
      CHECK(nlohmann::json::parse(second.body).at("code") == "already_protected");
    }
  }
}

// Slow under sanitizers (thousands of requests): run with `embed_test "[slow]"`.
TEST_CASE("damaged corpus inputs never crash and never get a 5xx or a partial document",
          "[embed][corpus][.][slow]") {
  size_t runs = 0;
  for (const auto& dir : corpusCases()) {
    const bool yaml = fileExists((dir / "input.yaml").string());
    const std::string body = readFile((dir / (yaml ? "input.yaml" : "input.json")).string());
    if (body.size() > 100000) continue;
    const size_t step = std::max<size_t>(1, body.size() / 25);
    Harness h;
    for (size_t cut = 0; cut < body.size(); cut += step) {
      for (int variant = 0; variant < 3; ++variant) {
        std::string damaged = body;
        if (variant == 0) damaged = body.substr(0, cut);               // truncated
        if (variant == 1) damaged.erase(cut, 1);                       // one byte lost
        if (variant == 2) damaged.insert(cut, yaml ? ": [" : "\"},");  // stray syntax
        auto before = h.store.listIssued("", 0, 1);
        REQUIRE(before.ok());
        EmbedRequest req{damaged,
                         "",
                         {{"consoleaddr", "c"}, {"extractEntrypoint", "true"}},
                         yaml ? EndpointFormat::kYaml : EndpointFormat::kJson};
        const HttpResponse r = h.service.embed(req);
        ++runs;
        INFO(dir.filename().string() << " cut " << cut << " variant " << variant);
        REQUIRE(r.status < 500);
        if (r.status != 200) {
          const auto err = nlohmann::json::parse(r.body);
          CHECK(err.contains("code"));
          auto listed = h.store.listIssued("", 0, 1);
          REQUIRE(listed.ok());
          CHECK(listed->total == before->total);  // nothing issued for a refused request
        } else {
          CHECK((yaml ? parseYaml(r.body) : parseJson(r.body)).ok());
        }
      }
    }
  }
  CHECK(runs > 500);
}
