// The one place where ErrorKind maps to an HTTP status, and errors become JSON bodies
// `{"code": "...", "message": "...", "field": "..."}`.
#pragma once

#include "common/status.h"

namespace httplib {
struct Response;
}

namespace dc::web {

/// HTTP status for an error kind: 400, 401, 403, 404, 409, 413, 429, 503, 500.
int httpStatus(ErrorKind kind);

/// Fills `res` with the error as JSON and its status. 429 and 503 carry `Retry-After`.
void sendError(httplib::Response& res, const Error& error);

/// Sends `body` (already JSON text) with status 200 unless told otherwise.
void sendJson(httplib::Response& res, const std::string& body, int status = 200);

}  // namespace dc::web
