// Benchmark tool for the figures in docs/benchmarks.md. Subcommands:
//
//   dc-bench seed   --db FILE | --database postgresql://… --defenders N [--observations K]
//                   [--fargate-fraction F] [--connected-fraction C] [--disconnected-age S]
//       Writes N Defenders of the synthetic fleet (bench/bench_fleet.h) so that the Console
//       starts on a full inventory without N durable HTTP registrations. SQLite: straight through
//       the Store, in transactions of 100,000. PostgreSQL: the store is opened once (its
//       migrations create the schema), then the rows go in with one COPY (the columns the store
//       computes — category, version_key, image, resource_id, fingerprint — computed by the same
//       functions), observations with one INSERT … SELECT, then VACUUM ANALYZE. The PostgreSQL
//       database must hold no Defenders yet.
//   dc-bench paced  --port P --defenders N --interval S --duration S --connections C
//       Heartbeats every Defender once per interval, evenly spread, from C keep-alive
//       connections; prints throughput, failures and a latency histogram. Latency is measured
//       from each heartbeat's scheduled time, so a Console that falls behind is charged for it.
//   dc-bench query  --port P --path PATH... [--requests N]
//       Runs each GET path N times on one keep-alive connection; latency percentiles per path.
//   dc-bench download --port P --path PATH
//       Streams one GET and reports bytes, rows (lines) and the time taken.
#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <thread>

#include <libpq-fe.h>
#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include <cstdlib>

#include "bench/bench_fleet.h"
#include "common/defender_version.h"
#include "heartbeat/channel.h"
#include "inventory/pg_store.h"
#include "inventory/sqlite_store.h"
#include "inventory/store_sql.h"

using namespace dc;
using Steady = std::chrono::steady_clock;

namespace {

/// The Authorization header value in DC_BENCH_AUTH, when set, goes with every request (bench/run.sh
/// sets "Basic …" for the Console API and "Bearer <Defender credential>" for the channel).
void withAuth(httplib::Client& c) {
  if (const char* v = std::getenv("DC_BENCH_AUTH"); v && *v)
    c.set_default_headers({{"Authorization", v}});
}

double msSince(Steady::time_point t0, Steady::time_point t1) {
  return std::chrono::duration<double, std::milli>(t1 - t0).count();
}

struct Percentiles {
  std::vector<float> ms;
  void print(const std::string& label) {
    if (ms.empty()) {
      std::cout << label << ": no samples\n";
      return;
    }
    std::sort(ms.begin(), ms.end());
    auto at = [&](double p) {
      return ms[std::min(ms.size() - 1, static_cast<size_t>(p * static_cast<double>(ms.size())))];
    };
    std::printf("%s: n=%zu p50 %.2f ms, p90 %.2f, p99 %.2f, p99.9 %.2f, max %.2f\n", label.c_str(),
                ms.size(), at(0.5), at(0.9), at(0.99), at(0.999), ms.back());
  }
};

struct SeedShape {
  long long n = 1000;
  int observations = 0;
  double fargateFraction = 1, connectedFraction = 1;
  long long disconnectedAgeSeconds = 7200;
};

/// Defender `i` of the seeded fleet as of `now`: the synthetic heartbeat parsed as the channel
/// parses it, then typed and aged by `shape` (a deterministic spread: fraction f of every 1,000
/// consecutive Defenders).
Result<inventory::Defender> seededDefender(long long i, const SeedShape& shape, TimePoint now) {
  static const heartbeat::ChannelLimits limits;
  auto body = heartbeat::parseJsonObject(bench::heartbeatBody(i), 16);
  if (!body.ok()) return body.error();
  auto report = heartbeat::parseHeartbeat(*body, limits);
  if (!report.ok()) return report.error();
  inventory::Defender d = std::move(report->defender);
  const auto slot = static_cast<double>(i % 1000) / 1000.0;
  if (slot >= shape.fargateFraction) {
    d.type = inventory::DefenderType::kDaemonset;
    d.appId.clear();
  }
  const bool connected = std::fmod(slot * 7.0, 1.0) < shape.connectedFraction;
  d.registeredAt = d.connectedSince = now - std::chrono::hours(2);
  d.lastSeen = d.judgedFrom = connected
                                  ? now - Millis(i % 30000)
                                  : now - Seconds(shape.disconnectedAgeSeconds) - Millis(i % 1000);
  return d;
}

/// Appends `v` to a COPY text-format line, escaping what the format needs escaped.
void copyField(std::string& line, std::string_view v) {
  for (char ch : v) {
    switch (ch) {
      case '\\':
        line += "\\\\";
        break;
      case '\t':
        line += "\\t";
        break;
      case '\n':
        line += "\\n";
        break;
      case '\r':
        line += "\\r";
        break;
      default:
        line += ch;
    }
  }
}

/// Runs one statement on `c`; prints the error and returns false when it fails.
bool pgRun(PGconn* c, const std::string& sql) {
  PGresult* r = PQexec(c, sql.c_str());
  const bool ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
  if (!ok) std::cerr << sql.substr(0, 60) << "…: " << PQerrorMessage(c);
  PQclear(r);
  return ok;
}

/// `dc-bench seed --database postgresql://…`: the store's migrations, then COPY (see the header).
int seedPostgres(const std::string& url, const SeedShape& shape) {
  const SystemClock clock;
  const TimePoint now = clock.now();
  const auto t0 = Steady::now();
  {
    auto store = inventory::openPgStore({.url = url, .poolSize = 1});
    if (!store.ok()) {
      std::cerr << store.error().message << '\n';
      return 1;
    }
    auto stored = (*store)->countDefenders();
    if (!stored.ok() || *stored != 0) {
      std::cerr << "the database must hold no Defenders yet\n";
      return 1;
    }
    inventory::WriteBatch alive;
    alive.consoleAlive = now;  // as the SQLite seed: the Console was alive at `now`
    if (auto st = (*store)->write(alive); !st.ok()) {
      std::cerr << st.error().message << '\n';
      return 1;
    }
  }
  PGconn* c = PQconnectdb(url.c_str());
  if (PQstatus(c) != CONNECTION_OK) {
    std::cerr << PQerrorMessage(c);
    PQfinish(c);
    return 1;
  }
  int rc = 1;
  [&] {
    if (!pgRun(c, "BEGIN")) return;
    PGresult* r = PQexec(c,
                         "COPY defenders (key, hostname, type, category, version, version_key, "
                         "cluster, app_id, container, image, resource_id, details, fingerprint, "
                         "registered_at, last_seen, judged_from, connected_since, graceful_at, "
                         "clock_skew_ms) FROM STDIN");
    const bool copying = PQresultStatus(r) == PGRES_COPY_IN;
    PQclear(r);
    if (!copying) {
      std::cerr << PQerrorMessage(c);
      return;
    }
    std::string buf, line;
    for (long long i = 0; i < shape.n; ++i) {
      auto d = seededDefender(i, shape, now);
      if (!d.ok()) {
        std::cerr << "bad synthetic heartbeat: " << d.error().message << '\n';
        PQputCopyEnd(c, "bad row");
        return;
      }
      line.clear();
      auto field = [&](std::string_view v) {
        copyField(line, v);
        line += '\t';
      };
      auto number = [&](std::optional<long long> v) {
        line += v ? std::to_string(*v) : std::string("\\N");
        line += '\t';
      };
      auto ms = [](TimePoint t) { return static_cast<long long>(t.time_since_epoch().count()); };
      field(inventory::hostnameKey(d->hostname));
      field(d->hostname);
      field(inventory::typeInfo(d->type).apiName);
      field(inventory::categoryName(inventory::categoryOf(d->type)));
      field(d->version);
      number(inventory::storesql::storedVersionKey(d->version));
      field(d->cluster);
      field(d->appId);
      field(d->container);
      field(inventory::storesql::imageOf(*d));
      field(inventory::resourceIdOf(*d));
      field(d->details.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
      number(static_cast<long long>(inventory::descriptiveFingerprint(*d)));
      number(ms(d->registeredAt));
      number(ms(d->lastSeen));
      number(ms(d->judgedFrom));
      number(ms(d->connectedSince));
      number(d->gracefulDisconnectAt ? std::optional<long long>(ms(*d->gracefulDisconnectAt))
                                     : std::nullopt);
      number(d->clockSkewMs);
      line.back() = '\n';
      buf += line;
      if (buf.size() >= (1 << 20) || i + 1 == shape.n) {
        if (PQputCopyData(c, buf.data(), static_cast<int>(buf.size())) != 1) {
          std::cerr << PQerrorMessage(c);
          return;
        }
        buf.clear();
      }
      if ((i + 1) % 100000 == 0) std::fprintf(stderr, "copied %lld / %lld\n", i + 1, shape.n);
    }
    if (PQputCopyEnd(c, nullptr) != 1) {
      std::cerr << PQerrorMessage(c);
      return;
    }
    r = PQgetResult(c);
    const bool copied = PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    while ((r = PQgetResult(c)) != nullptr) PQclear(r);
    if (!copied) {
      std::cerr << PQerrorMessage(c);
      return;
    }
    // The same observation for every Defender, as the SQLite seed writes them.
    if (shape.observations > 0 &&
        !pgRun(c,
               "INSERT INTO observations (defender_id, kind, time, received_at, fields) "
               "SELECT d.id, 'process', d.last_seen, d.last_seen, "
               "'{\"path\":\"/usr/bin/python3\",\"pid\":' || (1000 + k) || '}' "
               "FROM defenders d, generate_series(0, " +
                   std::to_string(shape.observations - 1) + ") AS k ORDER BY d.id, k"))
      return;
    if (!pgRun(c, "COMMIT")) return;
    // Statistics and the visibility map, as autovacuum would leave them some time after a load.
    if (!pgRun(c, "VACUUM ANALYZE defenders") || !pgRun(c, "VACUUM ANALYZE observations")) return;
    rc = 0;
  }();
  PQfinish(c);
  if (rc == 0)
    std::printf("seeded %lld Defenders (%d observations each) into %s in %.1f s\n", shape.n,
                shape.observations, "PostgreSQL", msSince(t0, Steady::now()) / 1000.0);
  return rc;
}

int seed(const std::string& db, const SeedShape& shape) {
  const long long n = shape.n;
  const int observations = shape.observations;
  auto store = inventory::openSqliteStore({db});
  if (!store.ok()) {
    std::cerr << store.error().message << '\n';
    return 1;
  }
  const SystemClock clock;
  const TimePoint now = clock.now();
  const auto t0 = Steady::now();
  constexpr long long kChunk = 100000;
  for (long long base = 0; base < n; base += kChunk) {
    inventory::WriteBatch b;
    for (long long i = base; i < std::min(n, base + kChunk); ++i) {
      auto seeded = seededDefender(i, shape, now);
      if (!seeded.ok()) {
        std::cerr << "bad synthetic heartbeat: " << seeded.error().message << '\n';
        return 1;
      }
      inventory::Defender d = std::move(seeded).value();
      const std::string key = inventory::hostnameKey(d.hostname);
      for (int k = 0; k < observations; ++k)
        b.observations.emplace_back(
            key, inventory::Observation{0,
                                        "process",
                                        d.lastSeen,
                                        d.lastSeen,
                                        {{"path", "/usr/bin/python3"}, {"pid", 1000 + k}}});
      b.upserts.push_back(std::move(d));
    }
    b.consoleAlive = now;
    if (auto st = (*store)->write(b); !st.ok()) {
      std::cerr << st.error().message << '\n';
      return 1;
    }
    std::fprintf(stderr, "seeded %lld / %lld\n", std::min(n, base + kChunk), n);
  }
  std::printf("seeded %lld Defenders (%d observations each) into %s in %.1f s\n", n, observations,
              db.c_str(), msSince(t0, Steady::now()) / 1000.0);
  return 0;
}

int paced(int port, long long n, double intervalS, double durationS, int connections,
          long long first) {
  std::atomic<long long> sent{0}, failed{0}, registered{0};
  std::vector<Percentiles> sched(static_cast<size_t>(connections)),
      service(static_cast<size_t>(connections));
  const auto start = Steady::now() + std::chrono::milliseconds(200);
  const auto end = start + std::chrono::duration_cast<Steady::duration>(
                               std::chrono::duration<double>(durationS));
  const auto interval = std::chrono::duration<double>(intervalS);
  std::vector<std::thread> ts;
  for (int t = 0; t < connections; ++t)
    ts.emplace_back([&, t] {
      httplib::Client c("127.0.0.1", port);
      withAuth(c);
      c.set_keep_alive(true);
      c.set_tcp_nodelay(true);
      c.set_read_timeout(30, 0);
      auto& sp = sched[static_cast<size_t>(t)];
      auto& sv = service[static_cast<size_t>(t)];
      sp.ms.reserve(
          static_cast<size_t>(durationS / intervalS * static_cast<double>(n) / connections * 1.05) +
          16);
      sv.ms.reserve(sp.ms.capacity());
      for (long long round = 0;; ++round)
        for (long long i = t; i < n; i += connections) {
          const auto due =
              start + std::chrono::duration_cast<Steady::duration>(
                          interval * (static_cast<double>(round) +
                                      static_cast<double>(i) / static_cast<double>(n)));
          if (due >= end || Steady::now() >= end) return;  // overdue ones are dropped at the end
          std::this_thread::sleep_until(due);
          const auto body = bench::heartbeatBody(first + i);
          const auto s0 = Steady::now();
          auto r = c.Post("/api/v1/defender/heartbeat", body, "application/json");
          const auto s1 = Steady::now();
          ++sent;
          if (!r || r->status != 200) {
            ++failed;
            continue;
          }
          if (r->body.find("\"registered\":true") != std::string::npos) ++registered;
          sp.ms.push_back(static_cast<float>(msSince(due, s1)));
          sv.ms.push_back(static_cast<float>(msSince(s0, s1)));
        }
    });
  // Progress every 10 s.
  long long last = 0;
  for (auto next = start + std::chrono::seconds(10); next < end; next += std::chrono::seconds(10)) {
    std::this_thread::sleep_until(next);
    const long long now = sent.load();
    std::fprintf(stderr, "  %.0f s: %lld heartbeats/s, %lld failed so far\n",
                 msSince(start, Steady::now()) / 1000.0, (now - last) / 10, failed.load());
    last = now;
  }
  for (auto& th : ts) th.join();
  Percentiles all, allService;
  for (auto& p : sched) all.ms.insert(all.ms.end(), p.ms.begin(), p.ms.end());
  for (auto& p : service) allService.ms.insert(allService.ms.end(), p.ms.begin(), p.ms.end());
  std::printf(
      "paced: %lld Defenders every %.0f s for %.0f s over %d connections: %lld heartbeats "
      "(%.0f/s), %lld failed, %lld answered registered=true\n",
      n, intervalS, durationS, connections, sent.load(),
      static_cast<double>(sent.load()) / durationS, failed.load(), registered.load());
  all.print("latency from schedule");
  allService.print("latency from send");
  return failed.load() == 0 ? 0 : 2;
}

int query(int port, const std::vector<std::string>& paths, int requests) {
  httplib::Client c("127.0.0.1", port);
  withAuth(c);
  c.set_keep_alive(true);
  c.set_read_timeout(60, 0);
  int rc = 0;
  for (const auto& path : paths) {
    Percentiles p;
    std::string total;
    for (int k = 0; k < requests + 2; ++k) {
      const auto s0 = Steady::now();
      auto r = c.Get(path);
      const auto s1 = Steady::now();
      if (!r || r->status != 200) {
        std::cerr << path << ": " << (r ? std::to_string(r->status) + " " + r->body : "no reply")
                  << '\n';
        rc = 1;
        break;
      }
      total = r->get_header_value("Total-Count");
      if (k >= 2) p.ms.push_back(static_cast<float>(msSince(s0, s1)));  // 2 warm-up requests
    }
    p.print(path + (total.empty() ? "" : " [Total-Count " + total + "]"));
  }
  return rc;
}

int download(int port, const std::string& path) {
  httplib::Client c("127.0.0.1", port);
  withAuth(c);
  c.set_read_timeout(600, 0);
  size_t bytes = 0, lines = 0;
  const auto s0 = Steady::now();
  auto r = c.Get(path, [&](const char* data, size_t len) {
    bytes += len;
    lines += static_cast<size_t>(std::count(data, data + len, '\n'));
    return true;
  });
  if (!r || r->status != 200) {
    std::cerr << path << ": " << (r ? std::to_string(r->status) : "no reply") << '\n';
    return 1;
  }
  std::printf("download %s: %zu bytes, %zu lines (header included) in %.1f ms\n", path.c_str(),
              bytes, lines, msSince(s0, Steady::now()));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  spdlog::set_level(spdlog::level::warn);
  CLI::App app{"Defender Console benchmark tool (docs/benchmarks.md)"};
  app.require_subcommand(1);

  std::string db, database;
  SeedShape shape;
  long long n = 1000;
  auto* s = app.add_subcommand("seed", "Write N Defenders straight through the Store");
  auto* dbOpt = s->add_option("--db", db, "SQLite file (created)");
  s->add_option("--database", database,
                "PostgreSQL URL (postgresql://…) of a database without Defenders, instead of --db")
      ->excludes(dbOpt);
  s->add_option("--defenders", shape.n, "Defenders to write")->capture_default_str();
  s->add_option("--observations", shape.observations, "Observations per Defender")
      ->capture_default_str();
  s->add_option("--fargate-fraction", shape.fargateFraction,
                "Share of type fargate (rest daemonset)")
      ->capture_default_str();
  s->add_option("--connected-fraction", shape.connectedFraction,
                "Share last seen within the last 30 s (rest: --disconnected-age ago)")
      ->capture_default_str();
  s->add_option("--disconnected-age", shape.disconnectedAgeSeconds,
                "Seconds since the others were last seen")
      ->capture_default_str();

  int port = 0, connections = 32, requests = 200;
  double interval = 30, duration = 60;
  long long first = 0;
  auto* p = app.add_subcommand("paced", "Paced heartbeats with a latency histogram");
  p->add_option("--port", port, "Defender channel port")->required();
  p->add_option("--defenders", n, "Defenders")->capture_default_str();
  p->add_option("--first", first, "Index of the first Defender")->capture_default_str();
  p->add_option("--interval", interval, "Seconds between two heartbeats of one Defender")
      ->capture_default_str();
  p->add_option("--duration", duration, "Seconds to run")->capture_default_str();
  p->add_option("--connections", connections, "Keep-alive connections (one thread each)")
      ->capture_default_str();

  std::vector<std::string> paths;
  auto* q = app.add_subcommand("query", "GET latency percentiles");
  q->add_option("--port", port, "Console API port")->required();
  q->add_option("--path", paths, "Paths with query string (repeatable)")->required();
  q->add_option("--requests", requests, "Requests per path")->capture_default_str();

  std::string path;
  auto* d = app.add_subcommand("download", "Stream one GET, count bytes and lines");
  d->add_option("--port", port, "Console API port")->required();
  d->add_option("--path", path, "Path with query string")->required();

  CLI11_PARSE(app, argc, argv);
  if (*s) {
    if (!database.empty()) return seedPostgres(database, shape);
    if (db.empty()) {
      std::cerr << "seed: --db FILE or --database URL is required\n";
      return 2;
    }
    return seed(db, shape);
  }
  if (*p) return paced(port, n, interval, duration, connections, first);
  if (*q) return query(port, paths, requests);
  return download(port, path);
}
