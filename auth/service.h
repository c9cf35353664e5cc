// Access control of the Console (docs/security.md): Console users with roles, password sign-in
// (HTTP Basic or POST /api/v1/authenticate), signed expiring tokens, failure slowdown, and
// Defender credentials for the defender channel.
//
// Everything checked per request is held in memory (users, credentials, a short-lived cache of
// successful password verifications); the AuthStore is written through on every change, and
// reload() picks up what other Consoles on the same database changed.
// Thread-safe. Nothing here logs a password, token or credential.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "auth/permissions.h"
#include "auth/store.h"
#include "common/clock.h"
#include "common/status.h"

namespace dc::auth {

struct AuthOptions {
  /// PBKDF2-HMAC-SHA256 rounds for new password hashes (OWASP 2023: 600,000 for SHA-256;
  /// 210,000 is the OWASP figure for SHA-512 and keeps sign-in near 0.1 s on one core).
  /// Existing hashes keep the count they were made with.
  int passwordIterations = 210'000;
  /// Lifetime of tokens from POST /api/v1/authenticate (vendor default 30 minutes).
  Seconds tokenLifetime{30 * 60};
  /// How long a successful password verification is remembered, so that HTTP Basic on every
  /// request does not cost a full PBKDF2 each time. Dropped on password change.
  Seconds verificationCacheTtl{60};
  /// Failure slowdown, per username and per source address: this many failures within
  /// `failureWindow` are answered 401; every further failure blocks the key for 1 s, 2 s, 4 s, …
  /// up to `maxFailureDelay`, during which attempts are answered 429 with Retry-After without
  /// being checked.
  int failuresAllowed = 5;
  Seconds failureWindow{15 * 60};
  Seconds maxFailureDelay{15 * 60};
  /// Key that signs tokens (HMAC-SHA256), at least 32 raw bytes. Empty: a random key for this
  /// process (tokens then do not survive a restart).
  std::string tokenKey;
  /// Several Consoles on one database: a user name, token or Defender credential this replica
  /// does not know (or a password that does not match) is looked up again in the store before
  /// it is refused, so what another replica just created or changed works at once. At most one
  /// such reload per `missReloadEvery` (a flood of wrong passwords costs one read per period).
  /// While the store cannot be read, such a request is answered 503 storage_unavailable rather
  /// than refused as unknown.
  bool sharedStore = false;
  Millis missReloadEvery{1000};
};

/// Who is calling.
struct Principal {
  enum class Kind { kUser, kDefender };
  Kind kind = Kind::kUser;
  std::string username;  // kUser
  Role role = Role::kAuditor;
  std::string credentialId;  // kDefender
  std::string appId;         // kDefender: the App ID it may report as; empty = enrolment
};

struct IssuedToken {
  std::string token;
  TimePoint expiresAt;
  std::string username;
  Role role;
};

/// A user as the API shows it (no hash, no salt).
struct UserInfo {
  std::string username;
  Role role;
  TimePoint createdAt;
  TimePoint passwordChangedAt;
};

struct IssuedCredential {
  CredentialRecord record;
  std::string secret;  // shown once; only its SHA-256 is kept
};

/// Prefixes that tell the kinds of bearer secrets apart.
inline constexpr std::string_view kTokenPrefix = "dct1.";
inline constexpr std::string_view kCredentialPrefix = "dcd1_";

class AuthService {
 public:
  /// `store` and `clock` must outlive the service.
  AuthService(AuthStore& store, const Clock& clock, AuthOptions options);
  ~AuthService();

  /// Loads users and credentials. Errors: storage errors.
  Status start();

  /// Reads users and credentials from the store again, so that changes made by other Consoles
  /// on the same database (replicas) apply here: a user created, changed or deleted there, a
  /// credential issued or revoked there. Remembered password verifications of a user whose
  /// token epoch changed no longer count. When this service itself changed users (credentials)
  /// while the store was read, that part is left for the next reload. Errors: storage errors
  /// (the cached state is kept).
  Status reload();

  /// First start: when no user exists, creates "admin" (role admin) with `configuredPassword`,
  /// or with a generated one when that is empty. Returns the generated password (to be shown
  /// once), nullopt when none was generated (or another Console on the same database created
  /// the admin first). Errors: "weak_password" for a configured password
  /// that breaks the password rules; storage errors.
  Result<std::optional<std::string>> bootstrapAdmin(const std::string& configuredPassword);

  /// Authenticates an `Authorization` header value for the Console API: `Basic base64(user:pw)`
  /// or `Bearer <token>`. A Defender credential presented as bearer authenticates as a
  /// kDefender principal (routes then refuse it with 403). `source` is the client address, for
  /// the failure slowdown. Errors: kUnauthenticated "unauthenticated" (no header),
  /// "invalid_credentials" (wrong username or password — the same whether the user exists or
  /// not), "invalid_token", "token_expired", "token_revoked", "credential_revoked";
  /// kRateLimited "too_many_failures" with retryAfterSeconds.
  Result<Principal> authenticate(std::string_view authorization, std::string_view source);

  /// POST /api/v1/authenticate: checks the password and issues a token. Errors as above.
  Result<IssuedToken> login(const std::string& username, const std::string& password,
                            std::string_view source);

  /// Authenticates a defender-channel request: `Bearer <credential>`. Errors: kUnauthenticated
  /// "defender_credential_required" (none, or not a Defender credential — Console user tokens do
  /// not work here), "invalid_credential", "credential_revoked".
  Result<Principal> authenticateDefender(std::string_view authorization);

  // --- Users (admin API) ---------------------------------------------------------------------
  std::vector<UserInfo> listUsers() const;
  std::optional<UserInfo> findUser(const std::string& username) const;
  /// Errors: "invalid_username" (1..64 of letters, digits, '.', '_', '-', '@'),
  /// "weak_password" (8..1024 bytes), kConflict "user_exists" (also when another Console on
  /// the same database created that user since the last reload).
  Result<UserInfo> createUser(const std::string& username, const std::string& password, Role role);
  /// Changes the password and/or role; either change revokes the user's tokens and drops the
  /// remembered verifications. Errors: kNotFound "unknown_user", "weak_password", kConflict
  /// "last_admin" when it would leave no admin (judged here, then again by the store on what
  /// every replica stored).
  Result<UserInfo> updateUser(const std::string& username,
                              const std::optional<std::string>& password, std::optional<Role> role);
  /// Deletes the user and revokes its tokens. Errors: "unknown_user", kConflict "last_admin"
  /// (judged as for updateUser).
  Status deleteUser(const std::string& username);

  // --- Defender credentials ------------------------------------------------------------------
  /// Issues a credential scoped to `appId` (empty = the Console-wide enrolment scope).
  Result<IssuedCredential> issueCredential(const std::string& appId,
                                           const std::string& description);
  /// Newest last; revoked ones included.
  std::vector<CredentialRecord> listCredentials() const;
  /// Revokes (idempotent). Errors: kNotFound "unknown_credential".
  Result<CredentialRecord> revokeCredential(const std::string& id);

  const AuthOptions& options() const { return options_; }

 private:
  struct FailureState {
    int failures = 0;
    TimePoint windowStart{};
    TimePoint blockedUntil{};
  };
  struct CachedVerification {
    std::string username;
    long long tokenEpoch = 0;
    TimePoint expiresAt{};
  };

  Result<Principal> verifyPassword(const std::string& username, const std::string& password,
                                   std::string_view source);
  Result<Principal> verifyToken(std::string_view token);
  /// sharedStore: reload() after a miss, unless one ran within missReloadEvery. True when it
  /// reloaded (the caller then looks again), false when it did not read; the store's error
  /// (kUnavailable) when that read — or the period's read — failed.
  Result<bool> reloadAfterMiss();
  std::string signToken(const UserRecord& user, TimePoint now) const;
  /// Seconds left on the longest block of `keys`, 0 when none is blocked. Caller holds mu_.
  int blockedSeconds(const std::vector<std::string>& keys, TimePoint now) const;
  void recordFailure(const std::string& key, TimePoint now);
  void forgetVerifications(const std::string& username);
  Status validatePassword(const std::string& password) const;
  UserRecord hashed(UserRecord user, const std::string& password) const;
  size_t adminCount() const;

  AuthStore& store_;
  const Clock& clock_;
  AuthOptions options_;
  std::string cacheKey_;  // keys the verification cache (random per process)

  mutable std::mutex mu_;  // users_, cache_, failures_, userWrites_
  std::map<std::string, UserRecord> users_;
  std::unordered_map<std::string, CachedVerification> cache_;
  std::unordered_map<std::string, FailureState> failures_;

  uint64_t userWrites_ = 0;  // users_ changes by this service (reload skips when it moved)

  mutable std::shared_mutex credMu_;  // credentials_, byHash_, credWrites_
  uint64_t credWrites_ = 0;
  std::map<std::string, CredentialRecord> credentials_;  // by id
  std::unordered_map<std::string, std::string> byHash_;  // hex SHA-256 -> id

  std::mutex missMu_;  // lastMissReload_, lastMissError_
  std::optional<TimePoint> lastMissReload_;
  std::optional<Error> lastMissError_;
};

/// Reads a secret of `bytes` random bytes from `path`, or creates the file (mode 0600, parent
/// directories 0700) with fresh random bytes. Errors: kUnavailable "secret_file" naming the
/// path; "secret_file_invalid" when the file exists with the wrong size.
Result<std::string> loadOrCreateSecretFile(const std::string& path, size_t bytes);

}  // namespace dc::auth
