#include "web/http_errors.h"

#include <httplib.h>

#include "channel/message.h"

namespace dc::web {

void sendError(Response& res, const Error& error) {
  sendError(res, error, httpStatus(error.kind));
}

void sendError(Response& res, const Error& error, int status) {
  auto r = channel::errorResponse(error, status);
  res.status = r.status;
  for (const auto& [name, value] : r.headers) res.set_header(name, value);
  res.set_content(r.body, r.contentType);
}

void sendError(Response& res, const Error& error, const std::vector<Error>& problems) {
  auto r = channel::errorResponse(error, 0, problems);
  res.status = r.status;
  for (const auto& [name, value] : r.headers) res.set_header(name, value);
  res.set_content(r.body, r.contentType);
}

void sendJson(Response& res, const std::string& body, int status) {
  res.status = status;
  res.set_content(body, "application/json");
}

void sendError(httplib::Response& res, const Error& error) {
  sendError(res, error, httpStatus(error.kind));
}

void sendError(httplib::Response& res, const Error& error, int status) {
  auto r = channel::errorResponse(error, status);
  res.status = r.status;
  for (const auto& [name, value] : r.headers) res.set_header(name, value);
  res.set_content(r.body, r.contentType);
}

}  // namespace dc::web
