// Registry credentials (the `registryCredentialID` of an embed request), kept in the Console's
// database with the secret sealed by AES-256-GCM (registry/secret_box.h). The secret is never
// returned by list() and never logged (docs/security.md).
//
// Table `registry_credentials` (schema version kRegistryCredentialsSchemaVersion in
// `registry_meta` on SQLite, in schema_migrations on PostgreSQL), on sql::Database. Thread-safe;
// nothing is cached, so Consoles on one database (replicas) see each other's credentials at once
// — when they share the sealing key (docs/operations.md).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/sql_database.h"
#include "common/status.h"

namespace dc::registry {

inline constexpr int kRegistryCredentialsSchemaVersion = 1;

/// Kinds, as the vendor's credential `type`: "basic" (user name + password, also Artifactory
/// API keys) and "aws" (access key ID + secret access key, used through ECR
/// GetAuthorizationToken).
struct RegistryCredential {
  std::string id;           // [A-Za-z0-9._-]{1,64}, chosen by the user
  std::string type;         // "basic" or "aws"
  std::string accountId;    // basic: user name; aws: access key ID
  std::string secret;       // password / secret access key; empty in list() results
  std::string description;  // free text, ≤ 256 characters
  TimePoint lastModified;
};

/// Checks id, type, accountId, secret and description (400 invalid_field naming the field).
Status validateCredential(const RegistryCredential& c);

class CredentialStore {
 public:
  virtual ~CredentialStore() = default;
  /// Inserts or replaces the credential with this id.
  virtual Status put(const RegistryCredential& credential) = 0;
  /// The credential with its decrypted secret; nullopt when unknown. Error kUnavailable
  /// "credential_unreadable" when the stored secret does not open under the key.
  virtual Result<std::optional<RegistryCredential>> find(std::string_view id) = 0;
  /// All credentials ordered by id, secrets left empty.
  virtual Result<std::vector<RegistryCredential>> list() = 0;
  /// Error kNotFound "credential_not_found" when there is no such id.
  virtual Status remove(std::string_view id) = 0;
};

/// Creates or migrates the table in `db`; `key` is the 32-byte sealing key. Errors:
/// kUnavailable when the database fails; kInvalidArgument "schema_too_new".
Result<std::unique_ptr<CredentialStore>> openCredentialStore(std::shared_ptr<sql::Database> db,
                                                             std::string key);

}  // namespace dc::registry
