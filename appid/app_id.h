// App IDs of App-Embedded Defenders (DESIGN §2, seed "App ID").
//
// Format: `<family>:<uuid>`, where `family` is the ECS task-definition family and `uuid` is the
// canonical 36-character textual UUID (8-4-4-4-12 hex digits). The Console issues version-4
// (random) UUIDs in lower case. Every task started from one protected task definition reports
// the same App ID. App IDs and families compare exactly (case-sensitive).
#pragma once

#include <string>
#include <string_view>

#include "common/status.h"

namespace dc::appid {

/// ECS limit: a task-definition family is 1–255 letters (A–Z, a–z), digits, hyphens and
/// underscores (AWS ECS RegisterTaskDefinition, parameter `family`).
constexpr size_t kMaxFamilyLength = 255;

/// A parsed, valid App ID.
struct AppId {
  std::string family;
  std::string uuid;  // canonical 8-4-4-4-12 form, case as given

  /// `<family>:<uuid>`.
  std::string str() const { return family + ":" + uuid; }
  friend bool operator==(const AppId&, const AppId&) = default;
};

/// OK if `family` satisfies the ECS family rules above; else an "invalid_family" error whose
/// message names `field` and says which rule failed.
Status validateFamily(std::string_view family, std::string_view field = "family");

/// True if `text` is a canonical textual UUID (8-4-4-4-12 hex digits, either case).
bool isCanonicalUuid(std::string_view text);

/// Parses `<family>:<uuid>`. Errors ("invalid_app_id", naming `field`): no ':', an invalid
/// family, or a UUID part that is not canonical.
Result<AppId> parse(std::string_view text, std::string_view field = "appID");

/// Issues a new App ID for `family`: `<family>:<random v4 uuid, lower case>` (libuuid).
/// Errors: "invalid_family" when the family breaks the ECS rules.
Result<AppId> generate(std::string_view family);

}  // namespace dc::appid
