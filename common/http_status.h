// The one mapping from ErrorKind to an HTTP status code, shared by every component that answers
// HTTP (web/, and embed/'s HTTP-agnostic handlers).
#pragma once

#include "common/status.h"

namespace dc {

/// 400 invalid argument, 401 unauthenticated, 403 permission denied, 404 not found,
/// 409 conflict, 413 too large, 429 rate limited, 503 unavailable, 500 internal.
int httpStatus(ErrorKind kind);

}  // namespace dc
