// defender-console: parses the configuration, wires the Console together and runs it until
// SIGINT or SIGTERM, then stops cleanly (pending heartbeats are flushed).
// `defender-console backup|restore <file>` copy the database instead (main/backup_command.h).
#include <sys/stat.h>

#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>

#include <spdlog/spdlog.h>

#include "auth/tls.h"
#include "main/backup_command.h"
#include "main/config.h"
#include "main/console_app.h"

#ifndef DC_VERSION
#define DC_VERSION "0.0.0"
#endif

namespace {

void setupLogging(const dc::ConsoleConfig& c) {
  if (c.logFormat == "json")
    spdlog::set_pattern(
        R"({"time":"%Y-%m-%dT%H:%M:%S.%eZ","level":"%l","thread":%t,"message":"%v"})",
        spdlog::pattern_time_type::utc);
  else
    spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %^%-5l%$ %v", spdlog::pattern_time_type::utc);
  spdlog::set_level(spdlog::level::from_str(c.logLevel));
}

}  // namespace

int main(int argc, char** argv) {
  // Every file the Console creates (database, WAL, keys, certificates) is owner-only: the
  // database holds password hashes and credential digests (docs/security.md).
  ::umask(077);
  auto config = dc::parseConfig(argc, argv, DC_VERSION);
  if (!config.ok()) {
    const bool help = config.error().code == "help";
    (help ? std::cout : std::cerr) << config.error().message;
    if (!help) std::cerr << '\n';
    return help ? 0 : 2;
  }
  setupLogging(*config);
  if (config->command == "backup") return dc::runBackupCommand(*config);
  if (config->command == "restore") return dc::runRestoreCommand(*config);
  for (const auto& warning : dc::configWarnings(*config))
    spdlog::warn("configuration: {}", warning);

  // Block the stop signals in every thread; the main thread waits for them below.
  sigset_t stopSignals;
  sigemptyset(&stopSignals);
  sigaddset(&stopSignals, SIGINT);
  sigaddset(&stopSignals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stopSignals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  dc::SystemClock clock;
  dc::ConsoleApp app(*config, clock, DC_VERSION);
  if (auto st = app.start(); !st.ok()) {
    spdlog::critical("cannot start: {}", st.error().message);
    return 1;
  }
  const std::string host = config->host == "0.0.0.0" ? "127.0.0.1" : config->host;
  const bool loopback =
      config->host == "127.0.0.1" || config->host == "localhost" || config->host == "::1";
  if (config->plainHttp)
    spdlog::warn(
        "--plain-http: both listeners speak plain HTTP, so passwords, tokens and Defender "
        "credentials cross the network in clear text{}",
        loopback ? "" : " (and they listen on " + config->host + ", not only on loopback)");
  const char* scheme = app.tls() ? "https" : "http";
  spdlog::info("Defender Console {} ready", DC_VERSION);
  spdlog::info("  web page and Console API: {}://{}:{}/", scheme, host, app.consolePort());
  spdlog::info("  defender channel:         {}://{}:{}/api/v1/defender/heartbeat", scheme, host,
               app.defenderPort());
  spdlog::info("  database:                 {}", config->databaseForLogs());
  spdlog::info("  Defender version:         {} (sidecar image tag {})",
               dc::formatVersion(config->defenderVersion),
               dc::defenderImageTag(config->defenderVersion));
  if (!config->portFile.empty()) {
    const std::string tmp = config->portFile + ".tmp";
    {
      std::ofstream out(tmp, std::ios::trunc);
      out << "console=" << app.consolePort() << "\ndefender=" << app.defenderPort() << "\n";
    }
    std::error_code ec;
    std::filesystem::rename(tmp, config->portFile, ec);
    if (ec) spdlog::error("cannot write --port-file {}: {}", config->portFile, ec.message());
  }
  if (app.tls())
    spdlog::info("  TLS certificate:          {} (SHA-256 {})", app.tlsCertFile(),
                 dc::auth::certificateFingerprint(app.tlsCertFile()));
  spdlog::info("  sign in:                  curl {}-u admin:<password> {}://{}:{}/api/v1/defenders",
               app.tls() && config->tlsCert.empty() ? "-k " : "", scheme, host, app.consolePort());
  if (auto generated = app.takeGeneratedAdminPassword()) {
    // Printed once, on standard output and not through the logger, so log files never hold it.
    std::printf(
        "\n  First start: created user 'admin' with the generated password\n\n      %s\n\n"
        "  It is shown only this once. Change it with PUT /api/v1/users/admin, or set\n"
        "  DC_ADMIN_PASSWORD before the first start next time.\n\n",
        generated->c_str());
    std::fflush(stdout);
  }

  int sig = 0;
  sigwait(&stopSignals, &sig);
  spdlog::info("received {}, stopping", sig == SIGINT ? "SIGINT" : "SIGTERM");
  app.stop();
  spdlog::info("stopped cleanly");
  return 0;
}
