// How the simulator talks to the defender channel: one synchronous JSON POST at a time.
//
// The interface keeps HTTP out of the simulation logic: `Shard` works against any Transport, the
// executable uses `makeHttpTransport` (cpp-httplib, keep-alive), unit tests use a fake.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace dc::sim {

/// The outcome of one POST.
struct Response {
  int status = 0;    // HTTP status; 0 when no response arrived (connect/read failure, timeout)
  std::string body;  // response body (JSON for the defender channel)
  std::optional<double> retryAfterSeconds;  // `Retry-After` in seconds, when present and numeric
  std::string error;                        // transport error text when status == 0
};

/// Sends JSON POSTs to the defender channel. Not thread-safe: one instance per worker thread.
class Transport {
 public:
  virtual ~Transport() = default;
  /// POSTs `body` (application/json) to `path` (e.g. "/api/v1/defender/heartbeat"). Blocks until
  /// the reply or a timeout; never throws.
  virtual Response post(std::string_view path, const std::string& body) = 0;
};

struct HttpTransportOptions {
  std::string consoleUrl = "http://127.0.0.1:8084";  // http[s]://host[:port], no path
  /// Defender credential (enrolment, or scoped to the simulated App IDs), sent as
  /// `Authorization: Bearer <credential>` when non-empty.
  std::string credential;
  /// HTTPS: skip verifying the Console's certificate (self-signed Consoles; like `curl -k`).
  bool insecure = false;
  /// HTTPS: PEM CA file to verify the Console's certificate with (e.g. <data-dir>/tls/console.crt).
  std::string caCertFile;
  int connections = 1;  // keep-alive connections, used round-robin (>= 1)
  double connectTimeoutSeconds = 3;
  double readTimeoutSeconds = 10;
};

/// OK if `url` is `http://host[:port]` or `https://host[:port]` (an optional trailing '/' is
/// allowed); else an "invalid_option" error for field "console".
Status validateConsoleUrl(std::string_view url);

/// A Transport over `options.connections` keep-alive cpp-httplib clients with TCP_NODELAY.
/// `options.consoleUrl` must pass `validateConsoleUrl`.
std::unique_ptr<Transport> makeHttpTransport(const HttpTransportOptions& options);

/// Parses a `Retry-After` value given in seconds ("7", "1.5"); nullopt for anything else
/// (including the HTTP-date form, which the defender channel does not use) or negative values.
std::optional<double> parseRetryAfter(std::string_view value);

}  // namespace dc::sim
