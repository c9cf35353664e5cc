#include "tools/fleet_sim/defender_machine.h"

#include <algorithm>
#include <cmath>

namespace dc::sim {

Millis reconnectDelay(int failuresBefore, const ReconnectPolicy& policy, Rng& rng) {
  const int doublings = std::clamp(failuresBefore, 0, 30);
  const double window =
      std::min(static_cast<double>(policy.minDelay.count()) * std::pow(2.0, doublings),
               static_cast<double>(policy.maxDelay.count()));
  return Millis(static_cast<Millis::rep>(std::uniform_real_distribution<double>(0, window)(rng)));
}

void DefenderMachine::onConnected(TimePoint now) {
  connectFailures_ = 0;
  heartbeatDue_ = notBefore(now);
}

void DefenderMachine::onConnectFailed(TimePoint now, const Response& refusal, Rng& rng) {
  if ((refusal.status == 429 || refusal.status == 503) && refusal.retryAfterSeconds) {
    const auto wait = Millis(static_cast<Millis::rep>(*refusal.retryAfterSeconds * 1000));
    connectDue_ = notBefore(now + std::min(wait, schedule_.maxDelay));
  } else {
    connectDue_ = notBefore(now + reconnectDelay(connectFailures_, reconnect_, rng));
  }
  ++connectFailures_;
}

void DefenderMachine::onConnectionLost(TimePoint now, Rng& rng) {
  connectDue_ = notBefore(now + reconnectDelay(connectFailures_, reconnect_, rng));
  ++connectFailures_;
}

void DefenderMachine::onStaleConnection(TimePoint now) {
  connectDue_ = now;
  heartbeatDue_ = notBefore(now);
}

NextHeartbeat DefenderMachine::onHeartbeatAnswer(const Response& answer, TimePoint now, Rng& rng) {
  NextHeartbeat next = nextHeartbeat(answer, now, heartbeatFailures_, schedule_, rng);
  if (next.outcome == Outcome::kOk) {
    heartbeatFailures_ = 0;
    everAnswered_ = true;
    if (removed_ && next.registered) {
      removed_ = false;
      ++reRegistrations_;
    }
  } else if (next.outcome == Outcome::kFailed) {
    ++heartbeatFailures_;
  }
  next.due = notBefore(next.due);
  heartbeatDue_ = next.due;
  return next;
}

void DefenderMachine::onHeartbeatTimeout(TimePoint now, Rng& rng) {
  ++heartbeatFailures_;
  onConnectionLost(now, rng);
}

void DefenderMachine::onBackoff(double seconds, TimePoint now) {
  if (!(seconds > 0)) return;
  const auto wait = std::min(Millis(static_cast<Millis::rep>(seconds * 1000)), schedule_.maxDelay);
  quietUntil_ = std::max(quietUntil_, now + wait);
  heartbeatDue_ = notBefore(heartbeatDue_);
  connectDue_ = notBefore(connectDue_);
}

void DefenderMachine::onSettings(double intervalSeconds, TimePoint now) {
  if (!(intervalSeconds > 0)) return;
  const auto interval =
      std::min(Millis(static_cast<Millis::rep>(intervalSeconds * 1000)), schedule_.maxDelay);
  schedule_.defaultInterval = interval;
  if (!schedule_.intervalOverride)
    heartbeatDue_ = notBefore(std::min(heartbeatDue_, now + interval));
}

}  // namespace dc::sim
