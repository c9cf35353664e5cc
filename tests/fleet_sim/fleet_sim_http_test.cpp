// The simulator's sending code against a tiny cpp-httplib defender channel bound to port 0 in
// this process (not the real Console). Time is driven by a ManualClock where the code allows;
// the threaded run uses only bounded waits on conditions.
#include <httplib.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <regex>
#include <thread>

#include "appid/app_id.h"
#include "common/time_format.h"
#include "tools/fleet_sim/protocol.h"
#include "tools/fleet_sim/shard.h"
#include "tools/fleet_sim/simulator.h"

using namespace dc;
using namespace dc::sim;
using nlohmann::json;

namespace {

const TimePoint kStart = *parseRfc3339("2026-03-01T12:00:00Z");

/// Problems with a heartbeat body per the defender channel protocol; empty when well-formed.
std::vector<std::string> heartbeatProblems(const json& b) {
  std::vector<std::string> p;
  auto str = [&](const json& j, const char* key) {
    if (!j.contains(key) || !j[key].is_string()) {
      p.push_back(std::string("missing string ") + key);
      return std::string();
    }
    return j[key].get<std::string>();
  };
  std::string host = str(b, "hostname");
  if (!std::regex_match(host, std::regex("[0-9a-f]{32}"))) p.push_back("hostname not a task id");
  if (str(b, "type") != "fargate") p.push_back("type");
  if (str(b, "version").empty()) p.push_back("version");
  std::string cluster = str(b, "cluster");
  auto appId = appid::parse(str(b, "appID"));
  if (!appId.ok()) p.push_back("appID");
  if (str(b, "container").empty()) p.push_back("container");
  if (b.value("collections", json()) != json::array({"All"})) p.push_back("collections");
  if (!b.contains("cloudMetadata") || !b["cloudMetadata"].is_object()) {
    p.push_back("cloudMetadata");
    return p;
  }
  const json& cm = b["cloudMetadata"];
  if (str(cm, "provider") != "aws") p.push_back("provider");
  std::string account = str(cm, "accountID");
  std::string region = str(cm, "region");
  if (str(cm, "resourceID") !=
      "arn:aws:ecs:" + region + ":" + account + ":task/" + cluster + "/" + host) {
    p.push_back("resourceID");
  }
  if (str(cm, "awsExecutionEnv") != "AWS_ECS_FARGATE") p.push_back("awsExecutionEnv");
  std::string name = str(cm, "name");
  if (appId.ok() && name != appId->family) p.push_back("name is not the App ID's family");
  if (!str(cm, "image")
           .starts_with(account + ".dkr.ecr." + region + ".amazonaws.com/" + name + ":")) {
    p.push_back("image");
  }
  for (const char* k : {"features", "status", "systemInfo"}) {
    if (!b.contains(k) || !b[k].is_object()) p.push_back(k);
  }
  if (!parseRfc3339(str(b, "certificateExpiration"))) p.push_back("certificateExpiration");
  std::string time = str(b, "time");
  if (!parseRfc3339(time) || !time.ends_with("Z")) p.push_back("time");
  return p;
}

/// A minimal defender channel. `heartbeatReply` decides each heartbeat's answer.
class FakeConsole {
 public:
  struct Received {
    std::string path;
    json body;
    std::string credential;
    std::string contentType;
  };
  std::function<void(const json&, httplib::Response&)> heartbeatReply = [](const json& b,
                                                                           httplib::Response& res) {
    res.set_content(json{{"hostname", b["hostname"]},
                         {"connected", true},
                         {"registered", true},
                         {"intervalSeconds", 30},
                         {"nextHeartbeatSeconds", 28.734}}
                        .dump(),
                    "application/json");
  };

  FakeConsole() {
    server_.Post(std::string(kHeartbeatPath), [this](const auto& req, auto& res) {
      json b = record(req);
      std::lock_guard lock(replyMutex_);
      heartbeatReply(b, res);
    });
    server_.Post(std::string(kDisconnectPath), [this](const auto& req, auto& res) {
      record(req);
      res.set_content("{}", "application/json");
    });
    server_.Post(std::string(kObservationsPath), [this](const auto& req, auto& res) {
      json b = record(req);
      res.set_content(json{{"accepted", b["observations"].size()}}.dump(), "application/json");
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    REQUIRE(port_ > 0);
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!server_.is_running() && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::yield();
    }
    REQUIRE(server_.is_running());
  }
  ~FakeConsole() {
    server_.stop();
    thread_.join();
  }

  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }

  void setReply(std::function<void(const json&, httplib::Response&)> f) {
    std::lock_guard lock(replyMutex_);
    heartbeatReply = std::move(f);
  }

  std::vector<Received> received() {
    std::lock_guard lock(mutex_);
    return received_;
  }
  size_t count(std::string_view path) {
    std::lock_guard lock(mutex_);
    size_t n = 0;
    for (const auto& r : received_) n += r.path == path ? 1 : 0;
    return n;
  }
  /// Waits (at most `limit`) until `pred(received)` holds; returns whether it did.
  bool waitFor(const std::function<bool(const std::vector<Received>&)>& pred,
               std::chrono::seconds limit = std::chrono::seconds(20)) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, limit, [&] { return pred(received_); });
  }

 private:
  json record(const httplib::Request& req) {
    json b = json::parse(req.body, nullptr, false);
    {
      std::lock_guard lock(mutex_);
      received_.push_back({req.path, b, req.get_header_value("Authorization"),
                           req.get_header_value("Content-Type")});
    }
    changed_.notify_all();
    return b;
  }

  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<Received> received_;
  std::mutex replyMutex_;
};

Fleet makeTestFleet() {
  Rng rng(11);
  FleetSpec spec;
  spec.families = 3;
  spec.account = "210987654321";
  spec.region = "eu-west-1";
  auto fleet = makeFleet(spec, rng);
  REQUIRE(fleet.ok());
  return *fleet;
}

}  // namespace

TEST_CASE("http: heartbeats are well-formed and follow nextHeartbeatSeconds") {
  FakeConsole console;
  Fleet fleet = makeTestFleet();
  HttpTransportOptions http;
  http.consoleUrl = console.url();
  http.credential = "s3cr3t-token";
  auto transport = makeHttpTransport(http);
  ManualClock clock(kStart);
  Stats stats;
  Shard shard(fleet, {}, *transport, stats, clock, 1);
  Rng rng(2);
  for (uint32_t i = 0; i < 6; ++i) shard.addTask(newTask(fleet, i % 3, kStart, rng), kStart);

  // step() is synchronous: when it returns, the server has handled every request it sent.
  CHECK(shard.step() == kStart + Millis(28'734));
  auto got = console.received();
  REQUIRE(got.size() == 6);
  std::set<std::string> hosts;
  for (const auto& r : got) {
    CHECK(r.path == kHeartbeatPath);
    CHECK(r.credential == "Bearer s3cr3t-token");
    CHECK(r.contentType == "application/json");
    INFO(r.body.dump());
    CHECK(heartbeatProblems(r.body).empty());
    CHECK(r.body["time"] == "2026-03-01T12:00:00.000Z");
    CHECK(r.body["cloudMetadata"]["accountID"] == "210987654321");
    hosts.insert(r.body["hostname"].get<std::string>());
  }
  CHECK(hosts.size() == 6);
  CHECK(stats.snapshot().registered == 6);

  clock.advance(Millis(28'733));
  shard.step();
  CHECK(console.count(kHeartbeatPath) == 6);
  clock.advance(Millis(1));
  shard.step();
  CHECK(console.count(kHeartbeatPath) == 12);
  CHECK(console.received().back().body["time"] == "2026-03-01T12:00:28.734Z");
}

TEST_CASE("http: Retry-After on 429 and 503 is honoured per Defender") {
  FakeConsole console;
  Fleet fleet = makeTestFleet();
  HttpTransportOptions http;
  http.consoleUrl = console.url();
  auto transport = makeHttpTransport(http);
  ManualClock clock(kStart);
  Stats stats;
  Shard shard(fleet, {}, *transport, stats, clock, 1);
  Rng rng(2);
  for (uint32_t i = 0; i < 3; ++i) shard.addTask(newTask(fleet, i, kStart, rng), kStart);
  auto hosts = shard.aliveHostnames();
  REQUIRE(hosts.size() == 3);
  const std::string limited = hosts[0], busy = hosts[1], fine = hosts[2];
  console.setReply([&](const json& b, httplib::Response& res) {
    std::string h = b["hostname"];
    if (h == limited) {
      res.status = 429;
      res.set_header("Retry-After", "7");
      res.set_content(R"({"code":"rate_limited","message":"too many heartbeats","field":""})",
                      "application/json");
    } else if (h == busy) {
      res.status = 503;
      res.set_header("Retry-After", "2");
      res.set_content(R"({"code":"storage_unavailable","message":"busy","field":""})",
                      "application/json");
    } else {
      res.set_content(R"({"connected":true,"registered":true,"intervalSeconds":30,)"
                      R"("nextHeartbeatSeconds":30})",
                      "application/json");
    }
  });
  shard.step();
  CHECK(console.count(kHeartbeatPath) == 3);
  CHECK(*shard.nextDueOf(limited) == kStart + Seconds(7));
  CHECK(*shard.nextDueOf(busy) == kStart + Seconds(2));
  CHECK(*shard.nextDueOf(fine) == kStart + Seconds(30));

  auto heartbeatsFrom = [&](const std::string& host) {
    size_t n = 0;
    for (const auto& r : console.received()) n += r.body["hostname"] == host ? 1 : 0;
    return n;
  };
  clock.advance(Millis(1'999));
  shard.step();
  CHECK(heartbeatsFrom(busy) == 1);
  clock.advance(Millis(1));
  shard.step();
  CHECK(heartbeatsFrom(busy) == 2);
  CHECK(heartbeatsFrom(limited) == 1);
  clock.set(kStart + Seconds(7));  // `busy` got 503 again at 2 s, so it is due again at 4 s too
  shard.step();
  CHECK(heartbeatsFrom(limited) == 2);
  CHECK(heartbeatsFrom(busy) == 3);
  CHECK(heartbeatsFrom(fine) == 1);
  auto s = stats.snapshot();
  CHECK(s.byStatus[429] == 2);
  CHECK(s.byStatus[503] == 3);
}

TEST_CASE("http: disconnects and observations reach the channel") {
  FakeConsole console;
  Fleet fleet = makeTestFleet();
  HttpTransportOptions http;
  http.consoleUrl = console.url();
  auto transport = makeHttpTransport(http);
  ManualClock clock(kStart);
  Stats stats;
  ShardOptions options;
  options.observationsPerMinute = 10;
  options.stopGracefully = 1;
  options.stopAt = kStart + Seconds(1);
  Shard shard(fleet, options, *transport, stats, clock, 1);
  Rng rng(2);
  for (uint32_t i = 0; i < 2; ++i) shard.addTask(newTask(fleet, i, kStart, rng), kStart);
  shard.step();
  clock.advance(Seconds(1));  // the one-time stop
  shard.step();
  CHECK(console.count(kDisconnectPath) == 1);
  clock.set(kStart + Seconds(36));  // the survivor heartbeats, with 10/min × 36 s observations
  shard.step();
  CHECK(console.count(kHeartbeatPath) == 3);
  CHECK(console.count(kObservationsPath) == 1);
  for (const auto& r : console.received()) {
    if (r.path == kDisconnectPath) {
      CHECK(r.body.size() == 1);
      CHECK(r.body["hostname"].is_string());
    }
    if (r.path == kObservationsPath) CHECK(r.body["observations"].size() == 6);
  }
  CHECK(stats.snapshot().observations == 6);
}

TEST_CASE("http: the threaded simulator registers the fleet and disconnects it on exit") {
  FakeConsole console;
  SimulatorConfig c;
  c.http.consoleUrl = console.url();
  c.http.connections = 3;
  c.threads = 2;
  c.defenders = 40;
  c.rampSeconds = 0;
  c.seed = 99;
  c.disconnectOnExit = true;
  c.progressSeconds = 3600;
  SystemClock clock;
  auto sim = Simulator::create(c, clock, [&c](int) {
    HttpTransportOptions o = c.http;
    return makeHttpTransport(o);
  });
  REQUIRE(sim.ok());
  std::atomic<bool> interrupt{false};
  std::vector<std::string> lines;
  std::thread runner(
      [&] { (*sim)->run(interrupt, [&](const std::string& line) { lines.push_back(line); }); });
  bool registered = console.waitFor([](const auto& got) { return got.size() >= 40; });
  interrupt.store(true);
  runner.join();
  CHECK(registered);
  std::set<std::string> heartbeats, disconnects;
  for (const auto& r : console.received()) {
    if (r.path == kHeartbeatPath) {
      CHECK(heartbeatProblems(r.body).empty());
      heartbeats.insert(r.body["hostname"].get<std::string>());
    } else if (r.path == kDisconnectPath) {
      disconnects.insert(r.body["hostname"].get<std::string>());
    }
  }
  CHECK(heartbeats.size() == 40);
  CHECK(disconnects == heartbeats);
  REQUIRE(lines.size() == 1);
  CHECK(lines[0].starts_with("summary: duration="));
  CHECK(lines[0].find(" alive=0 ") != std::string::npos);
  CHECK(lines[0].find(" disconnects=40 ") != std::string::npos);
}
