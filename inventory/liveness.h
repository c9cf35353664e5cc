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

/// The connected rule, its one definition (DESIGN §4): a Defender is connected at `now` ⇔ it has
/// no graceful disconnect since its newest heartbeat ∧ now − judgedFrom ≤ G, written as
/// judgedFrom ≥ connectedCutoff(now, G). judge(), the inventory's heartbeat and disconnect
/// paths and LiveIndex::connectedNow call it; LiveIndex's ordered counts (judgedFrom ≥ cutoff
/// by rank) and the stores' SQL filter kConnectedSql are its other forms, cross-checked against
/// it over random rows by tests/unit/liveness_rule_test.cpp.
constexpr TimePoint connectedCutoff(TimePoint now, Millis grace) {
  return now - grace;
}

/// The rule at a cutoff (= connectedCutoff(now, G)): not gracefully disconnected and
/// judgedFrom ≥ cutoff.
constexpr bool connectedAt(TimePoint judgedFrom, bool gracefullyDisconnected, TimePoint cutoff) {
  return !gracefullyDisconnected && judgedFrom >= cutoff;
}

/// The rule at `now` for a Defender judged from `judgedFrom` with graceful-disconnect time
/// `gracefulAt` (nullopt: none since the newest heartbeat).
constexpr bool connected(TimePoint judgedFrom, const std::optional<TimePoint>& gracefulAt,
                         TimePoint now, Millis grace) {
  return connectedAt(judgedFrom, gracefulAt.has_value(), connectedCutoff(now, grace));
}

/// The rule as a SQL predicate over the stored columns `graceful_at` (NULL: none) and
/// `judged_from` (epoch ms), with parameter ?1 bound to connectedCutoff(now, G) in epoch ms.
inline constexpr const char* kConnectedSql = "(graceful_at IS NULL AND judged_from >= ?1)";

/// How long a disconnected Defender of `category` is kept: one hour for appEmbedded (fixed,
/// seed), `disconnectPeriodDays` days for every other category.
Millis retentionFor(Category category, int disconnectPeriodDays);

/// connected ⇔ no graceful disconnect since the newest heartbeat ∧ now − judgedFrom ≤ G.
Liveness judge(const Defender& d, TimePoint now, const LivenessPolicy& policy,
               int disconnectPeriodDays);

}  // namespace dc::inventory
