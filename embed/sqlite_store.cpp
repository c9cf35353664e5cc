#include "embed/sqlite_store.h"

#include "common/sqlite_tables.h"

#include <sqlite3.h>

#include <mutex>
#include <nlohmann/json.hpp>

namespace dc::embed {

namespace {

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS embed_meta (
  key   TEXT PRIMARY KEY,
  value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS embed_app_ids (
  uuid                TEXT PRIMARY KEY,
  app_id              TEXT NOT NULL,
  family              TEXT NOT NULL,
  family_is_intrinsic INTEGER NOT NULL,
  format              TEXT NOT NULL,
  resource            TEXT NOT NULL,
  issued_at_ms        INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS embed_app_ids_by_family ON embed_app_ids (family, issued_at_ms);
CREATE INDEX IF NOT EXISTS embed_app_ids_by_time ON embed_app_ids (issued_at_ms, app_id);
CREATE TABLE IF NOT EXISTS embed_image_entrypoints (
  image         TEXT PRIMARY KEY,
  entrypoint    TEXT NOT NULL,
  cmd           TEXT NOT NULL,
  source        TEXT NOT NULL,
  updated_at_ms INTEGER NOT NULL
);
)sql";

using Stmt = SqliteStatement;

std::string toJsonArray(const std::vector<std::string>& v) {
  return nlohmann::json(v).dump();
}
std::vector<std::string> fromJsonArray(const std::string& s) {
  auto j = nlohmann::json::parse(s, nullptr, false);
  std::vector<std::string> out;
  if (!j.is_array()) return out;
  for (const auto& e : j)
    if (e.is_string()) out.push_back(e.get<std::string>());
  return out;
}

class SqliteEmbedStore final : public EmbedStore {
 public:
  explicit SqliteEmbedStore(sqlite3* db) : db_(db) {}
  ~SqliteEmbedStore() override { sqlite3_close(db_); }

  Status init() {
    std::lock_guard lock(mu_);
    return createVersionedTables(db_, kSchema, "embed_meta", kEmbedSchemaVersion, "embed");
  }

  Status recordIssued(const std::vector<IssuedAppId>& ids) override {
    std::lock_guard lock(mu_);
    if (sqlite3_exec(db_, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) != SQLITE_OK)
      return failure("begin");
    for (const auto& r : ids) {
      Stmt s(db_,
             "INSERT INTO embed_app_ids (uuid, app_id, family, family_is_intrinsic, format, "
             "resource, issued_at_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)");
      if (!s.ok()) return rollback(failure("prepare insert"));
      s.text(1, r.uuid);
      s.text(2, r.appId);
      s.text(3, r.family);
      s.integer(4, static_cast<long long>(r.familyIsIntrinsic ? 1 : 0));
      s.text(5, r.format);
      s.text(6, r.resource);
      s.integer(7, toEpochMs(r.issuedAt));
      const int rc = s.step();
      if (rc == SQLITE_CONSTRAINT)
        return rollback(Error{ErrorKind::kConflict, "duplicate_app_id",
                              "App ID UUID " + r.uuid + " was already issued", ""});
      if (rc != SQLITE_DONE) return rollback(failure("insert App ID"));
    }
    if (sqlite3_exec(db_, "COMMIT", nullptr, nullptr, nullptr) != SQLITE_OK)
      return rollback(failure("commit"));
    return Status::success();
  }

  Result<Page<IssuedAppId>> listIssued(std::string_view family, size_t offset,
                                       size_t limit) override {
    std::lock_guard lock(mu_);
    Page<IssuedAppId> page;
    {
      Stmt c(db_, "SELECT COUNT(*) FROM embed_app_ids WHERE (?1 = '' OR family = ?1)");
      if (!c.ok()) return failure("count App IDs");
      c.text(1, family);
      if (c.step() != SQLITE_ROW) return failure("count App IDs");
      page.total = static_cast<size_t>(c.columnInteger(0));
    }
    Stmt s(db_,
           "SELECT uuid, app_id, family, family_is_intrinsic, format, resource, issued_at_ms "
           "FROM embed_app_ids WHERE (?1 = '' OR family = ?1) "
           "ORDER BY issued_at_ms, app_id LIMIT ?2 OFFSET ?3");
    if (!s.ok()) return failure("list App IDs");
    s.text(1, family);
    s.integer(2, static_cast<long long>(limit));
    s.integer(3, static_cast<long long>(offset));
    int rc;
    while ((rc = s.step()) == SQLITE_ROW) page.items.push_back(readIssued(s));
    if (rc != SQLITE_DONE) return failure("list App IDs");
    return page;
  }

  Result<std::optional<IssuedAppId>> findIssuedByUuid(std::string_view uuid) override {
    std::lock_guard lock(mu_);
    Stmt s(db_,
           "SELECT uuid, app_id, family, family_is_intrinsic, format, resource, issued_at_ms "
           "FROM embed_app_ids WHERE uuid = ?1");
    if (!s.ok()) return failure("find App ID");
    s.text(1, uuid);
    const int rc = s.step();
    if (rc == SQLITE_ROW) return std::optional<IssuedAppId>(readIssued(s));
    if (rc != SQLITE_DONE) return failure("find App ID");
    return std::optional<IssuedAppId>();
  }

  Result<std::vector<IssuedAppId>> findIssuedByUuids(
      const std::vector<std::string>& uuids) override {
    std::vector<IssuedAppId> out;
    if (uuids.empty()) return out;
    // One statement with a bound parameter per UUID; a page has at most 250 (the list's
    // limit), well below SQLITE_MAX_VARIABLE_NUMBER (32766).
    std::string sql =
        "SELECT uuid, app_id, family, family_is_intrinsic, format, resource, issued_at_ms "
        "FROM embed_app_ids WHERE uuid IN (";
    for (size_t i = 0; i < uuids.size(); ++i) {
      if (i > 0) sql += ',';
      sql += '?';
    }
    sql += ')';
    std::lock_guard lock(mu_);
    Stmt s(db_, sql.c_str());
    if (!s.ok()) return failure("find App IDs");
    for (size_t i = 0; i < uuids.size(); ++i) s.text(static_cast<int>(i + 1), uuids[i]);
    int rc;
    while ((rc = s.step()) == SQLITE_ROW) out.push_back(readIssued(s));
    if (rc != SQLITE_DONE) return failure("find App IDs");
    return out;
  }

  Status putImage(const ImageEntrypoint& e) override {
    std::lock_guard lock(mu_);
    Stmt s(db_,
           "INSERT INTO embed_image_entrypoints (image, entrypoint, cmd, source, updated_at_ms) "
           "VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (image) DO UPDATE SET "
           "entrypoint = excluded.entrypoint, cmd = excluded.cmd, source = excluded.source, "
           "updated_at_ms = excluded.updated_at_ms");
    if (!s.ok()) return failure("prepare image upsert");
    s.text(1, e.image);
    s.text(2, toJsonArray(e.entrypoint));
    s.text(3, toJsonArray(e.cmd));
    s.text(4, e.source);
    s.integer(5, toEpochMs(e.updatedAt));
    if (s.step() != SQLITE_DONE) return failure("store image entrypoint");
    return Status::success();
  }

  Result<std::optional<ImageEntrypoint>> findImage(std::string_view image) override {
    std::lock_guard lock(mu_);
    Stmt s(db_,
           "SELECT image, entrypoint, cmd, source, updated_at_ms FROM embed_image_entrypoints "
           "WHERE image = ?1");
    if (!s.ok()) return failure("find image");
    s.text(1, image);
    const int rc = s.step();
    if (rc == SQLITE_ROW) return std::optional<ImageEntrypoint>(readImage(s));
    if (rc != SQLITE_DONE) return failure("find image");
    return std::optional<ImageEntrypoint>();
  }

  Result<bool> deleteImage(std::string_view image) override {
    std::lock_guard lock(mu_);
    Stmt s(db_, "DELETE FROM embed_image_entrypoints WHERE image = ?1");
    if (!s.ok()) return failure("prepare image delete");
    s.text(1, image);
    if (s.step() != SQLITE_DONE) return failure("delete image entrypoint");
    return sqlite3_changes(db_) > 0;
  }

  Result<Page<ImageEntrypoint>> listImages(std::string_view prefix, size_t offset,
                                           size_t limit) override {
    std::lock_guard lock(mu_);
    Page<ImageEntrypoint> page;
    // Prefix match with substr, not LIKE, so '%' and '_' in references need no escaping.
    {
      Stmt c(db_,
             "SELECT COUNT(*) FROM embed_image_entrypoints "
             "WHERE substr(image, 1, length(?1)) = ?1");
      if (!c.ok()) return failure("count images");
      c.text(1, prefix);
      if (c.step() != SQLITE_ROW) return failure("count images");
      page.total = static_cast<size_t>(c.columnInteger(0));
    }
    Stmt s(db_,
           "SELECT image, entrypoint, cmd, source, updated_at_ms FROM embed_image_entrypoints "
           "WHERE substr(image, 1, length(?1)) = ?1 ORDER BY image LIMIT ?2 OFFSET ?3");
    if (!s.ok()) return failure("list images");
    s.text(1, prefix);
    s.integer(2, static_cast<long long>(limit));
    s.integer(3, static_cast<long long>(offset));
    int rc;
    while ((rc = s.step()) == SQLITE_ROW) page.items.push_back(readImage(s));
    if (rc != SQLITE_DONE) return failure("list images");
    return page;
  }

 private:
  static IssuedAppId readIssued(const Stmt& s) {
    IssuedAppId r;
    r.uuid = s.columnText(0);
    r.appId = s.columnText(1);
    r.family = s.columnText(2);
    r.familyIsIntrinsic = s.columnInteger(3) != 0;
    r.format = s.columnText(4);
    r.resource = s.columnText(5);
    r.issuedAt = fromEpochMs(s.columnInteger(6));
    return r;
  }

  static ImageEntrypoint readImage(const Stmt& s) {
    ImageEntrypoint e;
    e.image = s.columnText(0);
    e.entrypoint = fromJsonArray(s.columnText(1));
    e.cmd = fromJsonArray(s.columnText(2));
    e.source = s.columnText(3);
    e.updatedAt = fromEpochMs(s.columnInteger(4));
    return e;
  }

  Error failure(const std::string& what) {
    return Error::unavailable("embed store: " + what + ": " + sqlite3_errmsg(db_));
  }

  Error rollback(Error e) {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    return e;
  }

  std::mutex mu_;
  sqlite3* db_;
};

}  // namespace

Result<std::unique_ptr<EmbedStore>> openSqliteEmbedStore(const std::string& path,
                                                         int busyTimeoutMs) {
  auto db = openSqliteConnection(path, busyTimeoutMs);
  if (!db.ok()) return db.error();
  auto store = std::make_unique<SqliteEmbedStore>(*db);
  if (auto st = store->init(); !st.ok()) return st.error();
  return std::unique_ptr<EmbedStore>(std::move(store));
}

}  // namespace dc::embed
