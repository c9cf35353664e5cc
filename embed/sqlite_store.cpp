#include "embed/sqlite_store.h"

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

/// A prepared statement, finalized on scope exit.
class Stmt {
 public:
  Stmt(sqlite3* db, const char* sql) { rc_ = sqlite3_prepare_v2(db, sql, -1, &s_, nullptr); }
  ~Stmt() { sqlite3_finalize(s_); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  bool ok() const { return rc_ == SQLITE_OK; }
  void bind(int i, std::string_view v) {
    sqlite3_bind_text(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
  }
  void bind(int i, long long v) { sqlite3_bind_int64(s_, i, v); }
  int step() { return sqlite3_step(s_); }
  std::string text(int col) const {
    const auto* p = sqlite3_column_text(s_, col);
    return p ? std::string(reinterpret_cast<const char*>(p),
                           static_cast<size_t>(sqlite3_column_bytes(s_, col)))
             : std::string();
  }
  long long integer(int col) const { return sqlite3_column_int64(s_, col); }

 private:
  sqlite3_stmt* s_ = nullptr;
  int rc_ = SQLITE_ERROR;
};

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

long long toMs(TimePoint t) {
  return t.time_since_epoch().count();
}
TimePoint fromMs(long long ms) {
  return TimePoint(Millis(ms));
}

class SqliteEmbedStore final : public EmbedStore {
 public:
  explicit SqliteEmbedStore(sqlite3* db) : db_(db) {}
  ~SqliteEmbedStore() override { sqlite3_close(db_); }

  Status init() {
    std::lock_guard lock(mu_);
    char* msg = nullptr;
    if (sqlite3_exec(db_, kSchema, nullptr, nullptr, &msg) != SQLITE_OK) {
      std::string m = msg ? msg : "unknown error";
      sqlite3_free(msg);
      return Error::unavailable("cannot create embed tables: " + m);
    }
    Stmt get(db_, "SELECT value FROM embed_meta WHERE key = 'schema_version'");
    if (!get.ok()) return failure("read schema version");
    if (get.step() == SQLITE_ROW) {
      const long long v = std::stoll(get.text(0));
      if (v > kEmbedSchemaVersion)
        return Error::invalid("schema_too_new", "",
                              "the embed tables have schema version " + std::to_string(v) +
                                  "; this Console knows up to " +
                                  std::to_string(kEmbedSchemaVersion));
      return Status::success();
    }
    Stmt put(db_, "INSERT INTO embed_meta (key, value) VALUES ('schema_version', ?1)");
    if (!put.ok()) return failure("write schema version");
    put.bind(1, std::to_string(kEmbedSchemaVersion));
    if (put.step() != SQLITE_DONE) return failure("write schema version");
    return Status::success();
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
      s.bind(1, r.uuid);
      s.bind(2, r.appId);
      s.bind(3, r.family);
      s.bind(4, static_cast<long long>(r.familyIsIntrinsic ? 1 : 0));
      s.bind(5, r.format);
      s.bind(6, r.resource);
      s.bind(7, toMs(r.issuedAt));
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
      c.bind(1, family);
      if (c.step() != SQLITE_ROW) return failure("count App IDs");
      page.total = static_cast<size_t>(c.integer(0));
    }
    Stmt s(db_,
           "SELECT uuid, app_id, family, family_is_intrinsic, format, resource, issued_at_ms "
           "FROM embed_app_ids WHERE (?1 = '' OR family = ?1) "
           "ORDER BY issued_at_ms, app_id LIMIT ?2 OFFSET ?3");
    if (!s.ok()) return failure("list App IDs");
    s.bind(1, family);
    s.bind(2, static_cast<long long>(limit));
    s.bind(3, static_cast<long long>(offset));
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
    s.bind(1, uuid);
    const int rc = s.step();
    if (rc == SQLITE_ROW) return std::optional<IssuedAppId>(readIssued(s));
    if (rc != SQLITE_DONE) return failure("find App ID");
    return std::optional<IssuedAppId>();
  }

  Status putImage(const ImageEntrypoint& e) override {
    std::lock_guard lock(mu_);
    Stmt s(db_,
           "INSERT INTO embed_image_entrypoints (image, entrypoint, cmd, source, updated_at_ms) "
           "VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (image) DO UPDATE SET "
           "entrypoint = excluded.entrypoint, cmd = excluded.cmd, source = excluded.source, "
           "updated_at_ms = excluded.updated_at_ms");
    if (!s.ok()) return failure("prepare image upsert");
    s.bind(1, e.image);
    s.bind(2, toJsonArray(e.entrypoint));
    s.bind(3, toJsonArray(e.cmd));
    s.bind(4, e.source);
    s.bind(5, toMs(e.updatedAt));
    if (s.step() != SQLITE_DONE) return failure("store image entrypoint");
    return Status::success();
  }

  Result<std::optional<ImageEntrypoint>> findImage(std::string_view image) override {
    std::lock_guard lock(mu_);
    Stmt s(db_,
           "SELECT image, entrypoint, cmd, source, updated_at_ms FROM embed_image_entrypoints "
           "WHERE image = ?1");
    if (!s.ok()) return failure("find image");
    s.bind(1, image);
    const int rc = s.step();
    if (rc == SQLITE_ROW) return std::optional<ImageEntrypoint>(readImage(s));
    if (rc != SQLITE_DONE) return failure("find image");
    return std::optional<ImageEntrypoint>();
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
      c.bind(1, prefix);
      if (c.step() != SQLITE_ROW) return failure("count images");
      page.total = static_cast<size_t>(c.integer(0));
    }
    Stmt s(db_,
           "SELECT image, entrypoint, cmd, source, updated_at_ms FROM embed_image_entrypoints "
           "WHERE substr(image, 1, length(?1)) = ?1 ORDER BY image LIMIT ?2 OFFSET ?3");
    if (!s.ok()) return failure("list images");
    s.bind(1, prefix);
    s.bind(2, static_cast<long long>(limit));
    s.bind(3, static_cast<long long>(offset));
    int rc;
    while ((rc = s.step()) == SQLITE_ROW) page.items.push_back(readImage(s));
    if (rc != SQLITE_DONE) return failure("list images");
    return page;
  }

 private:
  static IssuedAppId readIssued(const Stmt& s) {
    IssuedAppId r;
    r.uuid = s.text(0);
    r.appId = s.text(1);
    r.family = s.text(2);
    r.familyIsIntrinsic = s.integer(3) != 0;
    r.format = s.text(4);
    r.resource = s.text(5);
    r.issuedAt = fromMs(s.integer(6));
    return r;
  }

  static ImageEntrypoint readImage(const Stmt& s) {
    ImageEntrypoint e;
    e.image = s.text(0);
    e.entrypoint = fromJsonArray(s.text(1));
    e.cmd = fromJsonArray(s.text(2));
    e.source = s.text(3);
    e.updatedAt = fromMs(s.integer(4));
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
  sqlite3* db = nullptr;
  const int rc =
      sqlite3_open_v2(path.c_str(), &db,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = db ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close(db);
    return Error::unavailable("cannot open " + path + ": " + msg);
  }
  sqlite3_busy_timeout(db, busyTimeoutMs);
  auto store = std::make_unique<SqliteEmbedStore>(db);
  if (auto st = store->init(); !st.ok()) return st.error();
  return std::unique_ptr<EmbedStore>(std::move(store));
}

}  // namespace dc::embed
