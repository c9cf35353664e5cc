// The Defender: one running security agent, as kept in the inventory (DESIGN §2, §3).
//
// A Defender is identified by its `hostname` (vendor API name; for a Fargate Defender, the ECS
// task id). Hostnames compare case-insensitively: the inventory keys on `hostnameKey()`.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "common/clock.h"

namespace dc::inventory {

/// Vendor enum `defender.Type` (Prisma Cloud Compute API reference, Defender object `type`).
enum class DefenderType {
  kNone,
  kDocker,
  kDockerWindows,
  kContainerdWindows,
  kSwarm,
  kDaemonset,
  kServerLinux,
  kServerWindows,
  kCri,
  kFargate,
  kAppEmbedded,
  kTas,
  kTasWindows,
  kServerless,
  kEcs,
  kPodman,
  kEksFargate,
};

/// Defender category (vendor `category`): container, host, serverless, appEmbedded.
enum class Category { kContainer, kHost, kServerless, kAppEmbedded };

/// Metadata of one type: its API name (`fargate`), category and UI label ("Fargate").
struct TypeInfo {
  DefenderType type;
  std::string_view apiName;
  Category category;
  std::string_view label;
};

/// Every type, in vendor enum order.
const std::array<TypeInfo, 17>& allTypes();
const TypeInfo& typeInfo(DefenderType type);
/// The type whose API name is `name` (exact match, e.g. "fargate"), or nullopt.
std::optional<DefenderType> parseType(std::string_view name);

std::string_view categoryName(Category c);  // "container", "host", "serverless", "appEmbedded"
std::optional<Category> parseCategory(std::string_view name);
inline Category categoryOf(DefenderType t) {
  return typeInfo(t).category;
}

/// Lower-cases ASCII letters: the inventory key of a hostname.
std::string hostnameKey(std::string_view hostname);

struct Defender;
/// The resource the Defender runs on as it reported it: `details.cloudMetadata.resourceID` (for
/// Fargate the task ARN, which contains the task id = hostname); "" when not reported.
std::string_view resourceIdOf(const Defender& d);
/// XXH3 hash of a resourceID (never 0 for a non-empty id); 0 for "".
uint64_t resourceHash(std::string_view resourceId);

/// A 64-bit hash (XXH3, xxHash 0.8: its output is stable across versions and platforms) of a
/// Defender's descriptive fields: hostname, type, version, cluster, App ID, container and
/// `details`. Equal fingerprints mean the stored row needs only its liveness columns written.
/// Stored with the row, so it survives restarts; never 0 (0 means "unknown").
uint64_t descriptiveFingerprint(const Defender& d);

/// One Defender as stored. Descriptive fields come from the Defender's heartbeats; liveness
/// fields are the Console's own judgement inputs (DESIGN §4) and are never taken from the
/// Defender's clock.
struct Defender {
  // --- reported by the Defender ---
  std::string hostname;
  DefenderType type = DefenderType::kNone;
  std::string version;
  std::string cluster;
  std::string appId;      // `<family>:<uuid>` for App-Embedded types, else usually empty
  std::string container;  // container name (App-Embedded), may be empty
  /// JSON object with the remaining vendor fields, each always present:
  /// `cloudMetadata` (object), `collections` (array of strings), `features` (object),
  /// `status` (object), `systemInfo` (object), `certificateExpiration` (RFC 3339 or "").
  nlohmann::json details = nlohmann::json::object();

  // --- the Console's own judgement inputs (UTC) ---
  TimePoint registeredAt{};  // first heartbeat since (re-)registration
  TimePoint lastSeen{};      // Console receive time of the newest heartbeat
  /// Silence is counted from here: normally == lastSeen; after a Console restart, a Defender
  /// that was connected when the Console stopped is judged from the restart (DESIGN §4).
  TimePoint judgedFrom{};
  TimePoint connectedSince{};  // when it last became connected (registration or reconnect)
  std::optional<TimePoint> gracefulDisconnectAt;  // set by a graceful stop, cleared by a heartbeat
  /// Defender clock minus Console receive time at the newest heartbeat that carried a time, in
  /// milliseconds; informational only (clock skew).
  std::optional<long long> clockSkewMs;
};

}  // namespace dc::inventory
