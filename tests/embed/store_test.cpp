// One conformance suite for every EmbedStore implementation: in-memory, and the SQL one on the
// backend under test (SQLite :memory:, or PostgreSQL in the embed_test_postgres entry:
// tests/support/sql_backends.h); two stores on one database; the SQLite file layout.
#include <catch2/catch.hpp>

#include <filesystem>
#include <functional>
#include <memory>

#include "embed/sql_store.h"
#include "embed/store.h"
#include "tests/support/sql_backends.h"

using namespace dc;
using namespace dc::embed;

namespace {

TimePoint at(long long ms) {
  return TimePoint(Millis(ms));
}

IssuedAppId issued(const std::string& family, const std::string& uuid, long long ms,
                   bool intrinsic = false) {
  return IssuedAppId{family + ":" + uuid, uuid, family, intrinsic, "native-json", "", at(ms)};
}

void conformance(const std::function<std::unique_ptr<EmbedStore>()>& make) {
  SECTION("issued App IDs are recorded, listed oldest first and filtered by family") {
    auto store = make();
    REQUIRE(store
                ->recordIssued({issued("web", "00000000-0000-4000-8000-000000000002", 2000),
                                issued("api", "00000000-0000-4000-8000-000000000001", 1000)})
                .ok());
    REQUIRE(
        store->recordIssued({issued("web", "00000000-0000-4000-8000-000000000003", 3000)}).ok());
    auto all = store->listIssued("", 0, 10);
    REQUIRE(all.ok());
    REQUIRE(all->total == 3);
    REQUIRE(all->items.size() == 3);
    CHECK(all->items[0].family == "api");
    CHECK(all->items[1] == issued("web", "00000000-0000-4000-8000-000000000002", 2000));
    CHECK(all->items[2].uuid == "00000000-0000-4000-8000-000000000003");

    auto web = store->listIssued("web", 1, 10);
    REQUIRE(web.ok());
    CHECK(web->total == 2);
    REQUIRE(web->items.size() == 1);
    CHECK(web->items[0].uuid == "00000000-0000-4000-8000-000000000003");

    auto limited = store->listIssued("", 0, 1);
    REQUIRE(limited.ok());
    CHECK(limited->total == 3);
    CHECK(limited->items.size() == 1);
  }

  SECTION("recording is all or nothing; a reused UUID is a conflict") {
    auto store = make();
    REQUIRE(store->recordIssued({issued("web", "00000000-0000-4000-8000-000000000001", 1)}).ok());
    auto st = store->recordIssued({issued("new", "00000000-0000-4000-8000-000000000009", 2),
                                   issued("web", "00000000-0000-4000-8000-000000000001", 3)});
    REQUIRE_FALSE(st.ok());
    CHECK(st.error().kind == ErrorKind::kConflict);
    CHECK(st.error().code == "duplicate_app_id");
    auto all = store->listIssued("", 0, 10);
    REQUIRE(all.ok());
    CHECK(all->total == 1);
  }

  SECTION("isIssued matches UUID and family exactly, or any family for an intrinsic") {
    auto store = make();
    REQUIRE(store
                ->recordIssued({issued("web", "0a000000-0000-4000-8000-000000000001", 1),
                                issued("{\"Ref\":\"Family\"}",
                                       "0b000000-0000-4000-8000-000000000002", 2, true)})
                .ok());
    CHECK(isIssued(*store, "web:0a000000-0000-4000-8000-000000000001"));
    CHECK(isIssued(*store, "web:0A000000-0000-4000-8000-000000000001"));  // UUID case
    CHECK_FALSE(isIssued(*store, "Web:0a000000-0000-4000-8000-000000000001"));
    CHECK_FALSE(isIssued(*store, "web:0a000000-0000-4000-8000-000000000009"));
    CHECK(isIssued(*store, "payments-prod:0b000000-0000-4000-8000-000000000002"));
    CHECK_FALSE(isIssued(*store, "not an app id"));
    CHECK_FALSE(isIssued(*store, ""));
  }

  SECTION("issuedAmong answers a page of App IDs as isIssued answers each") {
    auto store = make();
    REQUIRE(store
                ->recordIssued({issued("web", "0a000000-0000-4000-8000-000000000001", 1),
                                issued("{\"Ref\":\"Family\"}",
                                       "0b000000-0000-4000-8000-000000000002", 2, true)})
                .ok());
    const std::vector<std::string> page = {
        "web:0a000000-0000-4000-8000-000000000001",
        "web:0A000000-0000-4000-8000-000000000001",
        "Web:0a000000-0000-4000-8000-000000000001",
        "web:0a000000-0000-4000-8000-000000000009",
        "payments-prod:0b000000-0000-4000-8000-000000000002",
        "web:0a000000-0000-4000-8000-000000000001",  // twice on one page
        "not an app id",
        ""};
    const auto got = issuedAmong(*store, page);
    for (const auto& appId : page) {
      INFO(appId);
      CHECK(got.contains(appId) == isIssued(*store, appId));
    }
    CHECK(got.size() == 3);
    CHECK(issuedAmong(*store, {}).empty());
    auto records = store->findIssuedByUuids({"0b000000-0000-4000-8000-000000000002",
                                             "0a000000-0000-4000-8000-000000000001",
                                             "0c000000-0000-4000-8000-000000000003"});
    REQUIRE(records.ok());
    CHECK(records->size() == 2);
  }

  SECTION("image entrypoints are upserted, found and listed by prefix") {
    auto store = make();
    ImageEntrypoint a{"docker.io/library/nginx:1.25",
                      {"/docker-entrypoint.sh"},
                      {"nginx", "-g", "daemon off;"},
                      "api",
                      at(5)};
    ImageEntrypoint b{"example.com/team/app:1", {}, {"/app", "arg with space", ""}, "api", at(6)};
    REQUIRE(store->putImage(a).ok());
    REQUIRE(store->putImage(b).ok());
    auto found = store->findImage("docker.io/library/nginx:1.25");
    REQUIRE(found.ok());
    REQUIRE(found->has_value());
    CHECK(**found == a);
    auto missing = store->findImage("docker.io/library/nginx:1.26");
    REQUIRE(missing.ok());
    CHECK_FALSE(missing->has_value());

    a.entrypoint = {"/new"};
    a.updatedAt = at(7);
    REQUIRE(store->putImage(a).ok());
    found = store->findImage(a.image);
    REQUIRE(found.ok());
    CHECK(**found == a);

    auto all = store->listImages("", 0, 10);
    REQUIRE(all.ok());
    CHECK(all->total == 2);
    REQUIRE(all->items.size() == 2);
    CHECK(all->items[0].image == "docker.io/library/nginx:1.25");
    CHECK(all->items[1] == b);
    auto prefixed = store->listImages("example.com/", 0, 10);
    REQUIRE(prefixed.ok());
    CHECK(prefixed->total == 1);
    auto none = store->listImages("docker.io/library/nginx%", 0, 10);  // no LIKE semantics
    REQUIRE(none.ok());
    CHECK(none->total == 0);
  }
}

}  // namespace

TEST_CASE("EmbedStore conformance: memory", "[embed][store]") {
  conformance([] { return std::make_unique<MemoryEmbedStore>(); });
}

TEST_CASE("EmbedStore conformance: SQL", "[embed][store][embed-store]") {
  conformance([] {
    auto s = openEmbedStore(dc::test::testDatabase("embed"));
    REQUIRE(s.ok());
    return std::move(s).value();
  });
}

TEST_CASE("EmbedStore: two stores on one database see each other's App IDs and images",
          "[embed][store][embed-store]") {
  dc::test::SharedTestDatabase shared("embed");
  auto a = openEmbedStore(shared.a);
  auto b = openEmbedStore(shared.b);
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  REQUIRE((*a)->recordIssued({issued("web", "00000000-0000-4000-8000-000000000001", 1)}).ok());
  CHECK(isIssued(**b, "web:00000000-0000-4000-8000-000000000001"));
  // The same UUID issued by the other replica is a conflict, not a second row.
  auto dup = (*b)->recordIssued({issued("api", "00000000-0000-4000-8000-000000000001", 2)});
  REQUIRE_FALSE(dup.ok());
  CHECK(dup.error().code == "duplicate_app_id");
  CHECK((*a)->listIssued("", 0, 10)->total == 1);
  ImageEntrypoint e{"docker.io/library/nginx:1.25", {"/e"}, {"c"}, "api", at(5)};
  REQUIRE((*b)->putImage(e).ok());
  auto found = (*a)->findImage(e.image);
  REQUIRE(found.ok());
  REQUIRE(found->has_value());
  CHECK(**found == e);
  auto removed = (*a)->deleteImage(e.image);
  REQUIRE(removed.ok());
  CHECK(*removed);
  removed = (*b)->deleteImage(e.image);
  REQUIRE(removed.ok());
  CHECK_FALSE(*removed);
}

TEST_CASE("SQLite embed store persists across reopen and keeps its own version row",
          "[embed][store]") {
  const auto path = std::filesystem::temp_directory_path() /
                    ("embed_store_test_" + std::to_string(::getpid()) + ".db");
  std::filesystem::remove(path);
  const auto open = [&] {
    auto db = sql::openDatabase(path.string(), "embed");
    REQUIRE(db.ok());
    auto s = openEmbedStore(std::move(db).value());
    REQUIRE(s.ok());
    return std::move(s).value();
  };
  {
    auto s = open();
    REQUIRE(s->recordIssued({issued("web", "00000000-0000-4000-8000-000000000001", 1)}).ok());
  }
  {
    auto s = open();
    CHECK(isIssued(*s, "web:00000000-0000-4000-8000-000000000001"));
  }
  {
    auto db = sql::openDatabase(path.string(), "embed");
    REQUIRE(db.ok());
    auto version = (*db)->run("SELECT value FROM embed_meta WHERE key = 'schema_version'");
    REQUIRE(version.ok());
    REQUIRE(version->size() == 1);
    CHECK((*version)[0].text(0) == std::to_string(kEmbedSchemaVersion));
  }
  std::filesystem::remove(path);
  std::filesystem::remove(path.string() + "-wal");
  std::filesystem::remove(path.string() + "-shm");
}

TEST_CASE("SQLite embed store reports an unopenable file as unavailable", "[embed][store]") {
  auto db = sql::openDatabase("/nonexistent-dir/for/sure/embed.db", "embed");
  REQUIRE_FALSE(db.ok());
  CHECK(db.error().kind == ErrorKind::kUnavailable);
}

TEST_CASE("image references are normalized like registries resolve them", "[embed][store]") {
  CHECK(*normalizeImage("nginx") == "docker.io/library/nginx:latest");
  CHECK(*normalizeImage("nginx:1.25") == "docker.io/library/nginx:1.25");
  CHECK(*normalizeImage("docker.io/library/nginx:1.25") == "docker.io/library/nginx:1.25");
  CHECK(*normalizeImage("index.docker.io/library/nginx") == "docker.io/library/nginx:latest");
  CHECK(*normalizeImage("me/app") == "docker.io/me/app:latest");
  CHECK(*normalizeImage("localhost:5000/app") == "localhost:5000/app:latest");
  CHECK(*normalizeImage("123.dkr.ecr.us-east-1.amazonaws.com/a/b:1") ==
        "123.dkr.ecr.us-east-1.amazonaws.com/a/b:1");
  CHECK(*normalizeImage("nginx@sha256:abc") == "docker.io/library/nginx@sha256:abc");
  CHECK_FALSE(normalizeImage("").ok());
  CHECK_FALSE(normalizeImage("nginx latest").ok());
  CHECK_FALSE(normalizeImage(std::string(1025, 'a')).ok());
}
