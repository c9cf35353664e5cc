// Conformance suite for inventory::Store. Every backend must pass it; it runs against SQLite in
// memory and against a SQLite file (WAL, separate read connections).
#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <map>
#include <set>

#include "inventory/sqlite_store.h"
#include "tests/support/found.h"

using namespace dc;
using namespace dc::inventory;
using namespace std::chrono_literals;

namespace {

const TimePoint kT0 = TimePoint(Millis(1'800'000'000'000));

Defender makeDefender(const std::string& host, DefenderType type, TimePoint seen,
                      const std::string& cluster = "prod", const std::string& appId = "") {
  Defender d;
  d.hostname = host;
  d.type = type;
  d.version = "32.07.123";
  d.cluster = cluster;
  d.appId = appId;
  d.details = {{"cloudMetadata", {{"provider", "aws"}, {"image", "nginx:1.25"}}},
               {"collections", {"All"}}};
  d.registeredAt = seen;
  d.lastSeen = seen;
  d.judgedFrom = seen;
  d.connectedSince = seen;
  return d;
}

struct Backend {
  std::string name;
  std::function<std::unique_ptr<Store>()> open;
};

std::vector<Backend> backends() {
  return {
      {"sqlite-memory",
       [] {
         auto s = openSqliteStore({":memory:"});
         REQUIRE(s.ok());
         return std::move(s).value();
       }},
      {"sqlite-file",
       [] {
         static int n = 0;
         auto path =
             std::filesystem::temp_directory_path() /
             ("dc-conformance-" + std::to_string(::getpid()) + "-" + std::to_string(++n) + ".db");
         std::filesystem::remove(path);
         auto s = openSqliteStore({path.string()});
         REQUIRE(s.ok());
         return std::move(s).value();
       }},
  };
}

Status upsert(Store& s, std::vector<Defender> ds) {
  WriteBatch b;
  b.upserts = std::move(ds);
  return s.write(b);
}

std::vector<std::string> hostnames(const Page<Defender>& p) {
  std::vector<std::string> out;
  for (const auto& d : p.items) out.push_back(d.hostname);
  return out;
}

}  // namespace

TEST_CASE("store conformance") {
  for (const auto& backend : backends()) {
    SECTION(backend.name) {
      auto store = backend.open();
      Store& s = *store;
      const LivenessCutoff cutoff{kT0, 90s};

      SECTION("upsert then find round-trips every field; hostnames are case-insensitive") {
        auto d = makeDefender("Task-ABC", DefenderType::kFargate, kT0, "prod",
                              "web:0b7e6c4e-3f4b-4b7b-9d3c-1a2b3c4d5e6f");
        d.container = "web";
        d.gracefulDisconnectAt = kT0 + 5s;
        d.clockSkewMs = -7200000;
        REQUIRE(upsert(s, {d}).ok());
        auto found = s.findDefender("task-abc");
        REQUIRE(found.ok());
        REQUIRE(found->has_value());
        const Defender& f = **found;
        CHECK(f.hostname == "Task-ABC");
        CHECK(f.type == DefenderType::kFargate);
        CHECK(f.version == d.version);
        CHECK(f.cluster == "prod");
        CHECK(f.appId == d.appId);
        CHECK(f.container == "web");
        CHECK(f.details == d.details);
        CHECK(f.lastSeen == kT0);
        CHECK(f.gracefulDisconnectAt == kT0 + 5s);
        CHECK(f.clockSkewMs == -7200000);
        auto missing = s.findDefender("nope");
        REQUIRE(missing.ok());
        CHECK_FALSE(missing->has_value());
      }

      SECTION("findDefenders returns the stored ones among many keys; liveness scan") {
        auto g = makeDefender("G-1", DefenderType::kDaemonset, kT0 - 10s);
        g.gracefulDisconnectAt = kT0 - 5s;
        g.clockSkewMs = 42;
        REQUIRE(upsert(s, {makeDefender("F-1", DefenderType::kFargate, kT0), g}).ok());
        const std::vector<std::string> keys = {"g-1", "missing", "f-1"};
        auto found = s.findDefenders(keys);
        REQUIRE(found.ok());
        std::vector<std::string> names;
        for (const auto& d : *found) names.push_back(d.hostname);
        std::sort(names.begin(), names.end());
        CHECK(names == std::vector<std::string>{"F-1", "G-1"});
        CHECK(s.findDefenders(std::span<const std::string>{})->empty());

        std::map<std::string, StoredLiveness> seen;
        REQUIRE(s.forEachLiveness([&](const StoredLiveness& l) {
                   seen[l.key] = l;
                   return true;
                 }).ok());
        REQUIRE(seen.size() == 2);
        CHECK(seen["f-1"].type == DefenderType::kFargate);
        CHECK(seen["f-1"].judgedFrom == kT0);
        CHECK_FALSE(seen["f-1"].gracefulDisconnectAt.has_value());
        CHECK(seen["g-1"].type == DefenderType::kDaemonset);
        CHECK(seen["g-1"].lastSeen == kT0 - 10s);
        CHECK(seen["g-1"].gracefulDisconnectAt == kT0 - 5s);
        CHECK(seen["g-1"].clockSkewMs == 42);
      }

      SECTION("keyset paging: afterKey continues after a hostname, both directions") {
        for (const char* h : {"a", "b", "c", "d", "e"})
          REQUIRE(upsert(s, {makeDefender(h, DefenderType::kFargate, kT0)}).ok());
        DefenderQuery q;
        q.afterKey = "b";
        q.limit = 2;
        CHECK(hostnames(*s.listDefenders(q, cutoff)) == std::vector<std::string>{"c", "d"});
        q.reverse = true;
        CHECK(hostnames(*s.listDefenders(q, cutoff)) == std::vector<std::string>{"a"});
      }

      SECTION("touch updates liveness only and skips unknown rows") {
        REQUIRE(upsert(s, {makeDefender("a", DefenderType::kFargate, kT0)}).ok());
        WriteBatch b;
        auto t = makeDefender("a", DefenderType::kFargate, kT0 + 10s, "other-cluster");
        b.touches = {t, makeDefender("ghost", DefenderType::kFargate, kT0)};
        REQUIRE(s.write(b).ok());
        auto f = s.findDefender("a");
        REQUIRE(dc::testing::found(f));
        CHECK((*f)->lastSeen == kT0 + 10s);
        CHECK((*f)->cluster == "prod");
        CHECK_FALSE(dc::testing::found(s.findDefender("ghost")));
      }

      SECTION("filters, sorting with a hostname tie-breaker, paging and Total-Count") {
        std::vector<Defender> ds;
        for (int i = 0; i < 30; ++i) {
          const auto type =
              i % 3 == 0 ? DefenderType::kFargate
                         : (i % 3 == 1 ? DefenderType::kAppEmbedded : DefenderType::kServerLinux);
          // Half are silent beyond the grace period.
          const TimePoint seen = i % 2 == 0 ? kT0 : kT0 - 10min;
          ds.push_back(makeDefender("host-" + std::string(i < 10 ? "0" : "") + std::to_string(i),
                                    type, seen, i < 15 ? "alpha" : "beta",
                                    i % 3 == 0 ? "fam:0b7e6c4e-3f4b-4b7b-9d3c-1a2b3c4d5e6f" : ""));
        }
        REQUIRE(upsert(s, ds).ok());

        DefenderQuery q;
        q.types = {DefenderType::kFargate};
        auto p = s.listDefenders(q, cutoff);
        REQUIRE(p.ok());
        CHECK(p->total == 10);
        for (const auto& d : p->items) CHECK(d.type == DefenderType::kFargate);

        q = {};
        q.types = {DefenderType::kFargate, DefenderType::kAppEmbedded};
        q.connected = true;
        p = s.listDefenders(q, cutoff);
        REQUIRE(p.ok());
        CHECK(p->total == 10);  // even i among i%3 in {0,1}
        for (const auto& d : p->items) CHECK(d.lastSeen == kT0);

        q = {};
        q.connected = false;
        CHECK(s.listDefenders(q, cutoff)->total == 15);
        q = {};
        q.cluster = "beta";
        CHECK(s.listDefenders(q, cutoff)->total == 15);
        q = {};
        q.appId = "fam:0b7e6c4e-3f4b-4b7b-9d3c-1a2b3c4d5e6f";
        CHECK(s.listDefenders(q, cutoff)->total == 10);
        q = {};
        q.hostname = "HOST-07";
        CHECK(hostnames(*s.listDefenders(q, cutoff)) == std::vector<std::string>{"host-07"});
        q = {};
        q.category = Category::kAppEmbedded;
        CHECK(s.listDefenders(q, cutoff)->total == 20);
        q = {};
        q.image = "nginx:1.25";
        CHECK(s.listDefenders(q, cutoff)->total == 30);
        q = {};
        q.search = "ST-2";  // substring of hostname, case-insensitive
        CHECK(s.listDefenders(q, cutoff)->total == 10);
        q.search = "BET";  // cluster
        CHECK(s.listDefenders(q, cutoff)->total == 15);
        q.search = "%";  // wildcards are literal
        CHECK(s.listDefenders(q, cutoff)->total == 0);

        for (SortKey key : allSortKeys()) {
          for (bool reverse : {false, true}) {
            INFO(std::string(sortKeyName(key)) << (reverse ? " desc" : " asc"));
            std::vector<std::string> seen;
            for (int offset = 0; offset < 30; offset += 7) {
              DefenderQuery pq;
              pq.sort = key;
              pq.reverse = reverse;
              pq.offset = offset;
              pq.limit = 7;
              auto page = s.listDefenders(pq, cutoff);
              REQUIRE(page.ok());
              CHECK(page->total == 30);
              for (auto& h : hostnames(*page)) seen.push_back(h);
            }
            CHECK(seen.size() == 30);
            CHECK(std::set<std::string>(seen.begin(), seen.end()).size() == 30);
          }
        }
        DefenderQuery byHost;
        byHost.limit = 3;
        CHECK(hostnames(*s.listDefenders(byHost, cutoff)) ==
              std::vector<std::string>{"host-00", "host-01", "host-02"});
        byHost.reverse = true;
        CHECK(hostnames(*s.listDefenders(byHost, cutoff)) ==
              std::vector<std::string>{"host-29", "host-28", "host-27"});
      }

      SECTION("summary counts connected and deployed per category") {
        REQUIRE(upsert(s, {makeDefender("f1", DefenderType::kFargate, kT0),
                           makeDefender("f2", DefenderType::kFargate, kT0 - 1h),
                           makeDefender("h1", DefenderType::kServerLinux, kT0)})
                    .ok());
        auto sum = s.summarize(cutoff);
        REQUIRE(sum.ok());
        for (const auto& c : *sum) {
          if (c.category == Category::kAppEmbedded) {
            CHECK(c.deployed == 2);
            CHECK(c.connected == 1);
          } else if (c.category == Category::kHost) {
            CHECK(c.deployed == 1);
            CHECK(c.connected == 1);
          } else {
            CHECK(c.deployed == 0);
          }
        }
      }

      SECTION("observations attach to the current registration and go with it") {
        REQUIRE(upsert(s, {makeDefender("f1", DefenderType::kFargate, kT0),
                           makeDefender("f2", DefenderType::kFargate, kT0)})
                    .ok());
        WriteBatch b;
        for (int i = 0; i < 5; ++i) {
          Observation o;
          o.kind = "process";
          o.time = kT0 + Millis(i);
          o.receivedAt = kT0;
          o.fields = {{"path", "/bin/sh"}, {"n", i}};
          b.observations.emplace_back("f1", o);
        }
        b.observations.emplace_back("f2", b.observations.front().second);
        b.observations.emplace_back("gone", b.observations.front().second);  // dropped
        REQUIRE(s.write(b).ok());
        auto obs = s.listObservations("f1", 0, 3);
        REQUIRE(obs.ok());
        CHECK(obs->total == 5);
        REQUIRE(obs->items.size() == 3);
        CHECK(obs->items[0].fields["n"] == 4);  // newest first
        CHECK(*s.countObservations() == 6);

        const std::string keys[] = {"f1", "missing"};
        auto removed = s.removeDefenders(keys, "scheduler", "test", kT0 + 2h);
        REQUIRE(removed.ok());
        REQUIRE(removed->size() == 1);
        CHECK(removed->front().hostname == "f1");
        CHECK(removed->front().observationsRemoved == 5);
        CHECK(removed->front().actor == "scheduler");
        CHECK(*s.countObservations() == 1);
        CHECK_FALSE(dc::testing::found(s.findDefender("f1")));

        // Registering again starts empty.
        REQUIRE(upsert(s, {makeDefender("f1", DefenderType::kFargate, kT0 + 3h)}).ok());
        CHECK(s.listObservations("f1", 0, 10)->total == 0);

        auto audit = s.listAudit(0, 10);
        REQUIRE(audit.ok());
        CHECK(audit->total == 1);
        CHECK(audit->items.front().reason == "test");
        CHECK(audit->items.front().lastSeen == kT0);
      }

      SECTION("settings and console state persist") {
        CHECK(s.loadSettings()->disconnectPeriodDays == 1);
        REQUIRE(s.saveSettings({7}).ok());
        CHECK(s.loadSettings()->disconnectPeriodDays == 7);
        CHECK_FALSE(dc::testing::found(s.loadConsoleAlive()));
        WriteBatch b;
        b.consoleAlive = kT0;
        REQUIRE(s.write(b).ok());
        CHECK(**s.loadConsoleAlive() == kT0);
      }

      SECTION("an upsert stores the descriptive fingerprint; a touch keeps it") {
        auto d = makeDefender("fp-1", DefenderType::kFargate, kT0);
        REQUIRE(upsert(s, {d}).ok());
        auto fingerprintOf = [&](const std::string& key) {
          uint64_t fp = 0;
          REQUIRE(s.forEachLiveness([&](const StoredLiveness& l) {
                     if (l.key == key) fp = l.fingerprint;
                     return true;
                   }).ok());
          return fp;
        };
        CHECK(fingerprintOf("fp-1") == descriptiveFingerprint(d));
        WriteBatch touch;
        d.lastSeen = d.judgedFrom = kT0 + 30s;
        touch.touches.push_back(d);
        REQUIRE(s.write(touch).ok());
        CHECK(fingerprintOf("fp-1") == descriptiveFingerprint(d));
        d.version = "99.0";
        REQUIRE(upsert(s, {d}).ok());
        CHECK(fingerprintOf("fp-1") == descriptiveFingerprint(d));
        CHECK(descriptiveFingerprint(d) != 0);
      }
    }
  }
}

TEST_CASE("a database from a newer Console is refused clearly") {
  auto path =
      std::filesystem::temp_directory_path() / ("dc-newer-" + std::to_string(::getpid()) + ".db");
  std::filesystem::remove(path);
  {
    auto s = openSqliteStore({path.string()});
    REQUIRE(s.ok());
  }
  {
    // Simulate a newer schema by bumping the version with the sqlite3 CLI-free API: reopen and
    // write through a raw statement is not exposed, so use the store's own file via sqlite3.
    const std::string cmd =
        "sqlite3 '" + path.string() + "' 'UPDATE schema_version SET version = version + 1'";
    REQUIRE(std::system(cmd.c_str()) == 0);
  }
  auto s = openSqliteStore({path.string()});
  REQUIRE_FALSE(s.ok());
  CHECK(s.error().code == "schema_too_new");
  std::filesystem::remove(path);
}

TEST_CASE("schema 3 backfills the version key of Defenders stored before it", "[version]") {
  auto path = std::filesystem::temp_directory_path() /
              ("dc-version-key-" + std::to_string(::getpid()) + ".db");
  std::filesystem::remove(path);
  const DefenderVersion deployed{34, 1, 132};
  auto older = [&](Store& s) {
    DefenderQuery q;
    q.outdated = true;
    q.deployedVersion = deployed;
    auto page = s.listDefenders(q, {kT0, Seconds(90)});
    REQUIRE(page.ok());
    CHECK(page->total == static_cast<long long>(page->items.size()));
    return hostnames(*page);
  };
  {
    auto s = openSqliteStore({path.string()});
    REQUIRE(s.ok());
    std::vector<Defender> ds;
    for (auto [host, version] : {std::pair{"a-old", "32.07.123"},
                                 {"b-text", "34.1.99"},
                                 {"c-same", "34.01.132"},
                                 {"d-free", "dev"}}) {
      ds.push_back(makeDefender(host, DefenderType::kFargate, kT0));
      ds.back().version = version;
    }
    ds.push_back(makeDefender("e-host", DefenderType::kServerLinux, kT0));  // 32.07.123
    REQUIRE(upsert(**s, ds).ok());
    CHECK(older(**s) == std::vector<std::string>{"a-old", "b-text", "e-host"});
  }
  // Turn the file back into a schema-2 database (no version_key column), as an older Console
  // left it, with the sqlite3 tool.
  const std::string cmd = "sqlite3 '" + path.string() +
                          "' 'DROP INDEX defenders_version; ALTER TABLE defenders DROP COLUMN "
                          "version_key; UPDATE schema_version SET version = 2'";
  REQUIRE(std::system(cmd.c_str()) == 0);
  auto s = openSqliteStore({path.string()});
  REQUIRE(s.ok());
  CHECK(older(**s) == std::vector<std::string>{"a-old", "b-text", "e-host"});
  auto counts = (*s)->countOutdated(deployed);
  REQUIRE(counts.ok());
  CHECK((*counts)[static_cast<size_t>(Category::kAppEmbedded)].outdated == 2);
  CHECK((*counts)[static_cast<size_t>(Category::kHost)].outdated == 1);
  // Not outdated: the same, and the unparseable.
  DefenderQuery q;
  q.outdated = false;
  q.deployedVersion = deployed;
  auto rest = (*s)->listDefenders(q, {kT0, Seconds(90)});
  REQUIRE(rest.ok());
  CHECK(hostnames(*rest) == std::vector<std::string>{"c-same", "d-free"});
  std::filesystem::remove(path);
}
