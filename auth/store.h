// Narrow storage interface of access control: Console users and Defender credentials.
// Secrets are never stored: users keep a PBKDF2 hash and its salt, credentials a SHA-256 hash.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "auth/permissions.h"
#include "common/clock.h"
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

/// Thread-safe implementations. Errors: kUnavailable when storage fails.
class AuthStore {
 public:
  virtual ~AuthStore() = default;
  virtual Result<std::vector<UserRecord>> loadUsers() = 0;
  /// Inserts or replaces the user named `user.username`.
  virtual Status putUser(const UserRecord& user) = 0;
  /// Deletes; no error when absent.
  virtual Status deleteUser(const std::string& username) = 0;
  virtual Result<std::vector<CredentialRecord>> loadCredentials() = 0;
  /// Inserts or replaces the credential with `credential.id`.
  virtual Status putCredential(const CredentialRecord& credential) = 0;
};

/// Schema version of the auth tables written by this build.
inline constexpr int kAuthSchemaVersion = 1;

/// SQLite backend: its own tables (auth_meta, auth_users, auth_credentials) in the Console's
/// database file, created on open. `path` may be ":memory:". Errors: kUnavailable when the file
/// cannot be opened; kInvalidArgument "schema_too_new" when written by a newer Console.
Result<std::unique_ptr<AuthStore>> openSqliteAuthStore(const std::string& path,
                                                       int busyTimeoutMs = 5000);

}  // namespace dc::auth
