// The defender channel's own small request and response types, so that its routes depend on no
// HTTP library: the cpp-httplib front (web/http_listener.h) and the event-driven front
// (channel/asio_listener.h) both convert to and from them and call the same route function
// (web/routes.h, serveDefenderChannel). Also the error answer of every HTTP front, whose body
// comes from the one renderer of error bodies, dc::errorJson (common/error_json.h).
#pragma once

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"

namespace dc::channel {

struct Request {
  std::string method;         // "POST", "GET", …
  std::string path;           // without the query string
  std::string authorization;  // the Authorization header, "" when absent
  std::string remoteAddr;     // the peer's IP address, e.g. "127.0.0.1"
  std::string body;
  /// The request target as sent (path and query string, not decoded).
  std::string target;
  /// Every request header in the order sent (names as sent).
  std::vector<std::pair<std::string, std::string>> headers;
};

struct Response {
  int status = 200;
  std::string body;
  std::string contentType = "application/json";
  std::vector<std::pair<std::string, std::string>> headers;  // besides Content-Type/-Length
  /// The connection is closed after this answer (e.g. after a refusal that leaves the request
  /// stream out of step).
  bool close = false;
  /// A body produced piece by piece, sent with chunked transfer encoding, instead of `body`:
  /// called on a worker again and again, each call appending the next piece to `out` (which
  /// arrives empty) and setting `done` with the last one; false aborts the transfer (the
  /// connection is closed, the client sees a cut body). The next call comes only once the
  /// previous piece is written, so one piece at a time is buffered and a slow reader slows the
  /// producer down.
  std::function<bool(std::string& out, bool& done)> stream;
};

/// An error answer with the status of `error.kind` (common/http_status.h), or `status` when
/// given (protocol-level answers: 411, 414, 431), and the body errorJson(error, problems)
/// (`{"code", "message", "field"?, "err"}`, plus `problems` when given). 429 and 503 carry
/// `Retry-After` (the error's `retryAfterSeconds`, 5 when unset).
Response errorResponse(const Error& error, int status = 0, const std::vector<Error>& problems = {});

/// A 200 (or `status`) answer whose body is already JSON text.
Response jsonResponse(std::string body, int status = 200);

}  // namespace dc::channel
