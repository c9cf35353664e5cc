// Replicas behind a load balancer (docs/reliability.md "Replicas", docs/operations.md "Which
// replica sweeps"): three real defender-console child processes on one PostgreSQL schema, behind
// haproxy (Debian's package) on loopback, round robin on both listeners with fast health checks.
//
//   a. 30 Defenders, each on its own keep-alive connection to the balancer, heartbeat every second
//      (and post observations): every replica, asked directly, lists all of them connected.
//   d. A token issued by one replica works on the others; a user created on one signs in on
//      another; a Defender deleted on one is gone on all.
//   b. SIGKILL of the replica holding the sweeper lease: another one holds it within
//      TTL + renewal + slack; the heartbeating Defenders are never evicted nor shown disconnected;
//      nothing acknowledged is lost (tests/reliability/crash_test.cpp's definition, checked in
//      PostgreSQL); "due" Defenders written straight into the database before and after the kill
//      are evicted by the new holder (audit actor "scheduler"), a recently disconnected one stays.
//   c. SIGSTOP of the holder past its TTL, then SIGCONT: another replica takes the lease and
//      evicts meanwhile; the resumed replica logs that it lost the lease and evicts nothing.
//
// Runs under scripts/with-postgres.sh (DC_TEST_POSTGRES_URL; ctest entry replicas_test_postgres)
// and needs haproxy (/usr/sbin/haproxy, or DC_HAPROXY): without either it fails, never skips.
// The sweeper lease TTL is 3 s (--sweeper-lease-ttl), sweeps run every second. The logs of the
// replicas and haproxy are in $TMPDIR/dc-replicas-<pid>/, kept when DC_REPLICAS_KEEP_LOGS is set.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <httplib.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "common/clock.h"
#include "common/pg.h"
#include "common/time_format.h"
#include "support/console_child.h"
#include "support/free_port.h"
#include "support/numbered.h"
#include "support/postgres.h"

using namespace dc;
using namespace std::chrono_literals;
using nlohmann::json;
namespace fs = std::filesystem;
using SteadyTime = std::chrono::steady_clock::time_point;

namespace {

constexpr int kReplicas = 3;
constexpr size_t kDefenders = 30;
constexpr int kFlushMs = 250;
constexpr int kLeaseTtlSeconds = 3;
constexpr Millis kLeaseRenew = Millis(kLeaseTtlSeconds * 1000 / 3);
constexpr int kGraceSeconds = 5;
// Room for a loaded machine (sanitizer build, shared cores) in every time bound below.
constexpr Millis kSlack = Seconds(3);
// crash_test.cpp's allowance: a stored lastSeen may trail the last acknowledged heartbeat's send
// time by the flush interval plus the writes around it.
constexpr Millis kLastSeenAllowance = Millis(kFlushMs + 800);
const std::string kAppId = "replicas:0b7e6c4e-3f4b-4b7b-9d3c-1a2b3c4d5e6f";

SteadyTime steadyNow() {
  return std::chrono::steady_clock::now();
}
long long msSince(SteadyTime t) {
  return std::chrono::duration_cast<Millis>(steadyNow() - t).count();
}
long long epochMsNow() {
  return SystemClock().now().time_since_epoch().count();
}

/// Polls `done` every 50 ms until it holds or `bound` passed; returns whether it held.
template <typename F>
bool eventually(Millis bound, F&& done) {
  const auto deadline = steadyNow() + bound;
  for (;;) {
    if (done()) return true;
    if (steadyNow() >= deadline) return false;
    std::this_thread::sleep_for(50ms);
  }
}

std::string haproxyBinary() {
  const char* env = std::getenv("DC_HAPROXY");
  const std::string bin = env && *env ? env : "/usr/sbin/haproxy";
  if (::access(bin.c_str(), X_OK) != 0)
    FAIL("haproxy not found at " << bin
                                 << ": install Debian's haproxy package (scripts/install-deps.sh "
                                    "--test) or set DC_HAPROXY");
  return bin;
}

using dc::testing::freePort;

std::string readFile(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

/// haproxy in the foreground (-db) with a generated configuration: two frontends on loopback
/// (defender channel, Console API), round robin to the replicas, health checks every 200 ms.
/// A request whose server died or stopped answering is retried on another one.
struct Haproxy {
  pid_t pid = -1;
  int defenderPort = 0;
  int consolePort = 0;
  fs::path dir;

  void start(const fs::path& workDir, const std::vector<dc::testing::ConsoleChild*>& replicas) {
    const std::string bin = haproxyBinary();
    dir = workDir;
    for (int attempt = 0; attempt < 5; ++attempt) {
      defenderPort = freePort();
      consolePort = freePort();
      std::ostringstream cfg;
      cfg << "global\n  maxconn 2000\n"
          << "defaults\n  mode http\n  timeout connect 1s\n  timeout client 60s\n"
          << "  timeout server 2s\n  timeout check 500ms\n  timeout http-keep-alive 60s\n"
          << "  option redispatch 1\n  retries 3\n"
          << "  retry-on conn-failure empty-response response-timeout\n"
          << "  default-server inter 200ms fall 2 rise 2\n"
          << "frontend defender\n  bind 127.0.0.1:" << defenderPort
          << "\n  default_backend defenders\n"
          << "frontend console\n  bind 127.0.0.1:" << consolePort
          << "\n  default_backend consoles\n"
          << "backend defenders\n  balance roundrobin\n  option httpchk GET /healthz\n";
      for (size_t i = 0; i < replicas.size(); ++i)
        cfg << "  server r" << i << " 127.0.0.1:" << replicas[i]->defenderPort << " check\n";
      cfg << "backend consoles\n  balance roundrobin\n  option httpchk GET /healthz\n";
      for (size_t i = 0; i < replicas.size(); ++i)
        cfg << "  server r" << i << " 127.0.0.1:" << replicas[i]->consolePort << " check\n";
      const fs::path cfgFile = dir / "haproxy.cfg", log = dir / "haproxy.log";
      std::ofstream(cfgFile) << cfg.str();
      std::fflush(nullptr);
      pid = fork();
      REQUIRE(pid >= 0);
      if (pid == 0) {
        FILE* f = std::freopen(log.c_str(), "a", stdout);
        if (f) (void)dup2(fileno(stdout), STDERR_FILENO);
        execl(bin.c_str(), bin.c_str(), "-db", "-f", cfgFile.c_str(), static_cast<char*>(nullptr));
        _exit(127);
      }
      // Ready once both frontends answer through a healthy server.
      const bool up = eventually(10s, [&] {
        int status = 0;
        if (waitpid(pid, &status, WNOHANG) == pid) return true;
        httplib::Client d("127.0.0.1", defenderPort), c("127.0.0.1", consolePort);
        d.set_connection_timeout(0, 200'000);
        c.set_connection_timeout(0, 200'000);
        auto a = d.Get("/healthz");
        auto b = c.Get("/healthz");
        return a && a->status == 200 && b && b->status == 200;
      });
      int status = 0;
      if (up && waitpid(pid, &status, WNOHANG) != pid) return;
      // Exited (a port taken meanwhile) or never ready: try other ports.
      stop();
      WARN("haproxy did not start (attempt " << attempt + 1 << "): " << readFile(log));
    }
    FAIL("haproxy did not start; see " << (dir / "haproxy.log"));
  }
  void stop() {
    if (pid <= 0) return;
    ::kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
    pid = -1;
  }
  ~Haproxy() { stop(); }
};

httplib::Client adminClient(int port) {
  httplib::Client c("127.0.0.1", port);
  c.set_basic_auth("admin", dc::testing::kChildAdminPassword);
  c.set_connection_timeout(2, 0);
  c.set_read_timeout(10, 0);
  return c;
}

std::string metricsOf(int consolePort) {
  auto c = adminClient(consolePort);
  auto r = c.Get("/metrics");
  if (!r || r->status != 200) return "";
  return r->body;
}

/// The value of an unlabelled sample `name` in Prometheus text; -1 when absent.
double metricValue(const std::string& text, const std::string& name) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(name + " ", 0) == 0) return std::stod(line.substr(name.size() + 1));
  return -1;
}

std::string replicaIdOf(int consolePort) {
  const std::string text = metricsOf(consolePort);
  const std::string marker = "dc_replica_info{replica=\"";
  const auto at = text.find(marker);
  if (at == std::string::npos) return "";
  const auto start = at + marker.size();
  return text.substr(start, text.find('"', start) - start);
}

/// A connection to the test's schema for checks and for writing rows no replica has seen.
struct Db {
  std::unique_ptr<pg::Connection> c;
  explicit Db(const std::string& url) {
    auto conn = pg::Connection::open(url);
    if (!conn.ok()) FAIL("cannot reach PostgreSQL: " << conn.error().message);
    c = std::move(conn).value();
  }
  pg::Rows q(std::string_view sql, const std::vector<pg::Param>& params = {}) {
    auto r = c->exec(sql, params);
    if (!r.ok()) FAIL("SQL failed: " << r.error().message << " in " << sql);
    return std::move(r).value();
  }
  struct Lease {
    std::string holder;
    long long epoch = 0;
    long long expiresAtMs = 0;
  };
  Lease lease() {
    auto r = q("SELECT holder, epoch, expires_at_ms FROM sweeper_lease WHERE name = 'sweeper'");
    if (r.empty()) return {};
    return {r.text(0, 0), r.integer(0, 1), r.integer(0, 2)};
  }
  /// A Fargate Defender that disconnected `ago` ago (its grace period ended then), written
  /// straight into the table as a replica's flush would have written it long before.
  void insertDisconnected(const std::string& host, Millis ago) {
    const long long judged = epochMsNow() - ago.count() - Seconds(kGraceSeconds).count();
    q("INSERT INTO defenders (key, hostname, type, category, version, version_key, cluster, "
      "app_id, container, image, resource_id, details, fingerprint, registered_at, last_seen, "
      "judged_from, connected_since, graceful_at, clock_skew_ms) VALUES ($1::text, $1::text, "
      "'fargate', 'appEmbedded', '32.07.123', NULL, 'due', $2::text, '', '', '', '{}', 0, "
      "$3::bigint, $3::bigint, $3::bigint, $3::bigint, NULL, NULL)",
      {pg::text(host), pg::text(kAppId), pg::integer(judged)});
  }
  /// `n` such Defenders, `<prefix>1` … `<prefix>n`, in one statement.
  void insertManyDisconnected(const std::string& prefix, int n, Millis ago) {
    const long long judged = epochMsNow() - ago.count() - Seconds(kGraceSeconds).count();
    q("INSERT INTO defenders (key, hostname, type, category, version, version_key, cluster, "
      "app_id, container, image, resource_id, details, fingerprint, registered_at, last_seen, "
      "judged_from, connected_since, graceful_at, clock_skew_ms) SELECT $1::text || g, "
      "$1::text || g, 'fargate', 'appEmbedded', '32.07.123', NULL, 'due', $2::text, '', '', '', "
      "'{}', 0, $3::bigint, $3::bigint, $3::bigint, $3::bigint, NULL, NULL "
      "FROM generate_series(1, $4::int) AS g",
      {pg::text(prefix), pg::text(kAppId), pg::integer(judged), pg::integer(n)});
  }
  long long countPrefix(const std::string& prefix) {
    return q("SELECT count(*) FROM defenders WHERE starts_with(key, $1::text)", {pg::text(prefix)})
        .integer(0, 0);
  }
  /// Whether an eviction transaction holds the lease row (its SELECT … FOR SHARE).
  bool leaseRowShared() {
    return q("SELECT count(*) FROM pg_locks WHERE relation = 'sweeper_lease'::regclass AND "
             "mode = 'RowShareLock' AND granted")
               .integer(0, 0) > 0;
  }
  bool exists(const std::string& host) {
    return !q("SELECT 1 FROM defenders WHERE key = $1::text", {pg::text(host)}).empty();
  }
  /// Eviction audit records (the inventory's audit table) of `host` by the scheduler.
  long long evictionRecords(const std::string& host) {
    return q("SELECT count(*) FROM audit WHERE hostname = $1::text AND actor = 'scheduler'",
             {pg::text(host)})
        .integer(0, 0);
  }
};

/// `n` replicas started together on `url` (sweeps every second, a 3 s lease), each ready. With
/// `namedSessions`, replica i's database sessions are named `r<i>` (application_name).
struct Replicas {
  std::vector<std::unique_ptr<dc::testing::ConsoleChild>> children;
  std::vector<std::string> ids;  // replica ids, from /metrics
  int indexOf(const std::string& id) const {
    for (size_t i = 0; i < ids.size(); ++i)
      if (ids[i] == id) return static_cast<int>(i);
    return -1;
  }
};

Replicas startReplicas(const std::string& url, const fs::path& work, int n,
                       bool namedSessions = false) {
  Replicas out;
  for (int i = 0; i < n; ++i) {
    auto child = std::make_unique<dc::testing::ConsoleChild>();
    std::string database = url;
    if (namedSessions) {
      database += "&application_name=r";
      database += std::to_string(i);
    }
    child->extraArgs = {"--database",
                        database,
                        "--host",
                        "127.0.0.1",
                        "--sweeper-lease-ttl",
                        std::to_string(kLeaseTtlSeconds),
                        "--sweep-interval",
                        "1",
                        "--heartbeat-interval",
                        "1",
                        "--grace",
                        std::to_string(kGraceSeconds),
                        "--failed-sign-ins-allowed",
                        "1000"};
    const fs::path dir = work / (dc::testing::numbered("r", i));
    fs::create_directories(dir);
    child->launch(dir, kFlushMs);
    out.children.push_back(std::move(child));
  }
  for (auto& r : out.children) r->awaitPorts();
  for (auto& r : out.children) {
    auto c = adminClient(r->consolePort);
    INFO("log: " << r->logPath.string());
    REQUIRE(eventually(30s, [&] {
      auto ready = c.Get("/readyz");
      return ready && ready->status == 200;
    }));
    out.ids.push_back(replicaIdOf(r->consolePort));
    REQUIRE_FALSE(out.ids.back().empty());
  }
  return out;
}

json heartbeatBody(const std::string& host, const std::string& cluster) {
  return {{"hostname", host},   {"type", "fargate"},  {"appID", kAppId},
          {"cluster", cluster}, {"version", "1.0.0"}, {"cloudMetadata", {{"provider", "aws"}}}};
}

/// What the replicas acknowledged (HTTP 200) through the balancer.
struct Acknowledged {
  std::mutex mutex;
  std::set<std::string> registered;
  std::map<std::string, TimePoint> lastHeartbeatSent;       // send time of the last 200
  std::map<std::string, std::set<long long>> observations;  // hostname → seq
  long long heartbeats = 0;
  long long failures = 0;                 // requests without a 200 (retried)
  std::map<int, long long> failedStatus;  // HTTP status of those (0: no answer)
  Millis worstGap{0};  // longest time between two acknowledged heartbeats of one Defender
};

/// One Defender on its own keep-alive connection to the balancer: a heartbeat every second (a
/// failed one is retried after 200 ms), an observation batch every third heartbeat.
void defenderLoop(int port, const std::string& credential, const std::string& host,
                  std::atomic<bool>& stop, Acknowledged& acked, std::atomic<long long>& seq) {
  httplib::Client client("127.0.0.1", port);
  client.set_bearer_token_auth(credential.c_str());
  client.set_keep_alive(true);
  client.set_connection_timeout(1, 0);
  client.set_read_timeout(5, 0);
  std::optional<TimePoint> lastAck;
  int beat = 0;
  while (!stop) {
    const TimePoint sent = SystemClock().now();
    const auto started = steadyNow();
    auto r = client.Post("/api/v1/defender/heartbeat", heartbeatBody(host, "hb").dump(),
                         "application/json");
    if (!r || r->status != 200) {
      std::lock_guard lock(acked.mutex);
      ++acked.failures;
      ++acked.failedStatus[r ? r->status : 0];
    } else {
      std::lock_guard lock(acked.mutex);
      acked.registered.insert(host);
      acked.lastHeartbeatSent[host] = sent;
      ++acked.heartbeats;
      if (lastAck) acked.worstGap = std::max(acked.worstGap, sent - *lastAck);
      lastAck = sent;
    }
    if (r && r->status == 200 && ++beat % 3 == 0) {
      std::vector<long long> seqs{++seq, ++seq};
      json batch = json::array();
      for (long long s : seqs)
        batch.push_back({{"kind", "process"},
                         {"time", formatRfc3339(SystemClock().now())},
                         {"fields", {{"seq", s}, {"path", "/usr/bin/true"}}}});
      auto o =
          client.Post("/api/v1/defender/observations",
                      json{{"hostname", host}, {"observations", batch}}.dump(), "application/json");
      std::lock_guard lock(acked.mutex);
      if (o && o->status == 200) {
        acked.observations[host].insert(seqs.begin(), seqs.end());
      } else {
        ++acked.failures;
        ++acked.failedStatus[o ? o->status : 0];
      }
    }
    const auto next = started + (r && r->status == 200 ? Millis(1000) : Millis(200));
    while (!stop && steadyNow() < next) std::this_thread::sleep_for(20ms);
  }
}

/// Asks every replica in `live` (directly, not through the balancer) every 300 ms for the
/// heartbeating Defenders; records any that is missing or shown disconnected.
struct Watcher {
  std::mutex mutex;
  std::set<int> live;  // Console ports asked
  std::vector<std::string> violations;
  long long polls = 0;
  std::atomic<bool> stop{false};
  std::thread thread;

  void setLive(int port, bool on) {
    std::lock_guard lock(mutex);
    if (on)
      live.insert(port);
    else
      live.erase(port);
  }
  void run() {
    thread = std::thread([this] {
      while (!stop) {
        std::set<int> ports;
        {
          std::lock_guard lock(mutex);
          ports = live;
        }
        for (int port : ports) {
          auto c = adminClient(port);
          auto r = c.Get("/api/v1/defenders?cluster=hb&limit=250");
          std::lock_guard lock(mutex);
          if (!live.count(port)) continue;  // stopped while asked
          ++polls;
          if (!r || r->status != 200) {
            violations.push_back(dc::testing::numbered("replica :", port) +
                                 " did not answer the list");
            continue;
          }
          const json list = json::parse(r->body);
          if (list.size() != kDefenders)
            violations.push_back(dc::testing::numbered("replica :", port) + " listed " +
                                 std::to_string(list.size()) + " heartbeating Defenders");
          for (const auto& d : list)
            if (!d.at("connected").get<bool>())
              violations.push_back(dc::testing::numbered("replica :", port) + " showed " +
                                   d.at("hostname").get<std::string>() + " disconnected at " +
                                   formatRfc3339(SystemClock().now()));
        }
        for (int i = 0; i < 6 && !stop; ++i) std::this_thread::sleep_for(50ms);
      }
    });
  }
  std::vector<std::string> take() {
    std::lock_guard lock(mutex);
    return std::exchange(violations, {});
  }
  void join() {
    stop = true;
    if (thread.joinable()) thread.join();
  }
  ~Watcher() { join(); }
};

/// The log line of an eviction of `host` (cleanup/sweeper.cpp), up to the host name.
std::string evictedLine(const std::string& host) {
  std::string out = "evicted Defender ";
  out += host;
  out += ' ';
  return out;
}

int countIn(const std::string& text, const std::string& needle) {
  int n = 0;
  for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

std::vector<std::string> names(const std::string& prefix, int n) {
  std::vector<std::string> out;
  for (int i = 0; i < n; ++i) out.push_back(prefix + std::to_string(i));
  return out;
}

}  // namespace

TEST_CASE(
    "replicas behind haproxy: heartbeats, shared sign-in, lease take-over on SIGKILL and "
    "SIGSTOP",
    "[postgres][replicas]") {
  const std::string url = dc::testing::freshPostgresSchema();
  (void)haproxyBinary();  // fail at once, not after starting the replicas
  const fs::path work =
      fs::temp_directory_path() / dc::testing::numbered("dc-replicas-", ::getpid());
  fs::remove_all(work);
  fs::create_directories(work);
  INFO("logs in " << work.string());

  // --- three replicas, started together on one fresh schema -----------------------------------
  const auto started = steadyNow();
  Replicas set = startReplicas(url, work, kReplicas);
  auto& replicas = set.children;
  const auto& ids = set.ids;
  const long long startMs = msSince(started);
  const auto indexOf = [&](const std::string& id) { return set.indexOf(id); };

  Haproxy lb;
  {
    std::vector<dc::testing::ConsoleChild*> raw;
    for (auto& r : replicas) raw.push_back(r.get());
    lb.start(work, raw);
  }

  // A Defender credential issued on replica 0; the others read it within their reload (5 s).
  std::string credential;
  {
    auto c = adminClient(replicas[0]->consolePort);
    auto r = c.Post("/api/v1/credentials", R"({"scope":"enrolment","description":"replicas"})",
                    "application/json");
    REQUIRE(r);
    REQUIRE(r->status == 201);
    credential = json::parse(r->body).at("credential").get<std::string>();
  }
  for (int i = 0; i < kReplicas; ++i) {
    httplib::Client d("127.0.0.1", replicas[i]->defenderPort);
    d.set_bearer_token_auth(credential.c_str());
    INFO("replica " << i << " accepts the credential");
    CHECK(eventually(Seconds(5) + kSlack, [&] {
      auto r = d.Post("/api/v1/defender/heartbeat",
                      heartbeatBody(dc::testing::numbered("probe-", i), "probe").dump(),
                      "application/json");
      return r && r->status == 200;
    }));
  }

  Db db(url);
  Acknowledged acked;
  std::atomic<long long> seq{0};
  std::atomic<bool> stopFleet{false};
  std::vector<std::thread> fleet;
  const auto hosts = names("hb-", static_cast<int>(kDefenders));

  // --- a. heartbeats through the balancer ------------------------------------------------------
  SteadyTime allAcked;
  {
    for (const auto& h : hosts)
      fleet.emplace_back(defenderLoop, lb.defenderPort, std::cref(credential), h,
                         std::ref(stopFleet), std::ref(acked), std::ref(seq));
    REQUIRE(eventually(Seconds(10), [&] {
      std::lock_guard lock(acked.mutex);
      return acked.registered.size() == kDefenders;
    }));
    allAcked = steadyNow();
    // Every replica, asked directly, lists every Defender connected within the flush interval
    // (registrations are written before they are answered; slack for the loaded machine).
    for (int i = 0; i < kReplicas; ++i) {
      INFO("replica " << i);
      auto c = adminClient(replicas[i]->consolePort);
      CHECK(eventually(Millis(kFlushMs) + kSlack, [&] {
        auto r = c.Get("/api/v1/defenders?cluster=hb&connected=true&limit=250");
        return r && r->status == 200 && json::parse(r->body).size() == kDefenders;
      }));
    }
  }
  const long long listedMs = msSince(allAcked);
  Watcher watcher;
  for (auto& r : replicas) watcher.setLive(r->consolePort, true);
  watcher.run();

  // --- d. sign-in, users and deletes are shared --------------------------------------------------
  long long userVisibleMs = 0;
  {
    // A token issued by replica 0 works on the other two and through the balancer.
    httplib::Client signIn("127.0.0.1", replicas[0]->consolePort);
    auto t = signIn.Post(
        "/api/v1/authenticate",
        json{{"username", "admin"}, {"password", dc::testing::kChildAdminPassword}}.dump(),
        "application/json");
    REQUIRE(t);
    REQUIRE(t->status == 200);
    const std::string token = json::parse(t->body).at("token").get<std::string>();
    std::vector<int> ports{replicas[1]->consolePort, replicas[2]->consolePort, lb.consolePort};
    for (int port : ports) {
      INFO("token of replica 0 at :" << port);
      httplib::Client c("127.0.0.1", port);
      c.set_bearer_token_auth(token.c_str());
      auto me = c.Get("/api/v1/users/current");
      REQUIRE(me);
      CHECK(me->status == 200);
      CHECK(json::parse(me->body).value("username", "") == "admin");
    }

    // A user created on replica 1 signs in on replica 2 (and 0) within the reload (5 s).
    auto c1 = adminClient(replicas[1]->consolePort);
    auto created = c1.Post(
        "/api/v1/users",
        R"({"username":"replica-auditor","password":"auditor-password-1","role":"auditor"})",
        "application/json");
    REQUIRE(created);
    REQUIRE(created->status == 201);
    const auto createdAt = steadyNow();
    for (int i : {2, 0}) {
      INFO("user created on replica 1 signs in on replica " << i);
      httplib::Client c("127.0.0.1", replicas[i]->consolePort);
      CHECK(eventually(Seconds(5) + kSlack, [&] {
        auto r = c.Post("/api/v1/authenticate",
                        R"({"username":"replica-auditor","password":"auditor-password-1"})",
                        "application/json");
        return r && r->status == 200;
      }));
    }
    userVisibleMs = msSince(createdAt);

    // A Defender registered at replica 0 and deleted on replica 1 is gone on all three.
    httplib::Client d0("127.0.0.1", replicas[0]->defenderPort);
    d0.set_bearer_token_auth(credential.c_str());
    auto reg = d0.Post("/api/v1/defender/heartbeat", heartbeatBody("del-target", "del").dump(),
                       "application/json");
    REQUIRE(reg);
    REQUIRE(reg->status == 200);
    for (int i = 0; i < kReplicas; ++i) {
      auto c = adminClient(replicas[i]->consolePort);
      auto r = c.Get("/api/v1/defenders/del-target");
      REQUIRE(r);
      CHECK(r->status == 200);
    }
    std::this_thread::sleep_for(Millis(2 * kFlushMs));  // replica 0's flush has run (no pending)
    auto del = c1.Delete("/api/v1/defenders/del-target");
    REQUIRE(del);
    CHECK((del->status == 200 || del->status == 204));
    for (int i = 0; i < kReplicas; ++i) {
      INFO("delete on replica 1 seen by replica " << i);
      auto c = adminClient(replicas[i]->consolePort);
      CHECK(eventually(Millis(kFlushMs) + kSlack, [&] {
        auto one = c.Get("/api/v1/defenders/del-target");
        auto list = c.Get("/api/v1/defenders?hostname=del-target");
        return one && one->status == 404 && list && list->status == 200 &&
               json::parse(list->body).empty();
      }));
    }
    CHECK_FALSE(db.exists("del-target"));
  }

  // --- b. SIGKILL of the lease holder
  // --------------------------------------------------------------
  int killed = -1, holderB = -1;
  long long takeoverB = 0, evictedB = 0;
  {
    Db::Lease before;
    REQUIRE(eventually(Seconds(kLeaseTtlSeconds) + kSlack, [&] {
      before = db.lease();
      return indexOf(before.holder) >= 0 && before.expiresAtMs > epochMsNow();
    }));
    killed = indexOf(before.holder);
    // The holder says so in its metrics; the others do not.
    for (int i = 0; i < kReplicas; ++i) {
      INFO("replica " << i << ", holder " << killed);
      CHECK(eventually(kLeaseRenew + kSlack, [&] {
        return metricValue(metricsOf(replicas[i]->consolePort), "dc_sweeper_lease_held") ==
               (i == killed ? 1 : 0);
      }));
    }
    // Stopped first so that it cannot evict what is written next, then killed.
    watcher.setLive(replicas[killed]->consolePort, false);
    replicas[killed]->signal(SIGSTOP);
    const auto pre = names("due-pre-", 5);
    for (const auto& h : pre) db.insertDisconnected(h, std::chrono::hours(2));
    db.insertDisconnected("recent-0", std::chrono::minutes(5));
    const auto killedAt = steadyNow();
    replicas[killed]->kill9();
    const auto post = names("due-post-", 5);
    for (const auto& h : post) db.insertDisconnected(h, std::chrono::hours(2));

    Db::Lease after;
    const bool taken = eventually(Seconds(kLeaseTtlSeconds) + kLeaseRenew + kSlack, [&] {
      after = db.lease();
      return after.holder != before.holder && indexOf(after.holder) >= 0 &&
             after.expiresAtMs > epochMsNow();
    });
    takeoverB = msSince(killedAt);
    INFO("lease after the kill: " << after.holder << " epoch " << after.epoch);
    REQUIRE(taken);
    CHECK(after.epoch > before.epoch);
    holderB = indexOf(after.holder);

    // The new holder evicts every due Defender, once, as the scheduler; the recent one stays.
    std::vector<std::string> due = pre;
    due.insert(due.end(), post.begin(), post.end());
    const bool gone = eventually(Seconds(2) + Millis(2 * kFlushMs) + kSlack, [&] {
      for (const auto& h : due)
        if (db.exists(h)) return false;
      return true;
    });
    evictedB = msSince(killedAt);
    CHECK(gone);
    CHECK(db.exists("recent-0"));
    const std::string holderLog = readFile(replicas[holderB]->logPath);
    for (const auto& h : due) {
      INFO(h);
      CHECK(db.evictionRecords(h) == 1);
      CHECK(countIn(holderLog, evictedLine(h)) == 1);
      for (int i = 0; i < kReplicas; ++i)
        if (i != holderB) CHECK(countIn(readFile(replicas[i]->logPath), evictedLine(h)) == 0);
    }
    CHECK(db.evictionRecords("recent-0") == 0);
    // A few more heartbeats through the balancer with two replicas left.
    std::this_thread::sleep_for(2s);
    auto violations = watcher.take();
    INFO("first: " << (violations.empty() ? std::string() : violations.front()));
    CHECK(violations.empty());
  }

  // --- c. SIGSTOP of the holder past its TTL, then SIGCONT ---------------------------------------
  long long takeoverC = 0, lostLoggedMs = 0;
  std::vector<std::string> violationsC;
  {
    const int stopped = holderB;
    int other = -1;
    for (int i = 0; i < kReplicas; ++i)
      if (i != killed && i != stopped) other = i;
    REQUIRE(other >= 0);
    auto& s = *replicas[stopped];
    const double evictionsBefore = metricValue(metricsOf(s.consolePort), "dc_evictions_total");
    REQUIRE(evictionsBefore >= 0);
    const Db::Lease before = db.lease();
    REQUIRE(before.holder == ids[stopped]);

    watcher.setLive(s.consolePort, false);
    const auto stoppedAt = steadyNow();
    s.signal(SIGSTOP);
    const auto logOffset = fs::file_size(s.logPath);
    const auto pause = names("due-pause-", 5);
    for (const auto& h : pause) db.insertDisconnected(h, std::chrono::hours(2));
    Db::Lease after;
    const bool taken = eventually(Seconds(kLeaseTtlSeconds) + kLeaseRenew + kSlack, [&] {
      after = db.lease();
      return after.holder == ids[other] && after.expiresAtMs > epochMsNow();
    });
    takeoverC = msSince(stoppedAt);
    REQUIRE(taken);
    CHECK(after.epoch > before.epoch);
    CHECK(eventually(Seconds(2) + Millis(2 * kFlushMs) + kSlack, [&] {
      for (const auto& h : pause)
        if (db.exists(h)) return false;
      return true;
    }));

    // Resumed: rows due at once, which only the holder may evict.
    s.signal(SIGCONT);
    const auto resumedAt = steadyNow();
    const auto resume = names("due-resume-", 5);
    for (const auto& h : resume) db.insertDisconnected(h, std::chrono::hours(2));
    const auto logAfter = [&] {
      const std::string all = readFile(s.logPath);
      return all.substr(std::min<size_t>(logOffset, all.size()));
    };
    CHECK(eventually(Seconds(kLeaseTtlSeconds) + kSlack, [&] {
      return logAfter().find("lost the sweeper lease") != std::string::npos;
    }));
    lostLoggedMs = msSince(resumedAt);
    CHECK(eventually(Seconds(2) + Millis(2 * kFlushMs) + kSlack, [&] {
      for (const auto& h : resume)
        if (db.exists(h)) return false;
      return true;
    }));
    // Two more sweep periods of the resumed replica: it evicts nothing.
    std::this_thread::sleep_for(2s);
    const std::string resumedLog = logAfter();
    CHECK(resumedLog.find("evicted Defender") == std::string::npos);
    CHECK(metricValue(metricsOf(s.consolePort), "dc_evictions_total") == evictionsBefore);
    const std::string resumedMetrics = metricsOf(s.consolePort);
    CHECK(metricValue(resumedMetrics, "dc_sweeper_lease_held") == 0);
    CHECK(metricValue(resumedMetrics, "dc_sweeper_lease_lost_total") == 1);
    const std::string holderLog = readFile(replicas[other]->logPath);
    for (const auto& h : names("due-pause-", 5)) {
      INFO(h);
      CHECK(db.evictionRecords(h) == 1);
      CHECK(countIn(holderLog, evictedLine(h)) == 1);
    }
    for (const auto& h : resume) {
      INFO(h);
      CHECK(db.evictionRecords(h) == 1);
      CHECK(countIn(holderLog, evictedLine(h)) == 1);
    }
    watcher.setLive(s.consolePort, true);
    std::this_thread::sleep_for(1s);
    violationsC = watcher.take();
  }

  // --- nothing acknowledged lost; the heartbeating Defenders were never evicted -----------------
  stopFleet = true;
  for (auto& t : fleet) t.join();
  watcher.join();
  CHECK(watcher.polls >= 20);  // the replicas were asked all along
  {
    std::lock_guard lock(acked.mutex);
    REQUIRE(acked.registered.size() == kDefenders);
    // Every acknowledged heartbeat is stored within the allowance once the flushes ran.
    std::string behind;
    const bool caughtUp = eventually(Millis(2 * kFlushMs) + kSlack, [&] {
      behind.clear();
      for (const auto& [host, sent] : acked.lastHeartbeatSent) {
        auto r = db.q("SELECT last_seen FROM defenders WHERE key = $1::text", {pg::text(host)});
        if (r.empty()) {
          behind = host + " is not stored";
          return false;
        }
        if (r.epochMs(0, 0) < sent - kLastSeenAllowance) {
          behind = host + " lastSeen " + formatRfc3339(r.epochMs(0, 0)) + " < last sent " +
                   formatRfc3339(sent);
          return false;
        }
      }
      return true;
    });
    INFO(behind);
    CHECK(caughtUp);
    for (const auto& [host, seqs] : acked.observations) {
      auto r = db.q(
          "SELECT o.fields FROM observations o JOIN defenders d ON d.id = o.defender_id "
          "WHERE d.key = $1::text",
          {pg::text(host)});
      std::set<long long> stored;
      for (int i = 0; i < r.rows(); ++i) {
        const json f = json::parse(r.text(i, 0));
        if (f.contains("seq")) stored.insert(f["seq"].get<long long>());
      }
      for (long long s : seqs) {
        INFO("observation " << s << " of " << host);
        CHECK(stored.count(s) == 1);
      }
    }
    for (const auto& h : hosts) {
      INFO(h);
      CHECK(db.evictionRecords(h) == 0);
    }
    size_t observations = 0;
    for (const auto& [h, s] : acked.observations) observations += s.size();
    WARN("replicas: started 3 together in "
         << startMs << " ms; listed by all " << listedMs
         << " ms after the last first heartbeat; a user "
            "created on one signs in on the others after "
         << userVisibleMs << " ms; SIGKILL: lease taken after " << takeoverB
         << " ms, due Defenders evicted after " << evictedB << " ms; SIGSTOP: lease taken after "
         << takeoverC
         << " ms, resumed replica logged the "
            "loss after "
         << lostLoggedMs << " ms; acknowledged heartbeats " << acked.heartbeats << ", observations "
         << observations << ", failed requests (retried) " << acked.failures
         << ", longest gap between "
            "acknowledged heartbeats of one Defender "
         << acked.worstGap.count()
         << " ms; disconnects shown during SIGSTOP: " << violationsC.size());
    for (const auto& v : violationsC) WARN(v);
    for (const auto& [status, n] : acked.failedStatus)
      WARN(n << " requests failed with " << (status ? std::to_string(status) : "no answer"));
  }
  lb.stop();
  // Each replica still running stops cleanly on SIGTERM, in time (one that was paused and
  // resumed included).
  for (size_t i = 0; i < replicas.size(); ++i) {
    if (replicas[i]->pid <= 0) continue;
    INFO("replica " << i << " stops on SIGTERM; log " << replicas[i]->logPath.string());
    CHECK(replicas[i]->stopWithin(SIGTERM, 30s) == 0);
  }
  if (!std::getenv("DC_REPLICAS_KEEP_LOGS")) fs::remove_all(work);
}

TEST_CASE("replicas: a lease holder paused inside an eviction transaction is replaced in time",
          "[postgres][replicas]") {
  const std::string url = dc::testing::freshPostgresSchema();
  const fs::path work =
      fs::temp_directory_path() / dc::testing::numbered("dc-replicas-mid-", ::getpid());
  fs::remove_all(work);
  fs::create_directories(work);
  INFO("logs in " << work.string());
  Replicas set = startReplicas(url, work, 2);
  Db db(url);
  Db::Lease lease;
  REQUIRE(eventually(Seconds(kLeaseTtlSeconds) + kSlack, [&] {
    lease = db.lease();
    return set.indexOf(lease.holder) >= 0 && lease.expiresAtMs > epochMsNow();
  }));
  const int holder = set.indexOf(lease.holder), other = 1 - holder;
  auto& h = *set.children[holder];

  // Large sweeps (25 batches of 200, back to back) watched from the database: the holder is
  // stopped (SIGSTOP) the moment a batch's transaction holds the lease row (FOR SHARE), and
  // resumed if that transaction had ended meanwhile, until one stays held by a process that does
  // nothing.
  constexpr int kDue = 5000;
  int attempts = 0, stops = 0;
  bool caught = false;
  long long takeoverMs = -1;
  std::vector<std::string> prefixes;
  for (; attempts < 10 && !caught; ++attempts) {
    const std::string prefix = dc::testing::numbered("mid-", attempts) + "-";
    prefixes.push_back(prefix);
    db.insertManyDisconnected(prefix, kDue, std::chrono::hours(2));
    const auto until = steadyNow() + Seconds(30);
    int polls = 0;
    while (!caught && steadyNow() < until) {
      if (++polls % 100 == 0 && db.countPrefix(prefix) == 0) break;  // swept: another round
      if (!db.leaseRowShared()) continue;
      h.signal(SIGSTOP);
      ++stops;
      std::this_thread::sleep_for(200ms);  // a statement still running on the server has ended
      if (db.leaseRowShared()) {
        caught = true;
        break;
      }
      h.signal(SIGCONT);
    }
  }
  if (caught) {
    const auto stoppedAt = steadyNow();
    Db::Lease after;
    const bool taken = eventually(Seconds(kLeaseTtlSeconds) + kLeaseRenew + kSlack, [&] {
      after = db.lease();
      return after.holder == set.ids[other] && after.expiresAtMs > epochMsNow();
    });
    takeoverMs = msSince(stoppedAt);
    INFO("lease: " << after.holder << " epoch " << after.epoch << " after " << takeoverMs
                   << " ms; paused holder " << set.ids[holder]);
    CHECK(taken);
    h.signal(SIGCONT);
  }
  // Every due Defender evicted exactly once, whoever did it.
  CHECK(eventually(Seconds(60), [&] {
    for (const auto& p : prefixes)
      if (db.countPrefix(p) > 0) return false;
    return true;
  }));
  CHECK(db.q("SELECT hostname FROM audit GROUP BY hostname HAVING count(*) > 1").empty());
  CHECK(db.q("SELECT count(*) FROM audit WHERE actor = 'scheduler'").integer(0, 0) ==
        static_cast<long long>(prefixes.size()) * kDue);
  WARN("SIGSTOPs: " << stops << "; one inside an eviction transaction in sweep " << attempts
                    << " of 10: " << (caught ? "yes" : "no") << "; lease taken after " << takeoverMs
                    << " ms");
  for (size_t i = 0; i < set.children.size(); ++i) {
    INFO("replica " << i << " stops on SIGTERM; log " << set.children[i]->logPath.string());
    CHECK(set.children[i]->stopWithin(SIGTERM, 30s) == 0);
  }
  if (!std::getenv("DC_REPLICAS_KEEP_LOGS")) fs::remove_all(work);
}

// A replica paused (SIGSTOP) inside its flush transaction keeps the rows it updated locked, so
// the other replica's flush of the same Defenders waits, until the server ends the paused
// transaction (docs/operations.md "Races between replicas, and known limits").
TEST_CASE(
    "replicas: a replica paused inside its flush transaction holds back the others' flushes at "
    "most 5 s",
    "[postgres][replicas][flush-pause]") {
  const std::string url = dc::testing::freshPostgresSchema();
  const fs::path work =
      fs::temp_directory_path() / dc::testing::numbered("dc-replicas-flush-", ::getpid());
  fs::remove_all(work);
  fs::create_directories(work);
  INFO("logs in " << work.string());
  Replicas set = startReplicas(url, work, 2, true);
  Db db(url);
  std::string credential;
  {
    auto c = adminClient(set.children[0]->consolePort);
    auto r = c.Post("/api/v1/credentials", R"({"scope":"enrolment"})", "application/json");
    REQUIRE(r);
    REQUIRE(r->status == 201);
    credential = json::parse(r->body).at("credential").get<std::string>();
  }
  httplib::Client probe("127.0.0.1", set.children[1]->defenderPort);
  probe.set_bearer_token_auth(credential.c_str());
  REQUIRE(eventually(Seconds(5) + kSlack, [&] {
    auto r = probe.Post("/api/v1/defender/heartbeat", heartbeatBody("probe", "probe").dump(),
                        "application/json");
    return r && r->status == 200;
  }));
  // Ten Defenders heartbeat at both replicas in turn, every 100 ms.
  std::atomic<bool> stop{false}, onlyB{false};
  std::atomic<long long> ackedByB{0}, failedAtB{0};
  std::vector<std::thread> fleet;
  for (int i = 0; i < 10; ++i)
    fleet.emplace_back([&, i] {
      httplib::Client a("127.0.0.1", set.children[0]->defenderPort),
          b("127.0.0.1", set.children[1]->defenderPort);
      for (auto* c : {&a, &b}) {
        c->set_bearer_token_auth(credential.c_str());
        c->set_read_timeout(2, 0);
      }
      const std::string host = dc::testing::numbered("fp-", i);
      for (int n = 0; !stop; ++n) {
        const bool toB = onlyB || n % 2;
        auto r = (toB ? b : a)
                     .Post("/api/v1/defender/heartbeat", heartbeatBody(host, "hb").dump(),
                           "application/json");
        if (toB && onlyB) ++(r && r->status == 200 ? ackedByB : failedAtB);
        std::this_thread::sleep_for(100ms);
      }
    });
  const auto inFlush = [&] {
    return db.q("SELECT count(*) FROM pg_stat_activity a JOIN pg_locks l ON l.pid = a.pid "
                "WHERE a.application_name = 'r0' AND a.state = 'idle in transaction' AND "
                "l.relation = 'defenders'::regclass AND l.mode = 'RowExclusiveLock'")
               .integer(0, 0) > 0;
  };
  auto& a = *set.children[0];
  bool caught = false;
  int stops = 0;
  const auto until = steadyNow() + 30s;
  while (!caught && steadyNow() < until) {
    if (!inFlush()) continue;
    a.signal(SIGSTOP);
    ++stops;
    std::this_thread::sleep_for(200ms);
    if (inFlush()) {
      caught = true;
      break;
    }
    a.signal(SIGCONT);
  }
  REQUIRE(caught);
  onlyB = true;  // from now on the Defenders heartbeat at replica B only
  // Requests already sent to A time out; the server ends A's paused transaction once it has
  // idled 5 s (kWriteIdleLimit in inventory/pg_store.cpp), which releases its row locks.
  std::this_thread::sleep_for(6500ms);
  // Replica B acknowledges heartbeats all along; does it store them?
  const auto newest = [&] {
    return db.q("SELECT max(last_seen) FROM defenders WHERE cluster = 'hb'").integer(0, 0);
  };
  const long long before = newest();
  const long long ackedBefore = ackedByB;
  std::this_thread::sleep_for(5s);
  const long long after = newest();
  const std::string metricsB = metricsOf(set.children[1]->consolePort);
  WARN("SIGSTOPs " << stops << "; replica B acknowledged " << ackedByB - ackedBefore
                   << " heartbeats (" << failedAtB
                   << " failed) in 5 s with replica A paused in its flush; the newest stored "
                      "lastSeen moved "
                   << after - before << " ms; B's dc_flush_lag_seconds "
                   << metricValue(metricsB, "dc_flush_lag_seconds") << ", dc_pending_writes "
                   << metricValue(metricsB, "dc_pending_writes"));
  CHECK(after - before >= 4000);  // B's flushes (every 250 ms) stored the heartbeats it received
  a.signal(SIGCONT);
  stop = true;
  for (auto& t : fleet) t.join();
  for (auto& r : set.children) CHECK(r->stopWithin(SIGTERM, 30s) == 0);
  if (!std::getenv("DC_REPLICAS_KEEP_LOGS")) fs::remove_all(work);
}
