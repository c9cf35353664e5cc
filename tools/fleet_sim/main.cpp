// defender-fleet-sim: simulates ECS Fargate tasks whose App-Embedded Defenders heartbeat into the
// Console's defender channel. See docs/fleet-simulator.md.
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <unistd.h>
#include <CLI/CLI.hpp>
#include <atomic>
#include <csignal>
#include <cstdlib>
#include <random>

#include "common/clock.h"
#include "tools/fleet_sim/simulator.h"

namespace {

std::atomic<bool> gInterrupted{false};

extern "C" void onSignal(int) {
  // First signal: stop cleanly. Second: the user insists (e.g. during --disconnect-on-exit).
  if (gInterrupted.exchange(true)) _exit(130);
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
