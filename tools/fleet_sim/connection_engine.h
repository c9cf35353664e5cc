// The per-Defender engine of the fleet simulator: every simulated Defender holds its own
// connection — a WebSocket (docs/defender-channel.md, "WebSocket transport") or an HTTP/1.1
// keep-alive connection — with its own state machine (defender_machine.h), clock offset and
// timers. Event-driven: a few threads, one io_context each, no thread per connection.
//
// Each Defender is one coroutine (Boost.Asio awaitables, Boost.Beast for HTTP and WebSocket,
// Asio OpenSSL streams for TLS) on the io_context of thread `index % threads`. Over WebSocket a
// second coroutine reads the Console's answers and pushes (`settings`, `removed`, `backoff`) and
// answers pings (Beast does that while a read is pending).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "tools/fleet_sim/defender_machine.h"
#include "tools/fleet_sim/fleet.h"
#include "tools/fleet_sim/protocol.h"
#include "tools/fleet_sim/stats.h"

namespace dc::sim {

enum class WireTransport { kHttp, kWebSocket };

struct ConnectionEngineConfig {
  std::string consoleUrl = "http://127.0.0.1:8084";  // http[s]://host[:port]; https = TLS
  std::string credential;                            // Defender credential (Bearer)
  bool insecure = false;                             // TLS: do not verify the certificate
  std::string caCertFile;                            // TLS: verify with this PEM file
  WireTransport transport = WireTransport::kHttp;
  std::string wsPath = "/api/v1/defender/ws";
  /// Local IPv4 addresses the connections are bound to, used in turn (Defender k takes
  /// address k % size); empty = the kernel chooses.
  std::vector<std::string> sourceAddresses;
  FleetSpec fleet;
  int defenders = 100;  // the whole fleet (all shards)
  int shardIndex = 0;   // this process simulates Defenders k with k % shardCount == index
  int shardCount = 1;
  double rampPerSecond = 0;    // new connections per second, whole fleet (0: use rampSeconds)
  double rampSeconds = 10;     // first connections spread evenly over this (when rampPerSecond 0)
  int threads = 2;             // io_contexts, one thread each
  double durationSeconds = 0;  // 0 = until interrupted
  uint64_t seed = 1;
  SchedulePolicy schedule;
  ReconnectPolicy reconnect;
  double connectTimeoutSeconds = 10;  // TCP connect + TLS handshake + upgrade
  double answerTimeoutSeconds = 15;   // heartbeat sent -> answer
  double clockSkewSeconds = 0;        // each Defender's clock is off by U[-S, S] ("time" field)
  double progressSeconds = 5;
  /// Stop as soon as every Defender of this shard had an answer (tests; `durationSeconds` is
  /// then the cap).
  bool stopWhenAllAnswered = false;
};

/// OK, or an "invalid_option" error naming the option.
Status validateEngineConfig(const ConnectionEngineConfig& config);

/// "127.0.0.2-127.0.0.9" (an inclusive range in the last octet or across octets), a comma list
/// of such ranges and addresses, or "" (none). Errors: "invalid_option" for field
/// "source-addresses" (not IPv4, range backwards, more than 65,536 addresses).
Result<std::vector<std::string>> parseSourceAddresses(std::string_view text);

/// "i/n" with 0 <= i < n. Errors: "invalid_option" for field "shard".
Result<std::pair<int, int>> parseShard(std::string_view text);

/// The Defenders this shard simulates: those k in [0, defenders) with k % count == index.
int shardSize(int defenders, int index, int count);

/// Counters of the connections, beyond the heartbeat Stats.
struct ConnectionSnapshot {
  int64_t open = 0;              // connections established now
  uint64_t connects = 0;         // connections established (upgrade done), first ones included
  uint64_t reconnects = 0;       // connections established after an earlier one dropped
  uint64_t connectFailures = 0;  // attempts that failed (refused, reset, TLS, upgrade refused)
  uint64_t tcpFailures = 0, tlsFailures = 0, upgradeFailures = 0;  // … by stage (incl. timeouts)
  uint64_t drops = 0;         // established connections that dropped (not by us stopping)
  uint64_t timeouts = 0;      // heartbeats unanswered within the answer timeout
  uint64_t staleRetries = 0;  // keep-alive connections found closed when reused (HTTP)
  uint64_t pushSettings = 0, pushRemoved = 0, pushBackoff = 0;
  uint64_t reRegistrations = 0;  // registered again after a `removed` push
  int64_t maxLatencyMicros = 0;  // exact maximum heartbeat latency
  /// Recovery after lost connections (a Console restart): Defenders whose connection was lost
  /// and that have had no answer since; first answers after a loss; the time of the latest one
  /// (ms since the epoch, 0 = none). "Every Defender back" = down 0 and recoveries ≥ fleet.
  int64_t down = 0;
  uint64_t recoveries = 0;
  int64_t lastRecoveryAtMs = 0;
  std::vector<std::pair<int, uint64_t>> upgradeRefusals;  // HTTP status -> count (WebSocket)
  std::vector<std::pair<int, uint64_t>> closeCodes;       // WebSocket close code from the Console
};

/// The outcome of asking the Console which of our Defenders it shows disconnected.
struct FalseDisconnectCheck {
  uint64_t checked = 0;             // our Defenders alive that had at least one answer
  uint64_t shownDisconnected = 0;   // of those, listed by `connected=false`
  std::vector<std::string> sample;  // up to 10 of their hostnames
};

/// Walks `GET <apiUrl>/api/v1/defenders/names?connected=false&cursor=start&limit=250` (cursor
/// paging, `authorization` sent as the Authorization header) and counts the hostnames of
/// `alive` among them. `insecure` skips certificate verification. Errors: "api_error" with the
/// status or transport error.
Result<FalseDisconnectCheck> checkFalseDisconnects(const std::string& apiUrl,
                                                   const std::string& authorization, bool insecure,
                                                   std::vector<std::string> alive);

/// `Basic <base64(user:password)>`.
std::string basicAuthorization(const std::string& user, const std::string& password);

class ConnectionEngine {
 public:
  /// Builds this shard's Defenders (deterministic task ids for a seed and shard). Errors: an
  /// invalid config (also a TLS CA file that does not load).
  static Result<std::unique_ptr<ConnectionEngine>> create(const ConnectionEngineConfig& config,
                                                          const Clock& clock);
  ~ConnectionEngine();

  /// Runs until `durationSeconds` pass, `interrupt` becomes true or (`stopWhenAllAnswered`)
  /// every Defender had an answer. Calls `report` with a
  /// progress line every `progressSeconds`. Then calls `beforeStop` (if set) with the hostnames
  /// of the Defenders that are alive and had at least one answer — every connection still open,
  /// the moment to ask the Console — and then closes every connection (WebSocket: close 1000).
  /// Call once.
  void run(const std::atomic<bool>& interrupt,
           const std::function<void(const std::string&)>& report,
           const std::function<void(std::vector<std::string>)>& beforeStop = {});

  StatsSnapshot stats() const;
  ConnectionSnapshot connections() const;
  /// Defenders in this shard.
  size_t size() const;
  /// Defenders that had at least one heartbeat answered 200.
  size_t answeredDefenders() const;

 private:
  ConnectionEngine() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// The JSON summary of a run: counters, latency p50/p99/max in ms, errors by status, the
/// connection counters and, when given, the false-disconnect check. One line.
std::string summaryJson(const StatsSnapshot& stats, const ConnectionSnapshot& connections,
                        size_t defenders, size_t answeredDefenders, Millis elapsed,
                        const std::optional<FalseDisconnectCheck>& check);

/// Progress-line suffix: ` open=… connects=… reconnects=… drops=… timeouts=… …`.
std::string formatConnections(const ConnectionSnapshot& c);

}  // namespace dc::sim
