// Sweep benchmark: time to evict N stale Fargate Defenders with K observations each, and the
// heartbeat latency other Defenders see over HTTP before and during the sweep.
//
//   build/release/bench/sweep_bench --stale 100000 --observations 10 --live 100000 --interval 30
//
// The database is a real SQLite file (WAL) in a temporary directory, or with
// `--database postgresql://…` a PostgreSQL database that holds no Defenders yet. Stale Defenders
// are written straight through the Store (fast set-up), the Console is then started on it with a
// manual clock, and heartbeat clients keep the live Defenders fresh over HTTP.
#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <iostream>
#include <thread>

#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "auth/service.h"
#include "cleanup/sweeper.h"
#include "common/thread_priority.h"
#include "heartbeat/channel.h"
#include "inventory/inventory.h"
#include "inventory/pg_store.h"
#include "inventory/sqlite_store.h"
#include "main/console_app.h"

using namespace dc;
using namespace std::chrono_literals;

namespace {

const TimePoint kT0 = TimePoint(Millis(1'800'000'000'000));

struct Latencies {
  std::vector<double> ms;
  double pct(double p) {
    if (ms.empty()) return 0;
    std::sort(ms.begin(), ms.end());
    return ms[std::min(ms.size() - 1, static_cast<size_t>(p * static_cast<double>(ms.size())))];
  }
};

std::string heartbeatBody(int i) {
  return nlohmann::json{{"hostname", "live-" + std::to_string(i)},
                        {"type", "fargate"},
                        {"appID", "bench:0b7e6c4e-3f4b-4b7b-9d3c-1a2b3c4d5e6f"},
                        {"cluster", "bench"}}
      .dump();
}

// Heartbeats the live Defenders from `threads` keep-alive clients until `stop`; records the
// latency of each request from its send. With `intervalSeconds` > 0 every live Defender
// heartbeats once per interval (evenly spread; a client that falls behind sends at once),
// otherwise the clients send as fast as they can.
Latencies hammer(int port, const std::string& credential, int live, int threads,
                 double intervalSeconds, std::atomic<bool>& stop) {
  std::vector<Latencies> per(static_cast<size_t>(threads));
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t)
    ts.emplace_back([&, t] {
      httplib::Client c("127.0.0.1", port);
      c.set_bearer_token_auth(credential);
      c.set_keep_alive(true);
      c.set_tcp_nodelay(true);
      const auto began = std::chrono::steady_clock::now();
      // Seconds between two sends of this client when paced.
      const double gap = intervalSeconds * threads / live;
      long long sent = 0;
      for (int i = t; !stop; i = (i + threads) % live, ++sent) {
        if (intervalSeconds > 0)
          std::this_thread::sleep_until(
              began + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                          std::chrono::duration<double>(gap * static_cast<double>(sent))));
        if (stop) break;
        const auto body = heartbeatBody(i);
        const auto start = std::chrono::steady_clock::now();
        auto r = c.Post("/api/v1/defender/heartbeat", body, "application/json");
        const auto us = std::chrono::duration_cast<std::chrono::microseconds>(
                            std::chrono::steady_clock::now() - start)
                            .count();
        if (!r || r->status != 200) {
          std::cerr << "heartbeat failed\n";
          continue;
        }
        per[static_cast<size_t>(t)].ms.push_back(static_cast<double>(us) / 1000.0);
      }
    });
  for (auto& t : ts) t.join();
  Latencies all;
  for (auto& p : per) all.ms.insert(all.ms.end(), p.ms.begin(), p.ms.end());
  return all;
}

}  // namespace

int main(int argc, char** argv) {
  int stale = 100000, observations = 10, live = 1000, threads = 4, baselineSeconds = 3;
  double interval = 0;
  std::string dir, database;
  CLI::App app{"Eviction sweep benchmark"};
  app.add_option("--stale", stale, "Disconnected Fargate Defenders to evict")
      ->capture_default_str();
  app.add_option("--observations", observations, "Observations per stale Defender")
      ->capture_default_str();
  app.add_option("--live", live, "Defenders that keep heartbeating over HTTP")
      ->capture_default_str();
  app.add_option("--threads", threads, "Heartbeat client threads")->capture_default_str();
  app.add_option("--interval", interval,
                 "Seconds between two heartbeats of one live Defender (0 = as fast as possible)")
      ->capture_default_str();
  app.add_option("--baseline-seconds", baselineSeconds, "Heartbeat-only period before the sweep")
      ->capture_default_str();
  app.add_option("--dir", dir, "Directory for the database (default: a temporary one)");
  app.add_option("--database", database,
                 "PostgreSQL URL (postgresql://…) of a database without Defenders, instead of a "
                 "SQLite file in --dir");
  CLI11_PARSE(app, argc, argv);
  spdlog::set_level(spdlog::level::warn);

  const bool tempDir = dir.empty();
  if (tempDir)
    dir =
        (std::filesystem::temp_directory_path() / ("dc-sweep-bench-" + std::to_string(::getpid())))
            .string();
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::string db = database.empty() ? dir + "/console.db" : database;

  // 1. Stale Defenders and their observations, then the live ones (last seen at kT0, with the
  //    fields their heartbeats carry, so a heartbeat only refreshes them), written in chunks
  //    through the Store.
  const auto setupStart = std::chrono::steady_clock::now();
  {
    auto store = database.empty() ? inventory::openSqliteStore({db})
                                  : inventory::openPgStore({.url = database});
    if (!store.ok()) {
      std::cerr << store.error().message << '\n';
      return 1;
    }
    if (auto stored = (*store)->countDefenders(); !stored.ok() || *stored != 0) {
      std::cerr << "the database must hold no Defenders yet\n";
      return 1;
    }
    for (int base = 0; base < stale; base += 10000) {
      inventory::WriteBatch b;
      for (int i = base; i < std::min(stale, base + 10000); ++i) {
        inventory::Defender d;
        d.hostname = "stale-" + std::to_string(i);
        d.type = inventory::DefenderType::kFargate;
        d.appId = "bench:0b7e6c4e-3f4b-4b7b-9d3c-1a2b3c4d5e6f";
        d.cluster = "bench";
        d.details = {{"cloudMetadata", {{"provider", "aws"}, {"region", "us-east-1"}}}};
        d.registeredAt = d.lastSeen = d.judgedFrom = d.connectedSince = kT0 - 3h;
        b.upserts.push_back(d);
        for (int k = 0; k < observations; ++k)
          b.observations.emplace_back(
              inventory::hostnameKey(d.hostname),
              inventory::Observation{0,
                                     "process",
                                     kT0 - 3h,
                                     kT0 - 3h,
                                     {{"path", "/usr/bin/python3"}, {"pid", 1000 + k}}});
      }
      if (auto st = (*store)->write(b); !st.ok()) {
        std::cerr << st.error().message << '\n';
        return 1;
      }
    }
    for (int base = 0; base < live; base += 10000) {
      inventory::WriteBatch b;
      for (int i = base; i < std::min(live, base + 10000); ++i) {
        auto body = heartbeat::parseJsonObject(heartbeatBody(i), 16);
        auto report = heartbeat::parseHeartbeat(*body, heartbeat::ChannelLimits{});
        if (!report.ok()) {
          std::cerr << report.error().message << '\n';
          return 1;
        }
        inventory::Defender d = std::move(report->defender);
        d.registeredAt = d.connectedSince = kT0 - 1h;
        d.lastSeen = d.judgedFrom = kT0;
        b.upserts.push_back(std::move(d));
      }
      if (auto st = (*store)->write(b); !st.ok()) {
        std::cerr << st.error().message << '\n';
        return 1;
      }
    }
  }
  const double setupSeconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - setupStart).count();

  // 2. The Console on that database, with a manual clock at kT0 (stale ones are due).
  ManualClock clock{kT0};
  ConsoleConfig cfg;
  cfg.database = db;
  cfg.host = "127.0.0.1";
  cfg.consolePort = 0;
  cfg.defenderPort = 0;
  cfg.uiDir = "/nonexistent";
  cfg.dataDir = dir;              // the token signing key goes next to the database
  cfg.plainHttp = true;           // figures comparable with earlier runs; TLS costs a handshake per
                                  // connection, and the clients here keep theirs alive
  cfg.passwordIterations = 1000;  // start-up time should not include a slow admin hash
  cfg.pauseThreshold = Millis(0);  // the manual clock stands still; no pause detection
  const auto startAt = std::chrono::steady_clock::now();
  ConsoleApp console(cfg, clock, "bench");
  if (auto st = console.start(false); !st.ok()) {
    std::cerr << st.error().message << '\n';
    return 1;
  }
  const double startSeconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - startAt).count();
  // Every heartbeat presents a Defender credential scoped to the bench's App ID, as the embed
  // flow's install bundle carries it: the per-request check is part of what is measured.
  auto issued =
      console.auth().issueCredential("bench:0b7e6c4e-3f4b-4b7b-9d3c-1a2b3c4d5e6f", "bench");
  if (!issued.ok()) {
    std::cerr << issued.error().message << '\n';
    return 1;
  }
  const std::string credential = issued->secret;

  // 3. Baseline heartbeat latency, then the same load during the sweep.
  std::atomic<bool> stop{false};
  Latencies baseline;
  {
    std::thread t([&] {
      baseline = hammer(console.defenderPort(), credential, live, threads, interval, stop);
    });
    std::this_thread::sleep_for(std::chrono::seconds(baselineSeconds));
    stop = true;
    t.join();
  }
  stop = false;
  Latencies during;
  std::thread load(
      [&] { during = hammer(console.defenderPort(), credential, live, threads, interval, stop); });
  std::this_thread::sleep_for(200ms);
  // On a thread with the sweep's own priority, as the Console's scheduler runs it.
  Result<cleanup::SweepReport> report = Error::internal("sweep did not run");
  std::thread sweeping([&] {
    (void)setThisThreadNice(console.sweeper().options().threadNice);
    report = console.sweeper().sweep(clock.now());
  });
  sweeping.join();
  stop = true;
  load.join();
  if (!report.ok()) {
    std::cerr << "sweep failed: " << report.error().message << '\n';
    return 1;
  }
  const auto left = console.inventory().list({});
  console.stop();
  if (tempDir) std::filesystem::remove_all(dir);

  std::cout << "setup: " << stale << " stale Defenders with " << observations
            << " observations each written in " << setupSeconds << " s; Console start "
            << startSeconds << " s\n"
            << "sweep: evicted " << report->evicted << " Defenders and "
            << report->observationsRemoved << " observations in " << report->took.count() << " ms ("
            << report->batches << " batches); " << (left.ok() ? left->total : -1)
            << " Defenders left (expected " << live << ")\n"
            << "heartbeat latency ms (" << threads << " keep-alive clients): baseline p50 "
            << baseline.pct(0.5) << " p99 " << baseline.pct(0.99) << " (n=" << baseline.ms.size()
            << "); during sweep p50 " << during.pct(0.5) << " p99 " << during.pct(0.99) << " max "
            << during.pct(1.0) << " (n=" << during.ms.size() << ")\n";
  return report->evicted == static_cast<size_t>(stale) ? 0 : 1;
}
