// common/sql_database: the same cases on SQLite (sql_database_test) and on PostgreSQL
// (sql_database_test_postgres: DC_TEST_BACKEND=postgres under scripts/with-postgres.sh).
#include "common/sql_database.h"

#include <catch2/catch.hpp>

#include <atomic>
#include <thread>

#include "tests/support/sql_backends.h"

using dc::ErrorKind;
using dc::sql::Blob;
using dc::sql::Database;
using dc::sql::Migration;

namespace {

const Migration kV1{1, "CREATE TABLE items (name TEXT PRIMARY KEY, n BIGINT, data BLOB)",
                    "CREATE TABLE items (name TEXT PRIMARY KEY, n BIGINT, data BYTEA)"};
const Migration kV2{2, "ALTER TABLE items ADD COLUMN note TEXT", ""};

void exercise(Database& db) {
  const Migration v1[] = {kV1};
  REQUIRE(db.migrate("items", v1).ok());
  REQUIRE(db.migrate("items", v1).ok());  // idempotent

  SECTION("bound values come back as they went in") {
    std::string bytes("\x00\x01\xff\x5c\x27 x", 7);
    REQUIRE(db.run("INSERT INTO items (name, n, data) VALUES ($1, $2, $3)",
                   {std::string("a'; DROP TABLE items; --"), 9007199254740993LL, Blob{bytes}})
                .ok());
    REQUIRE(db.run("INSERT INTO items (name, n, data) VALUES ($1, $2, $3)",
                   {std::string("b"), nullptr, nullptr})
                .ok());
    auto rows = db.run("SELECT name, n, data FROM items ORDER BY name");
    REQUIRE(rows.ok());
    REQUIRE(rows->size() == 2);
    CHECK((*rows)[0].text(0) == "a'; DROP TABLE items; --");
    CHECK((*rows)[0].integer(1) == 9007199254740993LL);
    CHECK((*rows)[0].blob(2) == bytes);
    CHECK((*rows)[1].null(1));
    CHECK((*rows)[1].null(2));
    CHECK((*rows)[1].integer(1) == 0);
    // A parameter used twice, and out of order.
    auto r = db.run("SELECT name FROM items WHERE n = $2 OR name = $1 OR name = $1", {"b", 1LL});
    REQUIRE(r.ok());
    REQUIRE(r->size() == 1);
    CHECK((*r)[0].text(0) == "b");
  }

  SECTION("a duplicate key is a conflict, and nothing is written") {
    REQUIRE(db.run("INSERT INTO items (name, n) VALUES ($1, $2)", {"k", 1LL}).ok());
    auto dup = db.run("INSERT INTO items (name, n) VALUES ($1, $2)", {"k", 2LL});
    REQUIRE(!dup.ok());
    CHECK(dup.error().kind == ErrorKind::kConflict);
    CHECK(dup.error().code == "constraint_violation");
    CHECK((*db.run("SELECT n FROM items WHERE name = $1", {"k"}))[0].integer(0) == 1);
  }

  SECTION("ON CONFLICT … DO UPDATE and RETURNING work on both backends") {
    for (long long n : {1LL, 2LL}) {
      auto r = db.run(
          "INSERT INTO items (name, n) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET n = "
          "items.n + excluded.n RETURNING n",
          {"u", n});
      REQUIRE(r.ok());
      REQUIRE(r->size() == 1);
      CHECK((*r)[0].integer(0) == (n == 1 ? 1 : 3));
    }
  }

  SECTION("a failed transaction leaves nothing behind") {
    auto st = db.transaction([](Database& tx) -> dc::Status {
      if (auto r = tx.run("INSERT INTO items (name, n) VALUES ($1, $2)", {"t1", 1LL}); !r.ok())
        return r.error();
      return dc::Error::invalid("stop", "", "stop");
    });
    REQUIRE(!st.ok());
    CHECK(st.error().code == "stop");
    CHECK(db.run("SELECT name FROM items")->empty());

    REQUIRE(db.transaction([](Database& tx) -> dc::Status {
                for (const char* n : {"t1", "t2"})
                  if (auto r = tx.run("INSERT INTO items (name) VALUES ($1)", {std::string(n)});
                      !r.ok())
                    return r.error();
                return dc::Status::success();
              }).ok());
    CHECK(db.run("SELECT name FROM items")->size() == 2);
  }

  SECTION("a statement error names the component and is not a crash") {
    auto r = db.run("SELECT nope FROM items");
    REQUIRE(!r.ok());
    CHECK(r.error().message.find("items-test") != std::string::npos);
    auto wrong = db.run("SELECT name FROM items WHERE name = $1", {"a", "b"});
    REQUIRE(!wrong.ok());
  }

  SECTION("migrations apply newer steps once and refuse a newer database") {
    const Migration v2[] = {kV1, kV2};
    REQUIRE(db.migrate("items", v2).ok());
    REQUIRE(db.run("INSERT INTO items (name, note) VALUES ($1, $2)", {"m", "n"}).ok());
    REQUIRE(db.migrate("items", v2).ok());
    const Migration onlyV1[] = {kV1};
    auto old = db.migrate("items", onlyV1);
    REQUIRE(!old.ok());
    CHECK(old.error().code == "schema_too_new");
  }

  SECTION("concurrent writers from several threads all land") {
    std::atomic<int> failures{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t)
      threads.emplace_back([&, t] {
        for (int i = 0; i < 25; ++i) {
          auto st = db.transaction([&](Database& tx) -> dc::Status {
            auto r = tx.run("INSERT INTO items (name, n) VALUES ($1, $2)",
                            {std::to_string(t) + "-" + std::to_string(i), 1LL});
            return r.ok() ? dc::Status::success() : dc::Status(r.error());
          });
          if (!st.ok()) ++failures;
        }
      });
    for (auto& th : threads) th.join();
    CHECK(failures == 0);
    CHECK((*db.run("SELECT COUNT(*) FROM items"))[0].integer(0) == 100);
  }
}

}  // namespace

TEST_CASE("sql::Database: values, conflicts, transactions, migrations, threads") {
  auto db = dc::test::testDatabase("items-test");
  CHECK(db->backend() ==
        (dc::test::testingPostgres() ? dc::sql::Backend::kPostgres : dc::sql::Backend::kSqlite));
  exercise(*db);
}

TEST_CASE("isPostgresUrl tells a URL from a path") {
  CHECK(dc::sql::isPostgresUrl("postgresql://u@h:5432/db"));
  CHECK(dc::sql::isPostgresUrl("postgres://h/db"));
  CHECK(dc::sql::isPostgresUrl("PostgreSQL://h/db"));  // schemes are case-insensitive
  CHECK(!dc::sql::isPostgresUrl("/var/lib/dc/console.db"));
  CHECK(!dc::sql::isPostgresUrl(":memory:"));
}
