// The whole Console wired together: store, inventory, defender channel, both listeners and the
// eviction scheduler. main() and the integration tests use it the same way.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "common/clock.h"
#include "common/status.h"
#include "main/config.h"

namespace dc::inventory {
class Inventory;
}
namespace dc::history {
class FleetHistory;
}
namespace dc::cleanup {
class Sweeper;
}
namespace dc::auth {
class AuthService;
}

namespace dc {

class ConsoleApp {
 public:
  /// `clock` must outlive the app. Tests pass a ManualClock and port 0.
  ConsoleApp(ConsoleConfig config, const Clock& clock, std::string version);
  ~ConsoleApp();

  /// Opens (creating and migrating) the database, loads the inventory and the users (creating
  /// the first admin when there is none), prepares TLS (generating a self-signed certificate in
  /// <dataDir>/tls/ unless given one or --plain-http), binds both listeners and starts the
  /// scheduler unless `startScheduler` is false (tests then call sweeper().sweep).
  /// Errors: storage errors, "schema_too_new", "port_in_use"/"bind_failed", "secret_file",
  /// "tls_generate", "tls_invalid".
  Status start(bool startScheduler = true);
  /// Stops listening, stops the scheduler, flushes pending heartbeats. Idempotent.
  void stop();

  int consolePort() const;
  int defenderPort() const;
  inventory::Inventory& inventory();
  cleanup::Sweeper& sweeper();
  /// The fleet history (tests take samples with it when the scheduler is not started).
  history::FleetHistory& fleetHistory();
  /// `GET /api/v1/defenders/eviction-status` body (docs/api.md).
  nlohmann::json evictionStatusJson() const;
  auth::AuthService& auth();
  /// Both listeners speak HTTPS.
  bool tls() const;
  /// The certificate both listeners present (empty with plain HTTP).
  std::string tlsCertFile() const;
  /// The admin password generated on this start, if one was; returned once (then nullopt), so
  /// that main prints it exactly once and nothing else keeps it.
  std::optional<std::string> takeGeneratedAdminPassword();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace dc
