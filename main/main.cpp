// defender-console: parses the configuration, wires the Console together and runs it until
// SIGINT or SIGTERM, then stops cleanly (pending heartbeats are flushed).
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>

#include <spdlog/spdlog.h>

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
  auto config = dc::parseConfig(argc, argv, DC_VERSION);
  if (!config.ok()) {
    const bool help = config.error().code == "help";
    (help ? std::cout : std::cerr) << config.error().message;
    if (!help) std::cerr << '\n';
    return help ? 0 : 2;
  }
  setupLogging(*config);

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
  if (config->host != "127.0.0.1" && config->host != "localhost" && config->host != "::1")
    spdlog::warn(
        "listening on {}: the Console API has no authentication yet; anyone who can "
        "reach it can read and delete Defenders",
        config->host);
  spdlog::info("Defender Console {} ready", DC_VERSION);
  spdlog::info("  web page and Console API: http://{}:{}/", host, app.consolePort());
  spdlog::info("  defender channel:         http://{}:{}/api/v1/defender/heartbeat", host,
               app.defenderPort());
  spdlog::info("  database:                 {}", config->databasePath());
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

  int sig = 0;
  sigwait(&stopSignals, &sig);
  spdlog::info("received {}, stopping", sig == SIGINT ? "SIGINT" : "SIGTERM");
  app.stop();
  spdlog::info("stopped cleanly");
  return 0;
}
