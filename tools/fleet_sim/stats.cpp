#include "tools/fleet_sim/stats.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace dc::sim {
namespace {

// Bucket bounds grow by 2^(1/4) (~19%) from 20 µs: bucket i covers [20·2^((i-1)/4), 20·2^(i/4)).
// 80 buckets reach ~21 s; slower replies land in the last bucket.
double bucketUpperMicros(size_t i) {
  return 20.0 * std::pow(2.0, static_cast<double>(i) / 4.0);
}

constexpr auto kRelaxed = std::memory_order_relaxed;

std::string errorList(const StatsSnapshot& s) {
  std::string out;
  for (size_t code = 0; code < s.byStatus.size(); ++code) {
    if (s.byStatus[code] == 0) continue;
    if (!out.empty()) out += ' ';
    out += (code == 0 ? std::string("net") : std::to_string(code)) + ":" +
           std::to_string(s.byStatus[code]);
  }
  if (s.badReplies > 0)
    out += (out.empty() ? "" : " ") + std::string("bad-reply:") + std::to_string(s.badReplies);
  return out;
}

std::string fixed(double v, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

}  // namespace

size_t latencyBucket(int64_t micros) {
  if (micros < 20) return 0;
  double i = std::ceil(4.0 * std::log2(static_cast<double>(micros) / 20.0));
  // A latency exactly on a bound belongs to the next bucket ("below the upper bound").
  size_t b = static_cast<size_t>(i);
  if (static_cast<double>(micros) >= bucketUpperMicros(b)) ++b;
  return std::min(b, kLatencyBuckets - 1);
}

uint64_t StatsSnapshot::errors() const {
  uint64_t n = badReplies;
  for (uint64_t c : byStatus) n += c;
  return n;
}

double StatsSnapshot::latencyMillis(double q) const {
  uint64_t total = 0;
  for (uint64_t c : latency) total += c;
  if (total == 0) return 0;
  auto rank =
      static_cast<uint64_t>(std::ceil(std::clamp(q, 0.0, 1.0) * static_cast<double>(total)));
  rank = std::max<uint64_t>(rank, 1);
  uint64_t seen = 0;
  for (size_t i = 0; i < latency.size(); ++i) {
    seen += latency[i];
    if (seen >= rank) return bucketUpperMicros(i) / 1000.0;
  }
  return bucketUpperMicros(latency.size() - 1) / 1000.0;
}

StatsSnapshot StatsSnapshot::since(const StatsSnapshot& e) const {
  StatsSnapshot d = *this;
  d.heartbeats -= e.heartbeats;
  d.heartbeatsOk -= e.heartbeatsOk;
  d.registered -= e.registered;
  d.disconnects -= e.disconnects;
  d.abruptStops -= e.abruptStops;
  d.observations -= e.observations;
  d.badReplies -= e.badReplies;
  for (size_t i = 0; i < byStatus.size(); ++i) d.byStatus[i] -= e.byStatus[i];
  for (size_t i = 0; i < latency.size(); ++i) d.latency[i] -= e.latency[i];
  return d;
}

void Stats::recordHeartbeat(int status, int64_t micros) {
  heartbeats_.fetch_add(1, kRelaxed);
  if (status != 200) recordError(status);
  latency_[latencyBucket(micros)].fetch_add(1, kRelaxed);
}

void Stats::recordError(int status) {
  size_t i = (status > 0 && status < 600) ? static_cast<size_t>(status) : 0;
  byStatus_[i].fetch_add(1, kRelaxed);
}

StatsSnapshot Stats::snapshot() const {
  StatsSnapshot s;
  s.heartbeats = heartbeats_.load(kRelaxed);
  s.heartbeatsOk = heartbeatsOk_.load(kRelaxed);
  s.registered = registered_.load(kRelaxed);
  s.disconnects = disconnects_.load(kRelaxed);
  s.abruptStops = abruptStops_.load(kRelaxed);
  s.observations = observations_.load(kRelaxed);
  s.badReplies = badReplies_.load(kRelaxed);
  s.alive = alive_.load(kRelaxed);
  for (size_t i = 0; i < s.byStatus.size(); ++i) s.byStatus[i] = byStatus_[i].load(kRelaxed);
  for (size_t i = 0; i < s.latency.size(); ++i) s.latency[i] = latency_[i].load(kRelaxed);
  return s;
}

std::string formatProgress(const StatsSnapshot& now, const StatsSnapshot& prev, Millis elapsed,
                           Millis window) {
  StatsSnapshot w = now.since(prev);
  double seconds = std::max(1e-3, static_cast<double>(window.count()) / 1000.0);
  std::string errs = errorList(now);
  return "t=" + std::to_string(elapsed.count() / 1000) + "s alive=" + std::to_string(now.alive) +
         " hb=" + std::to_string(now.heartbeats) +
         " hb/s=" + fixed(static_cast<double>(w.heartbeats) / seconds, 1) +
         " ok=" + std::to_string(now.heartbeatsOk) +
         " registered=" + std::to_string(now.registered) +
         " disconnects=" + std::to_string(now.disconnects) +
         " stops=" + std::to_string(now.abruptStops) + " obs=" + std::to_string(now.observations) +
         " errors=" + std::to_string(now.errors()) + (errs.empty() ? "" : " [" + errs + "]") +
         " p50=" + fixed(w.latencyMillis(0.5), 2) + "ms p99=" + fixed(w.latencyMillis(0.99), 2) +
         "ms";
}

std::string formatSummary(const StatsSnapshot& total, Millis elapsed) {
  double seconds = std::max(1e-3, static_cast<double>(elapsed.count()) / 1000.0);
  std::string errs = errorList(total);
  return "summary: duration=" + fixed(seconds, 1) + "s alive=" + std::to_string(total.alive) +
         " hb=" + std::to_string(total.heartbeats) +
         " avg-hb/s=" + fixed(static_cast<double>(total.heartbeats) / seconds, 1) +
         " ok=" + std::to_string(total.heartbeatsOk) +
         " registered=" + std::to_string(total.registered) +
         " disconnects=" + std::to_string(total.disconnects) +
         " stops=" + std::to_string(total.abruptStops) +
         " obs=" + std::to_string(total.observations) +
         " errors=" + std::to_string(total.errors()) + (errs.empty() ? "" : " [" + errs + "]") +
         " p50=" + fixed(total.latencyMillis(0.5), 2) +
         "ms p99=" + fixed(total.latencyMillis(0.99), 2) + "ms";
}

}  // namespace dc::sim
