#include "channel/message.h"

#include <nlohmann/json.hpp>

#include "common/http_status.h"

namespace dc::channel {

std::string errorBody(const Error& error) {
  nlohmann::json body{{"code", error.code}, {"message", error.message}};
  if (!error.field.empty()) body["field"] = error.field;
  body["err"] = error.message;
  return body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

Response errorResponse(const Error& error, int status) {
  Response r;
  r.status = status > 0 ? status : httpStatus(error.kind);
  r.body = errorBody(error);
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
