// The Console's judgement of Defender liveness and eviction time (DESIGN §4, §5). Pure functions.
#pragma once

#include <optional>

#include "common/clock.h"
#include "inventory/defender.h"

namespace dc::inventory {

/// Seed: "Disconnected App-Embedded Defenders are always removed after one hour."
constexpr Millis kAppEmbeddedRetention = std::chrono::hours(1);

/// Liveness parameters, fixed at start-up.
struct LivenessPolicy {
  Millis heartbeatInterval = Seconds(30);  // H, told to Defenders
  Millis grace = Seconds(90);              // G: silence after which a Defender is disconnected
};

/// The derived, time-dependent view of one Defender at `now`.
struct Liveness {
  bool connected = false;
  /// When the connection state last changed (vendor `lastModified`).
  TimePoint lastModified{};
  /// Graceful-disconnect time, else judgedFrom + G. Set only when disconnected.
  std::optional<TimePoint> disconnectedAt;
  /// When eviction is due (disconnectedAt + retention). Set only when disconnected.
  std::optional<TimePoint> removalAt;
};

/// How long a disconnected Defender of `category` is kept: one hour for appEmbedded (fixed,
/// seed), `disconnectPeriodDays` days for every other category.
Millis retentionFor(Category category, int disconnectPeriodDays);

/// connected ⇔ no graceful disconnect since the newest heartbeat ∧ now − judgedFrom ≤ G.
Liveness judge(const Defender& d, TimePoint now, const LivenessPolicy& policy,
               int disconnectPeriodDays);

}  // namespace dc::inventory
