// Test support: the database a store test runs on. By default a private SQLite ":memory:"
// database; with DC_TEST_BACKEND=postgres (the `*_postgres` ctest entries, which run the test
// under scripts/with-postgres.sh) a fresh, private schema on the throw-away PostgreSQL server
// whose URL is in DC_TEST_POSTGRES_URL. A missing URL fails the test, never skips it.
#pragma once

#include <catch2/catch.hpp>

#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>

#include "common/sql_database.h"
#include "tests/support/postgres.h"

namespace dc::test {

/// A Database on a fresh schema of the test server, for `component`.
inline std::unique_ptr<sql::Database> openPostgresForTest(std::string_view component) {
  auto db = sql::openDatabase(testing::freshPostgresSchema(), component, 4);
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
      target = testing::freshPostgresSchema();
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
