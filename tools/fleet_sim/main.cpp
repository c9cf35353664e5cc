// defender-fleet-sim: simulates ECS Fargate tasks whose App-Embedded Defenders heartbeat into the
// Console's defender channel. See docs/fleet-simulator.md.
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <sys/resource.h>
#include <unistd.h>
#include <CLI/CLI.hpp>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <thread>

#include "common/clock.h"
#include "tools/fleet_sim/connection_engine.h"
#include "tools/fleet_sim/simulator.h"

namespace {

std::atomic<bool> gInterrupted{false};

extern "C" void onSignal(int) {
  // First signal: stop cleanly. Second: the user insists (e.g. during --disconnect-on-exit).
  if (gInterrupted.exchange(true)) _exit(130);
}

/// Raises the soft descriptor limit to the hard one; returns the limit now in force.
rlim_t raiseFileLimit() {
  rlimit r{};
  if (::getrlimit(RLIMIT_NOFILE, &r) != 0) return 1024;
  r.rlim_cur = r.rlim_max;
  ::setrlimit(RLIMIT_NOFILE, &r);
  ::getrlimit(RLIMIT_NOFILE, &r);
  return r.rlim_cur;
}

/// This process's peak resident memory (VmHWM) in MiB; 0 when unknown.
long peakRssMib() {
  std::ifstream status("/proc/self/status");
  std::string key;
  long kib = 0;
  while (status >> key) {
    if (key == "VmHWM:") {
      status >> kib;
      return kib / 1024;
    }
    status.ignore(4096, '\n');
  }
  return 0;
}

/// Options of the per-Defender engine only.
struct PerDefenderOptions {
  bool enabled = false;
  std::string transport = "http";
  std::string wsPath = "/api/v1/defender/ws";
  std::string sourceAddresses;
  std::string shard = "0/1";
  double rampPerSecond = 0;
  int ioThreads = 0;
  double connectTimeout = 10;
  double answerTimeout = 15;
  double reconnectMin = 1;
  double reconnectMax = 60;
  double clockSkew = 0;
  std::string api;
  std::string apiUser = "admin";
  std::string apiPassword;
  std::string summaryJson = "-";
};

/// Runs the per-Defender engine (docs/fleet-simulator.md, "One connection per Defender").
int runPerDefender(const dc::sim::SimulatorConfig& c, const PerDefenderOptions& o) {
  using namespace dc::sim;
  ConnectionEngineConfig e;
  e.consoleUrl = c.http.consoleUrl;
  e.credential = c.http.credential;
  e.insecure = c.http.insecure;
  e.caCertFile = c.http.caCertFile;
  if (o.transport == "ws") {
    e.transport = WireTransport::kWebSocket;
  } else if (o.transport != "http") {
    spdlog::error("--transport must be ws or http");
    return 2;
  }
  if (c.churnPerMinute > 0 || c.observationsPerMinute > 0 || c.stopAbruptly > 0 ||
      c.stopGracefully > 0 || c.disconnectOnExit) {
    spdlog::error(
        "--per-defender does not simulate churn, observations, one-time stops or "
        "--disconnect-on-exit (yet): leave them out");
    return 2;
  }
  e.wsPath = o.wsPath;
  auto sources = parseSourceAddresses(o.sourceAddresses);
  if (!sources) {
    spdlog::error("{}", sources.error().message);
    return 2;
  }
  e.sourceAddresses = std::move(*sources);
  auto shard = parseShard(o.shard);
  if (!shard) {
    spdlog::error("{}", shard.error().message);
    return 2;
  }
  e.shardIndex = shard->first;
  e.shardCount = shard->second;
  e.fleet = c.fleet;
  e.defenders = c.defenders;
  e.rampPerSecond = o.rampPerSecond;
  e.rampSeconds = c.rampSeconds;
  e.threads = o.ioThreads > 0 ? o.ioThreads
                              : static_cast<int>(std::max(1U, std::thread::hardware_concurrency()));
  e.durationSeconds = c.durationSeconds;
  e.seed = c.seed;
  if (c.intervalOverrideSeconds)
    e.schedule.intervalOverride = dc::Millis(static_cast<long>(*c.intervalOverrideSeconds * 1000));
  e.reconnect.minDelay = dc::Millis(static_cast<long>(o.reconnectMin * 1000));
  e.reconnect.maxDelay = dc::Millis(static_cast<long>(o.reconnectMax * 1000));
  e.connectTimeoutSeconds = o.connectTimeout;
  e.answerTimeoutSeconds = o.answerTimeout;
  e.clockSkewSeconds = o.clockSkew;
  e.progressSeconds = c.progressSeconds;
  if (dc::Status s = validateEngineConfig(e); !s) {
    spdlog::error("{}", s.error().message);
    return 2;
  }

  // One socket per Defender, plus a few for the process (logs, the API check, the resolver).
  const auto mine = static_cast<rlim_t>(shardSize(e.defenders, e.shardIndex, e.shardCount));
  const rlim_t limit = raiseFileLimit();
  if (mine + 64 > limit) {
    spdlog::error(
        "{} Defenders in this process need {} file descriptors, but RLIMIT_NOFILE is {} (the hard "
        "limit; raise it with `ulimit -Hn` as root or LimitNOFILE=, or split the fleet over "
        "processes: --shard 0/{} … --shard {}/{})",
        mine, mine + 64, limit, (mine + 64) / limit + 1, (mine + 64) / limit,
        (mine + 64) / limit + 1);
    return 2;
  }

  dc::SystemClock clock;
  auto engine = ConnectionEngine::create(e, clock);
  if (!engine) {
    spdlog::error("{}", engine.error().message);
    return 2;
  }
  spdlog::info("{} Defenders (shard {}/{} of {}), each on its own {} connection to {}, {} threads",
               (*engine)->size(), e.shardIndex, e.shardCount, e.defenders,
               o.transport == "ws" ? "WebSocket" : "HTTP keep-alive", e.consoleUrl, e.threads);

  std::signal(SIGINT, onSignal);
  std::signal(SIGTERM, onSignal);
  std::optional<FalseDisconnectCheck> check;
  bool checkFailed = false;
  const auto start = std::chrono::steady_clock::now();
  (*engine)->run(
      gInterrupted, [](const std::string& line) { spdlog::info("{}", line); },
      [&](std::vector<std::string> alive) {
        if (o.api.empty()) return;
        std::string auth;
        if (!o.apiPassword.empty()) {
          auth = basicAuthorization(o.apiUser, o.apiPassword);
        }
        auto r = checkFalseDisconnects(o.api, auth, c.http.insecure, std::move(alive));
        if (!r) {
          spdlog::error("false-disconnect check: {}", r.error().message);
          checkFailed = true;
          return;
        }
        check = *r;
        spdlog::info("false disconnects: {} of {} live Defenders shown disconnected",
                     r->shownDisconnected, r->checked);
      });
  const auto elapsed =
      std::chrono::duration_cast<dc::Millis>(std::chrono::steady_clock::now() - start);
  const auto stats = (*engine)->stats();
  std::string summary = summaryJson(stats, (*engine)->connections(), (*engine)->size(),
                                    (*engine)->answeredDefenders(), elapsed, check);
  // The generator's own footprint: what a machine needs per simulated Defender.
  summary.pop_back();  // '}'
  summary += ",\"generatorPeakRssMiB\":";
  summary += std::to_string(peakRssMib());
  summary += '}';
  spdlog::info("{}", formatSummary(stats, elapsed) + formatConnections((*engine)->connections()));
  if (o.summaryJson == "-") {
    std::printf("%s\n", summary.c_str());
    std::fflush(stdout);
  } else if (!o.summaryJson.empty()) {
    std::ofstream(o.summaryJson) << summary << '\n';
  }
  if (checkFailed) return 1;
  if (check && check->shownDisconnected > 0) return 3;
  return stats.heartbeatsOk > 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  // A Console that stops mid-response closes the socket; over TLS the next write would raise
  // SIGPIPE and end the simulator silently. Ignored, the write fails and the Defender retries.
  std::signal(SIGPIPE, SIG_IGN);
  using dc::sim::SimulatorConfig;
  SimulatorConfig c;
  c.http.connections = 0;
  double intervalOverride = 0;
  uint64_t seed = 0;
  std::string logLevel = "info";

  CLI::App app{
      "Simulates ECS Fargate tasks running App-Embedded Defenders that heartbeat into the "
      "Console's defender channel."};
  app.option_defaults()->always_capture_default();
  app.add_option("--console", c.http.consoleUrl, "Defender channel base URL, http[s]://host:port");
  app.add_option("--credential", c.http.credential,
                 "Defender credential, sent as 'Authorization: Bearer' on every request (an "
                 "enrolment credential from POST /api/v1/credentials)")
      ->envname("DEFENDER_CREDENTIAL");
  app.add_flag("--insecure,-k", c.http.insecure,
               "HTTPS: do not verify the Console's certificate (self-signed Consoles)");
  app.add_option("--ca-cert", c.http.caCertFile,
                 "HTTPS: verify the Console's certificate with this PEM file instead");
  app.add_option("--defenders", c.defenders, "Number of running tasks (= Defenders)");
  app.add_option("--families", c.fleet.families,
                 "Task-definition families; each has one App ID shared by its tasks");
  app.add_option("--clusters", c.fleet.clusters, "ECS clusters the families run in");
  app.add_option("--account", c.fleet.account, "AWS account id (12 digits)");
  app.add_option("--region", c.fleet.region, "AWS region");
  app.add_option("--ramp-seconds", c.rampSeconds,
                 "Spread the initial registrations evenly over this many seconds");
  app.add_option("--churn-per-minute", c.churnPerMinute,
                 "Tasks stopped per minute (half disconnect gracefully, half fall silent), each "
                 "replaced by a new task");
  app.add_option("--interval-override", intervalOverride,
                 "Heartbeat every this many seconds, ignoring the Console's interval (0 = obey)");
  app.add_option("--threads", c.threads, "Worker threads (each has one request in flight)");
  app.add_option("--connections", c.http.connections,
                 "Keep-alive connections in total, split over the threads (default: --threads)");
  app.add_option("--duration", c.durationSeconds,
                 "Stop after this many seconds (0 = until Ctrl-C)");
  app.add_option("--seed", seed, "Random seed for task ids, sizes and churn (0 = random)");
  app.add_option("--observations-per-minute", c.observationsPerMinute,
                 "Runtime observations per Defender per minute, sent after heartbeats (0 = none)");
  app.add_option("--stop-abruptly", c.stopAbruptly,
                 "After the ramp, stop this many tasks once without a disconnect (not replaced)");
  app.add_option("--stop-gracefully", c.stopGracefully,
                 "After the ramp, disconnect this many tasks once (not replaced)");
  app.add_flag("--disconnect-on-exit", c.disconnectOnExit,
               "On exit, send a graceful disconnect for every running Defender");
  app.add_option("--progress-seconds", c.progressSeconds, "Seconds between progress lines");
  app.add_option("--log-level", logLevel, "trace, debug, info, warn, error, off");

  PerDefenderOptions pd;
  auto* group = app.add_option_group("One connection per Defender (--per-defender)");
  group->add_flag("--per-defender", pd.enabled,
                  "Each Defender holds its own connection (event-driven engine) instead of sharing "
                  "--connections");
  group->add_option("--transport", pd.transport, "ws (WebSocket) or http (HTTP/1.1 keep-alive)");
  group->add_option("--ws-path", pd.wsPath, "WebSocket upgrade path");
  group->add_option("--source-addresses", pd.sourceAddresses,
                    "Local addresses to bind, used in turn, e.g. 127.0.0.2-127.0.0.9 (empty = the "
                    "kernel chooses)");
  group->add_option("--shard", pd.shard,
                    "i/n: this process simulates Defenders k with k % n == i of --defenders");
  group->add_option("--ramp-per-second", pd.rampPerSecond,
                    "New connections per second for the whole fleet (0 = spread over "
                    "--ramp-seconds)");
  group->add_option("--io-threads", pd.ioThreads, "I/O threads (0 = one per core)");
  group->add_option("--connect-timeout", pd.connectTimeout,
                    "Seconds for TCP connect + TLS handshake + upgrade");
  group->add_option("--answer-timeout", pd.answerTimeout,
                    "Seconds a heartbeat may wait for its answer before the connection is dropped");
  group->add_option("--reconnect-min", pd.reconnectMin,
                    "Seconds: the first reconnect waits U[0, this]; doubles per failure");
  group->add_option("--reconnect-max", pd.reconnectMax, "Seconds: cap of the reconnect window");
  group->add_option("--clock-skew", pd.clockSkew,
                    "Each Defender's clock is off by U[-S, S] seconds (its \"time\" field)");
  group->add_option("--api", pd.api,
                    "Console API base URL (http[s]://host:8083): at the end, count live Defenders "
                    "it shows disconnected (false disconnects)");
  group->add_option("--api-user", pd.apiUser, "Console API user for --api");
  group->add_option("--api-password", pd.apiPassword, "Console API password for --api")
      ->envname("DC_API_PASSWORD");
  group->add_option("--summary-json", pd.summaryJson,
                    "Write the JSON summary to this file ('-' = stdout, '' = nowhere)");
  CLI11_PARSE(app, argc, argv);

  auto logger = spdlog::stderr_color_mt("fleet-sim");
  spdlog::set_default_logger(logger);
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %^%l%$ %v", spdlog::pattern_time_type::utc);
  spdlog::set_level(spdlog::level::from_str(logLevel));

  if (c.http.connections == 0) c.http.connections = c.threads;
  if (intervalOverride > 0) c.intervalOverrideSeconds = intervalOverride;
  c.seed = seed != 0
               ? seed
               : (static_cast<uint64_t>(std::random_device{}()) << 32) ^ std::random_device{}();
  if (pd.enabled) return runPerDefender(c, pd);
  if (dc::Status s = dc::sim::validateConfig(c); !s) {
    spdlog::error("{}", s.error().message);
    return 2;
  }

  dc::SystemClock clock;
  const auto threads = static_cast<size_t>(c.threads);
  auto makeTransport = [&c, threads](int k) {
    dc::sim::HttpTransportOptions o = c.http;
    // Split the connections over the workers; the first ones take the remainder.
    auto total = static_cast<size_t>(c.http.connections);
    o.connections =
        static_cast<int>(total / threads + (static_cast<size_t>(k) < total % threads ? 1 : 0));
    return dc::sim::makeHttpTransport(o);
  };
  auto sim = dc::sim::Simulator::create(c, clock, makeTransport);
  if (!sim) {
    spdlog::error("{}", sim.error().message);
    return 2;
  }

  std::signal(SIGINT, onSignal);
  std::signal(SIGTERM, onSignal);
  auto total = (*sim)->run(gInterrupted, [](const std::string& line) { spdlog::info("{}", line); });
  return total.heartbeatsOk > 0 ? 0 : 1;
}
