// defender-embed against a real cpp-httplib server (port 0) that serves the embed handlers.
#include <catch2/catch.hpp>

#include <httplib.h>
#include <unistd.h>

#include <filesystem>
#include <sstream>
#include <thread>

#include "embed/handler.h"
#include "embed/store.h"
#include "tests/embed/embed_test_util.h"
#include "tools/defender_embed/cli.h"

using namespace dc;
using namespace dc::embed;
namespace fs = std::filesystem;

namespace {

class Console {
 public:
  Console() {
    auto route = [this](const char* path, EndpointFormat format) {
      server_.Post(path, [this, format](const httplib::Request& req, httplib::Response& res) {
        lastAuth_ = req.get_header_value("Authorization");
        const HttpResponse r =
            service_.embed({req.body, req.get_header_value("Content-Type"),
                            QueryParams(req.params.begin(), req.params.end()), format});
        for (const auto& [k, v] : r.headers) res.set_header(k, v);
        res.status = r.status;
        res.set_content(r.body, r.contentType);
      });
    };
    route("/api/v1/defenders/fargate.json", EndpointFormat::kJson);
    route("/api/v1/defenders/fargate.yaml", EndpointFormat::kYaml);
    port_ = server_.bind_to_any_port("127.0.0.1");
    REQUIRE(port_ > 0);
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    // The socket already listens (connections queue in its backlog); waiting for the accept
    // loop only makes stop() in the destructor reliable.
    while (!server_.is_running()) std::this_thread::yield();
  }
  ~Console() {
    server_.stop();
    thread_.join();
  }
  std::string address() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::string lastAuth_;
  MemoryEmbedStore store_;

 private:
  ManualClock clock_{TimePoint(Millis(0))};
  EmbedService service_{store_, clock_, EmbedConfig{}, test::sequentialUuids()};
  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
};

struct TempDir {
  fs::path path = fs::temp_directory_path() / ("defender_embed_cli_" + std::to_string(::getpid()));
  TempDir() { fs::create_directories(path); }
  ~TempDir() { fs::remove_all(path); }
};

int run(std::vector<std::string> args, std::string& out, std::string& err) {
  std::vector<const char*> argv{"defender-embed"};
  for (const auto& a : args) argv.push_back(a.c_str());
  std::ostringstream o, e;
  const int rc = tools::runDefenderEmbed(static_cast<int>(argv.size()), argv.data(),
                                         {o, e, [](const std::string&) { return "s3cret"; }});
  out = o.str();
  err = e.str();
  return rc;
}

}  // namespace

TEST_CASE("defender-embed writes the protected task definition", "[embed][cli]") {
  Console console;
  TempDir dir;
  const auto task = dir.path / "taskdef.json";
  std::ofstream(task) << test::readFile(std::string(DC_EMBED_CORPUS_DIR) +
                                        "/native-seed-web/input.json");
  const auto outFile = dir.path / "protected_taskdef.json";
  std::string out, err;
  const int rc = run({"--user", "admin", "--address", console.address(), "--console-host",
                      "console.example.com", "--output-file", outFile.string(), task.string()},
                     out, err);
  INFO(err);
  REQUIRE(rc == tools::kExitOk);
  CHECK(test::readFile(outFile.string()) ==
        test::readFile(std::string(DC_EMBED_CORPUS_DIR) + "/native-seed-web/expected.json"));
  CHECK(console.lastAuth_ == "Basic YWRtaW46czNjcmV0");  // admin:s3cret
  CHECK_THAT(err, Catch::Contains("webserver:00000000-0000-4000-8000-000000000001"));
}

TEST_CASE("defender-embed sends YAML CloudFormation to fargate.yaml", "[embed][cli]") {
  Console console;
  TempDir dir;
  const auto task = dir.path / "template.yaml";
  std::ofstream(task) << test::readFile(std::string(DC_EMBED_CORPUS_DIR) +
                                        "/cfn-template-yaml/input.yaml");
  std::string out, err;
  const int rc = run({"--address", console.address(), "--console-host", "console.example.com",
                      "--cloud-formation", task.string()},
                     out, err);
  INFO(err);
  REQUIRE(rc == tools::kExitOk);
  CHECK(out ==
        test::readFile(std::string(DC_EMBED_CORPUS_DIR) + "/cfn-template-yaml/expected.yaml"));
  CHECK(console.lastAuth_.empty());
}

TEST_CASE("defender-embed reports refusals, unreachable Consoles and bad usage", "[embed][cli]") {
  Console console;
  TempDir dir;
  const auto task = dir.path / "taskdef.json";
  std::ofstream(task) << R"({"family": "x", "networkMode": "bridge", "containerDefinitions": []})";
  std::string out, err;
  CHECK(run({"--address", console.address(), "--console-host", "c", task.string()}, out, err) ==
        tools::kExitRefused);
  CHECK_THAT(err, Catch::Contains("not_fargate"));
  CHECK(out.empty());

  CHECK(run({"--address", "http://127.0.0.1:1", "--console-host", "c", task.string()}, out, err) ==
        tools::kExitNetwork);
  CHECK(run({"--console-host", "c", task.string()}, out, err) == tools::kExitUsage);
  CHECK(run({"--address", console.address(), "--console-host", "c",
             (dir.path / "missing.json").string()},
            out, err) == tools::kExitUsage);
}

TEST_CASE("defender-embed prints every problem, dropped fields and skipped task definitions",
          "[embed][cli]") {
  Console console;
  TempDir dir;
  std::string out, err;
  const auto bad = dir.path / "bad.json";
  std::ofstream(bad) << test::readFile(std::string(DC_EMBED_CORPUS_DIR) +
                                       "/err-every-problem-json/input.json");
  CHECK(run({"--address", console.address(), "--console-host", "c", bad.string()}, out, err) ==
        tools::kExitRefused);
  CHECK_THAT(err, Catch::Contains("  duplicate_key: containerDefinitions[2].image"));
  CHECK_THAT(err, Catch::Contains("  invalid_container_name: containerDefinitions[3].name"));

  const auto describe = dir.path / "describe.json";
  std::ofstream(describe) << test::readFile(std::string(DC_EMBED_CORPUS_DIR) +
                                            "/native-bare-describe/input.json");
  REQUIRE(run({"--address", console.address(), "--console-host", "c", describe.string()}, out,
              err) == tools::kExitOk);
  CHECK_THAT(err, Catch::Contains("dropped taskDefinitionArn (read-only field"));

  const auto tmpl = dir.path / "template.yaml";
  std::ofstream(tmpl) << test::readFile(std::string(DC_EMBED_CORPUS_DIR) +
                                        "/cfn-template-skipped-bridge/input.yaml");
  const int rc = run(
      {"--address", console.address(), "--console-host", "c", "--cloud-formation", tmpl.string()},
      out, err);
  INFO(err);
  REQUIRE(rc == tools::kExitOk);
  CHECK_THAT(err, Catch::Contains("skipped Resources.LegacyTask.Properties: "));
}
