// Saved views of the Deployed Defenders page (docs/api.md "Saved views"): named filter sets,
// per Console user, stored in the Console's database.
//
// One row per (user, name) in the table `saved_views` (schema version in `views_meta`), written
// with bound parameters only. A user sees and changes only their own views.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/clock.h"
#include "common/sql_database.h"
#include "common/status.h"

namespace dc::views {

/// Most views one user keeps; one more is refused with kConflict "view_limit".
inline constexpr size_t kMaxViewsPerUser = 100;
/// Longest view name, in bytes (UTF-8).
inline constexpr size_t kMaxNameBytes = 64;

/// One saved view: the filter parameters of GET /api/v1/defenders as a JSON object of strings
/// (already validated by the caller), e.g. {"type": "fargate", "connected": "false"}.
struct SavedView {
  std::string name;
  nlohmann::json filter = nlohmann::json::object();
  TimePoint createdAt{};
  TimePoint updatedAt{};
};

class ViewStore {
 public:
  /// Creates or migrates the tables in `db` (either backend; common/sql_database.h).
  /// Errors: kUnavailable when the database fails; "schema_too_new" (sql::Database::migrate).
  static Result<std::unique_ptr<ViewStore>> open(std::shared_ptr<sql::Database> db,
                                                 const Clock& clock);
  ~ViewStore();
  ViewStore(const ViewStore&) = delete;
  ViewStore& operator=(const ViewStore&) = delete;

  /// `user`'s views, by name. Errors: kUnavailable.
  Result<std::vector<SavedView>> list(const std::string& user) const;
  /// Creates `view.name` for `user`, or replaces its filter (createdAt kept). Returns the stored
  /// view and whether it replaced one. Errors: kConflict "view_limit" when `user` already has
  /// kMaxViewsPerUser others; kUnavailable.
  Result<std::pair<SavedView, bool>> put(const std::string& user, const std::string& name,
                                         const nlohmann::json& filter);
  /// Deletes `user`'s view `name`. Errors: kNotFound "unknown_view"; kUnavailable.
  Status remove(const std::string& user, const std::string& name);

 private:
  ViewStore(std::shared_ptr<sql::Database> db, const Clock& clock);

  std::shared_ptr<sql::Database> db_;
  const Clock& clock_;
};

/// A view name is 1..kMaxNameBytes bytes of UTF-8 without control characters or '/' (it is a
/// path segment of DELETE /api/v1/views/{name}), not only spaces.
/// Errors: kInvalidArgument "invalid_field" (field `name`) saying what is wrong.
Status validateName(const std::string& name);

}  // namespace dc::views
