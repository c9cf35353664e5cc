// Time for the whole Console: one injectable source of "now".
//
// Every component that judges time (liveness, eviction, tokens) takes a `Clock&`, so tests move a
// ManualClock instead of sleeping. All times are UTC; nothing depends on the host time zone.
#pragma once

#include <atomic>
#include <chrono>

namespace dc {

/// Milliseconds since the Unix epoch, UTC.
using TimePoint = std::chrono::sys_time<std::chrono::milliseconds>;
using Millis = std::chrono::milliseconds;
using Seconds = std::chrono::seconds;

/// Source of the current UTC time. Implementations are thread-safe.
class Clock {
 public:
  virtual ~Clock() = default;
  /// The current time, UTC, millisecond resolution.
  virtual TimePoint now() const = 0;
};

/// The host's real-time clock (std::chrono::system_clock, which is UTC).
class SystemClock final : public Clock {
 public:
  TimePoint now() const override {
    return std::chrono::time_point_cast<Millis>(std::chrono::system_clock::now());
  }
};

/// A clock that only moves when told to. Thread-safe: tests may advance it while server threads
/// read it.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(TimePoint start) : ms_(start.time_since_epoch().count()) {}
  TimePoint now() const override { return TimePoint(Millis(ms_.load())); }
  void set(TimePoint t) { ms_.store(t.time_since_epoch().count()); }
  void advance(Millis d) { ms_.fetch_add(d.count()); }

 private:
  std::atomic<long long> ms_;
};

}  // namespace dc
