// The Console's general audit log (docs/security.md "Audit log", docs/api.md
// "GET /api/v1/audit/events"): who did what, when, from which address.
//
// One row per event in the table `audit_events` (schema version in `audit_meta`), written with
// bound parameters only, next to the inventory in the Console's database. Retention is bounded
// by age and by count (AuditRetention); the oldest rows go first.
#pragma once

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/clock.h"
#include "common/sql_database.h"
#include "common/status.h"

namespace dc::audit {

/// The kinds of event recorded (stable strings: the API's `kind` and the CSV's column).
inline constexpr std::string_view kSettingsChanged = "settings.changed";
inline constexpr std::string_view kDefenderDeleted = "defender.deleted";
inline constexpr std::string_view kDefenderEvicted = "defender.evicted";
inline constexpr std::string_view kAppIdIssued = "appid.issued";
inline constexpr std::string_view kCredentialIssued = "credential.issued";
inline constexpr std::string_view kCredentialRevoked = "credential.revoked";
inline constexpr std::string_view kRegistryCredentialStored = "registry_credential.stored";
inline constexpr std::string_view kRegistryCredentialDeleted = "registry_credential.deleted";
inline constexpr std::string_view kUserCreated = "user.created";
inline constexpr std::string_view kUserUpdated = "user.updated";
inline constexpr std::string_view kUserDeleted = "user.deleted";
inline constexpr std::string_view kSignIn = "signin";
inline constexpr std::string_view kSignInFailed = "signin.failed";
inline constexpr std::string_view kAccessRefused = "access.refused";
inline constexpr std::string_view kImageEntrypointStored = "image_entrypoint.stored";
inline constexpr std::string_view kImageEntrypointDeleted = "image_entrypoint.deleted";
inline constexpr std::string_view kEvictionsResumed = "evictions.resumed";

/// Every kind above, in that order.
const std::vector<std::string_view>& eventKinds();
bool isEventKind(std::string_view kind);

/// One audit event. `detail` never holds a secret (passwords, tokens, credentials).
struct Event {
  long long id = 0;     // assigned by the log, increasing
  TimePoint at{};       // when it happened (UTC, the Console's Clock)
  std::string kind;     // one of eventKinds()
  std::string user;     // the Console user; "scheduler" for evictions; "" when unknown
  std::string address;  // the client's IP address; "" for the Console's own actions
  nlohmann::json detail = nlohmann::json::object();  // kind-specific, e.g. {"hostname": …}
};

/// Filters of list(): all optional; `since` inclusive, `until` exclusive (UTC).
struct EventQuery {
  std::optional<std::string> kind;
  std::optional<std::string> user;  // exact
  std::optional<TimePoint> since;
  std::optional<TimePoint> until;
  int offset = 0;
  int limit = 50;  // ≤ 0: every match (the CSV download)
};

struct EventPage {
  std::vector<Event> items;  // newest first
  long long total = 0;       // matches, ignoring offset and limit
};

/// Bounds of the log: events older than `maxAge` and all but the newest `maxEvents` are removed
/// by prune(), which record() runs every `pruneEvery` writes.
struct AuditRetention {
  Millis maxAge = std::chrono::hours(24 * 90);  // 90 days
  long long maxEvents = 200'000;                // ~300 bytes each: ~60 MB at most
  int pruneEvery = 256;
};

class AuditLog {
 public:
  /// Creates or migrates the table in `db` (either backend; common/sql_database.h).
  /// Errors: kUnavailable when the database fails; "schema_too_new".
  static Result<std::unique_ptr<AuditLog>> open(std::shared_ptr<sql::Database> db,
                                                const Clock& clock, AuditRetention retention = {});
  ~AuditLog();
  AuditLog(const AuditLog&) = delete;
  AuditLog& operator=(const AuditLog&) = delete;

  const Clock& clock() const { return clock_; }

  /// Records events in one transaction, at `at` when set (else the Clock's now). Thread-safe.
  /// Errors: kUnavailable when the database refuses the write (nothing of the batch is kept).
  Status record(std::vector<Event> events);
  Status record(std::string_view kind, std::string user, std::string address,
                nlohmann::json detail);

  /// Matching events, newest first. Errors: kUnavailable.
  Result<EventPage> list(const EventQuery& query) const;

  /// Removes what AuditRetention no longer keeps at `now`; returns how many rows went.
  Result<long long> prune(TimePoint now);

 private:
  AuditLog(std::shared_ptr<sql::Database> db, const Clock& clock, AuditRetention retention);

  std::shared_ptr<sql::Database> db_;
  const Clock& clock_;
  AuditRetention retention_;
  mutable std::mutex mu_;
  long long writesSincePrune_ = 0;
};

}  // namespace dc::audit
