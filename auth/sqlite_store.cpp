// SQLite backend of AuthStore (see auth/store.h). Bound parameters only; one connection guarded
// by a mutex (sign-ins and user changes are low-rate; the service keeps everything it checks per
// request in memory).
#include <sqlite3.h>

#include <mutex>

#include "auth/store.h"
#include "common/sqlite_tables.h"

namespace dc::auth {

namespace {

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS auth_meta (
  key   TEXT PRIMARY KEY,
  value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS auth_users (
  username               TEXT PRIMARY KEY,
  role                   TEXT NOT NULL,
  salt                   BLOB NOT NULL,
  password_hash          BLOB NOT NULL,
  iterations             INTEGER NOT NULL,
  token_epoch            INTEGER NOT NULL,
  created_at_ms          INTEGER NOT NULL,
  password_changed_at_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS auth_credentials (
  id            TEXT PRIMARY KEY,
  hash          TEXT NOT NULL UNIQUE,
  app_id        TEXT NOT NULL,
  description   TEXT NOT NULL,
  created_at_ms INTEGER NOT NULL,
  revoked_at_ms INTEGER
);
)sql";

using Stmt = SqliteStatement;

class SqliteAuthStore final : public AuthStore {
 public:
  explicit SqliteAuthStore(sqlite3* db) : db_(db) {}
  ~SqliteAuthStore() override { sqlite3_close(db_); }

  Status init() {
    std::lock_guard lock(mu_);
    return createVersionedTables(db_, kSchema, "auth_meta", kAuthSchemaVersion, "auth");
  }

  Result<std::vector<UserRecord>> loadUsers() override {
    std::lock_guard lock(mu_);
    Stmt s(db_,
           "SELECT username, role, salt, password_hash, iterations, token_epoch, created_at_ms, "
           "password_changed_at_ms FROM auth_users ORDER BY username");
    if (!s.ok()) return failure("prepare user query");
    std::vector<UserRecord> out;
    int rc;
    while ((rc = s.step()) == SQLITE_ROW) {
      UserRecord u;
      u.username = s.columnText(0);
      u.role = parseRole(s.columnText(1)).value_or(Role::kAuditor);
      u.salt = s.columnBlob(2);
      u.passwordHash = s.columnBlob(3);
      u.iterations = static_cast<int>(s.columnInteger(4));
      u.tokenEpoch = s.columnInteger(5);
      u.createdAt = fromEpochMs(s.columnInteger(6));
      u.passwordChangedAt = fromEpochMs(s.columnInteger(7));
      out.push_back(std::move(u));
    }
    if (rc != SQLITE_DONE) return failure("read users");
    return out;
  }

  Status putUser(const UserRecord& u) override {
    std::lock_guard lock(mu_);
    Stmt s(db_,
           "INSERT OR REPLACE INTO auth_users (username, role, salt, password_hash, iterations, "
           "token_epoch, created_at_ms, password_changed_at_ms) "
           "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)");
    if (!s.ok()) return failure("prepare user write");
    s.text(1, u.username);
    s.text(2, roleName(u.role));
    s.blob(3, u.salt);
    s.blob(4, u.passwordHash);
    s.integer(5, u.iterations);
    s.integer(6, u.tokenEpoch);
    s.integer(7, toEpochMs(u.createdAt));
    s.integer(8, toEpochMs(u.passwordChangedAt));
    if (s.step() != SQLITE_DONE) return failure("write user");
    return Status::success();
  }

  Status deleteUser(const std::string& username) override {
    std::lock_guard lock(mu_);
    Stmt s(db_, "DELETE FROM auth_users WHERE username = ?1");
    if (!s.ok()) return failure("prepare user delete");
    s.text(1, username);
    if (s.step() != SQLITE_DONE) return failure("delete user");
    return Status::success();
  }

  Result<std::vector<CredentialRecord>> loadCredentials() override {
    std::lock_guard lock(mu_);
    Stmt s(db_,
           "SELECT id, hash, app_id, description, created_at_ms, revoked_at_ms "
           "FROM auth_credentials ORDER BY created_at_ms, id");
    if (!s.ok()) return failure("prepare credential query");
    std::vector<CredentialRecord> out;
    int rc;
    while ((rc = s.step()) == SQLITE_ROW) {
      CredentialRecord c;
      c.id = s.columnText(0);
      c.hash = s.columnText(1);
      c.appId = s.columnText(2);
      c.description = s.columnText(3);
      c.createdAt = fromEpochMs(s.columnInteger(4));
      if (!s.columnNull(5)) c.revokedAt = fromEpochMs(s.columnInteger(5));
      out.push_back(std::move(c));
    }
    if (rc != SQLITE_DONE) return failure("read credentials");
    return out;
  }

  Status putCredential(const CredentialRecord& c) override {
    std::lock_guard lock(mu_);
    Stmt s(db_,
           "INSERT INTO auth_credentials (id, hash, app_id, description, created_at_ms, "
           "revoked_at_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (id) DO UPDATE SET "
           "hash = excluded.hash, app_id = excluded.app_id, description = excluded.description, "
           "created_at_ms = excluded.created_at_ms, revoked_at_ms = excluded.revoked_at_ms");
    if (!s.ok()) return failure("prepare credential write");
    s.text(1, c.id);
    s.text(2, c.hash);
    s.text(3, c.appId);
    s.text(4, c.description);
    s.integer(5, toEpochMs(c.createdAt));
    if (c.revokedAt)
      s.integer(6, toEpochMs(*c.revokedAt));
    else
      s.null(6);
    const int rc = s.step();
    if ((rc & 0xff) == SQLITE_CONSTRAINT)
      return Error{ErrorKind::kConflict, "duplicate_credential", "credential already stored", ""};
    if (rc != SQLITE_DONE) return failure("write credential");
    return Status::success();
  }

 private:
  Error failure(const std::string& what) {
    return Error::unavailable("auth store: " + what + ": " + sqlite3_errmsg(db_));
  }

  std::mutex mu_;
  sqlite3* db_;
};

}  // namespace

Result<std::unique_ptr<AuthStore>> openSqliteAuthStore(const std::string& path, int busyTimeoutMs) {
  auto db = openSqliteConnection(path, busyTimeoutMs);
  if (!db.ok()) return db.error();
  auto store = std::make_unique<SqliteAuthStore>(*db);
  if (auto st = store->init(); !st.ok()) return st.error();
  return std::unique_ptr<AuthStore>(std::move(store));
}

}  // namespace dc::auth
