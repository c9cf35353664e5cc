// Configuration: --version wherever it stands, and the start-up warnings for settings that defeat
// each other (README, "Configuration").
#include <catch2/catch.hpp>

#include <cstdlib>
#include <string>
#include <vector>

#include "main/config.h"

using namespace dc;
using namespace std::chrono_literals;

namespace {

Result<ConsoleConfig> parse(std::vector<const char*> args) {
  args.insert(args.begin(), "defender-console");
  return parseConfig(static_cast<int>(args.size()), args.data(), "1.2.3");
}

bool mentions(const std::vector<std::string>& warnings, const std::string& flag) {
  for (const auto& w : warnings)
    if (w.find(flag) != std::string::npos) return true;
  return false;
}

}  // namespace

TEST_CASE("config: --version prints the version wherever it stands, and exits 0") {
  for (const auto& args : std::vector<std::vector<const char*>>{
           {"--version"}, {"--plain-http", "--version"}, {"--console-port", "9000", "--version"}}) {
    auto c = parse(args);
    REQUIRE_FALSE(c.ok());
    CHECK(c.error().code == "help");  // main() exits 0 after printing it
    CHECK(c.error().message == "defender-console 1.2.3\n");
  }
  auto help = parse({"--help"});
  REQUIRE_FALSE(help.ok());
  CHECK(help.error().message.find("--sweep-interval") != std::string::npos);
}

TEST_CASE("config: the defaults raise no warning") {
  auto c = parse({});
  REQUIRE(c.ok());
  CHECK(configWarnings(*c).empty());
}

TEST_CASE("config: self-defeating settings raise one warning each, naming the flag") {
  SECTION("flush interval not shorter than the grace period") {
    auto c = parse({"--heartbeat-interval", "2", "--grace", "5", "--flush-interval-ms", "5000"});
    REQUIRE(c.ok());
    const auto w = configWarnings(*c);
    REQUIRE(w.size() == 1);
    CHECK(mentions(w, "--flush-interval-ms (5000 ms)"));
    CHECK(mentions(w, "grace period (5 s)"));
  }
  SECTION("grace shorter than two heartbeat intervals (shorter than one is refused)") {
    auto c = parse({"--heartbeat-interval", "30", "--grace", "45"});
    REQUIRE(c.ok());
    const auto w = configWarnings(*c);
    REQUIRE(w.size() == 1);
    CHECK(mentions(w, "--grace (45 s)"));
    CHECK_FALSE(parse({"--heartbeat-interval", "30", "--grace", "20"}).ok());
    auto twice = parse({"--heartbeat-interval", "30", "--grace", "60"});
    REQUIRE(twice.ok());
    CHECK(configWarnings(*twice).empty());  // the boundary itself is fine
  }
  SECTION("sweep interval beyond five minutes makes App-Embedded evictions late") {
    auto c = parse({"--sweep-interval", "301"});
    REQUIRE(c.ok());
    CHECK(mentions(configWarnings(*c), "--sweep-interval (301 s)"));
    auto atLimit = parse({"--sweep-interval", "300"});
    REQUIRE(atLimit.ok());
    CHECK(configWarnings(*atLimit).empty());
  }
  SECTION("a pool size for a SQLite database is ignored, and said so") {
    auto c = parse({"--database-pool", "12"});
    REQUIRE(c.ok());
    const auto w = configWarnings(*c);
    REQUIRE(w.size() == 1);
    CHECK(mentions(w, "--database-pool (12)"));
    auto pg = parse({"--database-pool", "12", "--database", "postgresql://dc@127.0.0.1:5432/dc"});
    REQUIRE(pg.ok());
    CHECK(configWarnings(*pg).empty());
  }
}

TEST_CASE("config: --console-front chooses the Console API's front and its limits") {
  auto defaults = parse({});
  REQUIRE(defaults.ok());
  CHECK(defaults->consoleFront == "asio");
  auto httplibFront = parse({"--console-front", "httplib"});
  REQUIRE(httplibFront.ok());
  CHECK(httplibFront->consoleFront == "httplib");
  CHECK(defaults->consoleHeaderTimeoutSeconds == 5);
  CHECK(defaults->consoleIdleTimeoutSeconds == 60);
  CHECK(defaults->consoleMaxConnectionsPerAddress == 256);
  CHECK(defaults->consoleMaxQueued == 1024);
  auto asio = parse({"--console-front", "asio", "--console-max-connections-per-address", "12",
                     "--console-header-timeout", "3", "--console-max-queued", "0"});
  REQUIRE(asio.ok());
  CHECK(asio->consoleFront == "asio");
  CHECK(asio->consoleMaxConnectionsPerAddress == 12);
  CHECK(asio->consoleHeaderTimeoutSeconds == 3);
  CHECK(asio->consoleMaxQueued == 0);
  CHECK_FALSE(parse({"--console-front", "nginx"}).ok());
  CHECK_FALSE(parse({"--console-header-timeout", "0"}).ok());
}

TEST_CASE("config: --defender-front chooses the defender channel's front; asio limits checked") {
  auto defaults = parse({});
  REQUIRE(defaults.ok());
  CHECK(defaults->defenderFront == "asio");
  auto httplibFront = parse({"--defender-front", "httplib"});
  REQUIRE(httplibFront.ok());
  CHECK(httplibFront->defenderFront == "httplib");
  CHECK(defaults->defenderIdleTimeoutSeconds == 120);
  auto asio = parse({"--defender-front", "asio", "--defender-max-connections-per-address", "50"});
  REQUIRE(asio.ok());
  CHECK(asio->defenderFront == "asio");
  CHECK(asio->defenderMaxConnectionsPerAddress == 50);
  // WebSocket pings: every 30 s by default; 1..3600.
  CHECK(defaults->defenderWsPingSeconds == 30);
  auto ping = parse({"--defender-front", "asio", "--defender-ws-ping", "5"});
  REQUIRE(ping.ok());
  CHECK(ping->defenderWsPingSeconds == 5);
  CHECK_FALSE(parse({"--defender-ws-ping", "0"}).ok());
  CHECK_FALSE(parse({"--defender-ws-ping", "3601"}).ok());
  CHECK_FALSE(parse({"--defender-front", "nginx"}).ok());
  // The idle timeout must outlast the heartbeat interval, or every connection closes in between.
  auto idle = parse(
      {"--defender-front", "asio", "--heartbeat-interval", "60", "--defender-idle-timeout", "60"});
  REQUIRE_FALSE(idle.ok());
  CHECK(idle.error().code == "invalid_config");
  CHECK(idle.error().field == "defender-idle-timeout");
  CHECK(parse({"--defender-front", "asio", "--heartbeat-interval", "60", "--defender-idle-timeout",
               "61"})
            .ok());
}

TEST_CASE("config: --database takes a postgresql:// URL in any case, and no other scheme") {
  auto mixed = parse({"--database", "PostgreSQL://console:pw@db.example:5432/defenders"});
  REQUIRE(mixed.ok());
  CHECK(mixed->onPostgres());
  CHECK(mixed->database == "postgresql://console:pw@db.example:5432/defenders");
  CHECK(mixed->databaseForLogs() == "postgresql://db.example:5432/defenders");
  auto other = parse({"--database", "mysql://console:pw@db.example/defenders"});
  REQUIRE_FALSE(other.ok());
  CHECK(other.error().field == "database");
  CHECK(other.error().message.find("pw") == std::string::npos);
  auto file = parse({"--database", "/var/lib/defender-console/console.db"});
  REQUIRE(file.ok());
  CHECK_FALSE(file->onPostgres());
}

TEST_CASE("config: --sweeper-lease-ttl sets the lease's TTL, renewed every third of it") {
  auto defaults = parse({});
  REQUIRE(defaults.ok());
  CHECK(defaults->sweeperLeaseTtl == Seconds(15));
  CHECK(defaults->sweeperLeaseRenewEvery() == Seconds(5));
  auto shortest = parse({"--sweeper-lease-ttl", "3"});
  REQUIRE(shortest.ok());
  CHECK(shortest->sweeperLeaseTtl == Seconds(3));
  CHECK(shortest->sweeperLeaseRenewEvery() == Seconds(1));
  auto odd = parse({"--sweeper-lease-ttl", "10"});
  REQUIRE(odd.ok());
  CHECK(odd->sweeperLeaseRenewEvery() == Millis(3333));
  for (const char* refused : {"2", "3601", "0", "-5", "abc"}) {
    INFO(refused);
    auto c = parse({"--sweeper-lease-ttl", refused});
    REQUIRE_FALSE(c.ok());
    CHECK(c.error().code == "invalid_config");
  }
  ::setenv("DC_SWEEPER_LEASE_TTL", "30", 1);
  auto fromEnv = parse({});
  auto flagWins = parse({"--sweeper-lease-ttl", "6"});
  ::unsetenv("DC_SWEEPER_LEASE_TTL");
  REQUIRE(fromEnv.ok());
  CHECK(fromEnv->sweeperLeaseTtl == Seconds(30));
  CHECK(fromEnv->sweeperLeaseRenewEvery() == Seconds(10));
  REQUIRE(flagWins.ok());
  CHECK(flagWins->sweeperLeaseTtl == Seconds(6));
}
