#include "inventory/query.h"

namespace dc::inventory {

namespace {
struct SortName {
  SortKey key;
  std::string_view name;
};
constexpr SortName kSortNames[] = {
    {SortKey::kHostname, "hostname"},         {SortKey::kType, "type"},
    {SortKey::kCategory, "category"},         {SortKey::kVersion, "version"},
    {SortKey::kCluster, "cluster"},           {SortKey::kAppId, "appID"},
    {SortKey::kLastModified, "lastModified"}, {SortKey::kConnected, "connected"},
    {SortKey::kLastSeen, "lastSeen"},
};
}  // namespace

std::string_view sortKeyName(SortKey key) {
  for (const auto& s : kSortNames)
    if (s.key == key) return s.name;
  return "hostname";
}

std::optional<SortKey> parseSortKey(std::string_view name) {
  for (const auto& s : kSortNames)
    if (s.name == name) return s.key;
  return std::nullopt;
}

const std::vector<SortKey>& allSortKeys() {
  static const std::vector<SortKey> keys = [] {
    std::vector<SortKey> k;
    for (const auto& s : kSortNames) k.push_back(s.key);
    return k;
  }();
  return keys;
}

}  // namespace dc::inventory
