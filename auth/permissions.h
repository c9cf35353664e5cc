// Roles and the one permission table of the Console (docs/security.md).
//
// Every route of both listeners is listed here with the least access it needs. The web layer
// registers routes only through this table (a route missing from it cannot be registered), and
// the access-matrix test walks it.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace dc::auth {

/// Console user roles, ordered: each role may do everything the ones before it may.
/// Vendor names: Auditor (read-only), Defender Manager (what CI pipelines use to embed),
/// Administrator.
enum class Role { kAuditor = 0, kDefenderManager = 1, kAdmin = 2 };

/// "auditor", "defenderManager", "admin".
std::string_view roleName(Role role);
std::optional<Role> parseRole(std::string_view name);

/// Who may call a route.
enum class Access {
  kPublic,           // no credentials (sign-in, health probes)
  kAuditor,          // any signed-in user
  kDefenderManager,  // defenderManager or admin
  kAdmin,            // admin only
  kDefender,         // a Defender credential (defender channel only)
};

std::string_view accessName(Access access);

/// True when a user with `role` may call a route needing `access` (never for kDefender).
bool roleAllows(Role role, Access access);

struct RoutePermission {
  std::string method;   // "GET", "POST", "PUT", "DELETE"
  std::string pattern;  // the route pattern exactly as registered with the HTTP server
  Access access;
};

/// The Console API listener's routes. Static files of the web page (anything under `/` not
/// matched by a route) are public: the page must load before anyone can sign in, and it holds
/// no data.
const std::vector<RoutePermission>& consolePermissions();
/// The defender channel's routes.
const std::vector<RoutePermission>& defenderChannelPermissions();

/// The entry for exactly (`method`, `pattern`) in `table`, or nullopt.
std::optional<Access> findPermission(const std::vector<RoutePermission>& table,
                                     std::string_view method, std::string_view pattern);

}  // namespace dc::auth
