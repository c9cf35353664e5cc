// Query and page shapes for the Defender inventory (DESIGN §3 `GET /api/v1/defenders`).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "common/defender_version.h"
#include "inventory/defender.h"

namespace dc::inventory {

/// Sort keys of `GET /api/v1/defenders?sort=`; every sort ends with hostname as the unique
/// tie-breaker so that paging is stable.
enum class SortKey {
  kHostname,
  kType,
  kCategory,
  kVersion,
  kCluster,
  kAppId,
  kLastModified,
  kConnected,
  kLastSeen
};

/// API name of a sort key ("hostname", "type", "category", "version", "cluster", "appID",
/// "lastModified", "connected", "lastSeen").
std::string_view sortKeyName(SortKey key);
std::optional<SortKey> parseSortKey(std::string_view name);
const std::vector<SortKey>& allSortKeys();

constexpr int kDefaultLimit = 50;
constexpr int kMaxLimit = 250;

/// Filters and paging. Every present filter must match (AND); `types` matches any listed type.
struct DefenderQuery {
  int offset = 0;             // rows to skip, >= 0
  int limit = kDefaultLimit;  // 1..kMaxLimit
  SortKey sort = SortKey::kHostname;
  bool reverse = false;
  std::optional<std::string> hostname;  // exact, case-insensitive
  std::vector<DefenderType> types;      // any of
  std::optional<Category> category;
  std::optional<bool> connected;
  std::optional<std::string> cluster;          // exact
  std::optional<std::string> clusterContains;  // case-insensitive (ASCII) substring of cluster
  std::optional<std::string> appId;            // exact
  /// Exact, case-sensitive: the App ID's family, its part before the final `:<uuid>`.
  std::optional<std::string> family;
  std::optional<std::string> image;      // exact, cloudMetadata.image
  std::optional<std::string> container;  // exact
  std::optional<std::string> version;    // exact, the reported version (e.g. "32.07.123")
  /// Case-insensitive (ASCII) substring of hostname, App ID, cluster, image, version or task ARN
  /// (cloudMetadata.resourceID).
  std::optional<std::string> search;
  /// true: Defenders whose reported version parses and is older than `deployedVersion`;
  /// false: all others (newer, equal or unparseable). See dc::judgeVersion.
  std::optional<bool> outdated;
  DefenderVersion deployedVersion{};  // set by the Inventory (InventoryOptions::defenderVersion)
  /// Keyset paging, for sort by hostname only: just the rows whose hostname key sorts after this
  /// one (before it when `reverse`); `offset` counts from there and `total` counts only those
  /// rows. Lets a long download read page after page without re-skipping earlier rows.
  std::optional<std::string> afterKey;
  /// false: `total` is left 0 instead of counted. A download that streams page after page
  /// needs no count, and counting every match again for each page made it quadratic.
  bool countTotal = true;
};

/// One page of results and the total number of matches (the `Total-Count` header).
template <typename T>
struct Page {
  std::vector<T> items;
  long long total = 0;
};

/// Per-category counts for `/api/v1/defenders/summary`.
struct CategorySummary {
  Category category;
  long long connected = 0;
  long long deployed = 0;  // connected + disconnected still in the inventory
  long long outdated = 0;  // of those, running a version older than the deployed one
};

/// Per-type counts for `/api/v1/defenders/types` (the Type menu of the web page).
struct TypeCount {
  DefenderType type;
  long long connected = 0;
  long long deployed = 0;  // connected + disconnected still in the inventory
};

/// A reported version and how many stored Defenders report it, for
/// `/api/v1/defenders/versions` (the web page's version chart).
struct VersionCount {
  std::string version;  // as reported; "" when none was
  long long count = 0;
};

/// A cluster name and how many stored Defenders report it, for `/api/v1/defenders/clusters`.
struct ClusterCount {
  std::string cluster;
  long long count = 0;
};

}  // namespace dc::inventory
