#include "main/config.h"

#include <CLI/CLI.hpp>

#include <cctype>
#include <filesystem>

#include "common/pg.h"
#include "common/sql_database.h"

namespace dc {

std::string ConsoleConfig::databasePath() const {
  if (!database.empty()) return database;
  return (dataDir.empty() ? std::string(".") : dataDir) + "/console.db";
}

bool ConsoleConfig::onPostgres() const {
  return sql::isPostgresUrl(database);
}

std::string ConsoleConfig::databaseForLogs() const {
  return onPostgres() ? "postgresql://" + pg::describeUrl(database) : databasePath();
}

Result<ConsoleConfig> parseConfig(int argc, const char* const* argv, const std::string& version) {
  ConsoleConfig c;
  CLI::App app{
      "Defender Console: inventory and lifecycle of Defenders, above all App-Embedded "
      "Defenders in AWS ECS Fargate tasks."};
  app.set_version_flag("--version", "defender-console " + version);
  long long hbSeconds = 30, graceSeconds = 0, flushMs = 1000, sweepSeconds = 60,
            historySeconds = 60;
  long long cursorTtlSeconds = 300;
  long long leaseTtlSeconds = 15;
  size_t consoleBodyKib = c.consoleMaxBodyBytes >> 10,
         defenderBodyKib = c.defenderMaxBodyBytes >> 10;

  app.add_option("--data-dir", c.dataDir, "Directory for the SQLite database")
      ->envname("DC_DATA_DIR")
      ->capture_default_str();
  app.add_option("--database", c.database,
                 "SQLite database file (default <data-dir>/console.db; ':memory:' for a "
                 "throw-away inventory), or a PostgreSQL URL postgresql://user@host:port/db "
                 "(docs/operations.md \"PostgreSQL\")")
      ->envname("DC_DATABASE");
  app.add_option("--database-pool", c.databasePool,
                 "PostgreSQL only: connections to the database for the inventory (the other "
                 "stores share 4 more)")
      ->envname("DC_DATABASE_POOL")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  app.add_option("--host", c.host,
                 "Address both listeners bind to (0.0.0.0: every interface; with --plain-http "
                 "prefer 127.0.0.1)")
      ->envname("DC_HOST")
      ->capture_default_str();
  app.add_option("--console-port", c.consolePort, "Console API + web page port (0 = any free)")
      ->envname("DC_CONSOLE_PORT")
      ->check(CLI::Range(0, 65535))
      ->capture_default_str();
  app.add_option("--defender-port", c.defenderPort, "Defender channel port (0 = any free)")
      ->envname("DC_DEFENDER_PORT")
      ->check(CLI::Range(0, 65535))
      ->capture_default_str();
  app.add_option("--heartbeat-interval", hbSeconds,
                 "Seconds between heartbeats, told to Defenders (H)")
      ->envname("DC_HEARTBEAT_INTERVAL")
      ->check(CLI::Range(1, 3600))
      ->capture_default_str();
  app.add_option("--grace", graceSeconds,
                 "Seconds of silence after which a Defender is disconnected (G; default 3 x H)")
      ->envname("DC_GRACE")
      ->check(CLI::Range(0, 86400));
  app.add_option("--flush-interval-ms", flushMs,
                 "Longest wait before coalesced heartbeats are written, in milliseconds")
      ->envname("DC_FLUSH_INTERVAL_MS")
      ->check(CLI::Range(10, 10000))
      ->capture_default_str();
  app.add_option("--sweep-interval", sweepSeconds, "Seconds between eviction sweeps")
      ->envname("DC_SWEEP_INTERVAL")
      ->check(CLI::Range(1, 3600))
      ->capture_default_str();
  app.add_option("--sweeper-lease-ttl", leaseTtlSeconds,
                 "Replicas on one database: seconds the sweeper lease stays valid after each "
                 "renewal (renewed every third of it); a crashed or paused replica's sweeping "
                 "is taken over within 4/3 of it (docs/operations.md \"Which replica sweeps\")")
      ->envname("DC_SWEEPER_LEASE_TTL")
      ->check(CLI::Range(3, 3600))
      ->capture_default_str();
  app.add_option("--history-interval", historySeconds,
                 "Seconds between fleet history samples (one per minute is what the history "
                 "shows; shorter only for tests)")
      ->envname("DC_HISTORY_INTERVAL")
      ->check(CLI::Range(1, 3600))
      ->capture_default_str();
  app.add_option("--console-threads", c.consoleThreads, "Console API worker threads")
      ->envname("DC_CONSOLE_THREADS")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
  app.add_option("--defender-threads", c.defenderThreads,
                 "Defender channel worker threads (one per concurrent keep-alive connection)")
      ->envname("DC_DEFENDER_THREADS")
      ->check(CLI::Range(1, 4096))
      ->capture_default_str();
  app.add_option("--console-max-body-kib", consoleBodyKib, "Largest Console API request body")
      ->envname("DC_CONSOLE_MAX_BODY_KIB")
      ->check(CLI::Range(1, 65536))
      ->capture_default_str();
  app.add_option("--defender-max-body-kib", defenderBodyKib, "Largest defender channel body")
      ->envname("DC_DEFENDER_MAX_BODY_KIB")
      ->check(CLI::Range(1, 65536))
      ->capture_default_str();
  app.add_option("--ui-dir", c.uiDir, "Directory of the web page's static files")
      ->envname("DC_UI_DIR");
  app.add_option("--defender-max-queued", c.defenderMaxQueued,
                 "Defender-channel connections allowed to wait for a worker; beyond, 503 "
                 "overloaded with Retry-After (0 = unbounded)")
      ->envname("DC_DEFENDER_MAX_QUEUED")
      ->capture_default_str();
  app.add_option("--defender-nice", c.defenderNice,
                 "Nice value of the defender channel's worker threads: the flusher, the sweep "
                 "and the Console API run first when heartbeats saturate the CPU (0 = same)")
      ->envname("DC_DEFENDER_NICE")
      ->check(CLI::Range(0, 19))
      ->capture_default_str();
  app.add_option("--defender-front", c.defenderFront,
                 "Defender channel HTTP front: httplib (a worker thread per keep-alive "
                 "connection) or asio (event-driven; docs/defender-channel.md)")
      ->envname("DC_DEFENDER_FRONT")
      ->check(CLI::IsMember({"httplib", "asio"}))
      ->capture_default_str();
  app.add_option("--defender-io-threads", c.defenderIoThreads,
                 "asio front: threads holding the connections (0 = one per core)")
      ->envname("DC_DEFENDER_IO_THREADS")
      ->check(CLI::Range(0, 256))
      ->capture_default_str();
  app.add_option("--defender-header-timeout", c.defenderHeaderTimeoutSeconds,
                 "asio front: seconds for the TLS handshake and for each complete request head")
      ->envname("DC_DEFENDER_HEADER_TIMEOUT")
      ->check(CLI::Range(1, 300))
      ->capture_default_str();
  app.add_option("--defender-idle-timeout", c.defenderIdleTimeoutSeconds,
                 "asio front: seconds a keep-alive connection may idle between requests (more "
                 "than --heartbeat-interval)")
      ->envname("DC_DEFENDER_IDLE_TIMEOUT")
      ->check(CLI::Range(1, 86400))
      ->capture_default_str();
  app.add_option("--defender-ws-ping", c.defenderWsPingSeconds,
                 "asio front: seconds between WebSocket pings; a WebSocket silent for two "
                 "periods is closed")
      ->envname("DC_DEFENDER_WS_PING")
      ->check(CLI::Range(1, 3600))
      ->capture_default_str();
  app.add_option("--defender-max-connections-per-address", c.defenderMaxConnectionsPerAddress,
                 "asio front: connections one source address may hold; beyond, 429 "
                 "too_many_connections (0 = no cap)")
      ->envname("DC_DEFENDER_MAX_CONNECTIONS_PER_ADDRESS")
      ->capture_default_str();
  app.add_option("--console-front", c.consoleFront,
                 "Console API HTTP front: httplib (a worker thread per keep-alive connection) or "
                 "asio (event-driven; docs/operations.md)")
      ->envname("DC_CONSOLE_FRONT")
      ->check(CLI::IsMember({"httplib", "asio"}))
      ->capture_default_str();
  app.add_option("--console-io-threads", c.consoleIoThreads,
                 "Console asio front: threads holding the connections (0 = one per core)")
      ->envname("DC_CONSOLE_IO_THREADS")
      ->check(CLI::Range(0, 256))
      ->capture_default_str();
  app.add_option("--console-header-timeout", c.consoleHeaderTimeoutSeconds,
                 "Console asio front: seconds for the TLS handshake and for each complete "
                 "request head")
      ->envname("DC_CONSOLE_HEADER_TIMEOUT")
      ->check(CLI::Range(1, 300))
      ->capture_default_str();
  app.add_option("--console-idle-timeout", c.consoleIdleTimeoutSeconds,
                 "Console asio front: seconds a keep-alive connection may idle between requests")
      ->envname("DC_CONSOLE_IDLE_TIMEOUT")
      ->check(CLI::Range(1, 86400))
      ->capture_default_str();
  app.add_option("--console-max-connections-per-address", c.consoleMaxConnectionsPerAddress,
                 "Console asio front: connections one source address may hold; beyond, 429 "
                 "too_many_connections (0 = no cap)")
      ->envname("DC_CONSOLE_MAX_CONNECTIONS_PER_ADDRESS")
      ->capture_default_str();
  app.add_option("--console-max-queued", c.consoleMaxQueued,
                 "Console asio front: requests allowed to wait for a worker; beyond, 503 "
                 "overloaded with Retry-After (0 = unbounded)")
      ->envname("DC_CONSOLE_MAX_QUEUED")
      ->capture_default_str();
  app.add_option("--outage-threshold", c.outageThreshold,
                 "Share of the fleet silent within one grace period that pauses evictions")
      ->envname("DC_OUTAGE_THRESHOLD")
      ->check(CLI::Range(0.01, 1.0))
      ->capture_default_str();
  app.add_option("--outage-min-fleet", c.outageMinFleet,
                 "Smallest fleet the outage guard judges (smaller fleets never pause evictions)")
      ->envname("DC_OUTAGE_MIN_FLEET")
      ->capture_default_str();
  app.add_option("--cursor-ttl", cursorTtlSeconds,
                 "Seconds a cursor-paging snapshot is kept after its last use")
      ->envname("DC_CURSOR_TTL")
      ->check(CLI::Range(10, 86400))
      ->capture_default_str();
  app.add_option("--cursor-max-snapshots", c.cursorMaxSnapshots,
                 "Most cursor-paging snapshots kept (least recently used dropped first)")
      ->envname("DC_CURSOR_MAX_SNAPSHOTS")
      ->check(CLI::Range(1, 10000))
      ->capture_default_str();
  app.add_option("--cursor-max-mib", c.cursorMaxMiB,
                 "Most memory (MiB) held by cursor-paging snapshots in all")
      ->envname("DC_CURSOR_MAX_MIB")
      ->check(CLI::Range(1, 65536))
      ->capture_default_str();
  app.add_option("--port-file", c.portFile,
                 "Write the bound ports there when ready (console=<port>, defender=<port>)")
      ->envname("DC_PORT_FILE");
  app.add_option("--log-format", c.logFormat, "Log format")
      ->envname("DC_LOG_FORMAT")
      ->check(CLI::IsMember({"text", "json"}))
      ->capture_default_str();
  app.add_option("--log-level", c.logLevel, "Log level")
      ->envname("DC_LOG_LEVEL")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}))
      ->capture_default_str();

  std::string defenderVersion(kDefaultDefenderVersion);
  app.add_option("--defender-version", defenderVersion,
                 "Defender version this Console deploys, in the vendor's MM.mm.bbb form: the "
                 "sidecar image tag (defender_MM_mm_bbb), GET /api/v1/version, and older "
                 "Defenders are marked outdated")
      ->envname("DC_DEFENDER_VERSION")
      ->capture_default_str();

  long long tokenLifetimeSeconds = c.tokenLifetime.count();
  app.add_option("--admin-password", c.adminPassword,
                 "Password of the first admin user, used only when no user exists yet (default: "
                 "generated and printed once). Prefer the environment variable: flags show in ps")
      ->envname("DC_ADMIN_PASSWORD");
  app.add_flag("--plain-http", c.plainHttp,
               "Serve plain HTTP instead of HTTPS on both listeners (tests, local development)")
      ->envname("DC_PLAIN_HTTP");
  app.add_option("--tls-cert", c.tlsCert,
                 "PEM certificate (chain) for both listeners (default: self-signed, generated "
                 "into <data-dir>/tls/ on first start)")
      ->envname("DC_TLS_CERT");
  app.add_option("--tls-key", c.tlsKey, "PEM private key of --tls-cert")->envname("DC_TLS_KEY");
  app.add_option("--defender-client-ca", c.defenderClientCa,
                 "PEM CA bundle: the defender channel then requires client certificates it "
                 "signed (mutual TLS)")
      ->envname("DC_DEFENDER_CLIENT_CA");
  app.add_option("--registry-ca", c.registryCa,
                 "PEM CA bundle trusted, besides the system's, when the embed flow reads image "
                 "entrypoints from registries")
      ->envname("DC_REGISTRY_CA");
  long long registryTimeoutSeconds = c.registryRequestTimeout.count();
  app.add_option("--registry-request-timeout", registryTimeoutSeconds,
                 "Seconds each registry HTTP exchange (connect, read, write) may take")
      ->envname("DC_REGISTRY_REQUEST_TIMEOUT")
      ->check(CLI::Range(1, 120))
      ->capture_default_str();
  long long registryBudgetSeconds = c.registryBudget.count();
  app.add_option("--registry-budget", registryBudgetSeconds,
                 "Seconds one embed request may spend reading entrypoints from registries, all "
                 "images together")
      ->envname("DC_REGISTRY_BUDGET")
      ->check(CLI::Range(1, 300))
      ->capture_default_str();
  app.add_option("--token-lifetime", tokenLifetimeSeconds,
                 "Seconds a token from POST /api/v1/authenticate stays valid")
      ->envname("DC_TOKEN_LIFETIME")
      ->check(CLI::Range(60, 7 * 24 * 3600))
      ->capture_default_str();
  app.add_option("--password-iterations", c.passwordIterations,
                 "PBKDF2-HMAC-SHA256 rounds for new password hashes")
      ->envname("DC_PASSWORD_ITERATIONS")
      ->check(CLI::Range(1000, 10'000'000))
      ->capture_default_str();

  app.add_option("--failed-sign-ins-allowed", c.failedSignInsAllowed,
                 "Failed sign-ins per username and per client address within 15 minutes before "
                 "each further one is answered 429 for 1 s, 2 s, 4 s, ... (at most 15 min)")
      ->envname("DC_FAILED_SIGN_INS_ALLOWED")
      ->check(CLI::Range(1, 1'000'000))
      ->capture_default_str();

  // `defender-console backup|restore <file>`: the Console's own options (--data-dir,
  // --database, DC_*) name the database, before or after the subcommand.
  CLI::App* backup = app.add_subcommand(
      "backup",
      "Copy the database named by --data-dir/--database (before or after `backup`), "
      "consistently and while the Console runs, to <file> (written to <file>.tmp, checked with "
      "PRAGMA integrity_check, then renamed) and exit: 0 done, 1 failed, 2 bad arguments. "
      "SQLite only (for PostgreSQL use pg_dump). Restore: docs/operations.md");
  backup->add_option("file", c.backupFile, "Backup file to write (replaced if it exists)")
      ->required();
  backup->fallthrough();
  CLI::App* restore = app.add_subcommand(
      "restore",
      "Put the backup <file> in place of the database named by --data-dir/--database while no "
      "Console runs on it (refused otherwise); the replaced database is kept as "
      "<database>.replaced. Exit code: 0 done, 1 failed or in use, 2 bad arguments. SQLite "
      "only (for PostgreSQL use pg_restore or psql)");
  restore->add_option("file", c.backupFile, "Backup file written by `backup`")->required();
  restore->fallthrough();
  app.require_subcommand(0, 1);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForVersion& e) {
    // Wherever --version stands on the command line.
    return Error{ErrorKind::kInvalidArgument, "help", std::string(e.what()) + "\n", {}};
  } catch (const CLI::Success&) {
    return Error{ErrorKind::kInvalidArgument, "help", app.help(), {}};
  } catch (const CLI::ParseError& e) {
    return Error{ErrorKind::kInvalidArgument,
                 "invalid_config",
                 std::string(e.what()) + "\nRun with --help for the options.",
                 {}};
  }
  c.databasePoolGiven = app.count("--database-pool") > 0;
  if (backup->parsed()) c.command = "backup";
  if (restore->parsed()) c.command = "restore";
  if (auto v = parseDeployedVersion(defenderVersion)) {
    c.defenderVersion = *v;
  } else {
    return Error{ErrorKind::kInvalidArgument, "invalid_config",
                 "--defender-version (DC_DEFENDER_VERSION): '" + defenderVersion.substr(0, 64) +
                     "' is not a version in the vendor's MM.mm.bbb form (two, two and three "
                     "digits, e.g. " +
                     std::string(kDefaultDefenderVersion) + ")",
                 "defender-version"};
  }
  c.heartbeatInterval = Seconds(hbSeconds);
  c.grace = Seconds(graceSeconds);
  c.flushInterval = Millis(flushMs);
  c.sweepInterval = Seconds(sweepSeconds);
  c.sweeperLeaseTtl = Seconds(leaseTtlSeconds);
  c.historyInterval = Seconds(historySeconds);
  c.cursorTtl = Seconds(cursorTtlSeconds);
  c.consoleMaxBodyBytes = consoleBodyKib << 10;
  c.defenderMaxBodyBytes = defenderBodyKib << 10;
  if (c.grace.count() > 0 && c.grace < c.heartbeatInterval)
    return Error{ErrorKind::kInvalidArgument, "invalid_config",
                 "--grace (" + std::to_string(graceSeconds) +
                     " s) must be at least --heartbeat-interval (" + std::to_string(hbSeconds) +
                     " s), or Defenders would flap",
                 "grace"};
  if (c.defenderFront == "asio" && Seconds(c.defenderIdleTimeoutSeconds) <= c.heartbeatInterval)
    return Error{ErrorKind::kInvalidArgument, "invalid_config",
                 "--defender-idle-timeout (" + std::to_string(c.defenderIdleTimeoutSeconds) +
                     " s) must exceed --heartbeat-interval (" + std::to_string(hbSeconds) +
                     " s), or every Defender's connection would close between heartbeats",
                 "defender-idle-timeout"};
  if (!c.uiDir.empty() && !std::filesystem::is_directory(c.uiDir))
    return Error{ErrorKind::kInvalidArgument, "invalid_config",
                 "--ui-dir: '" + c.uiDir + "' is not a directory", "ui-dir"};
  c.tokenLifetime = Seconds(tokenLifetimeSeconds);
  c.registryRequestTimeout = Seconds(registryTimeoutSeconds);
  c.registryBudget = Seconds(registryBudgetSeconds);
  if (c.tlsCert.empty() != c.tlsKey.empty())
    return Error{ErrorKind::kInvalidArgument, "invalid_config",
                 "--tls-cert and --tls-key go together",
                 c.tlsCert.empty() ? "tls-cert" : "tls-key"};
  if (c.plainHttp && (!c.tlsCert.empty() || !c.defenderClientCa.empty()))
    return Error{ErrorKind::kInvalidArgument, "invalid_config",
                 "--plain-http cannot be combined with --tls-cert, --tls-key or "
                 "--defender-client-ca",
                 "plain-http"};
  for (const auto& [flag, path] :
       {std::pair<const char*, const std::string&>{"tls-cert", c.tlsCert},
        {"tls-key", c.tlsKey},
        {"defender-client-ca", c.defenderClientCa},
        {"registry-ca", c.registryCa}})
    if (!path.empty() && !std::filesystem::is_regular_file(path))
      return Error{ErrorKind::kInvalidArgument, "invalid_config",
                   std::string("--") + flag + ": '" + path + "' is not a readable file", flag};
  if (!c.adminPassword.empty() && (c.adminPassword.size() < 8 || c.adminPassword.size() > 1024))
    return Error{ErrorKind::kInvalidArgument, "invalid_config",
                 "--admin-password (DC_ADMIN_PASSWORD): must be 8 to 1024 bytes long",
                 "admin-password"};
  if (c.consolePort != 0 && c.consolePort == c.defenderPort)
    return Error{ErrorKind::kInvalidArgument, "invalid_config",
                 "--console-port and --defender-port must differ", "defender-port"};
  if (const size_t scheme = c.database.find("://"); scheme != std::string::npos) {
    if (!sql::isPostgresUrl(c.database))
      return Error{ErrorKind::kInvalidArgument, "invalid_config",
                   "--database (DC_DATABASE): '" + c.database.substr(0, scheme) +
                       "://' is not a database this Console uses: give a SQLite file path or a "
                       "postgresql:// URL",
                   "database"};
    // libpq reads the scheme in lower case only; URL schemes are case-insensitive.
    for (size_t i = 0; i < scheme; ++i)
      c.database[i] = static_cast<char>(std::tolower(static_cast<unsigned char>(c.database[i])));
  }
  return c;
}

std::vector<std::string> configWarnings(const ConsoleConfig& c) {
  std::vector<std::string> out;
  const auto seconds = [](Millis m) {
    return m.count() % 1000 == 0 ? std::to_string(m.count() / 1000) + " s"
                                 : std::to_string(m.count()) + " ms";
  };
  const Millis grace = c.effectiveGrace();
  if (c.flushInterval >= grace)
    out.push_back("--flush-interval-ms (" + std::to_string(c.flushInterval.count()) +
                  " ms) is not shorter than the grace period (" + seconds(grace) +
                  "): a Defender may be judged disconnected before its heartbeat is stored");
  if (grace < 2 * c.heartbeatInterval)
    out.push_back("--grace (" + seconds(grace) + ") is less than two heartbeat intervals (" +
                  seconds(2 * c.heartbeatInterval) +
                  "): a single late heartbeat disconnects a Defender (and after one hour an "
                  "App-Embedded Defender is evicted)");
  if (c.sweepInterval > kSweepIntervalWarning)
    out.push_back("--sweep-interval (" + seconds(c.sweepInterval) + ") is longer than " +
                  seconds(kSweepIntervalWarning) +
                  ": disconnected App-Embedded Defenders are removed up to that much later "
                  "than one hour after they disconnect");
  if (c.databasePoolGiven && !c.onPostgres())
    out.push_back("--database-pool (" + std::to_string(c.databasePool) +
                  ") applies to a PostgreSQL database only: ignored for SQLite");
  return out;
}

}  // namespace dc
