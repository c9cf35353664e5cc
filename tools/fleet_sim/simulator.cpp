#include "tools/fleet_sim/simulator.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <thread>

namespace dc::sim {
namespace {

Millis toMillis(double seconds) {
  return Millis(static_cast<Millis::rep>(std::llround(seconds * 1000.0)));
}

Error invalid(const char* field, std::string message) {
  return Error::invalid("invalid_option", field, std::move(message));
}

// Splits `total` over `parts` as evenly as possible; part `k` gets the returned share.
int share(int total, size_t parts, size_t k) {
  auto t = static_cast<size_t>(total);
  return static_cast<int>(t / parts + (k < t % parts ? 1 : 0));
}

}  // namespace

Status validateConfig(const SimulatorConfig& c) {
  if (Status s = validateFleetSpec(c.fleet); !s) return s;
  if (Status s = validateConsoleUrl(c.http.consoleUrl); !s) return s;
  if (c.defenders < 1 || c.defenders > 10'000'000) {
    return invalid("defenders", "--defenders must be in 1..10000000");
  }
  if (c.threads < 1 || c.threads > 256) return invalid("threads", "--threads must be in 1..256");
  if (c.http.connections < c.threads || c.http.connections > 4096) {
    return invalid("connections", "--connections must be in --threads..4096");
  }
  if (!(c.rampSeconds >= 0 && c.rampSeconds <= 86'400)) {
    return invalid("ramp-seconds", "--ramp-seconds must be in 0..86400");
  }
  if (!(c.churnPerMinute >= 0 && c.churnPerMinute <= 1e6)) {
    return invalid("churn-per-minute", "--churn-per-minute must be in 0..1000000");
  }
  if (c.intervalOverrideSeconds &&
      !(*c.intervalOverrideSeconds >= 0.01 && *c.intervalOverrideSeconds <= 3600)) {
    return invalid("interval-override", "--interval-override must be in 0.01..3600 seconds");
  }
  if (!(c.durationSeconds >= 0)) return invalid("duration", "--duration must be >= 0");
  if (!(c.observationsPerMinute >= 0 && c.observationsPerMinute <= 6000)) {
    return invalid("observations-per-minute", "--observations-per-minute must be in 0..6000");
  }
  if (c.stopAbruptly < 0 || c.stopGracefully < 0 ||
      static_cast<long long>(c.stopAbruptly) + c.stopGracefully > c.defenders) {
    return invalid("stop-abruptly",
                   "--stop-abruptly plus --stop-gracefully must be in 0..--defenders");
  }
  if (!(c.progressSeconds > 0))
    return invalid("progress-seconds", "--progress-seconds must be > 0");
  return Status::success();
}

Simulator::Simulator(const SimulatorConfig& config, const Clock& clock)
    : config_(config), clock_(clock) {}

Result<std::unique_ptr<Simulator>> Simulator::create(const SimulatorConfig& config,
                                                     const Clock& clock,
                                                     const TransportFactory& makeTransport) {
  if (Status s = validateConfig(config); !s) return s.error();
  std::unique_ptr<Simulator> sim(new Simulator(config, clock));
  Rng rng(config.seed);
  auto fleet = makeFleet(config.fleet, rng);
  if (!fleet) return fleet.error();
  sim->fleet_ = std::move(fleet).value();

  const auto workers = static_cast<size_t>(config.threads);
  const TimePoint start = clock.now();
  const Millis ramp = toMillis(config.rampSeconds);
  ShardOptions base;
  if (config.intervalOverrideSeconds) {
    base.policy.intervalOverride = toMillis(*config.intervalOverrideSeconds);
  }
  base.churnPerMinute = config.churnPerMinute / static_cast<double>(workers);
  base.observationsPerMinute = config.observationsPerMinute;
  base.stopAt = start + ramp;
  for (size_t k = 0; k < workers; ++k) {
    sim->transports_.push_back(makeTransport(static_cast<int>(k)));
    ShardOptions o = base;
    o.stopAbruptly = share(config.stopAbruptly, workers, k);
    o.stopGracefully = share(config.stopGracefully, workers, k);
    sim->shards_.push_back(
        std::make_unique<Shard>(sim->fleet_, o, *sim->transports_[k], sim->stats_, clock,
                                config.seed ^ (0x9e3779b97f4a7c15ULL * (k + 1))));
  }
  // The first F tasks cover every family once; the rest follow the families' weights.
  const auto n = static_cast<size_t>(config.defenders);
  for (size_t i = 0; i < n; ++i) {
    uint32_t family =
        i < sim->fleet_.families.size() ? static_cast<uint32_t>(i) : pickFamily(sim->fleet_, rng);
    Millis offset(ramp.count() * static_cast<Millis::rep>(i) / static_cast<Millis::rep>(n));
    sim->shards_[i % workers]->addTask(newTask(sim->fleet_, family, start, rng), start + offset);
  }
  return sim;
}

void Simulator::work(size_t index) {
  Shard& shard = *shards_[index];
  while (!stop_.load()) {
    TimePoint next = shard.step(&stop_);
    Millis wait = std::clamp(next - clock_.now(), Millis(0), Millis(50));
    if (wait > Millis(0)) {
      std::unique_lock lock(mutex_);
      wake_.wait_for(lock, wait, [this] { return stop_.load(); });
    }
  }
  if (config_.disconnectOnExit) shard.disconnectAll();
}

StatsSnapshot Simulator::run(const std::atomic<bool>& interrupt,
                             const std::function<void(const std::string&)>& report) {
  const TimePoint start = clock_.now();
  const Millis duration = toMillis(config_.durationSeconds);
  const Millis progressEvery = std::max(Millis(100), toMillis(config_.progressSeconds));
  spdlog::info(
      "simulating {} Fargate Defenders in {} families on {} clusters against {} ({} threads, {} "
      "connections, seed {})",
      config_.defenders, fleet_.families.size(), config_.fleet.clusters, config_.http.consoleUrl,
      config_.threads, config_.http.connections, config_.seed);
  for (const Family& f : fleet_.families) {
    spdlog::info("family {} appID={} cluster={} image={}", f.name, f.appId, f.cluster, f.image);
  }

  std::vector<std::thread> threads;
  for (size_t k = 0; k < shards_.size(); ++k) threads.emplace_back([this, k] { work(k); });

  StatsSnapshot last = stats_.snapshot();
  TimePoint lastReport = start;
  while (!interrupt.load()) {
    TimePoint now = clock_.now();
    if (duration > Millis(0) && now - start >= duration) break;
    if (now - lastReport >= progressEvery) {
      StatsSnapshot s = stats_.snapshot();
      report(formatProgress(s, last, now - start, now - lastReport));
      last = s;
      lastReport = now;
    }
    std::unique_lock lock(mutex_);
    wake_.wait_for(lock, Millis(50), [&] { return interrupt.load(); });
  }
  {
    std::lock_guard lock(mutex_);
    stop_.store(true);
  }
  wake_.notify_all();
  if (config_.disconnectOnExit) {
    spdlog::info("stopping: sending graceful disconnects for {} Defenders",
                 stats_.snapshot().alive);
  }
  for (auto& t : threads) t.join();
  StatsSnapshot total = stats_.snapshot();
  report(formatSummary(total, clock_.now() - start));
  return total;
}

}  // namespace dc::sim
