// Route registration behind access control: every route is registered through GuardedRoutes,
// which looks its (method, pattern) up in a permission table (auth/permissions.h) and refuses
// to register a route the table does not list — a new route cannot slip through unprotected.
//
// Per request: public routes run at once; user routes authenticate the Authorization header
// (Basic or Bearer token; 401 with `WWW-Authenticate: Bearer` when missing or wrong, 429 during
// the failure slowdown) and check the role (403); defender routes need a Defender credential
// (401), and a Defender credential on a Console route is 403.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "auth/permissions.h"
#include "auth/service.h"
#include "web/router.h"

namespace dc::web {

using GuardedHandler = std::function<void(const Request&, Response&, const auth::Principal&)>;
using PlainHandler = std::function<void(const Request&, Response&)>;

class GuardedRoutes {
 public:
  /// `auth` null: no access control at all (in-process handler tests only; the Console always
  /// passes its AuthService). `table` and `auth` must outlive the router.
  GuardedRoutes(Router& router, const std::vector<auth::RoutePermission>& table,
                auth::AuthService* auth);

  /// Routes added from now on answer 503 `starting` (with `Retry-After: 1`) while `ready()` is
  /// false — before authenticating, so that a start-up moment (users not created yet) never
  /// answers a correct password with 401 — except the patterns in `exempt` (the probes).
  void gateUntil(std::function<bool()> ready, std::vector<std::string> exempt);

  /// Called for each request this guard refuses for its credentials (401, 429) or its role
  /// (403), with the user when one was authenticated ("" otherwise) and the error answered.
  /// Routes added from now on use it (set it before adding routes).
  using RefusalHook = std::function<void(const Request&, const std::string& user, const Error&)>;
  void onRefusal(RefusalHook hook) { refused_ = std::move(hook); }

  /// Registers `pattern` for `method`; throws std::logic_error when the table does not list
  /// the route (a programming error caught by every test that starts the Console).
  void add(const std::string& method, const std::string& pattern, GuardedHandler handler);
  void add(const std::string& method, const std::string& pattern, PlainHandler handler);

  /// Routes registered so far, as (method, pattern).
  const std::vector<std::pair<std::string, std::string>>& registered() const { return registered_; }

 private:
  Router& router_;
  const std::vector<auth::RoutePermission>& table_;
  auth::AuthService* auth_;
  std::function<bool()> ready_;  // unset = always ready
  std::vector<std::string> exempt_;
  RefusalHook refused_;
  std::vector<std::pair<std::string, std::string>> registered_;
};

}  // namespace dc::web
