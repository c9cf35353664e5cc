#include "web/http_errors.h"

#include <httplib.h>

#include <nlohmann/json.hpp>

namespace dc::web {

void sendError(httplib::Response& res, const Error& error) {
  sendError(res, error, httpStatus(error.kind));
}

void sendError(httplib::Response& res, const Error& error, int status) {
  nlohmann::json body{{"code", error.code}, {"message", error.message}};
  if (!error.field.empty()) body["field"] = error.field;
  // The vendor's error key: its clients print `err` (docs/api.md, "Errors").
  body["err"] = error.message;
  res.status = status;
  if (res.status == 429 || res.status == 503)
    res.set_header("Retry-After",
                   std::to_string(error.retryAfterSeconds > 0 ? error.retryAfterSeconds : 5));
  res.set_content(body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace),
                  "application/json");
}

void sendJson(httplib::Response& res, const std::string& body, int status) {
  res.status = status;
  res.set_content(body, "application/json");
}

}  // namespace dc::web
