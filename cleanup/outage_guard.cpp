#include "cleanup/outage_guard.h"

#include <algorithm>

#include <spdlog/spdlog.h>

#include "common/time_format.h"

namespace dc::cleanup {

OutageGuard::OutageGuard(OutageOptions options, Millis grace) : options_(options), grace_(grace) {}

bool OutageGuard::trips(const FleetSilence& s) const {
  return s.fleet > 0 && s.fleet >= options_.minFleet &&
         static_cast<double>(s.silent) >= options_.threshold * static_cast<double>(s.fleet);
}

bool OutageGuard::update(TimePoint now,
                         const std::function<FleetSilence(TimePoint since)>& silence) {
  std::lock_guard lock(mutex_);
  if (active_) {
    active_->latest = silence(active_->since);
    if (trips(active_->latest)) return true;
    active_->endedAt = now;
    active_->endedBy = "fleet returned";
    spdlog::warn(
        "outage guard: the fleet returned ({} of {} Defenders still silent); evictions resume",
        active_->latest.silent, active_->latest.fleet);
    last_ = std::move(active_);
    active_.reset();
    return false;
  }
  TimePoint since = now - grace_;
  if (resumedAt_) since = std::max(since, *resumedAt_);
  const FleetSilence s = silence(since);
  if (!trips(s)) return false;
  OutageIncident incident;
  incident.startedAt = now;
  incident.since = since;
  incident.atStart = incident.latest = s;
  active_ = incident;
  ++incidents_;
  spdlog::error(
      "outage guard: {} of {} Defenders ({:.0f}%) went silent since {} without disconnecting; "
      "evictions pause until the fleet returns or an operator resumes them "
      "(POST /api/v1/defenders/eviction-status/resume)",
      s.silent, s.fleet, 100.0 * static_cast<double>(s.silent) / static_cast<double>(s.fleet),
      formatRfc3339(since));
  return true;
}

bool OutageGuard::resume(TimePoint now, const std::string& actor) {
  std::lock_guard lock(mutex_);
  if (!active_) return false;
  resumedAt_ = now;
  active_->endedAt = now;
  active_->endedBy = "resumed by " + actor;
  spdlog::warn("outage guard: evictions resumed by {} ({} of {} Defenders silent)", actor,
               active_->latest.silent, active_->latest.fleet);
  last_ = std::move(active_);
  active_.reset();
  return true;
}

OutageStatus OutageGuard::status() const {
  std::lock_guard lock(mutex_);
  OutageStatus s;
  s.paused = active_.has_value();
  s.incident = active_ ? active_ : last_;
  s.incidents = incidents_;
  s.options = options_;
  return s;
}

}  // namespace dc::cleanup
