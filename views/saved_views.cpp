#include "views/saved_views.h"

#include "common/sqlite_tables.h"  // toEpochMs

namespace dc::views {

namespace {

/// The saved_views tables, version 1 (the same on both backends).
const sql::Migration kMigrations[] = {{1, R"sql(
CREATE TABLE IF NOT EXISTS saved_views (
  username   TEXT NOT NULL,
  name       TEXT NOT NULL,
  filter     TEXT NOT NULL,
  created_ms BIGINT NOT NULL,
  updated_ms BIGINT NOT NULL,
  PRIMARY KEY (username, name)
);
)sql",
                                       ""}};

constexpr const char* kColumns = "name, filter, created_ms, updated_ms";

Error failure(const Error& e, const std::string& what) {
  Error out = e;
  out.message = "saved views: " + what + ": " + e.message;
  return out;
}

SavedView rowOf(const sql::Row& r) {
  SavedView v;
  v.name = r.text(0);
  v.filter = nlohmann::json::parse(r.text(1), nullptr, false);
  if (!v.filter.is_object()) v.filter = nlohmann::json::object();
  v.createdAt = fromEpochMs(r.integer(2));
  v.updatedAt = fromEpochMs(r.integer(3));
  return v;
}

}  // namespace

Status validateName(const std::string& name) {
  if (name.empty() || name.find_first_not_of(' ') == std::string::npos)
    return Error::invalid("invalid_field", "name", "name: is required (not only spaces)");
  if (name.size() > kMaxNameBytes)
    return Error::invalid("invalid_field", "name",
                          "name: at most " + std::to_string(kMaxNameBytes) + " bytes");
  for (unsigned char c : name)
    if (c < 0x20 || c == 0x7f || c == '/')
      return Error::invalid("invalid_field", "name", "name: no control characters and no '/'");
  // UTF-8 well-formedness: lead bytes followed by the right number of continuation bytes.
  for (size_t i = 0; i < name.size();) {
    const auto c = static_cast<unsigned char>(name[i]);
    const size_t n = c < 0x80           ? 1
                     : (c >> 5) == 0x6  ? 2
                     : (c >> 4) == 0xe  ? 3
                     : (c >> 3) == 0x1e ? 4
                                        : 0;
    if (n == 0 || i + n > name.size())
      return Error::invalid("invalid_field", "name", "name: must be UTF-8 text");
    for (size_t k = 1; k < n; ++k)
      if ((static_cast<unsigned char>(name[i + k]) >> 6) != 0x2)
        return Error::invalid("invalid_field", "name", "name: must be UTF-8 text");
    i += n;
  }
  return Status::success();
}

ViewStore::ViewStore(std::shared_ptr<sql::Database> db, const Clock& clock)
    : db_(std::move(db)), clock_(clock) {}

ViewStore::~ViewStore() = default;

Result<std::unique_ptr<ViewStore>> ViewStore::open(std::shared_ptr<sql::Database> db,
                                                   const Clock& clock) {
  if (auto st = db->migrate("views", kMigrations); !st.ok()) return st.error();
  return std::unique_ptr<ViewStore>(new ViewStore(std::move(db), clock));
}

Result<std::vector<SavedView>> ViewStore::list(const std::string& user) const {
  auto rows = db_->run(
      std::string("SELECT ") + kColumns + " FROM saved_views WHERE username = $1 ORDER BY name",
      {user});
  if (!rows.ok()) return failure(rows.error(), "list");
  std::vector<SavedView> out;
  for (const auto& r : *rows) out.push_back(rowOf(r));
  return out;
}

Result<std::pair<SavedView, bool>> ViewStore::put(const std::string& user, const std::string& name,
                                                  const nlohmann::json& filter) {
  const long long now = toEpochMs(clock_.now());
  SavedView stored;
  bool exists = false;
  auto st = db_->transaction([&](sql::Database& tx) -> Status {
    auto count = tx.run(
        "SELECT COUNT(*), COALESCE(SUM(CASE WHEN name = $2 THEN 1 ELSE 0 END), 0) "
        "FROM saved_views WHERE username = $1",
        {user, name});
    if (!count.ok()) return failure(count.error(), "count");
    exists = (*count)[0].integer(1) > 0;
    const long long others = (*count)[0].integer(0) - (exists ? 1 : 0);
    if (!exists && others >= static_cast<long long>(kMaxViewsPerUser))
      return Error{ErrorKind::kConflict, "view_limit",
                   "a user keeps at most " + std::to_string(kMaxViewsPerUser) +
                       " saved views; delete one first",
                   "name"};
    auto up = tx.run(std::string("INSERT INTO saved_views (username, name, filter, created_ms, "
                                 "updated_ms) VALUES ($1, $2, $3, $4, $4) ON CONFLICT (username, "
                                 "name) DO UPDATE SET filter = excluded.filter, updated_ms = "
                                 "excluded.updated_ms RETURNING ") +
                         kColumns,
                     {user, name, filter.dump(), now});
    if (!up.ok()) return failure(up.error(), "write");
    if (up->empty()) return Error::unavailable("saved views: write returned no row");
    stored = rowOf((*up)[0]);
    return Status::success();
  });
  if (!st.ok()) return st.error();
  return std::pair<SavedView, bool>(std::move(stored), exists);
}

Status ViewStore::remove(const std::string& user, const std::string& name) {
  auto rows = db_->run("DELETE FROM saved_views WHERE username = $1 AND name = $2 RETURNING name",
                       {user, name});
  if (!rows.ok()) return failure(rows.error(), "delete");
  if (rows->empty())
    return Error::notFound("unknown_view", "no saved view named '" + name + "'", "name");
  return Status::success();
}

}  // namespace dc::views
