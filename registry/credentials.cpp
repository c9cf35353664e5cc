#include "registry/credentials.h"

#include <sqlite3.h>

#include <algorithm>
#include <cctype>
#include <mutex>

#include "common/sqlite_tables.h"
#include "registry/secret_box.h"

namespace dc::registry {

namespace {

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS registry_meta (
  key   TEXT PRIMARY KEY,
  value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS registry_credentials (
  id               TEXT PRIMARY KEY,
  type             TEXT NOT NULL,
  account_id       TEXT NOT NULL,
  sealed_secret    BLOB NOT NULL,
  description      TEXT NOT NULL,
  last_modified_ms INTEGER NOT NULL
);
)sql";

class SqliteCredentialStore final : public CredentialStore {
 public:
  SqliteCredentialStore(sqlite3* db, std::string key) : db_(db), box_(std::move(key)) {}
  ~SqliteCredentialStore() override { sqlite3_close(db_); }

  Status init() {
    std::lock_guard lock(mu_);
    return createVersionedTables(db_, kSchema, "registry_meta", kRegistryCredentialsSchemaVersion,
                                 "registry credentials");
  }

  Status put(const RegistryCredential& c) override {
    std::lock_guard lock(mu_);
    SqliteStatement s(db_,
                      "INSERT OR REPLACE INTO registry_credentials (id, type, account_id, "
                      "sealed_secret, description, last_modified_ms) VALUES (?1,?2,?3,?4,?5,?6)");
    if (!s.ok()) return failure("prepare insert");
    s.text(1, c.id);
    s.text(2, c.type);
    s.text(3, c.accountId);
    s.blob(4, box_.seal(c.secret, c.id));
    s.text(5, c.description);
    s.integer(6, toEpochMs(c.lastModified));
    if (s.step() != SQLITE_DONE) return failure("insert");
    return Status::success();
  }

  Result<std::optional<RegistryCredential>> find(std::string_view id) override {
    std::lock_guard lock(mu_);
    SqliteStatement s(db_,
                      "SELECT id, type, account_id, description, last_modified_ms, sealed_secret "
                      "FROM registry_credentials WHERE id = ?1");
    if (!s.ok()) return failure("prepare select");
    s.text(1, id);
    const int rc = s.step();
    if (rc == SQLITE_DONE) return std::optional<RegistryCredential>();
    if (rc != SQLITE_ROW) return failure("select");
    RegistryCredential c = row(s);
    auto secret = box_.open(s.columnBlob(5), c.id);
    if (!secret)
      return Error{ErrorKind::kUnavailable, "credential_unreadable",
                   "registry credential \"" + c.id +
                       "\" cannot be decrypted with the key in registry.key (was the key file "
                       "replaced?); store the credential again",
                   "registryCredentialID"};
    c.secret = std::move(*secret);
    return std::optional<RegistryCredential>(std::move(c));
  }

  Result<std::vector<RegistryCredential>> list() override {
    std::lock_guard lock(mu_);
    SqliteStatement s(db_,
                      "SELECT id, type, account_id, description, last_modified_ms "
                      "FROM registry_credentials ORDER BY id");
    if (!s.ok()) return failure("prepare list");
    std::vector<RegistryCredential> out;
    int rc;
    while ((rc = s.step()) == SQLITE_ROW) out.push_back(row(s));
    if (rc != SQLITE_DONE) return failure("list");
    return out;
  }

  Status remove(std::string_view id) override {
    std::lock_guard lock(mu_);
    SqliteStatement s(db_, "DELETE FROM registry_credentials WHERE id = ?1");
    if (!s.ok()) return failure("prepare delete");
    s.text(1, id);
    if (s.step() != SQLITE_DONE) return failure("delete");
    if (sqlite3_changes(db_) == 0)
      return Error::notFound("credential_not_found",
                             "no registry credential with id \"" + std::string(id) + "\"", "id");
    return Status::success();
  }

 private:
  static RegistryCredential row(const SqliteStatement& s) {
    RegistryCredential c;
    c.id = s.columnText(0);
    c.type = s.columnText(1);
    c.accountId = s.columnText(2);
    c.description = s.columnText(3);
    c.lastModified = fromEpochMs(s.columnInteger(4));
    return c;
  }

  Error failure(const char* what) const {
    return Error::unavailable(std::string("registry credentials: ") + what +
                              " failed: " + sqlite3_errmsg(db_));
  }

  sqlite3* db_;
  SecretBox box_;
  std::mutex mu_;
};

}  // namespace

Status validateCredential(const RegistryCredential& c) {
  const auto bad = [](const char* field, const std::string& why) {
    return Error::invalid("invalid_field", field, std::string(field) + ": " + why);
  };
  if (c.id.empty() || c.id.size() > 64 ||
      !std::all_of(c.id.begin(), c.id.end(), [](unsigned char ch) {
        return std::isalnum(ch) || ch == '.' || ch == '_' || ch == '-';
      }))
    return bad("_id", "1 to 64 characters of A-Z, a-z, 0-9, '.', '_' and '-'");
  if (c.type != "basic" && c.type != "aws") return bad("type", "expected basic or aws");
  if (c.accountId.empty() || c.accountId.size() > 256)
    return bad("accountID", c.type == "aws" ? "the AWS access key ID, 1 to 256 characters"
                                            : "the registry user name, 1 to 256 characters");
  if (c.secret.empty() || c.secret.size() > 4096) return bad("secret", "1 to 4096 characters");
  if (c.description.size() > 256) return bad("description", "at most 256 characters");
  for (const auto* f : {&c.accountId, &c.secret, &c.description})
    if (std::any_of(f->begin(), f->end(), [](unsigned char ch) { return ch < 0x20; }))
      return bad(f == &c.accountId ? "accountID"
                 : f == &c.secret  ? "secret"
                                   : "description",
                 "control characters are not allowed");
  return Status::success();
}

Result<std::unique_ptr<CredentialStore>> openCredentialStore(const std::string& path,
                                                             std::string key, int busyTimeoutMs) {
  if (key.size() != 32) return Error::internal("registry credential key must be 32 bytes");
  auto db = openSqliteConnection(path, busyTimeoutMs);
  if (!db.ok()) return db.error();
  auto store = std::make_unique<SqliteCredentialStore>(*db, std::move(key));
  if (auto st = store->init(); !st.ok()) return st.error();
  return std::unique_ptr<CredentialStore>(std::move(store));
}

}  // namespace dc::registry
