#include "inventory/store_sql.h"

#include "common/defender_version.h"

namespace dc::inventory::storesql {

std::optional<long long> storedVersionKey(std::string_view version) {
  const auto v = parseReportedVersion(version);
  return v ? std::optional<long long>(versionKey(*v)) : std::nullopt;
}

std::string imageOf(const Defender& d) {
  const auto it = d.details.find("cloudMetadata");
  if (it == d.details.end() || !it->is_object()) return {};
  const auto img = it->find("image");
  return img != it->end() && img->is_string() ? img->get<std::string>() : std::string();
}

std::string likePattern(std::string_view term) {
  std::string out = "%";
  for (char c : term) {
    if (c == '%' || c == '_' || c == '\\') out += '\\';
    out += c;
  }
  out += '%';
  return out;
}

std::string orderBy(SortKey key, bool reverse,
                    const std::function<std::string(SortKey)>& computed) {
  const char* dir = reverse ? " DESC" : " ASC";
  std::string col;
  switch (key) {
    case SortKey::kHostname:
      col = " ORDER BY key";
      col += dir;
      return col;
    case SortKey::kType:
      col = "type";
      break;
    case SortKey::kCategory:
      col = "category";
      break;
    case SortKey::kVersion:
      col = "version";
      break;
    case SortKey::kCluster:
      col = "cluster";
      break;
    case SortKey::kAppId:
      col = "app_id";
      break;
    case SortKey::kLastModified:
    case SortKey::kConnected:
      col = computed(key);
      break;
    case SortKey::kLastSeen:
      col = "last_seen";
      break;
  }
  std::string out = " ORDER BY ";
  out += col;
  out += dir;
  out += ", key";
  out += dir;
  return out;
}

}  // namespace dc::inventory::storesql
