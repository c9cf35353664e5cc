// Crash safety (docs/reliability.md, item 1): a real defender-console child process is killed
// with SIGKILL at random moments while load threads register Defenders, refresh them and post
// observations. After every kill the database must pass SQLite's integrity check, hold every
// acknowledged registration and observation, and every acknowledged heartbeat's lastSeen may be
// behind by at most the flush interval plus the writes around it (kWriteAllowanceMs).
//
// The kill comes at a random moment 0–1.3 s after the first 20 acknowledged requests of the cycle.
// Scale through the environment: DC_CRASH_CYCLES (default 8), DC_CRASH_SEED (default random,
// printed), DC_CRASH_HEADER ("Name: value", sent with every request, e.g. credentials).
#include <catch2/catch.hpp>

#include <httplib.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include <nlohmann/json.hpp>

#include "common/time_format.h"
#include "inventory/sqlite_store.h"
#include "support/console_child.h"

using namespace dc;
using dc::testing::integrityCheck;
using namespace std::chrono_literals;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

const std::string kAppId = "checkout:0b7e6c4e-3f4b-4b7b-9d3c-1a2b3c4d5e6f";
constexpr int kFlushMs = 200;
constexpr int kWriteAllowanceMs = 2000;

int envInt(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::atoi(v) : fallback;
}

httplib::Headers extraHeaders() {
  httplib::Headers h;
  if (const char* v = std::getenv("DC_CRASH_HEADER"); v && *v) {
    std::string s(v);
    if (auto colon = s.find(':'); colon != std::string::npos) {
      std::string value = s.substr(colon + 1);
      while (!value.empty() && value.front() == ' ') value.erase(0, 1);
      h.emplace(s.substr(0, colon), value);
    }
  }
  return h;
}

/// What the Console acknowledged (HTTP 200), across all cycles.
struct Acknowledged {
  std::mutex mutex;
  std::set<std::string> registered;
  std::map<std::string, std::set<long long>> observations;  // hostname → seq
  std::map<std::string, TimePoint> lastHeartbeatSent;       // send time of the last 200
  long long requests = 0;
  long long beyondFlushInterval = 0;  // Defenders whose lastSeen lag exceeded the interval
};

json heartbeatBody(const std::string& host) {
  return {{"hostname", host},   {"type", "fargate"},  {"appID", kAppId},
          {"cluster", "crash"}, {"version", "1.0.0"}, {"cloudMetadata", {{"provider", "aws"}}}};
}

/// Sends until `stop`: new registrations, refreshes of known Defenders and observation batches.
void load(int port, const std::string& credential, int thread, int cycle, std::atomic<bool>& stop,
          Acknowledged& acked, std::atomic<long long>& seq) {
  httplib::Client client("127.0.0.1", port);
  client.set_bearer_token_auth(credential.c_str());
  client.set_connection_timeout(1, 0);
  client.set_read_timeout(15, 0);
  client.set_default_headers(extraHeaders());
  std::mt19937 rng(static_cast<unsigned>(cycle * 100 + thread));
  std::vector<std::string> mine;
  int n = 0;
  while (!stop) {
    const int op = static_cast<int>(rng() % 10);
    if (mine.empty() || op < 3) {
      const std::string host =
          "c" + std::to_string(cycle) + "-t" + std::to_string(thread) + "-" + std::to_string(n++);
      const TimePoint sent = SystemClock().now();
      auto r =
          client.Post("/api/v1/defender/heartbeat", heartbeatBody(host).dump(), "application/json");
      if (r && r->status == 200) {
        std::lock_guard lock(acked.mutex);
        acked.registered.insert(host);
        acked.lastHeartbeatSent[host] = sent;
        ++acked.requests;
        mine.push_back(host);
      }
    } else if (op < 7) {
      const std::string& host = mine[rng() % mine.size()];
      const TimePoint sent = SystemClock().now();
      auto r =
          client.Post("/api/v1/defender/heartbeat", heartbeatBody(host).dump(), "application/json");
      if (r && r->status == 200) {
        std::lock_guard lock(acked.mutex);
        acked.lastHeartbeatSent[host] = std::max(acked.lastHeartbeatSent[host], sent);
        ++acked.requests;
      }
    } else {
      const std::string& host = mine[rng() % mine.size()];
      json batch = json::array();
      std::vector<long long> seqs;
      for (int i = 0; i < 5; ++i) {
        seqs.push_back(++seq);
        batch.push_back({{"kind", "process"},
                         {"time", formatRfc3339(SystemClock().now())},
                         {"fields", {{"seq", seqs.back()}, {"path", "/usr/bin/true"}}}});
      }
      auto r =
          client.Post("/api/v1/defender/observations",
                      json{{"hostname", host}, {"observations", batch}}.dump(), "application/json");
      if (r && r->status == 200) {
        std::lock_guard lock(acked.mutex);
        acked.observations[host].insert(seqs.begin(), seqs.end());
        ++acked.requests;
      }
    }
  }
}

/// Checks every acknowledged registration, observation and lastSeen of the Defenders whose
/// hostname starts with `prefix`. Returns the worst lastSeen lag in milliseconds.
long long verify(const fs::path& db, Acknowledged& acked, const std::string& prefix) {
  auto store = inventory::openSqliteStore({db.string()});
  REQUIRE(store.ok());
  long long maxLagMs = 0;
  for (const auto& host : acked.registered) {
    if (host.rfind(prefix, 0) != 0) continue;
    auto d = (*store)->findDefender(inventory::hostnameKey(host));
    REQUIRE(d.ok());
    INFO("registered Defender " << host);
    REQUIRE(d->has_value());
    const long long lagMs =
        std::chrono::duration_cast<Millis>(acked.lastHeartbeatSent[host] - (**d).lastSeen).count();
    maxLagMs = std::max(maxLagMs, lagMs);
    // A heartbeat waits at most one flush interval plus the write before it (taken just before
    // it arrived) and its own write; writes include WAL checkpoints and share the machine.
    CHECK(lagMs <= kFlushMs + kWriteAllowanceMs);
    if (lagMs > kFlushMs) ++acked.beyondFlushInterval;
  }
  for (const auto& [host, seqs] : acked.observations) {
    if (host.rfind(prefix, 0) != 0) continue;
    auto page = (*store)->listObservations(inventory::hostnameKey(host), 0, 100000);
    REQUIRE(page.ok());
    std::set<long long> stored;
    for (const auto& o : page->items)
      if (o.fields.contains("seq")) stored.insert(o.fields["seq"].get<long long>());
    for (long long s : seqs) {
      INFO("observation seq " << s << " of " << host);
      REQUIRE(stored.count(s) == 1);
    }
  }
  return maxLagMs;
}

}  // namespace

TEST_CASE("crash safety: SIGKILL under load loses nothing acknowledged") {
  const int cycles = envInt("DC_CRASH_CYCLES", 8);
  const unsigned seed = static_cast<unsigned>(envInt("DC_CRASH_SEED", std::random_device{}()));
  std::mt19937 rng(seed);
  const fs::path dataDir = fs::temp_directory_path() / ("dc-crash-" + std::to_string(::getpid()));
  fs::remove_all(dataDir);
  fs::create_directories(dataDir);

  Acknowledged acked;
  std::atomic<long long> seq{0};
  long long maxLagMs = 0;
  std::string credential;
  for (int cycle = 0; cycle < cycles; ++cycle) {
    INFO("seed " << seed << ", cycle " << cycle << ", log " << (dataDir / "console.log"));
    dc::testing::ConsoleChild child;
    child.start(dataDir, kFlushMs);
    if (credential.empty()) {
      // A Console-wide enrolment credential, issued once; it is stored, so it survives kills.
      httplib::Client api("127.0.0.1", child.consolePort);
      api.set_basic_auth("admin", dc::testing::kChildAdminPassword);
      auto r = api.Post("/api/v1/credentials", R"({"scope":"enrolment","description":"crash"})",
                        "application/json");
      REQUIRE(r);
      REQUIRE(r->status == 201);
      credential = json::parse(r->body).at("credential").get<std::string>();
    }
    std::atomic<bool> stop{false};
    std::vector<std::thread> threads;
    for (int t = 0; t < 3; ++t)
      threads.emplace_back(load, child.defenderPort, std::cref(credential), t, cycle,
                           std::ref(stop), std::ref(acked), std::ref(seq));
    // Let some load be acknowledged first (sanitizer builds start slowly), then the random
    // moment.
    const auto ackedBefore = [&] {
      std::lock_guard lock(acked.mutex);
      return acked.requests;
    }();
    for (int i = 0; i < 1000; ++i) {
      {
        std::lock_guard lock(acked.mutex);
        if (acked.requests - ackedBefore >= 20) break;
      }
      std::this_thread::sleep_for(10ms);
    }
    std::this_thread::sleep_for(Millis(rng() % 1300));
    child.kill9();
    stop = true;
    for (auto& t : threads) t.join();

    // Verify the files as the next start will find them (the Console is down): what this
    // cycle acknowledged after each kill, everything once at the end.
    const fs::path db = dataDir / "console.db";
    REQUIRE(integrityCheck(db) == "ok");
    std::lock_guard lock(acked.mutex);
    maxLagMs = std::max(maxLagMs, verify(db, acked, "c" + std::to_string(cycle) + "-"));
  }
  {
    const fs::path db = dataDir / "console.db";
    REQUIRE(integrityCheck(db) == "ok");
    std::lock_guard lock(acked.mutex);
    maxLagMs = std::max(maxLagMs, verify(db, acked, ""));
  }
  size_t observations = 0;
  for (const auto& [h, s] : acked.observations) observations += s.size();
  WARN("crash cycles: " << cycles << ", seed " << seed << ", acknowledged requests "
                        << acked.requests << ", registered Defenders " << acked.registered.size()
                        << ", observations " << observations << ", lost 0"
                        << ", worst lastSeen lag " << maxLagMs << " ms (flush interval " << kFlushMs
                        << " ms; checks beyond the interval: " << acked.beyondFlushInterval << ")");
  fs::remove_all(dataDir);
}
