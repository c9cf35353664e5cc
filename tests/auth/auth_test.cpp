// auth/: crypto wrappers against published test vectors, the AuthStore conformance suite and
// AuthService behaviour on a ManualClock, on the backend under test (SQLite :memory:, or
// PostgreSQL in the auth_test_postgres entry: tests/support/sql_backends.h), two replicas on one
// database, and the SQLite layout of earlier Consoles.
#include <catch2/catch.hpp>

#include <sqlite3.h>

#include <filesystem>

#include "auth/crypto.h"
#include "auth/service.h"
#include "auth/store.h"
#include "tests/support/sql_backends.h"

using namespace dc;
using namespace dc::auth;
using namespace std::chrono_literals;

namespace {

const TimePoint kT0 = TimePoint(Millis(1'800'000'000'000));

std::string tempPath(const std::string& name) {
  auto dir =
      std::filesystem::temp_directory_path() / ("dc-auth-test-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  return (dir / name).string();
}

AuthOptions fastOptions() {
  AuthOptions o;
  o.passwordIterations = 1000;  // tests: the production default costs ~0.1 s per hash
  return o;
}

std::string basic(const std::string& user, const std::string& password) {
  return "Basic " + base64(user + ":" + password);
}

}  // namespace

TEST_CASE("crypto: RFC 4231 HMAC-SHA256, RFC 7914 PBKDF2-HMAC-SHA256, SHA-256, base64") {
  CHECK(toHex(hmacSha256("Jefe", "what do ya want for nothing?")) ==
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  // RFC 7914 §11, first PBKDF2-HMAC-SHA256 vector.
  CHECK(toHex(pbkdf2Sha256("passwd", "salt", 1, 64)) ==
        "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc"
        "49ca9cccf179b645991664b39d77ef317c71b845b1e30bd509112041d3a19783");
  CHECK(toHex(sha256("abc")) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK(base64("admin:secret") == "YWRtaW46c2VjcmV0");
  CHECK(base64Decode("YWRtaW46c2VjcmV0") == std::optional<std::string>("admin:secret"));
  CHECK(base64Decode("YQ==") == std::optional<std::string>("a"));
  CHECK(base64Decode("YQ") == std::optional<std::string>("a"));
  CHECK_FALSE(base64Decode("Y*Q=").has_value());
  const std::string raw = randomBytes(33);
  CHECK(base64UrlDecode(base64Url(raw)) == std::optional<std::string>(raw));
  CHECK(base64Url(raw).find_first_of("+/=") == std::string::npos);
  CHECK(randomBytes(32) != randomBytes(32));
  CHECK(constantTimeEqual("abc", "abc"));
  CHECK_FALSE(constantTimeEqual("abc", "abd"));
  CHECK_FALSE(constantTimeEqual("abc", "ab"));
}

TEST_CASE("AuthStore conformance", "[auth-store]") {
  auto opened = openAuthStore(dc::test::testDatabase("auth"));
  REQUIRE(opened.ok());
  AuthStore& store = **opened;

  UserRecord u;
  u.username = "alice";
  u.role = Role::kDefenderManager;
  u.salt = std::string("\0\1\2salt", 7);  // raw bytes, including NUL
  u.passwordHash = std::string(32, '\xff');
  u.iterations = 1234;
  u.tokenEpoch = 7;
  u.createdAt = kT0;
  u.passwordChangedAt = kT0 + 5s;
  REQUIRE(store.putUser(u).ok());
  auto users = store.loadUsers();
  REQUIRE(users.ok());
  REQUIRE(users->size() == 1);
  const auto& got = users->front();
  CHECK(got.username == "alice");
  CHECK(got.role == Role::kDefenderManager);
  CHECK(got.salt == u.salt);
  CHECK(got.passwordHash == u.passwordHash);
  CHECK(got.iterations == 1234);
  CHECK(got.tokenEpoch == 7);
  CHECK(got.createdAt == kT0);
  CHECK(got.passwordChangedAt == kT0 + 5s);

  u.role = Role::kAdmin;  // replace
  u.tokenEpoch = 8;
  REQUIRE(store.putUser(u).ok());
  users = store.loadUsers();
  REQUIRE(users->size() == 1);
  CHECK(users->front().role == Role::kAdmin);
  CHECK(users->front().tokenEpoch == 8);
  auto again = store.insertUser(u);  // insert only: the stored user stays
  REQUIRE_FALSE(again.ok());
  CHECK(again.error().code == "user_exists");
  CHECK(store.loadUsers()->front().tokenEpoch == 8);
  // The only stored admin is neither deleted nor made another role.
  auto lone = store.deleteUser("alice");
  REQUIRE_FALSE(lone.ok());
  CHECK(lone.error().code == "last_admin");
  auto demoted = u;
  demoted.role = Role::kAuditor;
  auto demote = store.putUser(demoted);
  REQUIRE_FALSE(demote.ok());
  CHECK(demote.error().code == "last_admin");
  CHECK(store.loadUsers()->front().role == Role::kAdmin);
  UserRecord bob = u;
  bob.username = "bob";
  REQUIRE(store.insertUser(bob).ok());
  // updateUser changes the stored row: the new password's fields and role, the token epoch one
  // past the stored one; an absent user is nullopt, the only admin keeps its role.
  UserRecord pw;
  pw.salt = "new-salt";
  pw.passwordHash = std::string(32, '\x01');
  pw.iterations = 99;
  pw.passwordChangedAt = kT0 + 9s;
  auto updated = store.updateUser("bob", UserChange{pw, Role::kAuditor});
  REQUIRE(updated.ok());
  REQUIRE(updated->has_value());
  CHECK((*updated)->role == Role::kAuditor);
  CHECK((*updated)->salt == "new-salt");
  CHECK((*updated)->iterations == 99);
  CHECK((*updated)->tokenEpoch == 9);
  CHECK((*updated)->createdAt == kT0);
  CHECK((*updated)->passwordChangedAt == kT0 + 9s);
  auto missing = store.updateUser("nobody", UserChange{std::nullopt, Role::kAuditor});
  REQUIRE(missing.ok());
  CHECK_FALSE(missing->has_value());
  auto lastAdmin = store.updateUser("alice", UserChange{std::nullopt, Role::kAuditor});
  REQUIRE_FALSE(lastAdmin.ok());
  CHECK(lastAdmin.error().code == "last_admin");
  REQUIRE(store.updateUser("bob", UserChange{std::nullopt, Role::kAdmin}).ok());
  REQUIRE(store.deleteUser("alice").ok());
  REQUIRE(store.deleteUser("alice").ok());  // absent: no error
  REQUIRE(store.insertUser(u).ok());
  REQUIRE(store.deleteUser("alice").ok());
  users = store.loadUsers();
  REQUIRE(users->size() == 1);
  CHECK(users->front().username == "bob");

  CredentialRecord c{"00112233aabbccdd",
                     std::string(64, 'a'),
                     "web:0b7e6c4e-3f4b-4b7b-9d3c-1a2b3c4d5e6f",
                     "ci",
                     kT0,
                     std::nullopt};
  REQUIRE(store.putCredential(c).ok());
  CredentialRecord e{"ffeeddccbbaa9988", std::string(64, 'b'), "", "enrolment",
                     kT0 + 1s,           std::nullopt};
  REQUIRE(store.putCredential(e).ok());
  c.revokedAt = kT0 + 2s;
  REQUIRE(store.putCredential(c).ok());
  auto creds = store.loadCredentials();
  REQUIRE(creds.ok());
  REQUIRE(creds->size() == 2);
  CHECK(creds->at(0).id == c.id);
  CHECK(creds->at(0).revokedAt == std::optional<TimePoint>(kT0 + 2s));
  CHECK(creds->at(0).appId == c.appId);
  CHECK(creds->at(1).appId.empty());
  CHECK_FALSE(creds->at(1).revokedAt.has_value());
  // Another id with the same hash is refused: a secret maps to one credential.
  CredentialRecord dup = e;
  dup.id = "1111111111111111";
  auto st = store.putCredential(dup);
  REQUIRE_FALSE(st.ok());
  CHECK(st.error().kind == ErrorKind::kConflict);
}

namespace {

/// Two AuthStores on one database, as two replicas have them (SQLite file or PostgreSQL:
/// tests/support/sql_backends.h).
struct ReplicaStores {
  dc::test::SharedTestDatabase shared{"auth"};
  std::unique_ptr<AuthStore> a = open(shared.a), b = open(shared.b);

  static std::unique_ptr<AuthStore> open(std::shared_ptr<sql::Database> db) {
    auto s = openAuthStore(std::move(db));
    REQUIRE(s.ok());
    return std::move(s).value();
  }
};

/// An AuthStore whose reads fail while `down` (the database unreachable); writes pass through.
struct UnreachableAuthStore final : AuthStore {
  explicit UnreachableAuthStore(AuthStore& inner) : inner(inner) {}
  AuthStore& inner;
  bool down = false;

  Result<std::vector<UserRecord>> loadUsers() override {
    if (down) return Error::unavailable("database unreachable");
    return inner.loadUsers();
  }
  Status putUser(const UserRecord& u) override { return inner.putUser(u); }
  Status insertUser(const UserRecord& u) override { return inner.insertUser(u); }
  Result<std::optional<UserRecord>> updateUser(const std::string& name,
                                               const UserChange& change) override {
    return inner.updateUser(name, change);
  }
  Status deleteUser(const std::string& name) override { return inner.deleteUser(name); }
  Result<std::vector<CredentialRecord>> loadCredentials() override {
    if (down) return Error::unavailable("database unreachable");
    return inner.loadCredentials();
  }
  Status putCredential(const CredentialRecord& c) override { return inner.putCredential(c); }
};

Result<std::unique_ptr<AuthStore>> openAuthFile(const std::string& file) {
  auto db = sql::openDatabase(file, "auth");
  if (!db.ok()) return db.error();
  return openAuthStore(std::move(db).value());
}

}  // namespace

TEST_CASE("AuthStore: a newer schema is refused; data survives reopening") {
  const std::string file = tempPath("schema.db");
  std::filesystem::remove(file);
  {
    auto s = openAuthFile(file);
    REQUIRE(s.ok());
    UserRecord u;
    u.username = "bob";
    REQUIRE((*s)->putUser(u).ok());
  }
  {
    auto s = openAuthFile(file);
    REQUIRE(s.ok());
    CHECK((*s)->loadUsers()->size() == 1);
  }
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open(file.c_str(), &db) == SQLITE_OK);
  REQUIRE(sqlite3_exec(db, "UPDATE auth_meta SET value = '99' WHERE key = 'schema_version'",
                       nullptr, nullptr, nullptr) == SQLITE_OK);
  sqlite3_close(db);
  auto s = openAuthFile(file);
  REQUIRE_FALSE(s.ok());
  CHECK(s.error().code == "schema_too_new");
}

TEST_CASE("AuthStore: a console.db written by an earlier Console opens with its data") {
  const std::string file = tempPath("earlier.db");
  std::filesystem::remove(file);
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open(file.c_str(), &db) == SQLITE_OK);
  // The tables and version row as the SQLite-only store created them.
  REQUIRE(sqlite3_exec(db, R"sql(
CREATE TABLE auth_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO auth_meta VALUES ('schema_version', '1');
CREATE TABLE auth_users (username TEXT PRIMARY KEY, role TEXT NOT NULL, salt BLOB NOT NULL,
  password_hash BLOB NOT NULL, iterations INTEGER NOT NULL, token_epoch INTEGER NOT NULL,
  created_at_ms INTEGER NOT NULL, password_changed_at_ms INTEGER NOT NULL);
CREATE TABLE auth_credentials (id TEXT PRIMARY KEY, hash TEXT NOT NULL UNIQUE,
  app_id TEXT NOT NULL, description TEXT NOT NULL, created_at_ms INTEGER NOT NULL,
  revoked_at_ms INTEGER);
INSERT INTO auth_users VALUES ('carol', 'admin', x'00ff01', x'aabb', 1000, 42, 1000, 2000);
INSERT INTO auth_credentials VALUES ('0011223344556677', 'ab', '', 'enrol', 5, 6);
)sql",
                       nullptr, nullptr, nullptr) == SQLITE_OK);
  sqlite3_close(db);
  auto s = openAuthFile(file);
  REQUIRE(s.ok());
  auto users = (*s)->loadUsers();
  REQUIRE(users.ok());
  REQUIRE(users->size() == 1);
  CHECK(users->front().username == "carol");
  CHECK(users->front().role == Role::kAdmin);
  CHECK(users->front().salt == std::string("\0\xff\x01", 3));
  CHECK(users->front().tokenEpoch == 42);
  auto creds = (*s)->loadCredentials();
  REQUIRE(creds.ok());
  REQUIRE(creds->size() == 1);
  CHECK(creds->front().revokedAt == std::optional<TimePoint>(TimePoint(Millis(6))));
}

TEST_CASE("AuthStore: two stores on one database see each other's writes", "[auth-store]") {
  dc::test::SharedTestDatabase shared("auth");
  auto a = openAuthStore(shared.a);
  auto b = openAuthStore(shared.b);  // migrating again is a no-op
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  UserRecord u;
  u.username = "dana";
  u.salt = std::string("\0salt", 5);
  u.passwordHash = std::string(32, '\x01');
  REQUIRE((*a)->putUser(u).ok());
  auto seen = (*b)->loadUsers();
  REQUIRE(seen.ok());
  REQUIRE(seen->size() == 1);
  CHECK(seen->front().salt == u.salt);
  CredentialRecord c{"00112233aabbccdd", std::string(64, 'c'), "", "", kT0, std::nullopt};
  REQUIRE((*a)->putCredential(c).ok());
  c.revokedAt = kT0 + 1s;
  REQUIRE((*b)->putCredential(c).ok());
  auto creds = (*a)->loadCredentials();
  REQUIRE(creds.ok());
  REQUIRE(creds->size() == 1);
  CHECK(creds->front().revokedAt == std::optional<TimePoint>(kT0 + 1s));
  REQUIRE((*b)->deleteUser("dana").ok());
  CHECK((*a)->loadUsers()->empty());
}

TEST_CASE("AuthService: replicas on one database share users, tokens and revocations",
          "[auth-store]") {
  ManualClock clock{kT0};
  ReplicaStores replicas;
  auto& shared = replicas.shared;
  AuthStore& storeA = *replicas.a;
  AuthStore& storeB = *replicas.b;
  // The token signing key as replicas on PostgreSQL get it: one key for all.
  auto keyA = loadOrCreateSharedSecret(*shared.a, "token_key", 32);
  auto keyB = loadOrCreateSharedSecret(*shared.b, "token_key", 32);
  REQUIRE(keyA.ok());
  REQUIRE(keyB.ok());
  CHECK(*keyA == *keyB);
  AuthOptions oa = fastOptions(), ob = fastOptions();
  oa.tokenKey = *keyA;
  ob.tokenKey = *keyB;
  AuthService a(storeA, clock, oa);
  AuthService b(storeB, clock, ob);
  REQUIRE(a.start().ok());
  REQUIRE(b.start().ok());
  REQUIRE(a.bootstrapAdmin("first-admin-pw").ok());

  // A user created on one replica is seen on the other once it reloads.
  REQUIRE(a.createUser("erin", "erins-password", Role::kAuditor).ok());
  CHECK_FALSE(b.findUser("erin").has_value());
  REQUIRE(b.reload().ok());
  REQUIRE(b.findUser("erin").has_value());
  CHECK(b.authenticate(basic("erin", "erins-password"), "x")->role == Role::kAuditor);
  // A token issued by one replica works on the other.
  auto token = a.login("erin", "erins-password", "x");
  REQUIRE(token.ok());
  CHECK(b.authenticate("Bearer " + token->token, "x").ok());
  // A password change on one revokes the token and the remembered verification on the other.
  REQUIRE(a.updateUser("erin", std::string("new-password-1"), std::nullopt).ok());
  REQUIRE(b.reload().ok());
  CHECK(b.authenticate("Bearer " + token->token, "x").error().code == "token_revoked");
  CHECK(b.authenticate(basic("erin", "erins-password"), "x").error().code == "invalid_credentials");
  CHECK(b.authenticate(basic("erin", "new-password-1"), "x").ok());

  // A credential issued on one works on the other; revoked on one, it is refused on the other
  // after its reload.
  auto cred = a.issueCredential("", "enrolment");
  REQUIRE(cred.ok());
  REQUIRE(b.reload().ok());
  CHECK(b.authenticateDefender("Bearer " + cred->secret).ok());
  REQUIRE(a.revokeCredential(cred->record.id).ok());
  REQUIRE(b.reload().ok());
  CHECK(b.authenticateDefender("Bearer " + cred->secret).error().code == "credential_revoked");
  CHECK(b.listCredentials().front().revokedAt.has_value());

  // A user created on both before either reloads: one row, the second creation is refused.
  REQUIRE(a.createUser("frank", "franks-password", Role::kAuditor).ok());
  auto twice = b.createUser("frank", "other-password", Role::kAdmin);
  REQUIRE_FALSE(twice.ok());
  CHECK(twice.error().code == "user_exists");
  REQUIRE(b.reload().ok());
  CHECK(b.findUser("frank")->role == Role::kAuditor);
  CHECK(b.authenticate(basic("frank", "franks-password"), "x").ok());
  // A second replica starting on the same database does not make another first admin.
  AuthService c(storeB, clock, ob);
  REQUIRE(c.start().ok());
  auto none = c.bootstrapAdmin("");
  REQUIRE(none.ok());
  CHECK_FALSE(none->has_value());
  CHECK(c.authenticate(basic("admin", "first-admin-pw"), "x").ok());

  // A user deleted on one is gone on the other.
  REQUIRE(b.deleteUser("erin").ok());
  REQUIRE(a.reload().ok());
  CHECK_FALSE(a.findUser("erin").has_value());
  CHECK(a.authenticate(basic("erin", "new-password-1"), "x").error().code == "invalid_credentials");

  // A change on a replica whose copy is stale changes the stored user, not the copy: it neither
  // undoes the other replica's change nor brings a deleted user back; the token epoch moves on
  // from the stored one, so tokens issued in between are revoked.
  REQUIRE(a.createUser("hal", "old-password-1", Role::kAdmin).ok());
  REQUIRE(b.reload().ok());
  REQUIRE(a.updateUser("hal", std::string("new-password-1"), std::nullopt).ok());
  auto halToken = a.login("hal", "new-password-1", "x");
  REQUIRE(halToken.ok());
  auto changed = b.updateUser("hal", std::nullopt, Role::kDefenderManager);
  REQUIRE(changed.ok());
  CHECK(changed->role == Role::kDefenderManager);
  REQUIRE(a.reload().ok());
  for (AuthService* s : {&a, &b}) {
    CHECK(s->authenticate(basic("hal", "new-password-1"), "x")->role == Role::kDefenderManager);
    CHECK(s->authenticate(basic("hal", "old-password-1"), "x").error().code ==
          "invalid_credentials");
    CHECK(s->authenticate("Bearer " + halToken->token, "x").error().code == "token_revoked");
  }
  REQUIRE(a.deleteUser("hal").ok());
  auto gone = b.updateUser("hal", std::string("third-password-1"), std::nullopt);
  REQUIRE_FALSE(gone.ok());
  CHECK(gone.error().code == "unknown_user");
  CHECK_FALSE(b.findUser("hal").has_value());
  REQUIRE(a.reload().ok());
  CHECK_FALSE(a.findUser("hal").has_value());

  // Two admins, each replica removing a different one before it has seen the other's change:
  // the second is refused by the database, so one admin is left (deleting or demoting alike).
  for (const bool demote : {false, true}) {
    REQUIRE(a.createUser("gina", "ginas-password", Role::kAdmin).ok());
    REQUIRE(b.reload().ok());
    REQUIRE(a.deleteUser("admin").ok());
    const auto code = demote ? b.updateUser("gina", std::nullopt, Role::kAuditor).error().code
                             : b.deleteUser("gina").error().code;
    CHECK(code == "last_admin");
    REQUIRE(b.reload().ok());
    REQUIRE(b.findUser("gina").has_value());
    CHECK(b.findUser("gina")->role == Role::kAdmin);
    CHECK_FALSE(b.findUser("admin").has_value());
    // Back to the first admin alone for the next round.
    REQUIRE(b.createUser("admin", "first-admin-pw", Role::kAdmin).ok());
    REQUIRE(b.deleteUser("gina").ok());
    REQUIRE(a.reload().ok());
  }
}

TEST_CASE("AuthService: what another replica just created works at once (sharedStore)",
          "[auth-store]") {
  ManualClock clock{kT0};
  ReplicaStores replicas;
  AuthStore& storeA = *replicas.a;
  AuthStore& storeB = *replicas.b;
  AuthOptions o = fastOptions();
  o.tokenKey = std::string(32, 'k');
  o.sharedStore = true;
  AuthService a(storeA, clock, o);
  AuthService b(storeB, clock, o);
  REQUIRE(a.start().ok());
  REQUIRE(b.start().ok());
  REQUIRE(a.bootstrapAdmin("first-admin-pw").ok());
  REQUIRE(b.reload().ok());

  // A user created on A signs in on B before B's periodic reload, by password and by token.
  REQUIRE(a.createUser("ci-bot", "ci-bot-password", Role::kDefenderManager).ok());
  CHECK(b.authenticate(basic("ci-bot", "ci-bot-password"), "x")->role == Role::kDefenderManager);
  REQUIRE(a.createUser("ci-bot-2", "ci-bot-password", Role::kAuditor).ok());
  auto token = a.login("ci-bot-2", "ci-bot-password", "x");
  REQUIRE(token.ok());
  clock.advance(1s);
  CHECK(b.authenticate("Bearer " + token->token, "x")->role == Role::kAuditor);
  // A Defender credential issued on A works on B.
  clock.advance(1s);
  auto cred = a.issueCredential("", "enrolment");
  REQUIRE(cred.ok());
  CHECK(b.authenticateDefender("Bearer " + cred->secret).ok());
  // At most one such reload per period: a user created right after it is not found on B until
  // the period has passed (nor does a wrong password make B read the store again).
  REQUIRE(a.createUser("ci-bot-3", "ci-bot-password", Role::kAuditor).ok());
  CHECK(b.authenticate(basic("ci-bot-3", "ci-bot-password"), "x").error().code ==
        "invalid_credentials");
  clock.advance(1s);
  CHECK(b.authenticate(basic("ci-bot-3", "ci-bot-password"), "x").ok());
  // While the store cannot be read, what is unknown here is answered 503, not refused as bad:
  // a Defender retries a 503, and an unknown user is not a failed sign-in.
  UnreachableAuthStore unreachable(storeB);
  AuthService d(unreachable, clock, o);
  REQUIRE(d.start().ok());
  auto late = a.issueCredential("", "issued while the other replica cannot read");
  REQUIRE(late.ok());
  REQUIRE(a.createUser("ci-bot-5", "ci-bot-password", Role::kAuditor).ok());
  unreachable.down = true;
  clock.advance(1s);
  CHECK(d.authenticateDefender("Bearer " + late->secret).error().code == "storage_unavailable");
  CHECK(d.authenticate(basic("ci-bot-5", "ci-bot-password"), "x").error().code ==
        "storage_unavailable");
  CHECK(d.authenticate(basic("ci-bot", "wrong-password"), "x").error().code ==
        "invalid_credentials");  // known here: a wrong password stays a wrong password
  unreachable.down = false;
  clock.advance(1s);
  CHECK(d.authenticateDefender("Bearer " + late->secret).ok());
  // Without sharedStore (one Console per database) nothing is looked up again.
  AuthOptions alone = o;
  alone.sharedStore = false;
  AuthService c(storeB, clock, alone);
  REQUIRE(c.start().ok());
  REQUIRE(a.createUser("ci-bot-4", "ci-bot-password", Role::kAuditor).ok());
  clock.advance(1h);
  CHECK(c.authenticate(basic("ci-bot-4", "ci-bot-password"), "x").error().code ==
        "invalid_credentials");
}

TEST_CASE("loadOrCreateSharedSecret: the first key wins; every replica reads it", "[auth-store]") {
  dc::test::SharedTestDatabase shared("secrets");
  auto first = loadOrCreateSharedSecret(*shared.a, "token_key", 32);
  REQUIRE(first.ok());
  CHECK(first->size() == 32);
  auto second = loadOrCreateSharedSecret(*shared.b, "token_key", 32);
  REQUIRE(second.ok());
  CHECK(*second == *first);
  auto again = loadOrCreateSharedSecret(*shared.a, "token_key", 32);
  REQUIRE(again.ok());
  CHECK(*again == *first);
  auto other = loadOrCreateSharedSecret(*shared.b, "another_key", 32);
  REQUIRE(other.ok());
  CHECK(*other != *first);
  auto wrongSize = loadOrCreateSharedSecret(*shared.b, "token_key", 16);
  REQUIRE_FALSE(wrongSize.ok());
  CHECK(wrongSize.error().code == "secret_invalid");
}

TEST_CASE("AuthService: first admin, passwords, tokens, expiry and revocation", "[auth-store]") {
  ManualClock clock{kT0};
  auto store = openAuthStore(dc::test::testDatabase("auth"));
  REQUIRE(store.ok());
  AuthService auth(**store, clock, fastOptions());
  REQUIRE(auth.start().ok());

  SECTION("a generated admin password is returned once and works") {
    auto generated = auth.bootstrapAdmin("");
    REQUIRE(generated.ok());
    REQUIRE(generated->has_value());
    CHECK((*generated)->size() >= 20);
    auto p = auth.authenticate(basic("admin", **generated), "10.0.0.1");
    REQUIRE(p.ok());
    CHECK(p->role == Role::kAdmin);
    // Users exist now: no second admin, nothing generated.
    auto again = auth.bootstrapAdmin("ignored-password");
    REQUIRE(again.ok());
    CHECK_FALSE(again->has_value());
    CHECK(auth.listUsers().size() == 1);
  }

  SECTION("stored hashes are salted PBKDF2, never the password") {
    REQUIRE(auth.bootstrapAdmin("first-admin-pw").ok());
    REQUIRE(auth.createUser("carol", "first-admin-pw", Role::kAuditor).ok());
    auto users = (*store)->loadUsers();
    REQUIRE(users->size() == 2);
    CHECK(users->at(0).salt != users->at(1).salt);
    CHECK(users->at(0).passwordHash != users->at(1).passwordHash);
    for (const auto& u : *users) {
      CHECK(u.passwordHash == pbkdf2Sha256("first-admin-pw", u.salt, u.iterations));
      CHECK(u.iterations == 1000);
    }
  }

  SECTION("tokens expire on the clock and are revoked by a password or role change") {
    REQUIRE(auth.bootstrapAdmin("first-admin-pw").ok());
    REQUIRE(auth.createUser("dave", "dave-password-1", Role::kDefenderManager).ok());
    auto token = auth.login("dave", "dave-password-1", "10.0.0.2");
    REQUIRE(token.ok());
    CHECK(token->expiresAt == kT0 + 30min);
    auto p = auth.authenticate("Bearer " + token->token, "10.0.0.2");
    REQUIRE(p.ok());
    CHECK(p->username == "dave");
    CHECK(p->role == Role::kDefenderManager);

    SECTION("expiry") {
      clock.advance(30min - 1s);
      CHECK(auth.authenticate("Bearer " + token->token, "x").ok());
      clock.advance(1s);
      auto expired = auth.authenticate("Bearer " + token->token, "x");
      REQUIRE_FALSE(expired.ok());
      CHECK(expired.error().kind == ErrorKind::kUnauthenticated);
      CHECK(expired.error().code == "token_expired");
    }
    SECTION("password change") {
      REQUIRE(auth.updateUser("dave", std::string("dave-password-2"), std::nullopt).ok());
      auto revoked = auth.authenticate("Bearer " + token->token, "x");
      REQUIRE_FALSE(revoked.ok());
      CHECK(revoked.error().code == "token_revoked");
      // The remembered Basic verification is dropped with the old password.
      CHECK(auth.authenticate(basic("dave", "dave-password-1"), "x").error().code ==
            "invalid_credentials");
      CHECK(auth.authenticate(basic("dave", "dave-password-2"), "x").ok());
    }
    SECTION("role change and delete") {
      REQUIRE(auth.updateUser("dave", std::nullopt, Role::kAuditor).ok());
      CHECK(auth.authenticate("Bearer " + token->token, "x").error().code == "token_revoked");
      auto fresh = auth.login("dave", "dave-password-1", "x");
      REQUIRE(fresh.ok());
      CHECK(auth.authenticate("Bearer " + fresh->token, "x")->role == Role::kAuditor);
      REQUIRE(auth.deleteUser("dave").ok());
      CHECK(auth.authenticate("Bearer " + fresh->token, "x").error().code == "token_revoked");
      // A new user of the same name does not inherit the deleted user's tokens.
      REQUIRE(auth.createUser("dave", "dave-password-9", Role::kAdmin).ok());
      auto old = auth.authenticate("Bearer " + fresh->token, "x");
      REQUIRE_FALSE(old.ok());
      CHECK(old.error().code == "token_revoked");
      auto firstToken = auth.authenticate("Bearer " + token->token, "x");
      REQUIRE_FALSE(firstToken.ok());
    }
    SECTION("tampered and foreign tokens") {
      std::string t = token->token;
      t[t.size() / 2] = t[t.size() / 2] == 'A' ? 'B' : 'A';
      CHECK(auth.authenticate("Bearer " + t, "x").error().code == "invalid_token");
      AuthService other(**store, clock, fastOptions());  // another signing key
      REQUIRE(other.start().ok());
      CHECK(other.authenticate("Bearer " + token->token, "x").error().code == "invalid_token");
      CHECK(auth.authenticate("Bearer nonsense", "x").error().code == "invalid_token");
      CHECK(auth.authenticate("Digest abc", "x").error().code == "unsupported_scheme");
      CHECK(auth.authenticate("", "x").error().code == "unauthenticated");
    }
  }

  SECTION("the last admin cannot be deleted or demoted; rules on names and passwords") {
    REQUIRE(auth.bootstrapAdmin("first-admin-pw").ok());
    CHECK(auth.deleteUser("admin").error().code == "last_admin");
    CHECK(auth.updateUser("admin", std::nullopt, Role::kAuditor).error().code == "last_admin");
    CHECK(auth.createUser("bad name", "long-enough-pw", Role::kAuditor).error().code ==
          "invalid_username");
    CHECK(auth.createUser("erin", "short", Role::kAuditor).error().code == "weak_password");
    CHECK(auth.createUser("admin", "long-enough-pw", Role::kAuditor).error().code == "user_exists");
    CHECK(auth.updateUser("nobody", std::nullopt, Role::kAuditor).error().code == "unknown_user");
    REQUIRE(auth.createUser("frank", "long-enough-pw", Role::kAdmin).ok());
    CHECK(auth.deleteUser("admin").ok());
  }

  SECTION("users and credentials survive a restart of the service") {
    REQUIRE(auth.bootstrapAdmin("first-admin-pw").ok());
    auto cred = auth.issueCredential("web:0b7e6c4e-3f4b-4b7b-9d3c-1a2b3c4d5e6f", "ci");
    REQUIRE(cred.ok());
    AuthService restarted(**store, clock, fastOptions());
    REQUIRE(restarted.start().ok());
    CHECK(restarted.authenticate(basic("admin", "first-admin-pw"), "x").ok());
    auto d = restarted.authenticateDefender("Bearer " + cred->secret);
    REQUIRE(d.ok());
    CHECK(d->appId == "web:0b7e6c4e-3f4b-4b7b-9d3c-1a2b3c4d5e6f");
    // Only the SHA-256 of the secret is stored.
    auto stored = (*store)->loadCredentials();
    REQUIRE(stored->size() == 1);
    CHECK(stored->front().hash == toHex(sha256(cred->secret)));
  }
}

TEST_CASE("AuthService: Defender credentials are scoped, revocable and not Console tokens",
          "[auth-store]") {
  ManualClock clock{kT0};
  auto store = openAuthStore(dc::test::testDatabase("auth"));
  REQUIRE(store.ok());
  AuthService auth(**store, clock, fastOptions());
  REQUIRE(auth.start().ok());
  REQUIRE(auth.bootstrapAdmin("first-admin-pw").ok());
  auto scoped = auth.issueCredential("web:0b7e6c4e-3f4b-4b7b-9d3c-1a2b3c4d5e6f", "");
  auto enrol = auth.issueCredential("", "");
  REQUIRE(scoped.ok());
  REQUIRE(enrol.ok());
  CHECK(scoped->secret.rfind(kCredentialPrefix, 0) == 0);
  CHECK(auth.authenticateDefender("Bearer " + enrol->secret)->appId.empty());
  CHECK(auth.authenticateDefender("Bearer " + scoped->secret)->appId ==
        "web:0b7e6c4e-3f4b-4b7b-9d3c-1a2b3c4d5e6f");
  CHECK(auth.authenticateDefender("Bearer dcd1_unknown").error().code == "invalid_credential");
  // A Console user's token or password is not a Defender credential.
  auto token = auth.login("admin", "first-admin-pw", "x");
  REQUIRE(token.ok());
  CHECK(auth.authenticateDefender("Bearer " + token->token).error().code ==
        "defender_credential_required");
  CHECK(auth.authenticateDefender(basic("admin", "first-admin-pw")).error().code ==
        "defender_credential_required");
  // On the Console API a Defender credential authenticates as a Defender (routes refuse it).
  CHECK(auth.authenticate("Bearer " + scoped->secret, "x")->kind == Principal::Kind::kDefender);

  REQUIRE(auth.revokeCredential(scoped->record.id).ok());
  REQUIRE(auth.revokeCredential(scoped->record.id).ok());  // idempotent
  CHECK(auth.authenticateDefender("Bearer " + scoped->secret).error().code == "credential_revoked");
  CHECK(auth.authenticateDefender("Bearer " + enrol->secret).ok());
  CHECK(auth.revokeCredential("nope").error().code == "unknown_credential");
  CHECK(auth.listCredentials().size() == 2);
}

TEST_CASE("AuthService: failures slow down per username and per address, alike for unknown users",
          "[auth-store]") {
  ManualClock clock{kT0};
  auto store = openAuthStore(dc::test::testDatabase("auth"));
  REQUIRE(store.ok());
  AuthService auth(**store, clock, fastOptions());  // 5 failures allowed in 15 min
  REQUIRE(auth.start().ok());
  REQUIRE(auth.bootstrapAdmin("first-admin-pw").ok());

  // The same sequence of answers whether the user exists or not.
  auto run = [&](const std::string& user, const std::string& addr) {
    std::vector<std::string> codes;
    for (int i = 0; i < 6; ++i)
      codes.push_back(auth.authenticate(basic(user, "wrong-pw"), addr).error().code);
    auto blocked = auth.authenticate(basic(user, "wrong-pw"), addr);
    codes.push_back(blocked.error().code);
    CHECK(blocked.error().kind == ErrorKind::kRateLimited);
    CHECK(blocked.error().retryAfterSeconds == 1);
    return codes;
  };
  const auto known = run("admin", "10.0.0.1");
  const auto unknown = run("ghost", "10.0.0.2");
  CHECK(known == unknown);
  CHECK(known == std::vector<std::string>{"invalid_credentials", "invalid_credentials",
                                          "invalid_credentials", "invalid_credentials",
                                          "invalid_credentials", "invalid_credentials",
                                          "too_many_failures"});

  // While blocked even the right password is not checked.
  CHECK(auth.authenticate(basic("admin", "first-admin-pw"), "10.0.0.9").error().code ==
        "too_many_failures");
  // The block doubles: after 1 s one more failure blocks for 2 s.
  clock.advance(1s);
  CHECK(auth.authenticate(basic("admin", "wrong-pw"), "10.0.0.9").error().code ==
        "invalid_credentials");
  auto second = auth.authenticate(basic("admin", "wrong-pw"), "10.0.0.9");
  CHECK(second.error().retryAfterSeconds == 2);
  clock.advance(2s);
  // The right password works once the block is over, and resets the username's count.
  CHECK(auth.authenticate(basic("admin", "first-admin-pw"), "10.0.0.9").ok());
  CHECK(auth.authenticate(basic("admin", "wrong-pw"), "10.0.0.9").error().code ==
        "invalid_credentials");

  // The address is blocked for every username: 10.0.0.2 failed 6 times above.
  REQUIRE(auth.createUser("gina", "gina-password", Role::kAuditor).ok());
  clock.advance(100s);  // past every block; the address still has its failures in the window
  CHECK(auth.authenticate(basic("gina", "wrong-pw"), "10.0.0.2").error().code ==
        "invalid_credentials");
  CHECK(auth.authenticate(basic("gina", "gina-password"), "10.0.0.2").error().code ==
        "too_many_failures");
  // After the window the address starts afresh.
  clock.advance(16min);
  CHECK(auth.authenticate(basic("gina", "gina-password"), "10.0.0.2").ok());
  // The same applies to POST /api/v1/authenticate.
  CHECK(auth.login("gina", "gina-password", "10.0.0.3").ok());
}

TEST_CASE("loadOrCreateSecretFile: created 0600 once, then reused") {
  const std::string path = tempPath("secrets/token.key");
  std::filesystem::remove(path);
  auto a = loadOrCreateSecretFile(path, 32);
  REQUIRE(a.ok());
  CHECK(a->size() == 32);
  CHECK((std::filesystem::status(path).permissions() & std::filesystem::perms::all) ==
        (std::filesystem::perms::owner_read | std::filesystem::perms::owner_write));
  auto b = loadOrCreateSecretFile(path, 32);
  REQUIRE(b.ok());
  CHECK(*a == *b);
  auto wrong = loadOrCreateSecretFile(path, 16);
  REQUIRE_FALSE(wrong.ok());
  CHECK(wrong.error().code == "secret_file_invalid");
}
