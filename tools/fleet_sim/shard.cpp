#include "tools/fleet_sim/shard.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cmath>

namespace dc::sim {
namespace {

bool isPowerOfTen(uint64_t n) {
  while (n >= 10 && n % 10 == 0) n /= 10;
  return n == 1;
}

}  // namespace

Shard::Shard(const Fleet& fleet, ShardOptions options, Transport& transport, Stats& stats,
             const Clock& clock, uint64_t seed)
    : fleet_(fleet),
      options_(options),
      transport_(transport),
      stats_(stats),
      clock_(clock),
      rng_(seed),
      churn_(options.churnPerMinute, clock.now()) {
  if (options_.stopAbruptly <= 0 && options_.stopGracefully <= 0) oneTimeStopsDone_ = true;
}

void Shard::addTask(Task task, TimePoint firstDue) {
  uint32_t i;
  if (!freeSlots_.empty()) {
    i = freeSlots_.back();
    freeSlots_.pop_back();
  } else {
    i = static_cast<uint32_t>(slots_.size());
    slots_.emplace_back();
  }
  Slot& s = slots_[i];
  uint32_t generation = s.generation + 1;
  s = Slot{};
  s.task = std::move(task);
  s.generation = generation;
  s.alive = true;
  s.due = firstDue;
  s.lastObservationAt = firstDue;
  queue_.push(firstDue, i, s.generation);
  ++alive_;
  stats_.addAlive(1);
}

TimePoint Shard::step(const std::atomic<bool>* stop) {
  auto generationOf = [this](uint32_t slot) { return slots_[slot].generation; };
  TimePoint now = clock_.now();
  while (auto e = queue_.popDue(now, generationOf)) {
    heartbeat(e->slot);
    now = clock_.now();
    if (stop != nullptr && stop->load(std::memory_order_relaxed)) return now;
  }
  applyChurn(now);
  if (!oneTimeStopsDone_ && now >= options_.stopAt) applyOneTimeStops();
  auto earliest = queue_.earliest();
  return earliest ? *earliest : now + Seconds(1);
}

void Shard::heartbeat(uint32_t i) {
  Slot& s = slots_[i];
  std::string body = heartbeatBody(fleet_, s.task, clock_.now());
  auto t0 = std::chrono::steady_clock::now();
  Response r = transport_.post(kHeartbeatPath, body);
  auto micros =
      std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0)
          .count();
  stats_.recordHeartbeat(r.status, micros);
  TimePoint now = clock_.now();
  NextHeartbeat next = nextHeartbeat(r, now, s.failures, options_.policy, rng_);
  switch (next.outcome) {
    case Outcome::kOk:
      stats_.addHeartbeatOk();
      if (next.registered) stats_.addRegistered();
      s.failures = 0;
      s.registered = true;
      break;
    case Outcome::kRetryAfter:
      break;
    case Outcome::kFailed:
      if (r.status == 200) stats_.addBadReply();
      if (s.failures < 30) ++s.failures;
      noteError("heartbeat", r);
      break;
  }
  s.due = next.due;
  queue_.push(next.due, i, s.generation);
  if (next.outcome == Outcome::kOk && options_.observationsPerMinute > 0) {
    sendObservations(s, now);
  }
}

void Shard::sendObservations(Slot& s, TimePoint now) {
  if (now <= s.lastObservationAt) return;
  Millis span = now - s.lastObservationAt;
  s.observationCarry +=
      options_.observationsPerMinute * static_cast<double>(span.count()) / 60'000.0;
  s.lastObservationAt = now;
  double whole = std::floor(s.observationCarry);
  if (whole < 1) return;
  s.observationCarry -= whole;
  int count = static_cast<int>(std::min<double>(whole, options_.maxObservationsPerBatch));
  Response r =
      transport_.post(kObservationsPath, observationsBody(fleet_, s.task, count, now, span, rng_));
  if (r.status == 200) {
    stats_.addObservations(static_cast<uint64_t>(count));
  } else {
    stats_.recordError(r.status);
    noteError("observations", r);
  }
}

void Shard::stop(uint32_t i, StopKind kind) {
  Slot& s = slots_[i];
  if (!s.alive) return;
  if (kind == StopKind::kGraceful) {
    Response r = transport_.post(kDisconnectPath, disconnectBody(s.task.taskId));
    stats_.addDisconnect();
    if (r.status != 200) {
      stats_.recordError(r.status);
      noteError("disconnect", r);
    }
  } else {
    stats_.addAbruptStop();
  }
  s.alive = false;
  ++s.generation;  // cancels its queued heartbeat
  freeSlots_.push_back(i);
  --alive_;
  stats_.addAlive(-1);
}

std::optional<uint32_t> Shard::randomAliveSlot() {
  if (alive_ == 0) return std::nullopt;
  std::uniform_int_distribution<size_t> pick(0, slots_.size() - 1);
  for (int attempt = 0; attempt < 64; ++attempt) {
    size_t i = pick(rng_);
    if (slots_[i].alive) return static_cast<uint32_t>(i);
  }
  for (size_t i = 0; i < slots_.size(); ++i) {
    if (slots_[i].alive) return static_cast<uint32_t>(i);
  }
  return std::nullopt;
}

void Shard::applyChurn(TimePoint now) {
  int64_t n = churn_.due(now);
  // Stop all victims first, so a task started in this round is not stopped in the same round.
  std::vector<uint32_t> families;
  for (int64_t k = 0; k < n; ++k) {
    auto victim = randomAliveSlot();
    if (!victim) break;
    families.push_back(slots_[*victim].task.family);
    stop(*victim, churn_.nextKind());
  }
  // The service scheduler replaces each stopped task with a new one of the same family.
  for (uint32_t family : families) addTask(newTask(fleet_, family, now, rng_), now);
}

void Shard::applyOneTimeStops() {
  oneTimeStopsDone_ = true;
  // Prefer Defenders the Console knows (registered), so tests can count what it will see.
  std::vector<uint32_t> candidates;
  std::vector<uint32_t> others;
  for (uint32_t i = 0; i < slots_.size(); ++i) {
    if (!slots_[i].alive) continue;
    (slots_[i].registered ? candidates : others).push_back(i);
  }
  std::shuffle(candidates.begin(), candidates.end(), rng_);
  std::shuffle(others.begin(), others.end(), rng_);
  candidates.insert(candidates.end(), others.begin(), others.end());
  size_t next = 0;
  for (int k = 0; k < options_.stopGracefully && next < candidates.size(); ++k) {
    stop(candidates[next++], StopKind::kGraceful);
  }
  for (int k = 0; k < options_.stopAbruptly && next < candidates.size(); ++k) {
    stop(candidates[next++], StopKind::kAbrupt);
  }
}

void Shard::disconnectAll(const std::atomic<bool>* abort) {
  for (uint32_t i = 0; i < slots_.size(); ++i) {
    if (abort != nullptr && abort->load(std::memory_order_relaxed)) return;
    if (slots_[i].alive) stop(i, StopKind::kGraceful);
  }
}

std::vector<std::string> Shard::aliveHostnames() const {
  std::vector<std::string> out;
  for (const Slot& s : slots_) {
    if (s.alive) out.push_back(s.task.taskId);
  }
  return out;
}

std::optional<TimePoint> Shard::nextDueOf(std::string_view hostname) const {
  for (const Slot& s : slots_) {
    if (s.alive && s.task.taskId == hostname) return s.due;
  }
  return std::nullopt;
}

void Shard::noteError(std::string_view what, const Response& r) {
  size_t code = (r.status > 0 && r.status < 600) ? static_cast<size_t>(r.status) : 0;
  uint64_t n = ++errorsSeen_[code];
  if (!isPowerOfTen(n)) return;  // the 1st, 10th, 100th... of each kind, per worker
  if (r.status == 0) {
    spdlog::warn("{} failed: {} (no response; is the Console's defender channel up?) [x{}]", what,
                 r.error, n);
  } else {
    spdlog::warn("{} got HTTP {}: {} [x{}]", what, r.status, r.body.substr(0, 300), n);
  }
}

}  // namespace dc::sim
