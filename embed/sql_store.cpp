#include "embed/sql_store.h"

#include <iterator>
#include <nlohmann/json.hpp>

#include "common/sqlite_tables.h"  // toEpochMs

namespace dc::embed {

namespace {

/// The embed tables, version 1, the same text on both backends (BIGINT is an INTEGER column to
/// SQLite; files of earlier Consoles, created with INTEGER, read the same).
const sql::Migration kMigrations[] = {{1, R"sql(
CREATE TABLE IF NOT EXISTS embed_app_ids (
  uuid                TEXT PRIMARY KEY,
  app_id              TEXT NOT NULL,
  family              TEXT NOT NULL,
  family_is_intrinsic INTEGER NOT NULL,
  format              TEXT NOT NULL,
  resource            TEXT NOT NULL,
  issued_at_ms        BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS embed_app_ids_by_family ON embed_app_ids (family, issued_at_ms);
CREATE INDEX IF NOT EXISTS embed_app_ids_by_time ON embed_app_ids (issued_at_ms, app_id);
CREATE TABLE IF NOT EXISTS embed_image_entrypoints (
  image         TEXT PRIMARY KEY,
  entrypoint    TEXT NOT NULL,
  cmd           TEXT NOT NULL,
  source        TEXT NOT NULL,
  updated_at_ms BIGINT NOT NULL
);
)sql",
                                       ""}};

static_assert(std::size(kMigrations) == kEmbedSchemaVersion);

constexpr const char* kIssuedColumns =
    "uuid, app_id, family, family_is_intrinsic, format, resource, issued_at_ms";
constexpr const char* kImageColumns = "image, entrypoint, cmd, source, updated_at_ms";

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

IssuedAppId readIssued(const sql::Row& r) {
  IssuedAppId out;
  out.uuid = r.text(0);
  out.appId = r.text(1);
  out.family = r.text(2);
  out.familyIsIntrinsic = r.integer(3) != 0;
  out.format = r.text(4);
  out.resource = r.text(5);
  out.issuedAt = fromEpochMs(r.integer(6));
  return out;
}

ImageEntrypoint readImage(const sql::Row& r) {
  ImageEntrypoint e;
  e.image = r.text(0);
  e.entrypoint = fromJsonArray(r.text(1));
  e.cmd = fromJsonArray(r.text(2));
  e.source = r.text(3);
  e.updatedAt = fromEpochMs(r.integer(4));
  return e;
}

Error failure(const Error& e, const std::string& what) {
  Error out = e;
  out.message = "embed store: " + what + ": " + e.message;
  return out;
}

class SqlEmbedStore final : public EmbedStore {
 public:
  explicit SqlEmbedStore(std::shared_ptr<sql::Database> db) : db_(std::move(db)) {}

  Status recordIssued(const std::vector<IssuedAppId>& ids) override {
    return db_->transaction([&](sql::Database& tx) -> Status {
      for (const auto& r : ids) {
        auto w = tx.run(std::string("INSERT INTO embed_app_ids (") + kIssuedColumns +
                            ") VALUES ($1, $2, $3, $4, $5, $6, $7)",
                        {r.uuid, r.appId, r.family, static_cast<long long>(r.familyIsIntrinsic),
                         r.format, r.resource, toEpochMs(r.issuedAt)});
        if (w.ok()) continue;
        if (w.error().code == "constraint_violation")
          return Error{ErrorKind::kConflict, "duplicate_app_id",
                       "App ID UUID " + r.uuid + " was already issued", ""};
        return failure(w.error(), "insert App ID");
      }
      return Status::success();
    });
  }

  // `CAST($1 AS TEXT)` tells PostgreSQL the parameter's type where only '' or a function
  // argument would (SQLite reads it as a no-op).
  Result<Page<IssuedAppId>> listIssued(std::string_view family, size_t offset,
                                       size_t limit) override {
    const std::string where = " FROM embed_app_ids WHERE (CAST($1 AS TEXT) = '' OR family = $1)";
    auto count = db_->run("SELECT COUNT(*)" + where, {std::string(family)});
    if (!count.ok()) return failure(count.error(), "count App IDs");
    Page<IssuedAppId> page;
    page.total = count->empty() ? 0 : static_cast<size_t>((*count)[0].integer(0));
    auto rows = db_->run(
        std::string("SELECT ") + kIssuedColumns + where +
            " ORDER BY issued_at_ms, app_id LIMIT $2 OFFSET $3",
        {std::string(family), static_cast<long long>(limit), static_cast<long long>(offset)});
    if (!rows.ok()) return failure(rows.error(), "list App IDs");
    for (const auto& r : *rows) page.items.push_back(readIssued(r));
    return page;
  }

  Result<std::optional<IssuedAppId>> findIssuedByUuid(std::string_view uuid) override {
    auto rows =
        db_->run(std::string("SELECT ") + kIssuedColumns + " FROM embed_app_ids WHERE uuid = $1",
                 {std::string(uuid)});
    if (!rows.ok()) return failure(rows.error(), "find App ID");
    if (rows->empty()) return std::optional<IssuedAppId>();
    return std::optional<IssuedAppId>(readIssued(rows->front()));
  }

  Result<std::vector<IssuedAppId>> findIssuedByUuids(
      const std::vector<std::string>& uuids) override {
    std::vector<IssuedAppId> out;
    if (uuids.empty()) return out;
    // One statement with a bound parameter per UUID; a page has at most 250 (the list's limit),
    // well below both backends' parameter limits (SQLite 32766, PostgreSQL 65535).
    std::string sql =
        std::string("SELECT ") + kIssuedColumns + " FROM embed_app_ids WHERE uuid IN (";
    std::vector<sql::Value> params;
    params.reserve(uuids.size());
    for (size_t i = 0; i < uuids.size(); ++i) {
      if (i > 0) sql += ", ";
      sql += '$';  // piece by piece: GCC 12 -Wrestrict at -O2
      sql += std::to_string(i + 1);
      params.emplace_back(uuids[i]);
    }
    sql += ')';
    auto rows = db_->run(sql, params);
    if (!rows.ok()) return failure(rows.error(), "find App IDs");
    for (const auto& r : *rows) out.push_back(readIssued(r));
    return out;
  }

  Status putImage(const ImageEntrypoint& e) override {
    auto w = db_->run(
        std::string("INSERT INTO embed_image_entrypoints (") + kImageColumns +
            ") VALUES ($1, $2, $3, $4, $5) ON CONFLICT (image) DO UPDATE SET "
            "entrypoint = excluded.entrypoint, cmd = excluded.cmd, "
            "source = excluded.source, updated_at_ms = excluded.updated_at_ms",
        {e.image, toJsonArray(e.entrypoint), toJsonArray(e.cmd), e.source, toEpochMs(e.updatedAt)});
    if (!w.ok()) return failure(w.error(), "store image entrypoint");
    return Status::success();
  }

  Result<std::optional<ImageEntrypoint>> findImage(std::string_view image) override {
    auto rows = db_->run(
        std::string("SELECT ") + kImageColumns + " FROM embed_image_entrypoints WHERE image = $1",
        {std::string(image)});
    if (!rows.ok()) return failure(rows.error(), "find image");
    if (rows->empty()) return std::optional<ImageEntrypoint>();
    return std::optional<ImageEntrypoint>(readImage(rows->front()));
  }

  Result<bool> deleteImage(std::string_view image) override {
    auto rows = db_->run("DELETE FROM embed_image_entrypoints WHERE image = $1 RETURNING image",
                         {std::string(image)});
    if (!rows.ok()) return failure(rows.error(), "delete image entrypoint");
    return !rows->empty();
  }

  Result<Page<ImageEntrypoint>> listImages(std::string_view prefix, size_t offset,
                                           size_t limit) override {
    // Prefix match with substr, not LIKE, so '%' and '_' in references need no escaping.
    const std::string where =
        " FROM embed_image_entrypoints WHERE substr(image, 1, length(CAST($1 AS TEXT))) = $1";
    auto count = db_->run("SELECT COUNT(*)" + where, {std::string(prefix)});
    if (!count.ok()) return failure(count.error(), "count images");
    Page<ImageEntrypoint> page;
    page.total = count->empty() ? 0 : static_cast<size_t>((*count)[0].integer(0));
    auto rows = db_->run(
        std::string("SELECT ") + kImageColumns + where + " ORDER BY image LIMIT $2 OFFSET $3",
        {std::string(prefix), static_cast<long long>(limit), static_cast<long long>(offset)});
    if (!rows.ok()) return failure(rows.error(), "list images");
    for (const auto& r : *rows) page.items.push_back(readImage(r));
    return page;
  }

 private:
  std::shared_ptr<sql::Database> db_;
};

}  // namespace

Result<std::unique_ptr<EmbedStore>> openEmbedStore(std::shared_ptr<sql::Database> db) {
  if (auto st = db->migrate("embed", kMigrations); !st.ok()) return st.error();
  return std::unique_ptr<EmbedStore>(new SqlEmbedStore(std::move(db)));
}

}  // namespace dc::embed
