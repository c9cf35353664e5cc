#include "auth/permissions.h"

namespace dc::auth {

std::string_view roleName(Role role) {
  switch (role) {
    case Role::kAuditor:
      return "auditor";
    case Role::kDefenderManager:
      return "defenderManager";
    case Role::kAdmin:
      return "admin";
  }
  return "auditor";
}

std::optional<Role> parseRole(std::string_view name) {
  if (name == "auditor") return Role::kAuditor;
  if (name == "defenderManager") return Role::kDefenderManager;
  if (name == "admin") return Role::kAdmin;
  return std::nullopt;
}

std::string_view accessName(Access access) {
  switch (access) {
    case Access::kPublic:
      return "public";
    case Access::kAuditor:
      return "auditor";
    case Access::kDefenderManager:
      return "defenderManager";
    case Access::kAdmin:
      return "admin";
    case Access::kDefender:
      return "defender";
  }
  return "admin";
}

bool roleAllows(Role role, Access access) {
  switch (access) {
    case Access::kPublic:
      return true;
    case Access::kAuditor:
      return true;
    case Access::kDefenderManager:
      return role == Role::kDefenderManager || role == Role::kAdmin;
    case Access::kAdmin:
      return role == Role::kAdmin;
    case Access::kDefender:
      return false;
  }
  return false;
}

const std::vector<RoutePermission>& consolePermissions() {
  static const std::vector<RoutePermission> kTable = {
      // Public: sign-in and probes.
      {"POST", "/api/v1/authenticate", Access::kPublic},
      {"GET", "/healthz", Access::kPublic},
      {"GET", "/readyz", Access::kPublic},
      {"GET", "/api/v1/_ping", Access::kPublic},  // the vendor's connectivity check
      // Reads: every role.
      {"GET", "/api/v1/defenders", Access::kAuditor},
      {"GET", "/api/v1/defenders/names", Access::kAuditor},
      {"GET", "/api/v1/defenders/summary", Access::kAuditor},
      {"GET", "/api/v1/defenders/clusters", Access::kAuditor},
      {"GET", "/api/v1/defenders/types", Access::kAuditor},
      {"GET", "/api/v1/defenders/versions", Access::kAuditor},
      {"GET", "/api/v1/defenders/history", Access::kAuditor},
      {"GET", "/api/v1/defenders/download", Access::kAuditor},
      {"GET", "/api/v1/defenders/app-ids", Access::kAuditor},
      {"GET", "/api/v1/defenders/eviction-status", Access::kAuditor},
      {"GET", "/api/v1/defenders/([^/]+)", Access::kAuditor},
      {"GET", "/api/v1/settings/defender", Access::kAuditor},
      {"GET", "/api/v1/profiles/app-embedded", Access::kAuditor},
      {"GET", "/api/v1/profiles/app-embedded/([^/]+)", Access::kAuditor},
      {"GET", "/api/v1/audit/defenders", Access::kAuditor},
      {"GET", "/api/v1/audit/events", Access::kAuditor},
      {"GET", "/api/v1/audit/events/download", Access::kAuditor},
      {"GET", "/api/v1/images/entrypoints", Access::kAuditor},
      {"GET", "/api/v1/registry", Access::kAuditor},
      {"GET", "/api/v1/version", Access::kAuditor},
      {"GET", "/api/v1/openapi.json", Access::kAuditor},
      {"GET", "/metrics", Access::kAuditor},
      {"GET", "/api/v1/users/current", Access::kAuditor},
      // Saved views: every user keeps their own (a read aid, not a change to the fleet).
      {"GET", "/api/v1/views", Access::kAuditor},
      {"POST", "/api/v1/views", Access::kAuditor},
      {"DELETE", "/api/v1/views/([^/]+)", Access::kAuditor},
      // Defender management: delete Defenders, embed, image entrypoints, settings, credentials.
      {"DELETE", "/api/v1/defenders/([^/]+)", Access::kDefenderManager},
      {"POST", "/api/v1/defenders/delete", Access::kDefenderManager},  // bulk delete
      {"POST", "/api/v1/settings/defender", Access::kDefenderManager},
      {"POST", "/api/v1/defenders/eviction-status/resume", Access::kDefenderManager},
      {"POST", "/api/v1/defenders/fargate.json", Access::kDefenderManager},
      {"POST", "/api/v1/defenders/fargate.yaml", Access::kDefenderManager},
      {"POST", "/api/v1/images/entrypoints", Access::kDefenderManager},
      {"DELETE", "/api/v1/images/entrypoints", Access::kDefenderManager},
      {"GET", "/api/v1/defenders/image-name", Access::kDefenderManager},
      {"GET", "/api/v1/defenders/install-bundle", Access::kDefenderManager},  // issues a credential
      {"GET", "/api/v1/credentials", Access::kDefenderManager},
      {"POST", "/api/v1/credentials", Access::kDefenderManager},
      {"DELETE", "/api/v1/credentials/([^/]+)", Access::kDefenderManager},
      {"GET", "/api/v1/registry/credentials", Access::kDefenderManager},
      {"POST", "/api/v1/registry/credentials", Access::kDefenderManager},
      {"DELETE", "/api/v1/registry/credentials/([^/]+)", Access::kDefenderManager},
      // Users: admin only.
      {"GET", "/api/v1/users", Access::kAdmin},
      {"POST", "/api/v1/users", Access::kAdmin},
      {"PUT", "/api/v1/users/([^/]+)", Access::kAdmin},
      {"DELETE", "/api/v1/users/([^/]+)", Access::kAdmin},
  };
  return kTable;
}

const std::vector<RoutePermission>& defenderChannelPermissions() {
  static const std::vector<RoutePermission> kTable = {
      {"GET", "/healthz", Access::kPublic},
      {"POST", "/api/v1/defender/heartbeat", Access::kDefender},
      {"POST", "/api/v1/defender/disconnect", Access::kDefender},
      {"POST", "/api/v1/defender/observations", Access::kDefender},
  };
  return kTable;
}

std::optional<Access> findPermission(const std::vector<RoutePermission>& table,
                                     std::string_view method, std::string_view pattern) {
  for (const auto& p : table)
    if (p.method == method && p.pattern == pattern) return p.access;
  return std::nullopt;
}

}  // namespace dc::auth
