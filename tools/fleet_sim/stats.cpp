#include "tools/fleet_sim/stats.h"

#include <algorithm>
#include <cmath>
#include <iomanip>
#include <sstream>

namespace dc::sim {
namespace {

// Bucket bounds grow by 2^(1/4) (~19%) from 20 µs: bucket i covers [20·2^((i-1)/4), 20·2^(i/4)).
// 80 buckets reach ~21 s; slower replies land in the last bucket.
double bucketUpperMicros(size_t i) {
  return 20.0 * std::pow(2.0, static_cast<double>(i) / 4.0);
}

constexpr auto kRelaxed = std::memory_order_relaxed;

std::string errorList(const StatsSnapshot& s) {
  std::ostringstream out;
  const char* sep = "";
  for (size_t code = 0; code < s.byStatus.size(); ++code) {
    if (s.byStatus[code] == 0) continue;
    out << sep;
    if (code == 0) {
      out << "net";
    } else {
      out << code;
    }
    out << ':' << s.byStatus[code];
    sep = " ";
  }
  if (s.badReplies > 0) out << sep << "bad-reply:" << s.badReplies;
  return out.str();
}

// Writes " errors=N [a:1 b:2]" (the list only when there are errors).
void writeErrors(std::ostream& out, const StatsSnapshot& s) {
  out << " errors=" << s.errors();
  std::string list = errorList(s);
  if (!list.empty()) out << " [" << list << ']';
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
  std::ostringstream out;
  out << std::fixed << "t=" << elapsed.count() / 1000 << "s alive=" << now.alive
      << " hb=" << now.heartbeats << " hb/s=" << std::setprecision(1)
      << static_cast<double>(w.heartbeats) / seconds << " ok=" << now.heartbeatsOk
      << " registered=" << now.registered << " disconnects=" << now.disconnects
      << " stops=" << now.abruptStops << " obs=" << now.observations;
  writeErrors(out, now);
  out << std::setprecision(2) << " p50=" << w.latencyMillis(0.5)
      << "ms p99=" << w.latencyMillis(0.99) << "ms";
  return out.str();
}

std::string formatSummary(const StatsSnapshot& total, Millis elapsed) {
  double seconds = std::max(1e-3, static_cast<double>(elapsed.count()) / 1000.0);
  std::ostringstream out;
  out << std::fixed << std::setprecision(1) << "summary: duration=" << seconds
      << "s alive=" << total.alive << " hb=" << total.heartbeats
      << " avg-hb/s=" << static_cast<double>(total.heartbeats) / seconds
      << " ok=" << total.heartbeatsOk << " registered=" << total.registered
      << " disconnects=" << total.disconnects << " stops=" << total.abruptStops
      << " obs=" << total.observations;
  writeErrors(out, total);
  out << std::setprecision(2) << " p50=" << total.latencyMillis(0.5)
      << "ms p99=" << total.latencyMillis(0.99) << "ms";
  return out.str();
}

}  // namespace dc::sim
