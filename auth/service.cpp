#include "auth/service.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "auth/crypto.h"

namespace dc::auth {

namespace {

constexpr size_t kSaltBytes = 16;
constexpr size_t kMaxTrackedKeys = 100'000;
constexpr size_t kMaxCachedVerifications = 10'000;

Error unauthenticated(std::string code, std::string message) {
  return Error{ErrorKind::kUnauthenticated, std::move(code), std::move(message), {}};
}

Error wrongPassword() {
  return unauthenticated("invalid_credentials", "wrong username or password");
}

long long epochSeconds(TimePoint t) {
  return std::chrono::duration_cast<Seconds>(t.time_since_epoch()).count();
}

bool validUsername(const std::string& name) {
  if (name.empty() || name.size() > 64) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-' || c == '@';
  });
}

UserInfo infoOf(const UserRecord& u) {
  return {u.username, u.role, u.createdAt, u.passwordChangedAt};
}

// Case-insensitive scheme match ("Basic", "Bearer"), RFC 9110 §11.1. Returns the credentials
// after the scheme and its space.
std::optional<std::string_view> afterScheme(std::string_view header, std::string_view scheme) {
  if (header.size() <= scheme.size() || header[scheme.size()] != ' ') return std::nullopt;
  for (size_t i = 0; i < scheme.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(header[i])) !=
        std::tolower(static_cast<unsigned char>(scheme[i])))
      return std::nullopt;
  std::string_view rest = header.substr(scheme.size() + 1);
  while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
  while (!rest.empty() && rest.back() == ' ') rest.remove_suffix(1);
  return rest;
}

}  // namespace

AuthService::AuthService(AuthStore& store, const Clock& clock, AuthOptions options)
    : store_(store), clock_(clock), options_(std::move(options)), cacheKey_(randomBytes(32)) {
  if (options_.tokenKey.size() < 32) options_.tokenKey = randomBytes(32);
  if (options_.passwordIterations < 1) options_.passwordIterations = 1;
}

AuthService::~AuthService() = default;

Status AuthService::start() {
  return reload();
}

Status AuthService::reload() {
  uint64_t userWrites = 0, credWrites = 0;
  {
    std::lock_guard lock(mu_);
    userWrites = userWrites_;
  }
  {
    std::shared_lock lock(credMu_);
    credWrites = credWrites_;
  }
  auto users = store_.loadUsers();
  if (!users.ok()) return users.error();
  auto creds = store_.loadCredentials();
  if (!creds.ok()) return creds.error();
  {
    std::lock_guard lock(mu_);
    if (userWrites_ == userWrites) {
      users_.clear();
      for (auto& u : *users) users_[u.username] = std::move(u);
      // Verifications are remembered with the token epoch they were made under; a user deleted,
      // re-created or changed elsewhere no longer matches them.
      std::erase_if(cache_, [&](const auto& kv) {
        auto u = users_.find(kv.second.username);
        return u == users_.end() || u->second.tokenEpoch != kv.second.tokenEpoch;
      });
    }
  }
  std::unique_lock lock(credMu_);
  if (credWrites_ == credWrites) {
    credentials_.clear();
    byHash_.clear();
    for (auto& c : *creds) {
      byHash_[c.hash] = c.id;
      credentials_[c.id] = std::move(c);
    }
  }
  return Status::success();
}

Result<bool> AuthService::reloadAfterMiss() {
  if (!options_.sharedStore) return false;
  {
    std::lock_guard lock(missMu_);
    const TimePoint now = clock_.now();
    if (lastMissReload_ && now - *lastMissReload_ < options_.missReloadEvery) {
      // Within the period: not read again; a read that failed still answers for it.
      if (lastMissError_) return *lastMissError_;
      return false;
    }
    lastMissReload_ = now;
  }
  auto st = reload();
  std::lock_guard lock(missMu_);
  if (!st.ok()) {
    spdlog::debug("users and credentials not reloaded after a miss: {}", st.error().message);
    lastMissError_ = st.error();
    return st.error();
  }
  lastMissError_.reset();
  return true;
}

Status AuthService::validatePassword(const std::string& password) const {
  if (password.size() < 8 || password.size() > 1024)
    return Error::invalid("weak_password", "password", "password: must be 8 to 1024 bytes long");
  return Status::success();
}

UserRecord AuthService::hashed(UserRecord user, const std::string& password) const {
  user.salt = randomBytes(kSaltBytes);
  user.iterations = options_.passwordIterations;
  user.passwordHash = pbkdf2Sha256(password, user.salt, user.iterations);
  return user;
}

size_t AuthService::adminCount() const {
  return static_cast<size_t>(std::count_if(
      users_.begin(), users_.end(), [](const auto& kv) { return kv.second.role == Role::kAdmin; }));
}

Result<std::optional<std::string>> AuthService::bootstrapAdmin(
    const std::string& configuredPassword) {
  {
    std::lock_guard lock(mu_);
    if (!users_.empty()) return std::optional<std::string>();
  }
  std::optional<std::string> generated;
  std::string password = configuredPassword;
  if (password.empty()) {
    password = base64Url(randomBytes(18));  // 24 characters, 144 bits
    generated = password;
  }
  auto created = createUser("admin", password, Role::kAdmin);
  if (!created.ok()) {
    // Another Console on the same database (a replica starting at the same time) created the
    // first admin: that one stands.
    if (created.error().code != "user_exists") return created.error();
    if (auto st = reload(); !st.ok()) return st.error();
    return std::optional<std::string>();
  }
  return generated;
}

// --- passwords and tokens ----------------------------------------------------------------------

int AuthService::blockedSeconds(const std::vector<std::string>& keys, TimePoint now) const {
  Millis longest{0};
  for (const auto& k : keys) {
    auto it = failures_.find(k);
    if (it != failures_.end() && it->second.blockedUntil > now)
      longest = std::max(longest, it->second.blockedUntil - now);
  }
  if (longest.count() <= 0) return 0;
  return static_cast<int>((longest.count() + 999) / 1000);
}

void AuthService::recordFailure(const std::string& key, TimePoint now) {
  if (failures_.size() >= kMaxTrackedKeys && !failures_.count(key)) {
    std::erase_if(failures_, [&](const auto& kv) {
      return kv.second.blockedUntil <= now && now - kv.second.windowStart > options_.failureWindow;
    });
    if (failures_.size() >= kMaxTrackedKeys)
      std::erase_if(failures_, [&](const auto& kv) { return kv.second.blockedUntil <= now; });
  }
  auto& f = failures_[key];
  if (f.failures == 0 || now - f.windowStart > options_.failureWindow) {
    f.failures = 0;
    f.windowStart = now;
  }
  ++f.failures;
  const int over = f.failures - options_.failuresAllowed;
  if (over > 0) {
    const long long maxDelay = options_.maxFailureDelay.count();
    long long delay = 1;
    for (int i = 1; i < over && delay < maxDelay; ++i) delay *= 2;
    delay = std::min(delay, maxDelay);
    f.blockedUntil = now + Seconds(delay);
  }
}

void AuthService::forgetVerifications(const std::string& username) {
  std::erase_if(cache_, [&](const auto& kv) { return kv.second.username == username; });
}

Result<Principal> AuthService::verifyPassword(const std::string& username,
                                              const std::string& password,
                                              std::string_view source) {
  const TimePoint now = clock_.now();
  const std::vector<std::string> keys = {"user:" + username, "addr:" + std::string(source)};
  const std::string cacheKey = hmacSha256(cacheKey_, username + '\0' + password);
  UserRecord user;
  bool exists = false;
  {
    std::lock_guard lock(mu_);
    if (const int wait = blockedSeconds(keys, now); wait > 0) {
      Error e{ErrorKind::kRateLimited,
              "too_many_failures",
              "too many failed sign-in attempts; retry in " + std::to_string(wait) + " s",
              {}};
      e.retryAfterSeconds = wait;
      return e;
    }
    auto u = users_.find(username);
    if (u != users_.end()) {
      exists = true;
      user = u->second;
      auto c = cache_.find(cacheKey);
      if (c != cache_.end() && c->second.username == username &&
          c->second.tokenEpoch == user.tokenEpoch && c->second.expiresAt > now)
        return Principal{Principal::Kind::kUser, username, user.role, {}, {}};
    }
  }
  // The slow hash runs outside the lock; an unknown user costs the same as a known one.
  bool match = false;
  if (exists) {
    match =
        constantTimeEqual(pbkdf2Sha256(password, user.salt, user.iterations), user.passwordHash);
  } else {
    (void)pbkdf2Sha256(password, std::string(kSaltBytes, '\0'), options_.passwordIterations);
  }
  // Another replica may have created the user or changed its password since the last reload:
  // look once more (bounded: reloadAfterMiss runs at most once per period).
  if (!match) {
    auto reloaded = reloadAfterMiss();
    if (reloaded.ok() && *reloaded) return verifyPassword(username, password, source);
    // A user unknown here while the store cannot be read may exist: 503, not a failed sign-in.
    if (!reloaded.ok() && !exists) return reloaded.error();
  }
  std::lock_guard lock(mu_);
  if (!match) {
    for (const auto& k : keys) recordFailure(k, now);
    return wrongPassword();
  }
  auto u = users_.find(username);
  if (u == users_.end() || u->second.tokenEpoch != user.tokenEpoch)
    return wrongPassword();  // deleted or changed while we hashed
  failures_.erase(keys[0]);
  if (cache_.size() >= kMaxCachedVerifications) {
    std::erase_if(cache_, [&](const auto& kv) { return kv.second.expiresAt <= now; });
    if (cache_.size() >= kMaxCachedVerifications) cache_.clear();
  }
  cache_[cacheKey] = {username, user.tokenEpoch, now + options_.verificationCacheTtl};
  return Principal{Principal::Kind::kUser, username, u->second.role, {}, {}};
}

std::string AuthService::signToken(const UserRecord& user, TimePoint now) const {
  const nlohmann::json claims{{"sub", user.username},
                              {"role", roleName(user.role)},
                              {"iat", epochSeconds(now)},
                              {"exp", epochSeconds(now + options_.tokenLifetime)},
                              {"ep", user.tokenEpoch}};
  const std::string body = std::string(kTokenPrefix) + base64Url(claims.dump());
  return body + "." + base64Url(hmacSha256(options_.tokenKey, body));
}

Result<Principal> AuthService::verifyToken(std::string_view token) {
  const auto dot = token.rfind('.');
  if (dot == std::string_view::npos || dot < kTokenPrefix.size())
    return unauthenticated("invalid_token", "the bearer token is malformed");
  const std::string_view body = token.substr(0, dot);
  const auto signature = base64UrlDecode(token.substr(dot + 1));
  if (!signature || !constantTimeEqual(*signature, hmacSha256(options_.tokenKey, body)))
    return unauthenticated("invalid_token", "the bearer token is not valid for this Console");
  const auto payload = base64UrlDecode(body.substr(kTokenPrefix.size()));
  if (!payload) return unauthenticated("invalid_token", "the bearer token is malformed");
  const auto claims = nlohmann::json::parse(*payload, nullptr, false);
  if (!claims.is_object() || !claims.contains("sub") || !claims["sub"].is_string() ||
      !claims.contains("exp") || !claims["exp"].is_number_integer() || !claims.contains("ep") ||
      !claims["ep"].is_number_integer())
    return unauthenticated("invalid_token", "the bearer token is malformed");
  if (claims["exp"].get<long long>() <= epochSeconds(clock_.now()))
    return unauthenticated("token_expired",
                           "the bearer token has expired; sign in again (POST "
                           "/api/v1/authenticate)");
  const std::string username = claims["sub"].get<std::string>();
  const long long epoch = claims["ep"].get<long long>();
  // The user as this replica knows it; once more after a reload when it does not match (a user
  // another replica created, or whose token epoch it moved, since the last reload).
  const auto current = [&]() -> std::optional<Role> {
    std::lock_guard lock(mu_);
    auto u = users_.find(username);
    if (u == users_.end() || u->second.tokenEpoch != epoch) return std::nullopt;
    return u->second.role;
  };
  auto role = current();
  if (!role) {
    auto reloaded = reloadAfterMiss();
    if (!reloaded.ok()) return reloaded.error();  // unknown whether it was revoked: 503
    if (*reloaded) role = current();
  }
  if (!role)
    return unauthenticated("token_revoked",
                           "the bearer token was revoked (password or role changed, or user "
                           "deleted); sign in again");
  return Principal{Principal::Kind::kUser, username, *role, {}, {}};
}

Result<Principal> AuthService::authenticate(std::string_view authorization,
                                            std::string_view source) {
  if (authorization.empty())
    return unauthenticated("unauthenticated",
                           "credentials required: HTTP Basic, or Authorization: Bearer <token> "
                           "from POST /api/v1/authenticate");
  if (auto basic = afterScheme(authorization, "Basic")) {
    const auto decoded = base64Decode(*basic);
    const auto colon = decoded ? decoded->find(':') : std::string::npos;
    if (!decoded || colon == std::string::npos)
      return unauthenticated("invalid_credentials", "malformed HTTP Basic credentials");
    return verifyPassword(decoded->substr(0, colon), decoded->substr(colon + 1), source);
  }
  if (auto bearer = afterScheme(authorization, "Bearer")) {
    if (bearer->substr(0, kCredentialPrefix.size()) == kCredentialPrefix)
      return authenticateDefender(authorization);
    if (bearer->substr(0, kTokenPrefix.size()) != kTokenPrefix)
      return unauthenticated("invalid_token", "the bearer token is not valid for this Console");
    return verifyToken(*bearer);
  }
  return unauthenticated("unsupported_scheme", "Authorization must use the Basic or Bearer scheme");
}

Result<IssuedToken> AuthService::login(const std::string& username, const std::string& password,
                                       std::string_view source) {
  auto p = verifyPassword(username, password, source);
  if (!p.ok()) return p.error();
  const TimePoint now = clock_.now();
  std::lock_guard lock(mu_);
  auto u = users_.find(username);
  if (u == users_.end()) return wrongPassword();
  const std::string token = signToken(u->second, now);
  return IssuedToken{token, now + options_.tokenLifetime, username, u->second.role};
}

// --- users -------------------------------------------------------------------------------------

std::vector<UserInfo> AuthService::listUsers() const {
  std::lock_guard lock(mu_);
  std::vector<UserInfo> out;
  for (const auto& [name, u] : users_) out.push_back(infoOf(u));
  return out;
}

std::optional<UserInfo> AuthService::findUser(const std::string& username) const {
  std::lock_guard lock(mu_);
  auto it = users_.find(username);
  if (it == users_.end()) return std::nullopt;
  return infoOf(it->second);
}

Result<UserInfo> AuthService::createUser(const std::string& username, const std::string& password,
                                         Role role) {
  if (!validUsername(username))
    return Error::invalid("invalid_username", "username",
                          "username: 1 to 64 of letters, digits, '.', '_', '-', '@'");
  if (auto st = validatePassword(password); !st.ok()) return st.error();
  const TimePoint now = clock_.now();
  UserRecord u;
  u.username = username;
  u.role = role;
  u.createdAt = now;
  u.passwordChangedAt = now;
  // A random first token epoch: a token of a deleted user can never match a later user created
  // under the same name (epochs only count up from here).
  const std::string r = randomBytes(sizeof(uint64_t));
  uint64_t start = 0;
  std::memcpy(&start, r.data(), sizeof start);
  u.tokenEpoch = static_cast<long long>(start >> 2);
  u = hashed(std::move(u), password);
  std::lock_guard lock(mu_);
  if (users_.count(username))
    return Error{ErrorKind::kConflict, "user_exists", "user '" + username + "' already exists",
                 "username"};
  if (auto st = store_.insertUser(u); !st.ok()) return st.error();
  ++userWrites_;
  users_[username] = u;
  spdlog::info("user {} created with role {}", username, roleName(role));
  return infoOf(u);
}

Result<UserInfo> AuthService::updateUser(const std::string& username,
                                         const std::optional<std::string>& password,
                                         std::optional<Role> role) {
  if (password)
    if (auto st = validatePassword(*password); !st.ok()) return st.error();
  UserChange change;
  change.role = role;
  if (password) {
    change.password = hashed({}, *password);  // slow; outside the lock
    change.password->passwordChangedAt = clock_.now();
  }
  std::lock_guard lock(mu_);
  auto it = users_.find(username);
  if (it != users_.end() && role && *role != Role::kAdmin && it->second.role == Role::kAdmin &&
      adminCount() == 1)
    return Error{ErrorKind::kConflict, "last_admin",
                 "role: '" + username + "' is the only admin; make another user admin first",
                 "role"};
  // The stored row is changed, not replaced by this Console's copy (another replica may have
  // changed or deleted the user since the last reload).
  auto updated = store_.updateUser(username, change);
  if (!updated.ok()) return updated.error();
  ++userWrites_;
  forgetVerifications(username);
  if (!*updated) {
    users_.erase(username);
    return Error::notFound("unknown_user", "no user '" + username + "'", "username");
  }
  users_[username] = **updated;
  spdlog::info("user {} updated:{}{}; its tokens are revoked", username,
               password ? " password changed" : "",
               role ? std::string(" role ") + std::string(roleName(*role)) : std::string());
  return infoOf(**updated);
}

Status AuthService::deleteUser(const std::string& username) {
  std::lock_guard lock(mu_);
  auto it = users_.find(username);
  if (it == users_.end())
    return Error::notFound("unknown_user", "no user '" + username + "'", "username");
  if (it->second.role == Role::kAdmin && adminCount() == 1)
    return Error{ErrorKind::kConflict, "last_admin",
                 "'" + username + "' is the only admin and cannot be deleted", "username"};
  if (auto st = store_.deleteUser(username); !st.ok()) return st;
  ++userWrites_;
  users_.erase(it);
  forgetVerifications(username);
  spdlog::info("user {} deleted", username);
  return Status::success();
}

// --- Defender credentials ----------------------------------------------------------------------

Result<Principal> AuthService::authenticateDefender(std::string_view authorization) {
  auto bearer = afterScheme(authorization, "Bearer");
  if (!bearer || bearer->substr(0, kCredentialPrefix.size()) != kCredentialPrefix)
    return unauthenticated("defender_credential_required",
                           "the defender channel needs Authorization: Bearer <Defender "
                           "credential> (from the install bundle or POST /api/v1/credentials)");
  const std::string hash = toHex(sha256(*bearer));
  // A credential another replica issued since the last reload: looked for once more.
  const auto known = [&] {
    std::shared_lock lock(credMu_);
    return byHash_.contains(hash);
  };
  if (!known()) {
    auto reloaded = reloadAfterMiss();
    // Issued by another replica while the store cannot be read: 503, not 401 (a Defender
    // retries a 503; a 401 tells it its credential is bad).
    if (!reloaded.ok() && !known()) return reloaded.error();
  }
  std::shared_lock lock(credMu_);
  auto h = byHash_.find(hash);
  if (h == byHash_.end())
    return unauthenticated("invalid_credential", "the Defender credential is not known here");
  const auto& c = credentials_.at(h->second);
  if (c.revokedAt)
    return unauthenticated("credential_revoked", "the Defender credential was revoked");
  Principal p;
  p.kind = Principal::Kind::kDefender;
  p.credentialId = c.id;
  p.appId = c.appId;
  return p;
}

Result<IssuedCredential> AuthService::issueCredential(const std::string& appId,
                                                      const std::string& description) {
  IssuedCredential out;
  out.secret = std::string(kCredentialPrefix) + base64Url(randomBytes(32));
  out.record.id = toHex(randomBytes(8));
  out.record.hash = toHex(sha256(out.secret));
  out.record.appId = appId;
  out.record.description = description;
  out.record.createdAt = clock_.now();
  std::unique_lock lock(credMu_);
  if (auto st = store_.putCredential(out.record); !st.ok()) return st.error();
  ++credWrites_;
  byHash_[out.record.hash] = out.record.id;
  credentials_[out.record.id] = out.record;
  spdlog::info("Defender credential {} issued for {}", out.record.id,
               appId.empty() ? std::string("enrolment (Console-wide)") : "App ID " + appId);
  return out;
}

std::vector<CredentialRecord> AuthService::listCredentials() const {
  std::shared_lock lock(credMu_);
  std::vector<CredentialRecord> out;
  for (const auto& [id, c] : credentials_) out.push_back(c);
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
    return a.createdAt != b.createdAt ? a.createdAt < b.createdAt : a.id < b.id;
  });
  return out;
}

Result<CredentialRecord> AuthService::revokeCredential(const std::string& id) {
  std::unique_lock lock(credMu_);
  auto it = credentials_.find(id);
  if (it == credentials_.end())
    return Error::notFound("unknown_credential", "no Defender credential '" + id + "'", "id");
  if (it->second.revokedAt) return it->second;
  CredentialRecord c = it->second;
  c.revokedAt = clock_.now();
  if (auto st = store_.putCredential(c); !st.ok()) return st.error();
  ++credWrites_;
  it->second = c;
  spdlog::info("Defender credential {} revoked", id);
  return c;
}

// --- secret files ------------------------------------------------------------------------------

Result<std::string> loadOrCreateSecretFile(const std::string& path, size_t bytes) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::exists(path, ec)) {
    std::ifstream in(path, std::ios::binary);
    std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (!in.good() && !in.eof())
      return Error{ErrorKind::kUnavailable, "secret_file", "cannot read " + path, path};
    if (data.size() != bytes)
      return Error{ErrorKind::kInvalidArgument, "secret_file_invalid",
                   path + " holds " + std::to_string(data.size()) + " bytes, expected " +
                       std::to_string(bytes) + " (delete it to generate a new one)",
                   path};
    return data;
  }
  const fs::path parent = fs::path(path).parent_path();
  if (!parent.empty()) {
    fs::create_directories(parent, ec);
    if (ec)
      return Error{ErrorKind::kUnavailable, "secret_file",
                   "cannot create " + parent.string() + ": " + ec.message(), path};
  }
  const std::string data = randomBytes(bytes);
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0)
    return Error{ErrorKind::kUnavailable, "secret_file",
                 "cannot create " + path + ": " + std::strerror(errno), path};
  const ssize_t n = ::write(fd, data.data(), data.size());
  const bool synced = ::fsync(fd) == 0;
  ::close(fd);
  if (n != static_cast<ssize_t>(data.size()) || !synced)
    return Error{ErrorKind::kUnavailable, "secret_file", "cannot write " + path, path};
  return data;
}

}  // namespace dc::auth
