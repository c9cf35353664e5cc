// The defender channel as a Defender sees it: request bodies, reply parsing, and when to come
// back after each reply. Pure functions; no I/O.
//
// Protocol (DESIGN §3, defender channel):
//   POST /api/v1/defender/heartbeat     Defender object fields -> 200 {hostname, connected,
//                                       registered, intervalSeconds, nextHeartbeatSeconds}
//   POST /api/v1/defender/disconnect    {"hostname"} -> 200, or 404 if unknown
//   POST /api/v1/defender/observations  {"hostname", "observations": [...]} -> 200 {accepted}
// 429 and 503 replies carry `Retry-After` (seconds), honoured per Defender.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "common/clock.h"
#include "common/status.h"
#include "tools/fleet_sim/fleet.h"
#include "tools/fleet_sim/transport.h"

namespace dc::sim {

inline constexpr std::string_view kHeartbeatPath = "/api/v1/defender/heartbeat";
inline constexpr std::string_view kDisconnectPath = "/api/v1/defender/disconnect";
inline constexpr std::string_view kObservationsPath = "/api/v1/defender/observations";

/// The heartbeat body of `task`'s Defender; `now` is the Defender's clock ("time").
std::string heartbeatBody(const Fleet& fleet, const Task& task, TimePoint now);
/// `{"hostname": "<task id>"}`.
std::string disconnectBody(std::string_view hostname);
/// A batch of `count` plausible runtime observations (process, network, dns, filesystem) of
/// `task`, timed within the last `span` before `now`.
std::string observationsBody(const Fleet& fleet, const Task& task, int count, TimePoint now,
                             Millis span, Rng& rng);

/// The fields of a 200 heartbeat reply the simulator uses.
struct HeartbeatReply {
  bool registered = false;
  std::optional<double> intervalSeconds;
  std::optional<double> nextHeartbeatSeconds;
};

/// Parses a 200 heartbeat reply. Errors ("bad_reply"): not JSON, not an object, or a field of
/// the wrong type. Missing optional fields are left empty.
Result<HeartbeatReply> parseHeartbeatReply(std::string_view body);

/// How a Defender schedules its next heartbeat.
struct SchedulePolicy {
  Millis defaultInterval{30'000};          // when the reply names no interval
  std::optional<Millis> intervalOverride;  // load tests: ignore the Console's interval
  Millis minBackoff{1'000};                // first retry after a failure
  Millis maxBackoff{30'000};               // cap of the exponential backoff
  Millis maxDelay{3'600'000};              // never trust a reply asking for longer than this
};

enum class Outcome {
  kOk,          // 200 with a well-formed reply
  kRetryAfter,  // 429/503 with Retry-After: come back exactly then
  kFailed,      // anything else: network error, other status, malformed 200 reply
};

struct NextHeartbeat {
  Outcome outcome = Outcome::kFailed;
  TimePoint due;            // when to send the next heartbeat
  bool registered = false;  // the Console registered the Defender anew with this heartbeat
};

/// Decides when a Defender heartbeats next after `response` arrived at `now`.
/// - 200: after `nextHeartbeatSeconds` (else `intervalSeconds`, else the default interval), or
///   after `policy.intervalOverride` when set;
/// - 429/503 with Retry-After: after Retry-After seconds;
/// - otherwise: exponential backoff from `minBackoff` doubling per earlier consecutive failure
///   (`failuresBefore`), capped at `maxBackoff`, with random jitter in [50%, 100%].
/// All delays are clamped to [0, policy.maxDelay].
NextHeartbeat nextHeartbeat(const Response& response, TimePoint now, int failuresBefore,
                            const SchedulePolicy& policy, Rng& rng);

}  // namespace dc::sim
