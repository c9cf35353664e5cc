// AuthStore on sql::Database (see auth/store.h): one implementation for SQLite and PostgreSQL.
// Bound parameters only. Sign-ins and user changes are low-rate; the service keeps everything it
// checks per request in memory and reloads it (AuthService::reload).
#include <iterator>

#include "auth/crypto.h"
#include "auth/store.h"
#include "common/sqlite_tables.h"  // toEpochMs

namespace dc::auth {

namespace {

/// The auth tables, version 1. The SQLite text is the layout of earlier Consoles (their
/// auth_meta version row is kept by sql::Database::migrate); PostgreSQL has BYTEA and BIGINT.
const sql::Migration kMigrations[] = {{1, R"sql(
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
)sql",
                                       R"sql(
CREATE TABLE IF NOT EXISTS auth_users (
  username               TEXT PRIMARY KEY,
  role                   TEXT NOT NULL,
  salt                   BYTEA NOT NULL,
  password_hash          BYTEA NOT NULL,
  iterations             BIGINT NOT NULL,
  token_epoch            BIGINT NOT NULL,
  created_at_ms          BIGINT NOT NULL,
  password_changed_at_ms BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS auth_credentials (
  id            TEXT PRIMARY KEY,
  hash          TEXT NOT NULL UNIQUE,
  app_id        TEXT NOT NULL,
  description   TEXT NOT NULL,
  created_at_ms BIGINT NOT NULL,
  revoked_at_ms BIGINT
);
)sql"}};

static_assert(std::size(kMigrations) == kAuthSchemaVersion);

/// Secrets shared by replicas (loadOrCreateSharedSecret), version 1.
const sql::Migration kSecretMigrations[] = {{1, R"sql(
CREATE TABLE IF NOT EXISTS console_secrets (
  name  TEXT PRIMARY KEY,
  value BLOB NOT NULL
);
)sql",
                                             R"sql(
CREATE TABLE IF NOT EXISTS console_secrets (
  name  TEXT PRIMARY KEY,
  value BYTEA NOT NULL
);
)sql"}};

Error failure(const Error& e, const std::string& what) {
  Error out = e;
  out.message = "auth store: " + what + ": " + e.message;
  return out;
}

constexpr std::string_view kSelectUsers =
    "SELECT username, role, salt, password_hash, iterations, token_epoch, created_at_ms, "
    "password_changed_at_ms FROM auth_users ";

/// A row of kSelectUsers.
UserRecord userOf(const sql::Row& r) {
  UserRecord u;
  u.username = r.text(0);
  u.role = parseRole(r.text(1)).value_or(Role::kAuditor);
  u.salt = r.blob(2);
  u.passwordHash = r.blob(3);
  u.iterations = static_cast<int>(r.integer(4));
  u.tokenEpoch = r.integer(5);
  u.createdAt = fromEpochMs(r.integer(6));
  u.passwordChangedAt = fromEpochMs(r.integer(7));
  return u;
}

// One user row: the statement's start and its eight values in that order.
constexpr std::string_view kInsertUser =
    "INSERT INTO auth_users (username, role, salt, password_hash, iterations, token_epoch, "
    "created_at_ms, password_changed_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ";

std::vector<sql::Value> userValues(const UserRecord& u) {
  return {u.username,
          std::string(roleName(u.role)),
          sql::Blob{u.salt},
          sql::Blob{u.passwordHash},
          static_cast<long long>(u.iterations),
          u.tokenEpoch,
          toEpochMs(u.createdAt),
          toEpochMs(u.passwordChangedAt)};
}

class SqlAuthStore final : public AuthStore {
 public:
  explicit SqlAuthStore(std::shared_ptr<sql::Database> db) : db_(std::move(db)) {}

  Result<std::vector<UserRecord>> loadUsers() override {
    auto rows = db_->run(std::string(kSelectUsers) + "ORDER BY username");
    if (!rows.ok()) return failure(rows.error(), "read users");
    std::vector<UserRecord> out;
    out.reserve(rows->size());
    for (const auto& r : *rows) out.push_back(userOf(r));
    return out;
  }

  Status putUser(const UserRecord& u) override {
    return db_->transaction([&](sql::Database& t) -> Status {
      if (u.role != Role::kAdmin)
        if (auto st = keepsAnAdmin(t, u.username,
                                   "role: '" + u.username +
                                       "' is the only admin; make another user "
                                       "admin first",
                                   "role");
            !st.ok())
          return st;
      auto w = t.run(std::string(kInsertUser) +
                         "ON CONFLICT (username) DO UPDATE SET role = excluded.role, "
                         "salt = excluded.salt, password_hash = excluded.password_hash, "
                         "iterations = excluded.iterations, token_epoch = excluded.token_epoch, "
                         "created_at_ms = excluded.created_at_ms, "
                         "password_changed_at_ms = excluded.password_changed_at_ms",
                     userValues(u));
      if (!w.ok()) return failure(w.error(), "write user");
      return Status::success();
    });
  }

  Status insertUser(const UserRecord& u) override {
    auto w =
        db_->run(std::string(kInsertUser) + "ON CONFLICT (username) DO NOTHING RETURNING username",
                 userValues(u));
    if (!w.ok()) return failure(w.error(), "create user");
    if (w->empty())
      return Error{ErrorKind::kConflict, "user_exists", "user '" + u.username + "' already exists",
                   "username"};
    return Status::success();
  }

  Result<std::optional<UserRecord>> updateUser(const std::string& username,
                                               const UserChange& change) override {
    std::optional<UserRecord> out;
    auto st = db_->transaction([&](sql::Database& t) -> Status {
      out.reset();
      if (change.role && *change.role != Role::kAdmin)
        if (auto st = keepsAnAdmin(
                t, username,
                "role: '" + username + "' is the only admin; make another user admin first",
                "role");
            !st.ok())
          return st;
      const bool pg = t.backend() == sql::Backend::kPostgres;
      auto rows =
          t.run(std::string(kSelectUsers) + "WHERE username = $1" + (pg ? " FOR UPDATE" : ""),
                {username});
      if (!rows.ok()) return failure(rows.error(), "read user");
      if (rows->empty()) return Status::success();
      UserRecord u = userOf(rows->front());
      if (change.password) {
        u.salt = change.password->salt;
        u.passwordHash = change.password->passwordHash;
        u.iterations = change.password->iterations;
        u.passwordChangedAt = change.password->passwordChangedAt;
      }
      if (change.role) u.role = *change.role;
      ++u.tokenEpoch;
      auto w = t.run(
          "UPDATE auth_users SET role = $2, salt = $3, password_hash = $4, iterations = $5, "
          "token_epoch = $6, password_changed_at_ms = $7 WHERE username = $1",
          {u.username, std::string(roleName(u.role)), sql::Blob{u.salt}, sql::Blob{u.passwordHash},
           static_cast<long long>(u.iterations), u.tokenEpoch, toEpochMs(u.passwordChangedAt)});
      if (!w.ok()) return failure(w.error(), "write user");
      out = std::move(u);
      return Status::success();
    });
    if (!st.ok()) return st.error();
    return out;
  }

  Status deleteUser(const std::string& username) override {
    return db_->transaction([&](sql::Database& t) -> Status {
      if (auto st = keepsAnAdmin(t, username,
                                 "'" + username + "' is the only admin and cannot be deleted",
                                 "username");
          !st.ok())
        return st;
      auto w = t.run("DELETE FROM auth_users WHERE username = $1", {username});
      if (!w.ok()) return failure(w.error(), "delete user");
      return Status::success();
    });
  }

  Result<std::vector<CredentialRecord>> loadCredentials() override {
    auto rows = db_->run(
        "SELECT id, hash, app_id, description, created_at_ms, revoked_at_ms "
        "FROM auth_credentials ORDER BY created_at_ms, id");
    if (!rows.ok()) return failure(rows.error(), "read credentials");
    std::vector<CredentialRecord> out;
    out.reserve(rows->size());
    for (const auto& r : *rows) {
      CredentialRecord c;
      c.id = r.text(0);
      c.hash = r.text(1);
      c.appId = r.text(2);
      c.description = r.text(3);
      c.createdAt = fromEpochMs(r.integer(4));
      if (!r.null(5)) c.revokedAt = fromEpochMs(r.integer(5));
      out.push_back(std::move(c));
    }
    return out;
  }

  Status putCredential(const CredentialRecord& c) override {
    auto w = db_->run(
        "INSERT INTO auth_credentials (id, hash, app_id, description, created_at_ms, "
        "revoked_at_ms) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO UPDATE SET "
        "hash = excluded.hash, app_id = excluded.app_id, description = excluded.description, "
        "created_at_ms = excluded.created_at_ms, revoked_at_ms = excluded.revoked_at_ms",
        {c.id, c.hash, c.appId, c.description, toEpochMs(c.createdAt),
         c.revokedAt ? sql::Value(toEpochMs(*c.revokedAt)) : sql::Value(nullptr)});
    if (!w.ok()) {
      if (w.error().code == "constraint_violation")
        return Error{ErrorKind::kConflict, "duplicate_credential", "credential already stored", ""};
      return failure(w.error(), "write credential");
    }
    return Status::success();
  }

 private:
  // Inside a transaction about to delete `username` or make it a non-admin: kConflict
  // "last_admin" (`message`, `field`) when it is the only stored admin. On PostgreSQL the admin
  // rows are locked (FOR UPDATE) until the transaction ends, so two replicas removing two
  // different admins at once cannot leave none; SQLite's write transaction is exclusive.
  static Status keepsAnAdmin(sql::Database& t, const std::string& username,
                             const std::string& message, const char* field) {
    const bool pg = t.backend() == sql::Backend::kPostgres;
    auto admins = t.run(std::string("SELECT username FROM auth_users WHERE role = 'admin'") +
                        (pg ? " ORDER BY username FOR UPDATE" : ""));
    if (!admins.ok()) return failure(admins.error(), "read admins");
    if (admins->size() == 1 && admins->front().text(0) == username)
      return Error{ErrorKind::kConflict, "last_admin", message, field};
    return Status::success();
  }

  std::shared_ptr<sql::Database> db_;
};

}  // namespace

Result<std::unique_ptr<AuthStore>> openAuthStore(std::shared_ptr<sql::Database> db) {
  if (auto st = db->migrate("auth", kMigrations); !st.ok()) return st.error();
  return std::unique_ptr<AuthStore>(new SqlAuthStore(std::move(db)));
}

Result<std::string> loadOrCreateSharedSecret(sql::Database& db, const std::string& name,
                                             size_t bytes) {
  if (auto st = db.migrate("secrets", kSecretMigrations); !st.ok()) return st.error();
  // The first writer wins; every later call, on any replica, reads what it stored.
  auto put = db.run(
      "INSERT INTO console_secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
      {name, sql::Blob{randomBytes(bytes)}});
  if (!put.ok()) return failure(put.error(), "store the shared secret " + name);
  auto got = db.run("SELECT value FROM console_secrets WHERE name = $1", {name});
  if (!got.ok()) return failure(got.error(), "read the shared secret " + name);
  if (got->empty())
    return Error::unavailable("auth store: the shared secret " + name + " was not stored");
  std::string value = (*got)[0].blob(0);
  if (value.size() != bytes)
    return Error{ErrorKind::kInvalidArgument, "secret_invalid",
                 "the shared secret " + name + " in console_secrets holds " +
                     std::to_string(value.size()) + " bytes, expected " + std::to_string(bytes),
                 name};
  return value;
}

}  // namespace dc::auth
