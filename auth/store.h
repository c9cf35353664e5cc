// Narrow storage interface of access control: Console users and Defender credentials.
// Secrets are never stored: users keep a PBKDF2 hash and its salt, credentials a SHA-256 hash.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "auth/permissions.h"
#include "common/clock.h"
#include "common/sql_database.h"
#include "common/status.h"

namespace dc::auth {

struct UserRecord {
  std::string username;
  Role role = Role::kAuditor;
  std::string salt;          // raw bytes (16)
  std::string passwordHash;  // raw bytes: PBKDF2-HMAC-SHA256(password, salt, iterations)
  int iterations = 0;
  /// Bumped on every password or role change; tokens carry the epoch they were issued under,
  /// so older tokens stop working (revocation).
  long long tokenEpoch = 0;
  TimePoint createdAt{};
  TimePoint passwordChangedAt{};
};

struct CredentialRecord {
  std::string id;     // public identifier, 16 hex digits
  std::string hash;   // hex SHA-256 of the secret credential
  std::string appId;  // scope: the App ID it may report as; empty = enrolment (Console-wide)
  std::string description;
  TimePoint createdAt{};
  std::optional<TimePoint> revokedAt;
};

/// A change of one stored user (AuthStore::updateUser): a new password — `salt`,
/// `passwordHash`, `iterations` and `passwordChangedAt` of `password` — and/or a new role.
struct UserChange {
  std::optional<UserRecord> password;
  std::optional<Role> role;
};

/// Thread-safe implementations. Errors: kUnavailable when storage fails.
class AuthStore {
 public:
  virtual ~AuthStore() = default;
  virtual Result<std::vector<UserRecord>> loadUsers() = 0;
  /// Inserts or replaces the user named `user.username`. Error kConflict "last_admin" (field
  /// "role") when that would make the only stored admin another role; the check and the write are
  /// one transaction, so replicas on one database cannot together leave no admin.
  virtual Status putUser(const UserRecord& user) = 0;
  /// Inserts a new user. Error kConflict "user_exists" when a user of that name is stored
  /// (created here or by another Console on the same database).
  virtual Status insertUser(const UserRecord& user) = 0;
  /// Applies `change` to the stored user `username` in one transaction (the row locked on
  /// PostgreSQL) and moves its token epoch on from the stored value, so a Console whose copy of
  /// the users is stale neither undoes another replica's change nor brings back a deleted user.
  /// Returns the user as stored after the change; nullopt when no user of that name is stored.
  /// Error kConflict "last_admin" (field "role") as for putUser.
  virtual Result<std::optional<UserRecord>> updateUser(const std::string& username,
                                                       const UserChange& change) = 0;
  /// Deletes; no error when absent. Error kConflict "last_admin" (field "username") when the
  /// user is the only stored admin (checked in the deleting transaction, as for putUser).
  virtual Status deleteUser(const std::string& username) = 0;
  virtual Result<std::vector<CredentialRecord>> loadCredentials() = 0;
  /// Inserts or replaces the credential with `credential.id`.
  virtual Status putCredential(const CredentialRecord& credential) = 0;
};

/// Schema version of the auth tables written by this build.
inline constexpr int kAuthSchemaVersion = 1;

/// The auth tables (auth_users, auth_credentials; schema version in auth_meta on SQLite, in
/// schema_migrations on PostgreSQL) in `db`, created or migrated on open. Several stores on one
/// database (replicas) see each other's writes on their next read. Errors: kUnavailable when the
/// database fails; kInvalidArgument "schema_too_new" when written by a newer Console.
Result<std::unique_ptr<AuthStore>> openAuthStore(std::shared_ptr<sql::Database> db);

/// A secret of `bytes` random bytes named `name`, shared by every Console on `db`: kept in the
/// table console_secrets, created by the first caller (INSERT … ON CONFLICT DO NOTHING, so when
/// replicas start together the first insert wins) and read back by every caller. Used for the
/// token signing key on PostgreSQL, so that every replica verifies every token. Errors:
/// kUnavailable when the database fails; kInvalidArgument "secret_invalid" when the stored value
/// has another size.
Result<std::string> loadOrCreateSharedSecret(sql::Database& db, const std::string& name,
                                             size_t bytes);

}  // namespace dc::auth
