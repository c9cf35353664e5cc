#include "channel/message.h"

#include "common/error_json.h"
#include "common/http_status.h"

namespace dc::channel {

Response errorResponse(const Error& error, int status, const std::vector<Error>& problems) {
  Response r;
  r.status = status > 0 ? status : httpStatus(error.kind);
  r.body = errorJson(error, problems);
  if (r.status == 429 || r.status == 503)
    r.headers.emplace_back(
        "Retry-After", std::to_string(error.retryAfterSeconds > 0 ? error.retryAfterSeconds : 5));
  return r;
}

Response jsonResponse(std::string body, int status) {
  Response r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

}  // namespace dc::channel
