// One simulated Defender on its own connection: when it connects, when it heartbeats, and how it
// reacts to answers, pushes and dropped connections. Pure: no I/O, no clock of its own — every
// event carries `now` (and the caller's Rng for jitter, shared by the Defenders of one thread so
// that a Defender costs ~100 bytes), so unit tests drive it with plain TimePoints.
//
// Behaviour (docs/fleet-simulator.md, "One connection per Defender"):
// - a new connection heartbeats at once (a WebSocket Defender says hello; after a Console
//   restart every Defender reports again as soon as it is back);
// - a 200 answer schedules the next heartbeat after `nextHeartbeatSeconds` (protocol.h
//   `nextHeartbeat`); 429/503 with Retry-After after exactly that; other failures back off;
// - a connection that fails or drops is retried after a jittered exponential backoff ("full
//   jitter": uniform in [0, min(max, min · 2^failures)]), or after the Retry-After of a refused
//   upgrade;
// - a `backoff` push silences the Defender for that long; a `settings` push changes its
//   interval; a `removed` push makes its next heartbeat a registration (counted when the
//   Console answers `"registered": true`).
#pragma once

#include <cstdint>
#include <optional>

#include "common/clock.h"
#include "tools/fleet_sim/fleet.h"
#include "tools/fleet_sim/protocol.h"
#include "tools/fleet_sim/transport.h"

namespace dc::sim {

struct ReconnectPolicy {
  Millis minDelay{1'000};   // cap of the first retry's jitter window
  Millis maxDelay{60'000};  // cap of the window however many failures
};

/// A reconnect delay: uniform in [0, min(max, min · 2^failuresBefore)] ("full jitter").
Millis reconnectDelay(int failuresBefore, const ReconnectPolicy& policy, Rng& rng);

class DefenderMachine {
 public:
  DefenderMachine(SchedulePolicy schedule, ReconnectPolicy reconnect)
      : schedule_(schedule), reconnect_(reconnect) {}

  /// The first connection attempt is due at `at` (the ramp).
  void start(TimePoint at) { connectDue_ = at; }

  /// When to try to connect next (meaningful while not connected).
  TimePoint connectDue() const { return connectDue_; }
  /// When the next heartbeat is due (meaningful while connected). Never before a `backoff`.
  TimePoint heartbeatDue() const { return heartbeatDue_; }

  /// The connection is up (TLS and upgrade done): heartbeat at once, unless a backoff holds.
  void onConnected(TimePoint now);
  /// Connecting failed. `refusal` is the HTTP answer to a refused upgrade (status 0 when there was
  /// none): 429/503 with Retry-After is honoured exactly; anything else backs off.
  void onConnectFailed(TimePoint now, const Response& refusal, Rng& rng);
  /// An established connection dropped (closed by the Console, reset, answer timeout).
  void onConnectionLost(TimePoint now, Rng& rng);
  /// A reused keep-alive connection turned out closed before the request was answered (an HTTP
  /// client's usual case): reconnect at once and send the same heartbeat; not a failure.
  void onStaleConnection(TimePoint now);
  /// The Console answered and closed the connection (`Connection: close`): connect again when
  /// the next heartbeat is due; not a failure.
  void onClosedAfterAnswer() { connectDue_ = heartbeatDue_; }

  /// The answer to a heartbeat. Returns the decision (outcome, next due time, registered).
  NextHeartbeat onHeartbeatAnswer(const Response& answer, TimePoint now, Rng& rng);
  /// No answer within the timeout: counted as a failure; the caller drops the connection.
  void onHeartbeatTimeout(TimePoint now, Rng& rng);

  /// `{"type":"backoff","seconds":S}`: send nothing before now + S.
  void onBackoff(double seconds, TimePoint now);
  /// `{"type":"settings","intervalSeconds":S}`: heartbeat every S from now on (until an answer
  /// names another `nextHeartbeatSeconds`).
  void onSettings(double intervalSeconds, TimePoint now);
  /// `{"type":"removed",…}`: the Console forgot the Defender; its next heartbeat registers it.
  void onRemoved() { removed_ = true; }

  bool everAnswered() const { return everAnswered_; }
  /// The Console removed the Defender and it has not registered again yet.
  bool awaitingRegistration() const { return removed_; }
  /// Registrations after a `removed` push (answers with "registered": true).
  uint32_t reRegistrations() const { return reRegistrations_; }
  int connectFailures() const { return connectFailures_; }
  int heartbeatFailures() const { return heartbeatFailures_; }

 private:
  TimePoint notBefore(TimePoint t) const { return t < quietUntil_ ? quietUntil_ : t; }

  SchedulePolicy schedule_;
  ReconnectPolicy reconnect_;
  TimePoint connectDue_{};
  TimePoint heartbeatDue_{};
  TimePoint quietUntil_{};
  int connectFailures_ = 0;    // consecutive failed connection attempts and drops
  int heartbeatFailures_ = 0;  // consecutive failed heartbeats (backoff exponent)
  uint32_t reRegistrations_ = 0;
  bool removed_ = false;
  bool everAnswered_ = false;
};

}  // namespace dc::sim
