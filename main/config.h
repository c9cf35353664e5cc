// Console configuration: parsed once from flags and environment variables (CLI11), validated,
// then passed by value. No globals.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/defender_version.h"
#include "common/status.h"

namespace dc {

struct ConsoleConfig {
  std::string dataDir = "data";  // holds console.db (SQLite, WAL)
  /// SQLite file path or ":memory:", or a PostgreSQL URL (`postgresql://user@host:port/db`,
  /// libpq's URI form); empty = <dataDir>/console.db.
  std::string database;
  int databasePool = 8;            // PostgreSQL: connections of the inventory's pool (1..64)
  bool databasePoolGiven = false;  // --database-pool or DC_DATABASE_POOL was set
  /// Every interface by default: the API needs a Console user and both listeners speak TLS.
  /// With --plain-http, prefer 127.0.0.1 (the Console warns when plain HTTP is exposed).
  std::string host = "0.0.0.0";
  int consolePort = 8083;                  // Console API + UI (vendor default 8083)
  int defenderPort = 8084;                 // defender channel (vendor default 8084)
  Millis heartbeatInterval = Seconds(30);  // H
  Millis grace{0};                         // G; 0 = 3 × H
  Millis flushInterval = Millis(1000);
  /// The flusher notices a pause of the Console (stalled storage, a paused process) longer than
  /// this. Unset = max(2 s, 5 × flushInterval); 0 = off (tests on a manual clock).
  std::optional<Millis> pauseThreshold;
  Millis sweepInterval = Seconds(60);
  /// Replicas on one database (docs/operations.md "Which replica sweeps"): the sweeper lease is
  /// valid this long after each renewal, and renewed every third of it (sweeperLeaseRenewEvery),
  /// so a replica that crashed or was paused is replaced within TTL + TTL/3. 3 s .. 3600 s.
  Millis sweeperLeaseTtl = Seconds(15);
  /// Time between fleet history samples (docs/api.md "Fleet history"); 60 s in production.
  Millis historyInterval = Seconds(60);
  size_t consoleThreads = 16;
  size_t defenderThreads = 64;
  /// Defender-channel connections waiting for a worker beyond this are answered 503
  /// "overloaded" with a jittered Retry-After (0 = unbounded).
  size_t defenderMaxQueued = 2048;
  /// Nice value (0..19) of the defender channel's worker threads, so that the write-behind
  /// flusher, the sweep and the Console API keep their share of the CPU when heartbeats
  /// saturate it (docs/benchmarks.md, B1).
  int defenderNice = 10;
  /// The defender channel's HTTP front (docs/defender-channel.md, "Fronts"): "httplib" (one
  /// worker thread per keep-alive connection) or "asio" (event-driven: a few I/O threads hold
  /// every connection; defenderThreads then sizes the pool that runs the handlers).
  std::string defenderFront = "asio";
  /// Event-driven front only: I/O threads (0 = one per core); seconds a connection has for its
  /// TLS handshake and for each complete request head; seconds a keep-alive connection may stay
  /// idle between requests (must exceed the heartbeat interval); connections one source address
  /// may hold (0 = no cap; Defenders behind one NAT gateway share an address).
  size_t defenderIoThreads = 0;
  int defenderHeaderTimeoutSeconds = 5;
  int defenderIdleTimeoutSeconds = 120;
  size_t defenderMaxConnectionsPerAddress = 10000;
  /// Event-driven front only: seconds between the pings of each WebSocket (docs/defender-
  /// channel.md, "WebSocket transport"); a connection silent for two periods is closed.
  int defenderWsPingSeconds = 30;
  /// The Console API's HTTP front (docs/operations.md, "Console API fronts"): "httplib" (one
  /// worker thread per keep-alive connection: idle connections take workers from operators) or
  /// "asio" (event-driven; consoleThreads then sizes the pool that runs the handlers).
  std::string consoleFront = "asio";
  /// Event-driven Console front only: I/O threads (0 = one per core); seconds for the TLS
  /// handshake and each complete request head; seconds a keep-alive connection may idle between
  /// requests; connections one source address may hold (0 = no cap; a browser opens about 6,
  /// offices behind one NAT share an address); requests allowed to wait for a worker, beyond
  /// which 503 overloaded (0 = unbounded).
  size_t consoleIoThreads = 0;
  int consoleHeaderTimeoutSeconds = 5;
  int consoleIdleTimeoutSeconds = 60;
  size_t consoleMaxConnectionsPerAddress = 256;
  size_t consoleMaxQueued = 1024;
  /// Outage guard: evictions pause when this share of a fleet of at least outageMinFleet
  /// Defenders goes silent within one grace period.
  double outageThreshold = 0.5;
  size_t outageMinFleet = 20;
  /// Cursor paging (docs/api.md "Cursor paging"): each snapshot of matching hostnames is kept
  /// this long after its last use; at most cursorMaxSnapshots of them and cursorMaxMiB of memory
  /// in all (least recently used dropped first).
  Millis cursorTtl = Seconds(300);
  size_t cursorMaxSnapshots = 64;
  size_t cursorMaxMiB = 256;
  size_t consoleMaxBodyBytes = 1 << 20;     // task definitions: ECS register limit is 64 KiB,
                                            // CloudFormation templates may be larger
  size_t defenderMaxBodyBytes = 256 << 10;  // heartbeats are ~1 KiB; observation batches larger
  std::string uiDir;                        // empty = built-in default
  std::string logFormat = "text";           // text | json
  std::string logLevel = "info";
  /// The Defender version this Console deploys (vendor `MM.mm.bbb`): the sidecar image tag
  /// `defender_MM_mm_bbb`, `GET /api/v1/version`, and what marks a Defender outdated.
  DefenderVersion defenderVersion = *parseDeployedVersion(kDefaultDefenderVersion);
  /// When set, the bound ports are written there once the Console is ready, as two lines
  /// `console=<port>` and `defender=<port>` (written to a temporary file, then renamed), so
  /// that scripts and tests can start it with port 0.
  std::string portFile;

  // Access control and transport security (docs/security.md).
  /// Password of the first admin, used only when the database has no user yet; empty = a
  /// generated one, printed once on standard output.
  std::string adminPassword;
  /// Serve plain HTTP on both listeners (tests, local development). Off: HTTPS.
  bool plainHttp = false;
  /// Operator's PEM certificate and key; empty = a self-signed pair in <dataDir>/tls/.
  std::string tlsCert;
  std::string tlsKey;
  /// PEM CA bundle: the defender channel then requires client certificates signed by it.
  std::string defenderClientCa;
  /// Entrypoints read from image registries (docs/embed.md): extra PEM CA bundle trusted for
  /// registries (empty = the system store), timeout of each registry HTTP exchange, and the
  /// bound on all registry reads of one embed request.
  std::string registryCa;
  Seconds registryRequestTimeout{5};
  Seconds registryBudget{15};
  Seconds tokenLifetime{30 * 60};
  int passwordIterations = 210'000;
  /// Failed sign-ins per username and per client address (within 15 minutes) answered 401
  /// before each further one blocks that key for 1 s, 2 s, 4 s, … (≤ 15 min) with 429.
  int failedSignInsAllowed = 5;

  /// Subcommand: empty = run the Console; "backup" = copy the database to `backupFile` and exit;
  /// "restore" = put `backupFile` in place of the database and exit (main/backup_command.h).
  std::string command;
  std::string backupFile;

  std::string databasePath() const;
  /// True when `database` is a PostgreSQL URL.
  bool onPostgres() const;
  /// The database for logs and messages: the path, or a PostgreSQL URL without user and
  /// password (`postgresql://host:port/db`).
  std::string databaseForLogs() const;
  Millis effectiveGrace() const { return grace.count() > 0 ? grace : 3 * heartbeatInterval; }
  /// How often the sweeper lease is renewed (and taken by the other replicas): a third of its
  /// TTL, so that two renewals may fail before it expires (5 s for the default 15 s).
  Millis sweeperLeaseRenewEvery() const { return sweeperLeaseTtl / 3; }
};

/// Above this sweep interval a start-up warning says evictions run late (configWarnings).
constexpr Millis kSweepIntervalWarning = Seconds(300);

/// Settings that are valid one by one but defeat each other, as one sentence each (empty when
/// none), for main() to log as warnings at start (README, "Configuration"):
/// the flush interval is not shorter than the grace period; the grace period is shorter than
/// two heartbeat intervals (a grace below one interval is refused by parseConfig); the sweep
/// interval is longer than kSweepIntervalWarning; --database-pool is given for a SQLite database
/// (it applies to PostgreSQL only).
std::vector<std::string> configWarnings(const ConsoleConfig& config);

/// Parses argv (and DC_* environment variables; flags win). On `--help`/`--version` or an
/// error, returns an Error whose message is the text to print; `code` is "help" for help and
/// version (`defender-console <version>`, wherever `--version` stands; exit 0), "invalid_config"
/// otherwise (exit 2).
Result<ConsoleConfig> parseConfig(int argc, const char* const* argv, const std::string& version);

}  // namespace dc
