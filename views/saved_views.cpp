#include "views/saved_views.h"

#include "common/sqlite_tables.h"

namespace dc::views {

namespace {

constexpr long long kSchemaVersion = 1;

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS views_meta (
  key   TEXT PRIMARY KEY,
  value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS saved_views (
  username   TEXT NOT NULL,
  name       TEXT NOT NULL,
  filter     TEXT NOT NULL,
  created_ms INTEGER NOT NULL,
  updated_ms INTEGER NOT NULL,
  PRIMARY KEY (username, name)
);
)sql";

using Stmt = SqliteStatement;

Error failure(sqlite3* db, const std::string& what) {
  return Error::unavailable("saved views: " + what + ": " + sqlite3_errmsg(db));
}

SavedView rowOf(const Stmt& s) {
  SavedView v;
  v.name = s.columnText(0);
  v.filter = nlohmann::json::parse(s.columnText(1), nullptr, false);
  if (!v.filter.is_object()) v.filter = nlohmann::json::object();
  v.createdAt = fromEpochMs(s.columnInteger(2));
  v.updatedAt = fromEpochMs(s.columnInteger(3));
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

ViewStore::ViewStore(sqlite3* db, const Clock& clock) : db_(db), clock_(clock) {}

ViewStore::~ViewStore() {
  sqlite3_close(db_);
}

Result<std::unique_ptr<ViewStore>> ViewStore::open(const std::string& path, const Clock& clock) {
  auto db = openSqliteConnection(path, 5000);
  if (!db.ok()) return db.error();
  std::unique_ptr<ViewStore> store(new ViewStore(*db, clock));
  if (auto st = createVersionedTables(*db, kSchema, "views_meta", kSchemaVersion, "saved views");
      !st.ok())
    return st.error();
  return store;
}

Result<std::vector<SavedView>> ViewStore::list(const std::string& user) const {
  std::lock_guard lock(mu_);
  Stmt s(db_,
         "SELECT name, filter, created_ms, updated_ms FROM saved_views WHERE username = ?1 "
         "ORDER BY name");
  if (!s.ok()) return failure(db_, "prepare list");
  s.text(1, user);
  std::vector<SavedView> out;
  int rc;
  while ((rc = s.step()) == SQLITE_ROW) out.push_back(rowOf(s));
  if (rc != SQLITE_DONE) return failure(db_, "list");
  return out;
}

Result<std::pair<SavedView, bool>> ViewStore::put(const std::string& user, const std::string& name,
                                                  const nlohmann::json& filter) {
  std::lock_guard lock(mu_);
  const long long now = toEpochMs(clock_.now());
  if (sqlite3_exec(db_, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) != SQLITE_OK)
    return failure(db_, "begin");
  auto rollback = [this](Error e) {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    return e;
  };
  bool exists = false;
  long long others = 0;
  {
    Stmt count(db_,
               "SELECT COUNT(*), COALESCE(SUM(name = ?2), 0) FROM saved_views WHERE username = ?1");
    if (!count.ok()) return rollback(failure(db_, "prepare count"));
    count.text(1, user);
    count.text(2, name);
    if (count.step() != SQLITE_ROW) return rollback(failure(db_, "count"));
    exists = count.columnInteger(1) > 0;
    others = count.columnInteger(0) - (exists ? 1 : 0);
  }
  if (!exists && others >= static_cast<long long>(kMaxViewsPerUser))
    return rollback(Error{ErrorKind::kConflict, "view_limit",
                          "a user keeps at most " + std::to_string(kMaxViewsPerUser) +
                              " saved views; delete one first",
                          "name"});
  {
    Stmt up(db_,
            "INSERT INTO saved_views (username, name, filter, created_ms, updated_ms) "
            "VALUES (?1, ?2, ?3, ?4, ?4) ON CONFLICT (username, name) DO UPDATE SET "
            "filter = excluded.filter, updated_ms = excluded.updated_ms");
    if (!up.ok()) return rollback(failure(db_, "prepare write"));
    up.text(1, user);
    up.text(2, name);
    up.text(3, filter.dump());
    up.integer(4, now);
    if (up.step() != SQLITE_DONE) return rollback(failure(db_, "write"));
  }
  SavedView stored;
  {
    Stmt read(db_,
              "SELECT name, filter, created_ms, updated_ms FROM saved_views "
              "WHERE username = ?1 AND name = ?2");
    if (!read.ok()) return rollback(failure(db_, "prepare read"));
    read.text(1, user);
    read.text(2, name);
    if (read.step() != SQLITE_ROW) return rollback(failure(db_, "read"));
    stored = rowOf(read);
  }
  if (sqlite3_exec(db_, "COMMIT", nullptr, nullptr, nullptr) != SQLITE_OK)
    return rollback(failure(db_, "commit"));
  return std::pair<SavedView, bool>(std::move(stored), exists);
}

Status ViewStore::remove(const std::string& user, const std::string& name) {
  std::lock_guard lock(mu_);
  Stmt s(db_, "DELETE FROM saved_views WHERE username = ?1 AND name = ?2");
  if (!s.ok()) return failure(db_, "prepare delete");
  s.text(1, user);
  s.text(2, name);
  if (s.step() != SQLITE_DONE) return failure(db_, "delete");
  if (sqlite3_changes(db_) == 0)
    return Error::notFound("unknown_view", "no saved view named '" + name + "'", "name");
  return Status::success();
}

}  // namespace dc::views
