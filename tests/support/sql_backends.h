// Test support: the database a store test runs on. By default a private SQLite ":memory:"
// database; with DC_TEST_BACKEND=postgres (the `*_postgres` ctest entries, which run the test
// under scripts/with-postgres.sh) a fresh, private schema on the throw-away PostgreSQL server
// whose URL is in DC_TEST_POSTGRES_URL. A missing URL fails the test, never skips it.
#pragma once

#include <catch2/catch.hpp>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>

#include <unistd.h>

#include "common/sql_database.h"

namespace dc::test {

/// DC_TEST_POSTGRES_URL, or a failed test.
inline std::string postgresTestUrl() {
  const char* url = std::getenv("DC_TEST_POSTGRES_URL");
  if (url == nullptr || *url == '\0')
    FAIL(
        "DC_TEST_POSTGRES_URL is not set: run this test through scripts/with-postgres.sh "
        "(its ctest entry ends in _postgres)");
  return url;
}

/// A URL of the test server whose connections use a new, empty schema of their own.
inline std::string freshPostgresSchemaUrl() {
  static std::atomic<int> counter{0};
  const std::string base = postgresTestUrl();
  // Appended piece by piece: `"t" + std::to_string(…)` makes GCC 12 report a false -Wrestrict
  // at -O2 (Release builds).
  std::string schema = "t";
  schema += std::to_string(::getpid());
  schema += '_';
  schema += std::to_string(counter.fetch_add(1));
  auto admin = sql::openDatabase(base, "test-setup", 1);
  REQUIRE(admin.ok());
  auto created = (*admin)->run("CREATE SCHEMA " + schema);  // a generated identifier
  INFO((created.ok() ? std::string() : created.error().message));
  REQUIRE(created.ok());
  return base + (base.find('?') == std::string::npos ? "?" : "&") + "options=-csearch_path%3D" +
         schema;
}

/// A Database on a fresh schema of the test server, for `component`.
inline std::unique_ptr<sql::Database> openPostgresForTest(std::string_view component) {
  auto db = sql::openDatabase(freshPostgresSchemaUrl(), component, 4);
  INFO((db.ok() ? std::string() : db.error().message));
  REQUIRE(db.ok());
  return std::move(db).value();
}

/// True when DC_TEST_BACKEND=postgres.
inline bool testingPostgres() {
  const char* b = std::getenv("DC_TEST_BACKEND");
  return b != nullptr && std::string_view(b) == "postgres";
}

/// A fresh database for `component` on the backend under test.
inline std::shared_ptr<sql::Database> testDatabase(std::string_view component) {
  if (testingPostgres()) return openPostgresForTest(component);
  auto db = sql::openDatabase(":memory:", component);
  REQUIRE(db.ok());
  return std::move(db).value();
}

/// Two Database objects on one database of the backend under test, the way two Console replicas
/// open it: two connections to one temporary SQLite file (removed again on destruction), or two
/// pools on one fresh PostgreSQL schema.
struct SharedTestDatabase {
  std::shared_ptr<sql::Database> a, b;
  std::string file;  // SQLite only

  explicit SharedTestDatabase(std::string_view component) {
    std::string target;
    if (testingPostgres()) {
      target = freshPostgresSchemaUrl();
    } else {
      static std::atomic<int> counter{0};
      std::string name = "dc-shared-";
      name += std::to_string(::getpid());
      name += '-';
      name += std::to_string(counter.fetch_add(1));
      name += ".db";
      file = (std::filesystem::temp_directory_path() / name).string();
      removeFiles();
      target = file;
    }
    auto first = sql::openDatabase(target, component);
    REQUIRE(first.ok());
    auto second = sql::openDatabase(target, component);
    REQUIRE(second.ok());
    a = std::move(first).value();
    b = std::move(second).value();
  }
  ~SharedTestDatabase() {
    a.reset();
    b.reset();
    if (!file.empty()) removeFiles();
  }
  SharedTestDatabase(const SharedTestDatabase&) = delete;
  SharedTestDatabase& operator=(const SharedTestDatabase&) = delete;

 private:
  void removeFiles() const {
    std::error_code ec;
    for (const char* suffix : {"", "-wal", "-shm", "-journal"})
      std::filesystem::remove(file + suffix, ec);
  }
};

}  // namespace dc::test
