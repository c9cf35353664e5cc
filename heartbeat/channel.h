// The defender channel (DESIGN §3): what Defenders send, validated, and the Console's replies.
// HTTP-agnostic: web/ maps these calls to `POST /api/v1/defender/{heartbeat,disconnect,
// observations}` on the defender listener. Protocol reference: docs/defender-channel.md.
#pragma once

#include <string_view>

#include <nlohmann/json.hpp>

#include "common/status.h"
#include "inventory/inventory.h"

namespace dc::heartbeat {

/// Payload limits. Each breach is a 4xx naming the field; nothing is written.
struct ChannelLimits {
  size_t maxHostnameLength = 253;     // DNS name limit (RFC 1035)
  size_t maxStringLength = 1024;      // version, cluster, container, …
  size_t maxObjectBytes = 16 * 1024;  // each of cloudMetadata, features, status, systemInfo
  size_t maxCollections = 100;
  size_t maxObservationsPerBatch = 500;
  size_t maxObservationFieldsBytes = 8 * 1024;
  int maxJsonDepth = 16;
};

/// Parses JSON with a nesting limit. Errors: "invalid_json" (with the byte offset),
/// "too_deep" (nesting beyond `maxDepth`), "invalid_text" when a string or key holds U+0000
/// (PostgreSQL's text type cannot store it), "invalid_body" when the top level is not an object.
Result<nlohmann::json> parseJsonObject(std::string_view body, int maxDepth);

/// A validated heartbeat.
struct HeartbeatReport {
  inventory::Defender defender;           // descriptive fields only
  std::optional<TimePoint> defenderTime;  // the Defender's clock, if it sent `time`
};

/// Validates a heartbeat body (the Defender object fields the Defender knows):
/// required `hostname` (1..253 of letters, digits, '.', '-', '_') and `type` (vendor enum);
/// `appID` required for types fargate and appEmbedded and, when present, `<family>:<uuid>`;
/// optional strings `version`, `cluster`, `container`, `certificateExpiration` (RFC 3339),
/// `time` (RFC 3339); optional objects `cloudMetadata`, `features`, `status`, `systemInfo`;
/// optional `collections` (array of strings). Every optional field, and every member of
/// `cloudMetadata`, may be null: null is the same as absent. Console-judged fields (`connected`,
/// `lastModified`, `lastSeen`, …) are ignored. Errors: kInvalidArgument with codes
/// "missing_field", "invalid_field", "unknown_type", "invalid_app_id", "field_too_large".
Result<HeartbeatReport> parseHeartbeat(const nlohmann::json& body, const ChannelLimits& limits);

/// Validates an observations body `{hostname, observations: [{kind, time, fields}]}` where kind
/// is process|network|dns|filesystem, time is RFC 3339 and fields an object.
Result<std::pair<std::string, std::vector<inventory::Observation>>> parseObservations(
    const nlohmann::json& body, const ChannelLimits& limits);

/// Range of the `Retry-After` told to a refused Defender (429 or 503), in whole seconds.
struct RetryAfterRange {
  int minSeconds = 5;
  int maxSeconds = 20;
};

/// Retry-After for Defender `hostname`: min + a stable share of half the span chosen by the
/// hostname + a uniformly random share of the other half, so a fleet refused at once comes back
/// spread, and so does one Defender's next attempt. Always within [min, max].
int retryAfterSeconds(std::string_view hostname, const RetryAfterRange& range);
/// True when a Defender credential scoped to App ID `scope` ("" = enrolment, any App ID) may
/// report as `appId`: the same App ID, or — for an App ID issued for a CloudFormation intrinsic
/// family (its family part is JSON) — the same UUID.
bool scopeAllows(std::string_view scope, std::string_view appId);

struct ChannelOptions {
  ChannelLimits limits;
  RetryAfterRange retryAfter;
  /// Replies tell each Defender to come back after a uniformly random share of the interval in
  /// [1 − jitter, 1] × H, so that Defenders started together spread out. 0 ≤ jitter < 1.
  double jitter = 0.25;
};

class DefenderChannel {
 public:
  DefenderChannel(inventory::Inventory& inventory, ChannelOptions options);

  /// Every call takes the App ID scope of the caller's Defender credential (docs/security.md):
  /// empty = enrolment (Console-wide), otherwise the report's `appID` and the App ID the
  /// Defender already has in the inventory must both equal it, or the call fails with
  /// kPermissionDenied "app_id_mismatch" (field appID) and nothing is written.

  /// Register-or-refresh. Reply: `{hostname, connected: true, registered, intervalSeconds,
  /// nextHeartbeatSeconds}` (seconds, fractional).
  Result<nlohmann::json> heartbeat(std::string_view body, std::string_view scopeAppId = {});
  /// Graceful stop. Reply: `{hostname, connected: false, disconnectedAt}`. kNotFound if unknown.
  Result<nlohmann::json> disconnect(std::string_view body, std::string_view scopeAppId = {});
  /// A batch of observations; replied only once stored. Reply: `{accepted: N}`.
  Result<nlohmann::json> observations(std::string_view body, std::string_view scopeAppId = {});

  /// The delay to tell a Defender, in seconds: H × u, u uniform in [1 − jitter, 1].
  double nextHeartbeatSeconds() const;

 private:
  Error withRetryAfter(Error e, std::string_view hostname) const;
  /// kPermissionDenied "app_id_mismatch" when `scope` is set and the known Defender `hostname`
  /// has another App ID.
  Status checkScope(const std::string& hostname, std::string_view scope);

  inventory::Inventory& inventory_;
  ChannelOptions options_;
};

}  // namespace dc::heartbeat
