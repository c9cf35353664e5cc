#include "inventory/liveness.h"

namespace dc::inventory {

Millis retentionFor(Category category, int disconnectPeriodDays) {
  if (category == Category::kAppEmbedded) return kAppEmbeddedRetention;
  return std::chrono::hours(24) * disconnectPeriodDays;
}

Liveness judge(const Defender& d, TimePoint now, const LivenessPolicy& policy,
               int disconnectPeriodDays) {
  Liveness out;
  out.connected = connected(d.judgedFrom, d.gracefulDisconnectAt, now, policy.grace);
  if (d.gracefulDisconnectAt)
    out.disconnectedAt = *d.gracefulDisconnectAt;
  else if (!out.connected)
    out.disconnectedAt = d.judgedFrom + policy.grace;
  if (out.connected) {
    out.lastModified = d.connectedSince;
  } else {
    out.lastModified = *out.disconnectedAt;
    out.removalAt = *out.disconnectedAt + retentionFor(categoryOf(d.type), disconnectPeriodDays);
  }
  return out;
}

}  // namespace dc::inventory
