// Internal to registry/: one configured cpp-httplib client per exchange.
#pragma once

#include <httplib.h>

#include <chrono>
#include <memory>
#include <string>

#include "common/status.h"

namespace dc::registry {

/// A client for `base` ("https://host[:port]", or "http://…" in tests) that verifies the
/// server's certificate against the system CAs plus the PEM bundle `caFile` (when not empty),
/// with `timeout` for connecting, reading and writing. Errors: registry_tls when `caFile`
/// cannot be loaded, registry_bad_response for an unusable URL (field "image").
Result<std::unique_ptr<httplib::Client>> makeHttpClient(const std::string& base,
                                                        const std::string& caFile,
                                                        std::chrono::milliseconds timeout);

}  // namespace dc::registry
