// Errors become JSON bodies `{"code": "...", "message": "...", "field": "...", "err": "..."}`
// with the status from common/http_status.h. `err` repeats `message` under the vendor's key
// (the vendor's clients print `err`); `field` is left out when no field is at fault. The body
// comes from the one renderer, dc::errorJson (common/error_json.h).
#pragma once

#include "common/http_status.h"
#include "web/http_types.h"

namespace httplib {
struct Response;
}

namespace dc::web {

/// Fills `res` with the error as JSON and its status. 429 and 503 carry `Retry-After`.
void sendError(Response& res, const Error& error);
/// The same with an explicit status, for protocol-level answers that have no ErrorKind of their
/// own (411, 414, 431).
void sendError(Response& res, const Error& error, int status);
/// With every problem of a refused document (`problems`, the first one included), as the embed
/// flow reports them (docs/embed.md).
void sendError(Response& res, const Error& error, const std::vector<Error>& problems);

/// Sends `body` (already JSON text) with status 200 unless told otherwise.
void sendJson(Response& res, const std::string& body, int status = 200);

/// The same two for the cpp-httplib front's own answers (web/http_listener.h).
void sendError(httplib::Response& res, const Error& error);
void sendError(httplib::Response& res, const Error& error, int status);

}  // namespace dc::web
