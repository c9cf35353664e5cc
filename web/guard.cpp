#include "web/guard.h"

#include <algorithm>
#include <stdexcept>

#include "web/http_errors.h"

namespace dc::web {

namespace {

void refuse(Response& res, const Error& e) {
  if (e.kind == ErrorKind::kUnauthenticated)
    res.set_header("WWW-Authenticate", R"(Bearer realm="Defender Console")");
  sendError(res, e);
}

}  // namespace

GuardedRoutes::GuardedRoutes(Router& router, const std::vector<auth::RoutePermission>& table,
                             auth::AuthService* auth)
    : router_(router), table_(table), auth_(auth) {}

void GuardedRoutes::add(const std::string& method, const std::string& pattern,
                        PlainHandler handler) {
  add(method, pattern,
      GuardedHandler([h = std::move(handler)](const Request& req, Response& res,
                                              const auth::Principal&) { h(req, res); }));
}

void GuardedRoutes::gateUntil(std::function<bool()> ready, std::vector<std::string> exempt) {
  ready_ = std::move(ready);
  exempt_ = std::move(exempt);
}

void GuardedRoutes::add(const std::string& method, const std::string& pattern,
                        GuardedHandler handler) {
  const auto access = auth::findPermission(table_, method, pattern);
  if (!access)
    throw std::logic_error("route " + method + " " + pattern +
                           " is not in the permission table (auth/permissions.cpp)");
  registered_.emplace_back(method, pattern);
  auth::AuthService* service = auth_;
  const auth::Access need = *access;
  const bool gated = ready_ && std::find(exempt_.begin(), exempt_.end(), pattern) == exempt_.end();
  Handler wrapped = [service, need, ready = gated ? ready_ : nullptr, refused = refused_,
                     h = std::move(handler)](const Request& req, Response& res) {
    if (ready && !ready()) {
      Error starting{ErrorKind::kUnavailable,
                     "starting",
                     "the Console is starting; retry after the Retry-After delay",
                     {}};
      starting.retryAfterSeconds = 1;
      return sendError(res, starting);
    }
    auth::Principal who;
    if (service == nullptr || need == auth::Access::kPublic) return h(req, res, who);
    const std::string header = req.get_header_value("Authorization");
    if (need == auth::Access::kDefender) {
      auto p = service->authenticateDefender(header);
      if (!p.ok()) return refuse(res, p.error());
      return h(req, res, *p);
    }
    auto p = service->authenticate(header, req.remote_addr);
    if (!p.ok()) {
      if (refused) refused(req, "", p.error());
      return refuse(res, p.error());
    }
    if (p->kind == auth::Principal::Kind::kDefender) {
      const Error e{ErrorKind::kPermissionDenied,
                    "defender_credential_refused",
                    "Defender credentials cannot call the Console API; sign in as a Console user",
                    {}};
      if (refused) refused(req, "", e);
      return sendError(res, e);
    }
    if (!auth::roleAllows(p->role, need)) {
      const Error e{ErrorKind::kPermissionDenied,
                    "forbidden",
                    "role " + std::string(auth::roleName(p->role)) + " may not " + req.method +
                        " " + req.path + " (needs " + std::string(auth::accessName(need)) + ")",
                    {}};
      if (refused) refused(req, p->username, e);
      return sendError(res, e);
    }
    h(req, res, *p);
  };
  if (method != "GET" && method != "POST" && method != "PUT" && method != "DELETE")
    throw std::logic_error("unsupported method " + method);
  // Bodies are bounded by the front (the listener's maxBodyBytes, chunked ones included).
  router_.add(method, pattern, std::move(wrapped));
}

}  // namespace dc::web
