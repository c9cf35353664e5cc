// The one renderer of the Console's JSON error bodies (docs/api.md, "Errors"), used by every
// HTTP answer (web/http_errors.h, channel/message.h) and by the embed flow's own responses
// (embed/handler.h).
#pragma once

#include <string>
#include <vector>

#include "common/status.h"

namespace dc {

/// `{"code", "message", "field"?, "err"}` as compact JSON (keys in that sorted order: code, err,
/// field, message): `err` repeats `message` under the vendor's key; `field` is left out when no
/// field is at fault. With `problems` (a refused document lists every problem, the first one
/// included) a member `"problems": [{"code", "field", "message"}, ...]` follows, each with its
/// `field` even when empty. Invalid UTF-8 in any text becomes U+FFFD.
std::string errorJson(const Error& error, const std::vector<Error>& problems = {});

}  // namespace dc
