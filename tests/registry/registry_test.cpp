// registry/: the v2 client against a real registry (Debian's docker-registry, the CNCF
// distribution server) started here on a loopback port with htpasswd (bcrypt) auth and TLS; the
// test pushes its own images through the v2 upload API. Plus the pure parts: challenge and
// reference parsing, the SigV4 signer (AWS test-suite vectors) and the credential store.
#include <httplib.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <catch2/catch.hpp>

#include <cstdlib>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "auth/crypto.h"
#include "auth/tls.h"
#include "main/console_app.h"
#include "registry/aws.h"
#include "registry/client.h"
#include "registry/credentials.h"
#include "registry/resolver.h"
#include "registry/secret_box.h"
#include "tests/support/free_port.h"
#include "tests/support/sql_backends.h"

extern char** environ;

namespace {

using namespace dc;
using namespace dc::registry;
using Json = nlohmann::json;
namespace fs = std::filesystem;

constexpr const char* kRegistryBinary = "/usr/bin/docker-registry";
constexpr const char* kHtpasswdBinary = "/usr/bin/htpasswd";

std::string freshDir(const std::string& name) {
  const fs::path p =
      fs::temp_directory_path() / ("dc-registry-" + name + "-" + std::to_string(::getpid()));
  fs::remove_all(p);
  fs::create_directories(p);
  return p.string();
}

using dc::testing::freePort;

std::string digestOf(const std::string& body) {
  return "sha256:" + auth::toHex(auth::sha256(body));
}

/// docker-registry serving on 127.0.0.1:<port> with TLS (a generated self-signed certificate)
/// and htpasswd auth for user "pusher" / "s3cret".
class LocalRegistry {
 public:
  LocalRegistry() {
    // Fails (never skips) without the tools: CI must exercise a real registry.
    if (!fs::exists(kRegistryBinary))
      FAIL("docker-registry is missing: scripts/install-deps.sh --test installs it");
    if (!fs::exists(kHtpasswdBinary))
      FAIL("htpasswd is missing: scripts/install-deps.sh --test installs apache2-utils");
    dir_ = freshDir("server");
    auto tls = auth::ensureSelfSignedCertificate(dir_ + "/tls", {"127.0.0.1"});
    REQUIRE(tls.ok());
    caFile = tls->certFile;
    const std::string htpasswd = dir_ + "/htpasswd";
    REQUIRE(std::system((std::string(kHtpasswdBinary) + " -Bbc " + htpasswd +
                         " pusher s3cret >/dev/null 2>&1")
                            .c_str()) == 0);
    port = freePort();
    const std::string config = dir_ + "/config.yml";
    std::ofstream(config) << "version: 0.1\n"
                          << "log:\n  level: error\n  accesslog:\n    disabled: true\n"
                          << "storage:\n  filesystem:\n    rootdirectory: " << dir_ << "/data\n"
                          << "http:\n  addr: 127.0.0.1:" << port << "\n"
                          << "  tls:\n    certificate: " << tls->certFile
                          << "\n    key: " << tls->keyFile << "\n"
                          << "auth:\n  htpasswd:\n    realm: test-registry\n    path: " << htpasswd
                          << "\n";
    const std::string log = dir_ + "/registry.log";
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
    const char* argv[] = {kRegistryBinary, "serve", config.c_str(), nullptr};
    REQUIRE(posix_spawn(&pid_, kRegistryBinary, &actions, nullptr, const_cast<char**>(argv),
                        environ) == 0);
    posix_spawn_file_actions_destroy(&actions);
    // Wait until it answers (start-up, not behaviour under test): at most 10 s.
    std::string last;
    for (int i = 0; i < 200; ++i) {
      auto c = client();
      auto r = c->Get("/v2/");
      if (r && r->status == 200) return;  // the client sends the pusher credentials
      last = r ? "HTTP " + std::to_string(r->status) : httplib::to_string(r.error());
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    std::ifstream in(log);
    FAIL("docker-registry did not start (last answer: "
         << last << "): " << std::string(std::istreambuf_iterator<char>(in), {}));
  }
  ~LocalRegistry() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      int status = 0;
      ::waitpid(pid_, &status, 0);
    }
    fs::remove_all(dir_);
  }

  std::unique_ptr<httplib::SSLClient> client() const {
    auto c = std::make_unique<httplib::SSLClient>("127.0.0.1", port);
    c->set_ca_cert_path(caFile);
    c->enable_server_certificate_verification(true);
    c->set_basic_auth("pusher", "s3cret");
    c->set_connection_timeout(2);
    return c;
  }

  /// Uploads a blob (monolithic upload: POST then PUT ?digest=). Returns its digest.
  std::string pushBlob(const std::string& repo, const std::string& body) const {
    auto c = client();
    auto start =
        c->Post(("/v2/" + repo + "/blobs/uploads/").c_str(), "", "application/octet-stream");
    REQUIRE(start);
    REQUIRE(start->status == 202);
    std::string location = start->get_header_value("Location");
    if (location.rfind("https://", 0) == 0) location = location.substr(location.find('/', 8));
    const std::string digest = digestOf(body);
    location +=
        (location.find('?') == std::string::npos ? "?" : "&") + std::string("digest=") + digest;
    auto put = c->Put(location.c_str(), body, "application/octet-stream");
    REQUIRE(put);
    INFO(put->body);
    REQUIRE(put->status == 201);
    return digest;
  }

  /// PUTs a manifest under `reference` (tag or digest). Returns its digest.
  std::string pushManifest(const std::string& repo, const std::string& reference,
                           const std::string& body, const std::string& mediaType) const {
    auto c = client();
    auto put = c->Put(("/v2/" + repo + "/manifests/" + reference).c_str(), body, mediaType.c_str());
    REQUIRE(put);
    INFO(put->body);
    REQUIRE(put->status == 201);
    return digestOf(body);
  }

  struct Pushed {
    std::string digest;
    size_t size;
  };
  /// An image: an empty tar layer and a config with the given Entrypoint/Cmd (null when empty).
  Pushed pushImage(const std::string& repo, const std::string& reference,
                   const std::vector<std::string>& entrypoint, const std::vector<std::string>& cmd,
                   const std::string& arch, bool oci) const {
    const std::string layer(1024, '\0');  // an empty tar archive
    const std::string layerDigest = pushBlob(repo, layer);
    Json cfg;
    cfg["architecture"] = arch;
    cfg["os"] = "linux";
    cfg["config"]["Entrypoint"] = entrypoint.empty() ? Json(nullptr) : Json(entrypoint);
    cfg["config"]["Cmd"] = cmd.empty() ? Json(nullptr) : Json(cmd);
    cfg["rootfs"] = {{"type", "layers"}, {"diff_ids", {layerDigest}}};
    const std::string config = cfg.dump();
    const std::string configDigest = pushBlob(repo, config);
    const std::string manifestType = oci ? "application/vnd.oci.image.manifest.v1+json"
                                         : "application/vnd.docker.distribution.manifest.v2+json";
    Json m;
    m["schemaVersion"] = 2;
    m["mediaType"] = manifestType;
    m["config"] = {{"mediaType", oci ? "application/vnd.oci.image.config.v1+json"
                                     : "application/vnd.docker.container.image.v1+json"},
                   {"digest", configDigest},
                   {"size", config.size()}};
    m["layers"] = Json::array({{{"mediaType", oci ? "application/vnd.oci.image.layer.v1.tar"
                                                  : "application/vnd.docker.image.rootfs.diff.tar"},
                                {"digest", layerDigest},
                                {"size", layer.size()}}});
    const std::string body = m.dump();
    const std::string digest =
        pushManifest(repo, reference.empty() ? digestOf(body) : reference, body, manifestType);
    return {digest, body.size()};
  }

  /// A manifest list (Docker) or OCI index over per-architecture images.
  void pushIndex(const std::string& repo, const std::string& tag,
                 const std::vector<std::pair<std::string, std::vector<std::string>>>& archEntry,
                 bool oci) const {
    Json index;
    index["schemaVersion"] = 2;
    const std::string type = oci ? "application/vnd.oci.image.index.v1+json"
                                 : "application/vnd.docker.distribution.manifest.list.v2+json";
    index["mediaType"] = type;
    index["manifests"] = Json::array();
    for (const auto& [arch, entry] : archEntry) {
      auto img = pushImage(repo, "", entry, {}, arch, oci);
      index["manifests"].push_back(
          {{"mediaType", oci ? "application/vnd.oci.image.manifest.v1+json"
                             : "application/vnd.docker.distribution.manifest.v2+json"},
           {"digest", img.digest},
           {"size", img.size},
           {"platform", {{"architecture", arch}, {"os", "linux"}}}});
    }
    pushManifest(repo, tag, index.dump(), type);
  }

  ImageReference ref(const std::string& repo, const std::string& tag) const {
    return ImageReference{"127.0.0.1:" + std::to_string(port), repo, tag};
  }
  RegistryOptions options() const {
    RegistryOptions o;
    o.caFile = caFile;
    return o;
  }

  std::string caFile;
  int port = 0;

 private:
  std::string dir_;
  pid_t pid_ = -1;
};

const std::optional<RegistryLogin> kLogin = RegistryLogin{"pusher", "s3cret"};

}  // namespace

TEST_CASE("registry client against docker-registry (htpasswd + TLS)", "[registry][real]") {
  LocalRegistry reg;
  RegistryClient client;

  SECTION("single Docker schema 2 manifest: Entrypoint and Cmd") {
    reg.pushImage("team/web", "1.0", {"/bin/server", "--port=80"}, {"--verbose"}, "amd64", false);
    auto r = client.fetch(reg.ref("team/web", "1.0"), kLogin, reg.options());
    INFO((r.ok() ? "" : r.error().message));
    REQUIRE(r.ok());
    CHECK(r->entrypoint == std::vector<std::string>{"/bin/server", "--port=80"});
    CHECK(r->cmd == std::vector<std::string>{"--verbose"});
    CHECK(r->manifestDigest.rfind("sha256:", 0) == 0);
    CHECK(r->platform.empty());
  }

  SECTION("image with no Entrypoint (Cmd only)") {
    reg.pushImage("team/cmdonly", "latest", {}, {"python3", "app.py"}, "amd64", true);
    auto r = client.fetch(reg.ref("team/cmdonly", "latest"), kLogin, reg.options());
    REQUIRE(r.ok());
    CHECK(r->entrypoint.empty());
    CHECK(r->cmd == std::vector<std::string>{"python3", "app.py"});
  }

  SECTION("Docker manifest list: linux/amd64 by default, the requested platform otherwise") {
    reg.pushIndex("team/multi", "2.0", {{"arm64", {"/arm-entry"}}, {"amd64", {"/amd-entry"}}},
                  false);
    auto r = client.fetch(reg.ref("team/multi", "2.0"), kLogin, reg.options());
    INFO((r.ok() ? "" : r.error().message));
    REQUIRE(r.ok());
    CHECK(r->entrypoint == std::vector<std::string>{"/amd-entry"});
    CHECK(r->platform == "linux/amd64");
    auto arm = reg.options();
    arm.architecture = "arm64";
    auto a = client.fetch(reg.ref("team/multi", "2.0"), kLogin, arm);
    REQUIRE(a.ok());
    CHECK(a->entrypoint == std::vector<std::string>{"/arm-entry"});
    CHECK(a->platform == "linux/arm64");
  }

  SECTION("OCI index") {
    reg.pushIndex("team/oci", "v3", {{"amd64", {"/oci-entry", "x"}}, {"s390x", {"/other"}}}, true);
    auto r = client.fetch(reg.ref("team/oci", "v3"), kLogin, reg.options());
    INFO((r.ok() ? "" : r.error().message));
    REQUIRE(r.ok());
    CHECK(r->entrypoint == std::vector<std::string>{"/oci-entry", "x"});
  }

  SECTION("an index without the platform") {
    reg.pushIndex("team/armonly", "1", {{"arm64", {"/arm"}}}, true);
    auto r = client.fetch(reg.ref("team/armonly", "1"), kLogin, reg.options());
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == "registry_no_platform");
    CHECK(r.error().message.find("linux/arm64") != std::string::npos);
  }

  SECTION("missing tag: 404 named") {
    reg.pushImage("team/web", "1.0", {"/x"}, {}, "amd64", false);
    auto r = client.fetch(reg.ref("team/web", "nope"), kLogin, reg.options());
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == "registry_not_found");
    CHECK(r.error().kind == ErrorKind::kInvalidArgument);
    CHECK(r.error().message.find("team/web") != std::string::npos);
    CHECK(r.error().message.find("HTTP 404") != std::string::npos);
    CHECK(r.error().message.find("MANIFEST_UNKNOWN") != std::string::npos);
  }

  SECTION("wrong password and no credential: unauthorized") {
    reg.pushImage("team/web", "1.0", {"/x"}, {}, "amd64", false);
    auto wrong =
        client.fetch(reg.ref("team/web", "1.0"), RegistryLogin{"pusher", "wrong"}, reg.options());
    REQUIRE_FALSE(wrong.ok());
    CHECK(wrong.error().code == "registry_unauthorized");
    CHECK(wrong.error().message.find("HTTP 401") != std::string::npos);
    CHECK(wrong.error().message.find("wrong") == std::string::npos);  // no secret echoed
    auto none = client.fetch(reg.ref("team/web", "1.0"), std::nullopt, reg.options());
    REQUIRE_FALSE(none.ok());
    CHECK(none.error().code == "registry_unauthorized");
  }

  SECTION("TLS: a certificate not signed by a trusted CA is refused") {
    auto o = reg.options();
    o.caFile.clear();  // system CAs do not know the generated certificate
    auto r = client.fetch(reg.ref("team/web", "1.0"), kLogin, o);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == "registry_tls");
  }
}

TEST_CASE("registry client: a registry that never answers is bounded", "[registry]") {
  // Listens (so the connection is accepted by the kernel) but never reads or writes.
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  REQUIRE(::listen(fd, 8) == 0);
  socklen_t len = sizeof a;
  REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0);
  const int port = ntohs(a.sin_port);

  RegistryOptions o;
  o.requestTimeout = std::chrono::milliseconds(300);
  o.deadline = std::chrono::milliseconds(500);
  RegistryClient client;
  const auto start = std::chrono::steady_clock::now();
  auto r = client.fetch(ImageReference{"127.0.0.1:" + std::to_string(port), "a/b", "1"},
                        std::nullopt, o);
  const auto took = std::chrono::steady_clock::now() - start;
  ::close(fd);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code == "registry_timeout");
  CHECK(r.error().message.find("a/b") != std::string::npos);
  CHECK(took < std::chrono::milliseconds(1500));
}

TEST_CASE("registry client: unreachable registry", "[registry]") {
  RegistryOptions o;
  o.requestTimeout = std::chrono::milliseconds(500);
  RegistryClient client;
  auto r = client.fetch(ImageReference{"127.0.0.1:" + std::to_string(freePort()), "a/b", "1"},
                        std::nullopt, o);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code == "registry_unreachable");

  o.caFile = "/nonexistent/ca.pem";
  auto noCa = client.fetch(ImageReference{"127.0.0.1:1", "a/b", "1"}, std::nullopt, o);
  REQUIRE_FALSE(noCa.ok());
  CHECK(noCa.error().code == "registry_tls");
  CHECK(noCa.error().message.find("/nonexistent/ca.pem") != std::string::npos);
}

TEST_CASE("image references and API paths", "[registry]") {
  auto hub = parseImageReference("docker.io/library/nginx:1.25");
  REQUIRE(hub.ok());
  CHECK(hub->registry == "registry-1.docker.io");
  CHECK(hub->repository == "library/nginx");
  CHECK(hub->reference == "1.25");
  const std::string digest = "sha256:" + std::string(64, 'a');
  auto port = parseImageReference("host:5000/a/b:latest@" + digest);
  REQUIRE(port.ok());
  CHECK(port->registry == "host:5000");
  CHECK(port->repository == "a/b");
  CHECK(port->reference == digest);
  CHECK_FALSE(parseImageReference("nohost").ok());
  // Only the distribution grammar goes into request paths sent with credentials.
  for (const char* bad :
       {"127.0.0.1:5000/../../../etc/passwd:1", "127.0.0.1:5000/a/app:1?x=1",
        "127.0.0.1:5000/a/app:1#frag", "user:pw@127.0.0.1:5000/a/app:1", "host/Team/App:1",
        "host/a//b:1", "host/a/b@sha256:abc", "host/a/b:-bad", "bad_host!/a/b:1"}) {
    INFO(bad);
    auto r = parseImageReference(bad);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == "invalid_image");
  }
  CHECK(parseImageReference("[::1]:5000/team/my-app_v2.x:v1.2-rc_3").ok());

  CHECK(*apiPath(RegistryType::kDockerV2, "a/b") == "/v2/a/b");
  CHECK(*apiPath(RegistryType::kArtifactory, "docker-local/team/app") ==
        "/artifactory/api/docker/docker-local/v2/team/app");
  CHECK_FALSE(apiPath(RegistryType::kArtifactory, "app").ok());

  CHECK(parseRegistryType("2") == RegistryType::kDockerV2);
  CHECK(parseRegistryType("jfrog") == RegistryType::kArtifactory);
  CHECK(parseRegistryType("AWS") == RegistryType::kEcr);
  CHECK(parseRegistryType("gcr") == RegistryType::kDockerV2);
  CHECK_FALSE(parseRegistryType("floppy").has_value());
  CHECK(ecrRegion("123456789012.dkr.ecr.eu-west-3.amazonaws.com") == "eu-west-3");
  CHECK(ecrRegion("registry.example.com").empty());
}

TEST_CASE("WWW-Authenticate challenges", "[registry]") {
  auto c = parseChallenge(
      R"(Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull")");
  REQUIRE(c);
  CHECK(c->scheme == "bearer");
  CHECK(c->realm == "https://auth.docker.io/token");
  CHECK(c->service == "registry.docker.io");
  CHECK(c->scope == "repository:library/nginx:pull");
  auto b = parseChallenge(R"(Basic realm="test-registry")");
  REQUIRE(b);
  CHECK(b->scheme == "basic");
  CHECK_FALSE(parseChallenge("").has_value());
}

// Vectors from the AWS Signature Version 4 test suite
// (https://docs.aws.amazon.com/general/latest/gr/signature-v4-test-suite.html): credentials
// AKIDEXAMPLE / wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY, region us-east-1, service "service",
// time 2015-08-30T12:36:00Z, host example.amazonaws.com, empty body.
TEST_CASE("SigV4 signer matches the AWS test suite", "[registry][sigv4]") {
  const AwsCredentials creds{"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", ""};
  const TimePoint at =
      TimePoint(std::chrono::sys_days(std::chrono::year(2015) / std::chrono::August / 30) +
                std::chrono::hours(12) + std::chrono::minutes(36));
  struct Vector {
    const char* name;
    SigV4Request request;
    const char* signedHeaders;
    const char* signature;
  };
  const std::pair<std::string, std::string> host{"Host", "example.amazonaws.com"};
  const std::vector<Vector> vectors = {
      {"get-vanilla",
       {"GET", "/", {}, {host}, ""},
       "host;x-amz-date",
       "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"},
      {"post-vanilla",
       {"POST", "/", {}, {host}, ""},
       "host;x-amz-date",
       "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"},
      {"get-vanilla-query-order-key-case",
       {"GET", "/", {{"Param2", "value2"}, {"Param1", "value1"}}, {host}, ""},
       "host;x-amz-date",
       "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"},
      {"post-header-value-case",
       {"POST", "/", {}, {host, {"My-Header1", "VALUE1"}}, ""},
       "host;my-header1;x-amz-date",
       "cdbc9802e29d2942e5e10b5bccfdd67c5f22c7c4e8ae67b53629efa58b974b7d"},
      {"get-header-value-trim",
       {"GET", "/", {}, {host, {"My-Header1", " value1"}, {"My-Header2", "\"a   b   c\""}}, ""},
       "host;my-header1;my-header2;x-amz-date",
       "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736"},
  };
  for (const auto& v : vectors) {
    INFO(v.name);
    const auto s = signV4(v.request, creds, "us-east-1", "service", at);
    CHECK(s.amzDate == "20150830T123600Z");
    CHECK(s.signature == v.signature);
    CHECK(s.authorization ==
          std::string("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/"
                      "aws4_request, SignedHeaders=") +
              v.signedHeaders + ", Signature=" + v.signature);
  }
  // get-vanilla's canonical request and string to sign, as published.
  const auto s = signV4(vectors[0].request, creds, "us-east-1", "service", at);
  CHECK(s.canonicalRequest ==
        "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n"
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(s.stringToSign ==
        "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n"
        "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63");
}

TEST_CASE("ECR token: SigV4-signed GetAuthorizationToken, AWS:<token> decoded", "[registry]") {
  // A stand-in for the ECR API on loopback (plain HTTP): checks what a real endpoint checks
  // first (target, signature shape) and answers like ECR.
  httplib::Server server;
  std::string seenAuth, seenTarget;
  server.Post("/", [&](const httplib::Request& req, httplib::Response& res) {
    seenAuth = req.get_header_value("Authorization");
    seenTarget = req.get_header_value("X-Amz-Target");
    if (req.get_header_value("X-Amz-Date").empty()) {
      res.status = 400;
      return;
    }
    res.set_content(R"({"authorizationData":[{"authorizationToken":")" +
                        auth::base64("AWS:ecr-password") + R"(","expiresAt":1.7E9}]})",
                    "application/x-amz-json-1.1");
  });
  const int port = server.bind_to_any_port("127.0.0.1");
  std::thread t([&] { server.listen_after_bind(); });
  // bind_to_any_port already listens: the request below queues until the thread accepts it.
  const TimePoint now =
      TimePoint(std::chrono::sys_days(std::chrono::year(2026) / std::chrono::December / 7));
  auto token =
      ecrToken({"AKIDEXAMPLE", "secret", ""}, "us-east-1", now, std::chrono::milliseconds(2000), "",
               "http://127.0.0.1:" + std::to_string(port));
  server.stop();
  t.join();
  REQUIRE(token.ok());
  CHECK(*token == "ecr-password");
  CHECK(seenTarget == "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken");
  CHECK(seenAuth.rfind("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261207/us-east-1/ecr/"
                       "aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-target, "
                       "Signature=",
                       0) == 0);
}

TEST_CASE("SecretBox: AES-256-GCM round trip, bound to its row", "[registry]") {
  SecretBox box(std::string(32, 'k'));
  const std::string sealed = box.seal("hunter2", "cred-a");
  CHECK(sealed.find("hunter2") == std::string::npos);
  CHECK(box.open(sealed, "cred-a") == std::optional<std::string>("hunter2"));
  CHECK_FALSE(box.open(sealed, "cred-b").has_value());
  std::string tampered = sealed;
  tampered[14] ^= 1;
  CHECK_FALSE(box.open(tampered, "cred-a").has_value());
  CHECK_FALSE(SecretBox(std::string(32, 'x')).open(sealed, "cred-a").has_value());
  CHECK(box.seal("hunter2", "cred-a") != sealed);  // fresh nonce each time
}

TEST_CASE("credential store: encrypted at rest, secrets not listed", "[registry]") {
  const std::string dir = freshDir("creds");
  const std::string db = dir + "/console.db";
  const std::string key(32, '\x07');
  const auto openFile = [&](const std::string& k) {
    auto opened = sql::openDatabase(db, "registry");
    REQUIRE(opened.ok());
    return openCredentialStore(std::move(opened).value(), k);
  };
  {
    auto store = openFile(key);
    REQUIRE(store.ok());
    RegistryCredential c{"ci-pull",   "basic",    "robot",
                         "Pa55word!", "CI pulls", TimePoint(Millis(1000))};
    REQUIRE(validateCredential(c).ok());
    REQUIRE((*store)->put(c).ok());
    auto found = (*store)->find("ci-pull");
    REQUIRE(found.ok());
    REQUIRE(found->has_value());
    CHECK((*found)->secret == "Pa55word!");
    auto listed = (*store)->list();
    REQUIRE(listed.ok());
    REQUIRE(listed->size() == 1);
    CHECK(listed->front().secret.empty());
    CHECK(listed->front().accountId == "robot");
  }
  // The database file does not hold the password in clear.
  std::ifstream in(db, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), {});
  CHECK(bytes.find("Pa55word!") == std::string::npos);
  CHECK(bytes.find("robot") != std::string::npos);
  {
    auto other = openFile(std::string(32, '\x08'));
    REQUIRE(other.ok());
    auto found = (*other)->find("ci-pull");
    REQUIRE_FALSE(found.ok());
    CHECK(found.error().code == "credential_unreadable");
  }
  auto store = openFile(key);
  REQUIRE(store.ok());
  REQUIRE((*store)->remove("ci-pull").ok());
  auto again = (*store)->remove("ci-pull");
  REQUIRE_FALSE(again.ok());
  CHECK(again.error().code == "credential_not_found");
  fs::remove_all(dir);

  RegistryCredential bad{"has space", "basic", "u", "p", "", TimePoint()};
  CHECK(validateCredential(bad).error().field == "_id");
  bad.id = "ok";
  bad.type = "gcp";
  CHECK(validateCredential(bad).error().field == "type");
  bad.type = "aws";
  bad.secret.clear();
  CHECK(validateCredential(bad).error().field == "secret");
}

TEST_CASE("credential store on the backend under test; two stores on one database",
          "[registry][registry-store]") {
  const std::string key(32, '\x07');
  dc::test::SharedTestDatabase shared("registry");
  auto a = openCredentialStore(shared.a, key);
  auto b = openCredentialStore(shared.b, key);
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  RegistryCredential c{"ci-pull", "aws", "AKIDEXAMPLE", "s3cr3t", "", TimePoint(Millis(1000))};
  REQUIRE((*a)->put(c).ok());
  auto found = (*b)->find("ci-pull");
  REQUIRE(found.ok());
  REQUIRE(found->has_value());
  CHECK((*found)->secret == "s3cr3t");
  CHECK((*found)->accountId == "AKIDEXAMPLE");
  CHECK((*found)->lastModified == TimePoint(Millis(1000)));
  c.secret = "rotated";
  c.lastModified = TimePoint(Millis(2000));
  REQUIRE((*b)->put(c).ok());  // replaces
  found = (*a)->find("ci-pull");
  REQUIRE(found.ok());
  CHECK((*found)->secret == "rotated");
  auto listed = (*a)->list();
  REQUIRE(listed.ok());
  REQUIRE(listed->size() == 1);
  CHECK(listed->front().secret.empty());
  // The sealed value is stored, never the secret.
  auto raw = shared.a->run("SELECT sealed_secret FROM registry_credentials");
  REQUIRE(raw.ok());
  REQUIRE(raw->size() == 1);
  CHECK((*raw)[0].blob(0).find("rotated") == std::string::npos);
  CHECK((*raw)[0].blob(0).size() == 12 + 7 + 16);
  // A replica with another sealing key cannot read it.
  auto otherKey = openCredentialStore(shared.b, std::string(32, '\x08'));
  REQUIRE(otherKey.ok());
  auto unreadable = (*otherKey)->find("ci-pull");
  REQUIRE_FALSE(unreadable.ok());
  CHECK(unreadable.error().code == "credential_unreadable");
  CHECK_FALSE((*a)->find("nope")->has_value());
  REQUIRE((*b)->remove("ci-pull").ok());
  CHECK((*a)->remove("ci-pull").error().code == "credential_not_found");
  CHECK((*a)->list()->empty());
}

TEST_CASE("Console end to end: stored credential, embed reads the registry, /api/v1/registry",
          "[registry][real][console]") {
  LocalRegistry reg;
  reg.pushImage("team/e2e", "1", {"/srv/start"}, {"--serve"}, "amd64", false);
  const std::string dataDir = freshDir("console");
  ConsoleConfig cfg;
  // Either Console front (tests/CMakeLists.txt runs both).
  if (const char* front = std::getenv("DC_TEST_CONSOLE_FRONT")) cfg.consoleFront = front;
  cfg.dataDir = dataDir;
  cfg.host = "127.0.0.1";
  cfg.consolePort = 0;
  cfg.defenderPort = 0;
  cfg.plainHttp = true;
  cfg.adminPassword = "registry-admin-password";
  cfg.passwordIterations = 1000;
  cfg.registryCa = reg.caFile;
  ManualClock clock(TimePoint(Millis(1'800'000'000'000)));
  // Everything the Console logs during the test, to check that no secret is in it.
  std::ostringstream logged;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(logged);
  spdlog::default_logger()->sinks().push_back(sink);
  ConsoleApp app(cfg, clock, "test");
  const Status started = app.start(/*startScheduler=*/false);
  if (!started.ok()) FAIL("Console did not start: " << started.error().message);
  httplib::Client api("127.0.0.1", app.consolePort());
  api.set_basic_auth("admin", "registry-admin-password");

  // The key file that seals credentials: created 0600 in the data directory.
  const fs::path key = fs::path(dataDir) / "registry.key";
  REQUIRE(fs::exists(key));
  CHECK((fs::status(key).permissions() & fs::perms::all) ==
        (fs::perms::owner_read | fs::perms::owner_write));

  auto created = api.Post("/api/v1/registry/credentials",
                          R"({"_id":"ci","type":"basic","accountID":"pusher",)"
                          R"("secret":{"plain":"s3cret"},"description":"test registry"})",
                          "application/json");
  REQUIRE(created);
  CHECK(created->status == 201);
  CHECK(created->body.find("s3cret") == std::string::npos);
  auto listed = api.Get("/api/v1/registry/credentials");
  REQUIRE(listed);
  CHECK(listed->status == 200);
  CHECK(listed->body.find("s3cret") == std::string::npos);
  CHECK(Json::parse(listed->body).at(0).at("accountID") == "pusher");
  auto badCred =
      api.Post("/api/v1/registry/credentials",
               R"({"_id":"x","type":"basic","accountID":"u","secret":7})", "application/json");
  REQUIRE(badCred);
  CHECK(badCred->status == 400);
  CHECK(Json::parse(badCred->body).at("field") == "secret");

  const std::string image = "127.0.0.1:" + std::to_string(reg.port) + "/team/e2e";
  const auto task = [&](const std::string& tag) {
    return R"({"family":"e2e","networkMode":"awsvpc","requiresCompatibilities":["FARGATE"],)"
           R"("containerDefinitions":[{"name":"web","image":")" +
           image + ":" + tag + R"("}]})";
  };
  const std::string path =
      "/api/v1/defenders/fargate.json?consoleaddr=c&extractEntrypoint=true&registryType=2&"
      "registryCredentialID=";
  auto embedded = api.Post((path + "ci").c_str(), task("1"), "application/json");
  REQUIRE(embedded);
  INFO(embedded->body);
  REQUIRE(embedded->status == 200);
  const Json c = Json::parse(embedded->body).at("containerDefinitions").at(0);
  CHECK(c.at("entryPoint") == Json::array({"/var/lib/twistlock/fargate/defender", "fargate",
                                           "entrypoint", "/srv/start"}));
  CHECK(c.at("command") == Json::array({"--serve"}));

  auto known = api.Get("/api/v1/registry?search=team/e2e&compact=true");
  REQUIRE(known);
  REQUIRE(known->status == 200);
  const Json records = Json::parse(known->body);
  REQUIRE(records.size() == 1);
  CHECK(records[0].at("_id") == image + ":1");
  CHECK(records[0].at("source") == "registry");
  CHECK(records[0].at("repoTag").at("tag") == "1");

  auto missing = api.Post((path + "ci").c_str(), task("2"), "application/json");
  REQUIRE(missing);
  CHECK(missing->status == 400);
  const Json e = Json::parse(missing->body);
  CHECK(e.at("code") == "registry_not_found");
  CHECK(e.at("message").get<std::string>().find("\"web\"") != std::string::npos);
  CHECK(e.at("field") == "containerDefinitions[0].image");

  auto unknownCred = api.Post((path + "nope").c_str(), task("2"), "application/json");
  REQUIRE(unknownCred);
  CHECK(unknownCred->status == 400);
  CHECK(Json::parse(unknownCred->body).at("code") == "registry_credential_not_found");

  auto deleted = api.Delete("/api/v1/registry/credentials/ci");
  REQUIRE(deleted);
  CHECK(deleted->status == 200);
  auto gone = api.Delete("/api/v1/registry/credentials/ci");
  REQUIRE(gone);
  CHECK(gone->status == 404);
  app.stop();
  spdlog::default_logger()->sinks().pop_back();
  CHECK(logged.str().find("registry credential ci (basic) stored by admin") != std::string::npos);
  CHECK(logged.str().find("s3cret") == std::string::npos);
  fs::remove_all(dataDir);
}

TEST_CASE("registry client: Bearer token challenge and a blob redirect", "[registry]") {
  // A stand-in registry on loopback (plain HTTP through the test hook) that answers like
  // Docker Hub: 401 with a Bearer challenge, a token service checking Basic credentials,
  // service and scope, and the config blob behind a redirect.
  const std::string config = R"({"config":{"Entrypoint":["/bearer"],"Cmd":null}})";
  const std::string configDigest = digestOf(config);
  const std::string manifest = Json{
      {"schemaVersion", 2},
      {"mediaType", "application/vnd.docker.distribution.manifest.v2+json"},
      {"config", {{"digest", configDigest}, {"size", config.size()}}},
      {"layers", Json::array()}}.dump();
  httplib::Server server;
  int port = 0;
  std::string tokenQuery, tokenAuth;
  const auto authorized = [](const httplib::Request& req) {
    return req.get_header_value("Authorization") == "Bearer tok-123";
  };
  server.Get("/token", [&](const httplib::Request& req, httplib::Response& res) {
    tokenQuery = req.get_param_value("service") + "|" + req.get_param_value("scope");
    tokenAuth = req.get_header_value("Authorization");
    if (tokenAuth != "Basic " + auth::base64("u:p")) {
      res.status = 401;
      return;
    }
    res.set_content(R"({"token":"tok-123","expires_in":300})", "application/json");
  });
  server.Get("/v2/team/app/manifests/1", [&](const httplib::Request& req, httplib::Response& res) {
    if (!authorized(req)) {
      res.status = 401;
      res.set_header("WWW-Authenticate",
                     "Bearer realm=\"http://127.0.0.1:" + std::to_string(port) +
                         "/token\",service=\"stand-in\",scope=\"repository:team/app:pull\"");
      return;
    }
    res.set_content(manifest, "application/vnd.docker.distribution.manifest.v2+json");
  });
  server.Get("/v2/team/app/blobs/" + configDigest,
             [&](const httplib::Request& req, httplib::Response& res) {
               if (!authorized(req)) {
                 res.status = 401;
                 return;
               }
               res.status = 307;
               res.set_header("Location", "/storage/config");
             });
  std::string storageAuth = "unset";
  server.Get("/storage/config", [&](const httplib::Request& req, httplib::Response& res) {
    storageAuth = req.get_header_value("Authorization");
    res.set_content(config, "application/octet-stream");
  });
  port = server.bind_to_any_port("127.0.0.1");
  std::thread t([&] { server.listen_after_bind(); });

  RegistryOptions o;
  o.baseUrlOverride = "http://127.0.0.1:" + std::to_string(port);
  RegistryClient client;
  auto r =
      client.fetch(ImageReference{"stand-in.example", "team/app", "1"}, RegistryLogin{"u", "p"}, o);
  auto wrong = client.fetch(ImageReference{"stand-in.example", "team/app", "1"},
                            RegistryLogin{"u", "bad"}, o);
  server.stop();
  t.join();
  INFO((r.ok() ? "" : r.error().message));
  REQUIRE(r.ok());
  CHECK(r->entrypoint == std::vector<std::string>{"/bearer"});
  CHECK(r->cmd.empty());
  CHECK(tokenQuery == "stand-in|repository:team/app:pull");
  CHECK(storageAuth == "Bearer tok-123");  // same host: the token goes along
  REQUIRE_FALSE(wrong.ok());
  CHECK(wrong.error().code == "registry_unauthorized");
  CHECK(wrong.error().message.find("token service") != std::string::npos);
}

TEST_CASE("registry client: credentials never follow a redirect to another origin", "[registry]") {
  // The registry (A) sends the config blob to storage on another origin (B), which redirects
  // to itself again: B must never see the registry's credentials, on any hop.
  const std::string config = R"({"config":{"Entrypoint":["/moved"]}})";
  const std::string configDigest = digestOf(config);
  const std::string manifest = Json{
      {"schemaVersion", 2},
      {"mediaType", "application/vnd.docker.distribution.manifest.v2+json"},
      {"config", {{"digest", configDigest}, {"size", config.size()}}},
      {"layers", Json::array()}}.dump();
  const std::string basic = "Basic " + auth::base64("u:p");
  httplib::Server storage;
  std::vector<std::string> storageAuth;
  storage.Get("/hop1", [&](const httplib::Request& req, httplib::Response& res) {
    storageAuth.push_back(req.get_header_value("Authorization"));
    res.status = 307;
    res.set_header("Location", "http://127.0.0.1:" + std::to_string(req.local_port) + "/hop2");
  });
  storage.Get("/hop2", [&](const httplib::Request& req, httplib::Response& res) {
    storageAuth.push_back(req.get_header_value("Authorization"));
    res.set_content(config, "application/octet-stream");
  });
  const int storagePort = storage.bind_to_any_port("127.0.0.1");
  std::thread st([&] { storage.listen_after_bind(); });
  httplib::Server registry;
  registry.Get("/v2/team/app/manifests/1",
               [&](const httplib::Request& req, httplib::Response& res) {
                 if (req.get_header_value("Authorization") != basic) {
                   res.status = 401;
                   res.set_header("WWW-Authenticate", "Basic realm=\"stand-in\"");
                   return;
                 }
                 res.set_content(manifest, "application/vnd.docker.distribution.manifest.v2+json");
               });
  registry.Get(
      "/v2/team/app/blobs/" + configDigest, [&](const httplib::Request&, httplib::Response& res) {
        res.status = 307;
        res.set_header("Location", "http://127.0.0.1:" + std::to_string(storagePort) + "/hop1");
      });
  const int registryPort = registry.bind_to_any_port("127.0.0.1");
  std::thread rt([&] { registry.listen_after_bind(); });

  RegistryOptions o;
  o.baseUrlOverride = "http://127.0.0.1:" + std::to_string(registryPort);
  RegistryClient client;
  auto r =
      client.fetch(ImageReference{"stand-in.example", "team/app", "1"}, RegistryLogin{"u", "p"}, o);
  registry.stop();
  storage.stop();
  rt.join();
  st.join();
  INFO((r.ok() ? "" : r.error().message));
  REQUIRE(r.ok());
  CHECK(r->entrypoint == std::vector<std::string>{"/moved"});
  CHECK(storageAuth == std::vector<std::string>{"", ""});
}

TEST_CASE("Console: an embed request against a registry that never answers ends within the budget",
          "[registry][console]") {
  // Accepts connections (kernel backlog) and never answers.
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  REQUIRE(::listen(fd, 8) == 0);
  socklen_t len = sizeof a;
  REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0);
  const int silentPort = ntohs(a.sin_port);

  ConsoleConfig cfg;
  // Either Console front (tests/CMakeLists.txt runs both).
  if (const char* front = std::getenv("DC_TEST_CONSOLE_FRONT")) cfg.consoleFront = front;
  cfg.database = ":memory:";
  cfg.host = "127.0.0.1";
  cfg.consolePort = 0;
  cfg.defenderPort = 0;
  cfg.plainHttp = true;
  cfg.adminPassword = "registry-admin-password";
  cfg.passwordIterations = 1000;
  cfg.registryRequestTimeout = Seconds(5);  // longer than the budget: the budget decides
  cfg.registryBudget = Seconds(1);
  ManualClock clock(TimePoint(Millis(1'800'000'000'000)));
  ConsoleApp app(cfg, clock, "test");
  const Status started = app.start(/*startScheduler=*/false);
  if (!started.ok()) FAIL("Console did not start: " << started.error().message);
  httplib::Client api("127.0.0.1", app.consolePort());
  api.set_basic_auth("admin", "registry-admin-password");
  api.set_read_timeout(30);
  const std::string task =
      R"({"family":"slow","networkMode":"awsvpc","requiresCompatibilities":["FARGATE"],)"
      R"("containerDefinitions":[{"name":"a","image":"127.0.0.1:)" +
      std::to_string(silentPort) + R"(/team/a:1"},{"name":"b","image":"127.0.0.1:)" +
      std::to_string(silentPort) + R"(/team/b:1"}]})";
  const auto start = std::chrono::steady_clock::now();
  auto r = api.Post("/api/v1/defenders/fargate.json?consoleaddr=c&extractEntrypoint=true", task,
                    "application/json");
  const auto took = std::chrono::steady_clock::now() - start;
  app.stop();
  ::close(fd);
  REQUIRE(r);
  CHECK(r->status == 503);
  const Json e = Json::parse(r->body);
  CHECK(e.at("code") == "registry_timeout");
  CHECK(e.at("field") == "containerDefinitions[0].image");
  CHECK(e.at("message").get<std::string>().find("\"a\"") != std::string::npos);
  // Two images, each of which alone would wait 5 s: the 1 s budget bounds the request.
  CHECK(took < std::chrono::milliseconds(2500));
  WARN("embed against a silent registry answered in "
       << std::chrono::duration_cast<std::chrono::milliseconds>(took).count() << " ms");
}

namespace {

/// Records what the resolver asked for instead of speaking HTTP.
class RecordingSource final : public ImageConfigSource {
 public:
  Result<ImageConfigResult> fetch(const ImageReference& image,
                                  const std::optional<RegistryLogin>& login,
                                  const RegistryOptions& options) override {
    seenImage = image;
    seenLogin = login;
    seenOptions = options;
    return ImageConfigResult{{"/e"}, {}, "sha256:00", ""};
  }
  ImageReference seenImage;
  std::optional<RegistryLogin> seenLogin;
  RegistryOptions seenOptions;
};

}  // namespace

TEST_CASE("resolver: registry type, platform, credential and budget",
          "[registry][registry-store]") {
  auto store = openCredentialStore(dc::test::testDatabase("registry"), std::string(32, 'r'));
  REQUIRE(store.ok());
  REQUIRE((*store)->put({"basic-1", "basic", "robot", "pw", "", TimePoint()}).ok());
  REQUIRE((*store)->put({"aws-1", "aws", "AKIDEXAMPLE", "secret", "", TimePoint()}).ok());
  RecordingSource source;
  ManualClock clock(TimePoint(Millis(1'800'000'000'000)));
  ResolverSettings settings;
  settings.fetchDeadline = std::chrono::milliseconds(10000);
  EntrypointResolver resolver(source, store->get(), clock, settings);

  auto r = resolver.resolve(
      {"reg.example.com/team/app:1", "", "basic-1", "ARM64", std::chrono::milliseconds(4000)});
  REQUIRE(r.ok());
  CHECK(source.seenOptions.type == RegistryType::kDockerV2);
  CHECK(source.seenOptions.architecture == "arm64");
  CHECK(source.seenOptions.deadline <= std::chrono::milliseconds(4000));
  REQUIRE(source.seenLogin.has_value());
  CHECK(source.seenLogin->username == "robot");
  CHECK(source.seenLogin->password == "pw");

  REQUIRE(resolver.resolve({"reg.example.com/a/b:1", "", "", "", std::chrono::milliseconds(4000)})
              .ok());
  CHECK(source.seenOptions.architecture == "amd64");
  CHECK_FALSE(source.seenLogin.has_value());

  REQUIRE(resolver
              .resolve({"art.example.com/docker-local/app:1", "jfrog", "basic-1", "",
                        std::chrono::milliseconds(4000)})
              .ok());
  CHECK(source.seenOptions.type == RegistryType::kArtifactory);

  auto badType =
      resolver.resolve({"reg.example.com/a/b:1", "floppy", "", "", std::chrono::seconds(4)});
  REQUIRE_FALSE(badType.ok());
  CHECK(badType.error().field == "registryType");
  auto noCred =
      resolver.resolve({"reg.example.com/a/b:1", "", "nope", "", std::chrono::seconds(4)});
  REQUIRE_FALSE(noCred.ok());
  CHECK(noCred.error().code == "registry_credential_not_found");
  CHECK(noCred.error().field == "registryCredentialID");
  auto awsElsewhere =
      resolver.resolve({"reg.example.com/a/b:1", "", "aws-1", "", std::chrono::seconds(4)});
  REQUIRE_FALSE(awsElsewhere.ok());
  CHECK(awsElsewhere.error().message.find("not an ECR registry") != std::string::npos);
}
