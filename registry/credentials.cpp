#include "registry/credentials.h"

#include <algorithm>
#include <cctype>
#include <iterator>

#include "common/sqlite_tables.h"  // toEpochMs
#include "registry/secret_box.h"

namespace dc::registry {

namespace {

/// The registry credential table, version 1. The SQLite text is the layout of earlier Consoles
/// (version row in registry_meta); PostgreSQL has BYTEA and BIGINT.
const sql::Migration kMigrations[] = {{1, R"sql(
CREATE TABLE IF NOT EXISTS registry_credentials (
  id               TEXT PRIMARY KEY,
  type             TEXT NOT NULL,
  account_id       TEXT NOT NULL,
  sealed_secret    BLOB NOT NULL,
  description      TEXT NOT NULL,
  last_modified_ms INTEGER NOT NULL
);
)sql",
                                       R"sql(
CREATE TABLE IF NOT EXISTS registry_credentials (
  id               TEXT PRIMARY KEY,
  type             TEXT NOT NULL,
  account_id       TEXT NOT NULL,
  sealed_secret    BYTEA NOT NULL,
  description      TEXT NOT NULL,
  last_modified_ms BIGINT NOT NULL
);
)sql"}};

static_assert(std::size(kMigrations) == kRegistryCredentialsSchemaVersion);

Error failure(const Error& e, const char* what) {
  Error out = e;
  out.message = std::string("registry credentials: ") + what + " failed: " + e.message;
  return out;
}

RegistryCredential rowOf(const sql::Row& r) {
  RegistryCredential c;
  c.id = r.text(0);
  c.type = r.text(1);
  c.accountId = r.text(2);
  c.description = r.text(3);
  c.lastModified = fromEpochMs(r.integer(4));
  return c;
}

class SqlCredentialStore final : public CredentialStore {
 public:
  SqlCredentialStore(std::shared_ptr<sql::Database> db, std::string key)
      : db_(std::move(db)), box_(std::move(key)) {}

  Status put(const RegistryCredential& c) override {
    auto w = db_->run(
        "INSERT INTO registry_credentials (id, type, account_id, sealed_secret, description, "
        "last_modified_ms) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO UPDATE SET "
        "type = excluded.type, account_id = excluded.account_id, "
        "sealed_secret = excluded.sealed_secret, description = excluded.description, "
        "last_modified_ms = excluded.last_modified_ms",
        {c.id, c.type, c.accountId, sql::Blob{box_.seal(c.secret, c.id)}, c.description,
         toEpochMs(c.lastModified)});
    if (!w.ok()) return failure(w.error(), "insert");
    return Status::success();
  }

  Result<std::optional<RegistryCredential>> find(std::string_view id) override {
    auto rows = db_->run(
        "SELECT id, type, account_id, description, last_modified_ms, sealed_secret "
        "FROM registry_credentials WHERE id = $1",
        {std::string(id)});
    if (!rows.ok()) return failure(rows.error(), "select");
    if (rows->empty()) return std::optional<RegistryCredential>();
    const sql::Row& r = rows->front();
    RegistryCredential c = rowOf(r);
    auto secret = box_.open(r.blob(5), c.id);
    if (!secret)
      return Error{ErrorKind::kUnavailable, "credential_unreadable",
                   "registry credential \"" + c.id +
                       "\" cannot be decrypted with the key in registry.key: replicas on one "
                       "database need the same registry.key (copy it from the replica that "
                       "stored the credential); on a single Console whose key file was "
                       "replaced, store the credential again",
                   "registryCredentialID"};
    c.secret = std::move(*secret);
    return std::optional<RegistryCredential>(std::move(c));
  }

  Result<std::vector<RegistryCredential>> list() override {
    auto rows = db_->run(
        "SELECT id, type, account_id, description, last_modified_ms "
        "FROM registry_credentials ORDER BY id");
    if (!rows.ok()) return failure(rows.error(), "list");
    std::vector<RegistryCredential> out;
    out.reserve(rows->size());
    for (const auto& r : *rows) out.push_back(rowOf(r));
    return out;
  }

  Status remove(std::string_view id) override {
    auto rows =
        db_->run("DELETE FROM registry_credentials WHERE id = $1 RETURNING id", {std::string(id)});
    if (!rows.ok()) return failure(rows.error(), "delete");
    if (rows->empty())
      return Error::notFound("credential_not_found",
                             "no registry credential with id \"" + std::string(id) + "\"", "id");
    return Status::success();
  }

 private:
  std::shared_ptr<sql::Database> db_;
  SecretBox box_;
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

Result<std::unique_ptr<CredentialStore>> openCredentialStore(std::shared_ptr<sql::Database> db,
                                                             std::string key) {
  if (key.size() != 32) return Error::internal("registry credential key must be 32 bytes");
  if (auto st = db->migrate("registry", kMigrations); !st.ok()) return st.error();
  return std::unique_ptr<CredentialStore>(new SqlCredentialStore(std::move(db), std::move(key)));
}

}  // namespace dc::registry
