// Storage for the embed flow: issued App IDs and known image entrypoints.
//
// A narrow interface with two implementations (MemoryEmbedStore here, the SQL one in
// sql_store.h, on SQLite or PostgreSQL) that pass one conformance test suite. All methods are
// thread-safe. Storage failures are returned as Error kind kUnavailable ("storage_unavailable").
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "common/clock.h"
#include "common/status.h"

namespace dc::embed {

/// One App ID issued by the embed flow.
struct IssuedAppId {
  std::string appId;   // "<family>:<uuid>"; with an intrinsic family "<intrinsic JSON>:<uuid>"
  std::string uuid;    // canonical, lower case; unique
  std::string family;  // literal family, or the CloudFormation intrinsic as compact JSON
  bool familyIsIntrinsic = false;
  std::string format;    // "native-json", "native-yaml", "cloudformation-json", ...
  std::string resource;  // path of the task definition in the document ("" for native)
  TimePoint issuedAt;
  friend bool operator==(const IssuedAppId&, const IssuedAppId&) = default;
};

/// An image's ENTRYPOINT/CMD, keyed by the normalized image reference (see normalizeImage).
struct ImageEntrypoint {
  std::string image;  // normalized: registry/repository[:tag][@digest]
  std::vector<std::string> entrypoint;
  std::vector<std::string> cmd;
  std::string source;  // who recorded it: "api" (POST /api/v1/images/entrypoints), "registry"
  TimePoint updatedAt;
  friend bool operator==(const ImageEntrypoint&, const ImageEntrypoint&) = default;
};

template <typename T>
struct Page {
  std::vector<T> items;
  size_t total = 0;  // matches before paging
};

class EmbedStore {
 public:
  virtual ~EmbedStore() = default;

  /// Records App IDs atomically (all or none). Error "duplicate_app_id" (kConflict) when a UUID
  /// was already recorded.
  virtual Status recordIssued(const std::vector<IssuedAppId>& ids) = 0;
  /// Issued App IDs, oldest first (ties by appId); `family` filters exactly when not empty.
  virtual Result<Page<IssuedAppId>> listIssued(std::string_view family, size_t offset,
                                               size_t limit) = 0;
  /// The record with this UUID, if any.
  virtual Result<std::optional<IssuedAppId>> findIssuedByUuid(std::string_view uuid) = 0;
  /// The records of these UUIDs (lowercase; duplicates allowed), in no particular order; a UUID
  /// without a record is left out. One lookup for all of them (a page of the Defender list).
  virtual Result<std::vector<IssuedAppId>> findIssuedByUuids(
      const std::vector<std::string>& uuids) = 0;

  /// Inserts or replaces the entry for `entry.image` (already normalized).
  virtual Status putImage(const ImageEntrypoint& entry) = 0;
  /// The entry for a normalized image reference, if known.
  virtual Result<std::optional<ImageEntrypoint>> findImage(std::string_view image) = 0;
  /// Removes the entry for a normalized image reference; true when there was one.
  virtual Result<bool> deleteImage(std::string_view image) = 0;
  /// Entries ordered by image; `prefix` filters by normalized-reference prefix when not empty.
  virtual Result<Page<ImageEntrypoint>> listImages(std::string_view prefix, size_t offset,
                                                   size_t limit) = 0;
};

/// True when `appId` ("<family>:<uuid>") was issued by this Console: a record with that UUID
/// exists and its family is the same (or was a CloudFormation intrinsic, whose value is only
/// known at deploy time). False for unknown or malformed App IDs and when storage fails.
bool isIssued(EmbedStore& store, std::string_view appId);

/// The App IDs of `appIds` that isIssued() holds issued, with one findIssuedByUuids() for all of
/// them (empty App IDs and malformed ones are not issued). Empty when storage fails.
std::unordered_set<std::string> issuedAmong(EmbedStore& store,
                                            const std::vector<std::string>& appIds);

/// Normalizes an image reference the way registries resolve it: "nginx" ->
/// "docker.io/library/nginx:latest", "me/app:1" -> "docker.io/me/app:1", "host:5000/a" ->
/// "host:5000/a:latest". A digest is kept and no default tag is added to it. Error
/// "invalid_image" for empty, whitespace-containing or over-long (> 1024) references.
Result<std::string> normalizeImage(std::string_view image);

/// In-memory backend (tests, and a Console run without a database file).
class MemoryEmbedStore final : public EmbedStore {
 public:
  MemoryEmbedStore();
  ~MemoryEmbedStore() override;
  Status recordIssued(const std::vector<IssuedAppId>& ids) override;
  Result<Page<IssuedAppId>> listIssued(std::string_view family, size_t offset,
                                       size_t limit) override;
  Result<std::optional<IssuedAppId>> findIssuedByUuid(std::string_view uuid) override;
  Result<std::vector<IssuedAppId>> findIssuedByUuids(
      const std::vector<std::string>& uuids) override;
  Status putImage(const ImageEntrypoint& entry) override;
  Result<std::optional<ImageEntrypoint>> findImage(std::string_view image) override;
  Result<bool> deleteImage(std::string_view image) override;
  Result<Page<ImageEntrypoint>> listImages(std::string_view prefix, size_t offset,
                                           size_t limit) override;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace dc::embed
