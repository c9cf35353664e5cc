#include "main/config.h"

#include <CLI/CLI.hpp>

#include <filesystem>

namespace dc {

std::string ConsoleConfig::databasePath() const {
  if (!database.empty()) return database;
  return (dataDir.empty() ? std::string(".") : dataDir) + "/console.db";
}

Result<ConsoleConfig> parseConfig(int argc, const char* const* argv, const std::string& version) {
  ConsoleConfig c;
  CLI::App app{
      "Defender Console: inventory and lifecycle of Defenders, above all App-Embedded "
      "Defenders in AWS ECS Fargate tasks."};
  app.set_version_flag("--version", version);
  long long hbSeconds = 30, graceSeconds = 0, flushMs = 1000, sweepSeconds = 60;
  size_t consoleBodyKib = c.consoleMaxBodyBytes >> 10,
         defenderBodyKib = c.defenderMaxBodyBytes >> 10;

  app.add_option("--data-dir", c.dataDir, "Directory for the SQLite database")
      ->envname("DC_DATA_DIR")
      ->capture_default_str();
  app.add_option("--database", c.database,
                 "SQLite database file (default <data-dir>/console.db; ':memory:' for a "
                 "throw-away inventory)")
      ->envname("DC_DATABASE");
  app.add_option("--host", c.host,
                 "Address both listeners bind to (0.0.0.0 exposes them on every interface)")
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
  app.add_option("--outage-threshold", c.outageThreshold,
                 "Share of the fleet silent within one grace period that pauses evictions")
      ->envname("DC_OUTAGE_THRESHOLD")
      ->check(CLI::Range(0.01, 1.0))
      ->capture_default_str();
  app.add_option("--outage-min-fleet", c.outageMinFleet,
                 "Smallest fleet the outage guard judges (smaller fleets never pause evictions)")
      ->envname("DC_OUTAGE_MIN_FLEET")
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

  try {
    app.parse(argc, argv);
  } catch (const CLI::Success&) {
    return Error{ErrorKind::kInvalidArgument,
                 "help",
                 argc > 1 && std::string(argv[1]) == "--version" ? version + "\n" : app.help(),
                 {}};
  } catch (const CLI::ParseError& e) {
    return Error{ErrorKind::kInvalidArgument,
                 "invalid_config",
                 std::string(e.what()) + "\nRun with --help for the options.",
                 {}};
  }
  c.heartbeatInterval = Seconds(hbSeconds);
  c.grace = Seconds(graceSeconds);
  c.flushInterval = Millis(flushMs);
  c.sweepInterval = Seconds(sweepSeconds);
  c.consoleMaxBodyBytes = consoleBodyKib << 10;
  c.defenderMaxBodyBytes = defenderBodyKib << 10;
  if (c.grace.count() > 0 && c.grace < c.heartbeatInterval)
    return Error{ErrorKind::kInvalidArgument, "invalid_config",
                 "--grace (" + std::to_string(graceSeconds) +
                     " s) must be at least --heartbeat-interval (" + std::to_string(hbSeconds) +
                     " s), or Defenders would flap",
                 "grace"};
  if (!c.uiDir.empty() && !std::filesystem::is_directory(c.uiDir))
    return Error{ErrorKind::kInvalidArgument, "invalid_config",
                 "--ui-dir: '" + c.uiDir + "' is not a directory", "ui-dir"};
  if (c.consolePort != 0 && c.consolePort == c.defenderPort)
    return Error{ErrorKind::kInvalidArgument, "invalid_config",
                 "--console-port and --defender-port must differ", "defender-port"};
  return c;
}

}  // namespace dc
