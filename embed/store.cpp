#include "embed/store.h"

#include <algorithm>
#include <map>
#include <mutex>
#include <unordered_map>
#include <unordered_set>

#include "appid/app_id.h"

namespace dc::embed {

bool isIssued(EmbedStore& store, std::string_view appId) {
  return !issuedAmong(store, {std::string(appId)}).empty();
}

std::unordered_set<std::string> issuedAmong(EmbedStore& store,
                                            const std::vector<std::string>& appIds) {
  std::unordered_set<std::string> issued;
  // uuid (lowercase) -> the families asked for with it, and the App IDs that asked.
  std::unordered_map<std::string, std::vector<std::pair<std::string, const std::string*>>> asked;
  for (const auto& appId : appIds) {
    if (appId.empty()) continue;
    auto parsed = appid::parse(appId);
    if (!parsed.ok()) continue;
    std::string uuid = parsed->uuid;
    std::transform(uuid.begin(), uuid.end(), uuid.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    asked[std::move(uuid)].emplace_back(parsed->family, &appId);
  }
  if (asked.empty()) return issued;
  std::vector<std::string> uuids;
  uuids.reserve(asked.size());
  for (const auto& [uuid, _] : asked) uuids.push_back(uuid);
  auto found = store.findIssuedByUuids(uuids);
  if (!found.ok()) return issued;
  for (const IssuedAppId& rec : *found) {
    auto it = asked.find(rec.uuid);
    if (it == asked.end()) continue;
    for (const auto& [family, appId] : it->second)
      if (rec.familyIsIntrinsic || rec.family == family) issued.insert(*appId);
  }
  return issued;
}

Result<std::string> normalizeImage(std::string_view image) {
  if (image.empty() || image.size() > 1024)
    return Error::invalid("invalid_image", "image", "image reference must be 1-1024 characters");
  for (unsigned char c : image)
    if (c <= 0x20 || c >= 0x7f)
      return Error::invalid("invalid_image", "image",
                            "image reference must not contain whitespace or control characters");
  std::string rest(image);
  std::string digest;
  if (auto at = rest.find('@'); at != std::string::npos) {
    digest = rest.substr(at);
    rest = rest.substr(0, at);
  }
  if (rest.empty()) return Error::invalid("invalid_image", "image", "image name is empty");
  std::string registry;
  const auto slash = rest.find('/');
  if (slash != std::string::npos) {
    const std::string first = rest.substr(0, slash);
    if (first.find('.') != std::string::npos || first.find(':') != std::string::npos ||
        first == "localhost") {
      registry = first;
      rest = rest.substr(slash + 1);
    }
  }
  if (registry.empty() || registry == "index.docker.io" || registry == "registry-1.docker.io")
    registry = "docker.io";
  const bool hasTag = rest.find(':') != std::string::npos;
  if (registry == "docker.io" && rest.find('/') == std::string::npos) rest = "library/" + rest;
  if (!hasTag && digest.empty()) rest += ":latest";
  return registry + "/" + rest + digest;
}

// ---------------------------------------------------------------------------------------------

struct MemoryEmbedStore::State {
  std::mutex mu;
  std::vector<IssuedAppId> issued;  // insertion order == issue order
  std::map<std::string, ImageEntrypoint, std::less<>> images;
};

MemoryEmbedStore::MemoryEmbedStore() : state_(std::make_unique<State>()) {}
MemoryEmbedStore::~MemoryEmbedStore() = default;

Status MemoryEmbedStore::recordIssued(const std::vector<IssuedAppId>& ids) {
  std::lock_guard lock(state_->mu);
  for (size_t i = 0; i < ids.size(); ++i) {
    const auto clash = [&](const IssuedAppId& r) { return r.uuid == ids[i].uuid; };
    if (std::any_of(state_->issued.begin(), state_->issued.end(), clash) ||
        std::any_of(ids.begin(), ids.begin() + static_cast<long>(i), clash))
      return Error{ErrorKind::kConflict, "duplicate_app_id",
                   "App ID UUID " + ids[i].uuid + " was already issued", ""};
  }
  state_->issued.insert(state_->issued.end(), ids.begin(), ids.end());
  return Status::success();
}

Result<Page<IssuedAppId>> MemoryEmbedStore::listIssued(std::string_view family, size_t offset,
                                                       size_t limit) {
  std::lock_guard lock(state_->mu);
  std::vector<IssuedAppId> all;
  for (const auto& r : state_->issued)
    if (family.empty() || r.family == family) all.push_back(r);
  std::stable_sort(all.begin(), all.end(), [](const IssuedAppId& a, const IssuedAppId& b) {
    return a.issuedAt != b.issuedAt ? a.issuedAt < b.issuedAt : a.appId < b.appId;
  });
  Page<IssuedAppId> page;
  page.total = all.size();
  for (size_t i = offset; i < all.size() && page.items.size() < limit; ++i)
    page.items.push_back(all[i]);
  return page;
}

Result<std::optional<IssuedAppId>> MemoryEmbedStore::findIssuedByUuid(std::string_view uuid) {
  std::lock_guard lock(state_->mu);
  for (const auto& r : state_->issued)
    if (r.uuid == uuid) return std::optional<IssuedAppId>(r);
  return std::optional<IssuedAppId>();
}

Result<std::vector<IssuedAppId>> MemoryEmbedStore::findIssuedByUuids(
    const std::vector<std::string>& uuids) {
  const std::unordered_set<std::string_view> wanted(uuids.begin(), uuids.end());
  std::lock_guard lock(state_->mu);
  std::vector<IssuedAppId> out;
  for (const auto& r : state_->issued)
    if (wanted.contains(r.uuid)) out.push_back(r);
  return out;
}

Status MemoryEmbedStore::putImage(const ImageEntrypoint& entry) {
  std::lock_guard lock(state_->mu);
  state_->images[entry.image] = entry;
  return Status::success();
}

Result<std::optional<ImageEntrypoint>> MemoryEmbedStore::findImage(std::string_view image) {
  std::lock_guard lock(state_->mu);
  auto it = state_->images.find(image);
  if (it == state_->images.end()) return std::optional<ImageEntrypoint>();
  return std::optional<ImageEntrypoint>(it->second);
}

Result<bool> MemoryEmbedStore::deleteImage(std::string_view image) {
  std::lock_guard lock(state_->mu);
  auto it = state_->images.find(image);
  if (it == state_->images.end()) return false;
  state_->images.erase(it);
  return true;
}

Result<Page<ImageEntrypoint>> MemoryEmbedStore::listImages(std::string_view prefix, size_t offset,
                                                           size_t limit) {
  std::lock_guard lock(state_->mu);
  Page<ImageEntrypoint> page;
  size_t seen = 0;
  for (const auto& [key, e] : state_->images) {
    if (key.compare(0, prefix.size(), prefix) != 0) continue;
    if (seen++ >= offset && page.items.size() < limit) page.items.push_back(e);
  }
  page.total = seen;
  return page;
}

}  // namespace dc::embed
