// Outage guard (docs/reliability.md): when a large share of the fleet goes silent within one
// grace period, the cause is almost surely on the Console's side (network, DNS, certificates,
// a region outage), not a mass of Defenders removed on purpose. Evictions then pause, one
// incident is logged and counted, until the fleet returns or an operator resumes evictions.
//
// Pure: decisions depend only on the times and counts passed in. Thread-safe (the sweep thread
// updates, the Console API reads and resumes).
#pragma once

#include <functional>
#include <mutex>
#include <optional>
#include <string>

#include "common/clock.h"

namespace dc::cleanup {

struct OutageOptions {
  /// Share of the fleet that must go silent within one grace period to pause evictions, in
  /// (0, 1]. Default 0.5.
  double threshold = 0.5;
  /// Smallest fleet the guard judges; below it evictions never pause. Default 20.
  size_t minFleet = 20;
};

/// Defenders connected at some `since` (the fleet) and, of them, those that stopped
/// heartbeating without a graceful disconnect and are disconnected now (silent).
struct FleetSilence {
  size_t fleet = 0;
  size_t silent = 0;
};

struct OutageIncident {
  TimePoint startedAt{};  // when the guard tripped (UTC)
  TimePoint since{};      // the fleet is the Defenders connected at this time
  FleetSilence atStart;   // counts when it tripped
  FleetSilence latest;    // counts at the newest evaluation
  std::optional<TimePoint> endedAt;
  std::string endedBy;  // "fleet returned" or "resumed by <actor>"
};

struct OutageStatus {
  bool paused = false;
  std::optional<OutageIncident> incident;  // the active one, else the newest ended one
  uint64_t incidents = 0;                  // since start
  OutageOptions options;
};

class OutageGuard {
 public:
  /// `grace` is the liveness grace G: the window within which silence counts as one event.
  OutageGuard(OutageOptions options, Millis grace);

  /// Evaluates at `now`; `silence(since)` counts the fleet connected at `since` and its silent
  /// part at `now`. Returns true while evictions must pause. Logs when an incident starts or
  /// ends by itself.
  bool update(TimePoint now, const std::function<FleetSilence(TimePoint since)>& silence);

  /// Operator override: ends the active incident; Defenders silent at `now` no longer count
  /// towards a new one. Returns false when no incident was active.
  bool resume(TimePoint now, const std::string& actor);

  OutageStatus status() const;

 private:
  bool trips(const FleetSilence& s) const;

  const OutageOptions options_;
  const Millis grace_;
  mutable std::mutex mutex_;
  std::optional<OutageIncident> active_;
  std::optional<OutageIncident> last_;
  std::optional<TimePoint> resumedAt_;
  uint64_t incidents_ = 0;
};

}  // namespace dc::cleanup
