// common/pg: the libpq wrapper and the migration runner, against the throw-away server that
// scripts/with-postgres.sh starts (ctest entry pg_test). Every case needs DC_TEST_POSTGRES_URL
// and fails without it.
#include <catch2/catch.hpp>

#include <atomic>
#include <cstdlib>
#include <thread>

#include "common/pg.h"
#include "tests/support/postgres.h"

using namespace dc;
using namespace std::chrono_literals;

namespace {

std::unique_ptr<pg::Connection> connect(const std::string& url) {
  auto c = pg::Connection::open(url);
  INFO((c.ok() ? std::string() : c.error().message));
  REQUIRE(c.ok());
  return std::move(c).value();
}

}  // namespace

TEST_CASE("pg: bound parameters, NULL and typed getters", "[postgres]") {
  const auto url = dc::testing::freshPostgresSchema();
  auto c = connect(url);
  auto r = c->exec(
      "SELECT $1::text, $2::bigint, $3::text IS NULL, $4::boolean, $5::bigint, "
      "length($1::text)",
      {pg::text("it's; DROP TABLE x --"), pg::integer(-9007199254740993LL), pg::null(),
       pg::boolean(true), pg::epochMs(TimePoint(Millis(1'800'000'000'123)))});
  REQUIRE(r.ok());
  REQUIRE(r->rows() == 1);
  CHECK(r->columns() == 6);
  CHECK(r->text(0, 0) == "it's; DROP TABLE x --");
  CHECK(r->integer(0, 1) == -9007199254740993LL);
  CHECK(r->boolean(0, 2));
  CHECK(r->boolean(0, 3));
  CHECK(r->epochMs(0, 4) == TimePoint(Millis(1'800'000'000'123)));
  CHECK(r->integer(0, 5) == 21);

  REQUIRE(c->execScript("CREATE TABLE t (k text PRIMARY KEY, v bigint)").ok());
  auto ins = c->exec(
      "INSERT INTO t VALUES ($1, $2), ($3, $4)",
      {pg::text("a"), pg::integer(std::optional<long long>()), pg::text("b"), pg::integer(2)});
  REQUIRE(ins.ok());
  CHECK(ins->affected() == 2);
  auto sel = c->exec("SELECT k, v FROM t ORDER BY k");
  REQUIRE(sel.ok());
  REQUIRE(sel->rows() == 2);
  CHECK(sel->isNull(0, 1));
  CHECK_FALSE(sel->optInteger(0, 1).has_value());
  CHECK(sel->optInteger(1, 1) == 2);

  SECTION("a unique violation is a conflict naming the SQLSTATE") {
    auto dup = c->exec("INSERT INTO t VALUES ($1, 1)", {pg::text("a")});
    REQUIRE_FALSE(dup.ok());
    CHECK(dup.error().kind == ErrorKind::kConflict);
    CHECK(dup.error().code == "constraint_violation");
    CHECK(dup.error().message.find("23505") != std::string::npos);
  }
  SECTION("bad SQL is an internal error") {
    auto bad = c->exec("SELEC 1");
    REQUIRE_FALSE(bad.ok());
    CHECK(bad.error().kind == ErrorKind::kInternal);
  }
}

TEST_CASE("pg: the transaction guard rolls back unless committed", "[postgres]") {
  const auto url = dc::testing::freshPostgresSchema();
  auto c = connect(url);
  REQUIRE(c->execScript("CREATE TABLE t (k text PRIMARY KEY)").ok());
  {
    auto tx = pg::Transaction::begin(*c);
    REQUIRE(tx.ok());
    REQUIRE(c->exec("INSERT INTO t VALUES ('dropped')").ok());
    CHECK(c->inTransaction());
  }
  CHECK_FALSE(c->inTransaction());
  {
    auto tx = pg::Transaction::begin(*c, "REPEATABLE READ");
    REQUIRE(tx.ok());
    REQUIRE(c->exec("INSERT INTO t VALUES ('kept')").ok());
    REQUIRE(tx->commit().ok());
  }
  {
    // A failed statement aborts the transaction; the guard still ends it.
    auto tx = pg::Transaction::begin(*c);
    REQUIRE(tx.ok());
    CHECK_FALSE(c->exec("INSERT INTO t VALUES ('kept')").ok());
    CHECK_FALSE(c->exec("SELECT 1").ok());
  }
  auto r = c->exec("SELECT string_agg(k, ',') FROM t");
  REQUIRE(r.ok());
  CHECK(r->text(0, 0) == "kept");
}

TEST_CASE("pg: connection errors name the server, never the password", "[postgres]") {
  // A port nobody listens on: bind one, close it, connect there.
  auto c =
      pg::Connection::open("postgresql://someone:s3cret-pw@127.0.0.1:1/nodb?connect_timeout=2");
  REQUIRE_FALSE(c.ok());
  CHECK(c.error().kind == ErrorKind::kUnavailable);
  CHECK(c.error().code == "storage_unavailable");
  CHECK(c.error().message.find("127.0.0.1:1/nodb") != std::string::npos);
  CHECK(c.error().message.find("s3cret-pw") == std::string::npos);

  auto bad = pg::Connection::open("postgresql://a:s3cret-pw@[::1");
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().code == "invalid_database_url");
  CHECK(bad.error().message.find("s3cret-pw") == std::string::npos);
  // libpq quotes the unreadable piece, here the password with a bad percent escape.
  auto escape = pg::Connection::open("postgresql://a:Sup3r%zzSecretPW@127.0.0.1:1/nodb");
  REQUIRE_FALSE(escape.ok());
  CHECK(escape.error().code == "invalid_database_url");
  CHECK(escape.error().message.find("zzSecretPW") == std::string::npos);
}

TEST_CASE("pg: the pool lends each connection once, times out, reconnects", "[postgres]") {
  const auto url = dc::testing::freshPostgresSchema();
  auto pool = pg::Pool::open({url, 2, 200ms});
  REQUIRE(pool.ok());
  auto& p = **pool;
  int firstPid = 0;
  {
    auto a = p.acquire();
    auto b = p.acquire();
    REQUIRE(a.ok());
    REQUIRE(b.ok());
    CHECK(p.inUse() == 2);
    auto c = p.acquire();
    REQUIRE_FALSE(c.ok());
    CHECK(c.error().code == "storage_unavailable");
    auto pid = (*a)->exec("SELECT pg_backend_pid()");
    REQUIRE(pid.ok());
    firstPid = static_cast<int>(pid->integer(0, 0));
    // Kill a's server process from b: a is broken from now on.
    REQUIRE((*b)->exec("SELECT pg_terminate_backend($1::int)", {pg::integer(firstPid)}).ok());
    auto dead = (*a)->exec("SELECT 1");
    REQUIRE_FALSE(dead.ok());
    CHECK(dead.error().kind == ErrorKind::kUnavailable);
    // A transaction left open is rolled back when its lease is returned.
    REQUIRE((*b)->exec("BEGIN").ok());
  }
  CHECK(p.inUse() == 0);
  // Every connection works again: the broken one was reconnected at checkout.
  auto a = p.acquire();
  auto b = p.acquire();
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  for (auto* l : {&*a, &*b}) {
    CHECK_FALSE((*l)->inTransaction());
    auto r = (*l)->exec("SELECT 1");
    REQUIRE(r.ok());
  }
}

TEST_CASE("pg: a pooled connection the server closed while idle is replaced at checkout",
          "[postgres]") {
  const auto url = dc::testing::freshPostgresSchema();
  auto pool = pg::Pool::open({url, 1, 1000ms});
  REQUIRE(pool.ok());
  int pid = 0;
  {
    auto c = (*pool)->acquire();
    REQUIRE(c.ok());
    pid = static_cast<int>((*c)->exec("SELECT pg_backend_pid()")->integer(0, 0));
  }
  // Terminated while it sits in the pool; wait until the server process is gone.
  auto admin = connect(url);
  REQUIRE(admin->exec("SELECT pg_terminate_backend($1::int)", {pg::integer(pid)}).ok());
  bool gone = false;
  for (int i = 0; i < 500 && !gone; ++i) {
    auto r = admin->exec("SELECT count(*) FROM pg_stat_activity WHERE pid = $1::int",
                         {pg::integer(pid)});
    REQUIRE(r.ok());
    gone = r->integer(0, 0) == 0;
    if (!gone) std::this_thread::sleep_for(10ms);  // polling the server's state, bounded
  }
  REQUIRE(gone);
  // The first statement on the next checkout already works, on a new server process.
  auto c = (*pool)->acquire();
  REQUIRE(c.ok());
  auto r = (*c)->exec("SELECT pg_backend_pid()");
  REQUIRE(r.ok());
  CHECK(r->integer(0, 0) != pid);
}

TEST_CASE("pg: migrations apply once, in order, also from replicas starting together",
          "[postgres]") {
  const auto url = dc::testing::freshPostgresSchema();
  const std::string_view steps[] = {
      "CREATE TABLE widgets (id bigint PRIMARY KEY); INSERT INTO widgets VALUES (1)",
      "ALTER TABLE widgets ADD COLUMN name text NOT NULL DEFAULT ''",
      "INSERT INTO widgets (id) SELECT max(id) + 1 FROM widgets",
  };
  // Four "replicas" at once: every step runs exactly once (the INSERT of step 3 would add a row
  // per run otherwise).
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int i = 0; i < 4; ++i)
    threads.emplace_back([&] {
      auto c = pg::Connection::open(url);
      if (!c.ok() || !pg::runMigrations(**c, "widgets", steps).ok()) ++failures;
    });
  for (auto& t : threads) t.join();
  CHECK(failures == 0);
  auto c = connect(url);
  CHECK(*pg::schemaVersion(*c, "widgets") == 3);
  CHECK(*pg::schemaVersion(*c, "other") == 0);
  auto rows = c->exec("SELECT count(*), max(id) FROM widgets");
  REQUIRE(rows.ok());
  CHECK(rows->integer(0, 0) == 2);
  auto log = c->exec(
      "SELECT version, applied_at > 0 FROM schema_migrations WHERE component = 'widgets' "
      "ORDER BY version");
  REQUIRE(log.ok());
  REQUIRE(log->rows() == 3);
  CHECK(log->boolean(2, 1));

  // Running again changes nothing; a binary that knows fewer steps refuses the database.
  REQUIRE(pg::runMigrations(*c, "widgets", steps).ok());
  auto older = pg::runMigrations(*c, "widgets", std::span(steps).first(2));
  REQUIRE_FALSE(older.ok());
  CHECK(older.error().code == "schema_too_new");
  CHECK(older.error().kind == ErrorKind::kInvalidArgument);

  // A failing step leaves the version where it was, with nothing of the step applied.
  const std::string_view broken[] = {steps[0], steps[1], steps[2],
                                     "CREATE TABLE gadgets (id int); SELEC 1"};
  auto failed = pg::runMigrations(*c, "widgets", broken);
  REQUIRE_FALSE(failed.ok());
  CHECK(failed.error().message.find("widgets schema version 4") != std::string::npos);
  CHECK(*pg::schemaVersion(*c, "widgets") == 3);
  auto gadgets = c->exec("SELECT to_regclass('gadgets') IS NULL");
  REQUIRE(gadgets.ok());
  CHECK(gadgets->boolean(0, 0));
}
