#include "audit/log.h"

#include <algorithm>
#include <limits>

#include "common/sqlite_tables.h"

namespace dc::audit {

namespace {

/// The audit_events table, version 1.
const sql::Migration kMigrations[] = {{1, R"sql(
CREATE TABLE IF NOT EXISTS audit_events (
  id       INTEGER PRIMARY KEY AUTOINCREMENT,
  at_ms    INTEGER NOT NULL,
  kind     TEXT NOT NULL,
  username TEXT NOT NULL,
  address  TEXT NOT NULL,
  detail   TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_events_at ON audit_events (at_ms);
)sql",
                                       R"sql(
CREATE TABLE IF NOT EXISTS audit_events (
  id       BIGSERIAL PRIMARY KEY,
  at_ms    BIGINT NOT NULL,
  kind     TEXT NOT NULL,
  username TEXT NOT NULL,
  address  TEXT NOT NULL,
  detail   TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_events_at ON audit_events (at_ms);
)sql"}};

Error failure(const Error& e, const std::string& what) {
  Error out = e;
  out.message = "audit log: " + what + ": " + e.message;
  return out;
}

// The WHERE clause of `q` over $1..$4 (each bound, NULL when the filter is unset). The casts
// give PostgreSQL the type of a parameter it otherwise meets only in `IS NULL`.
constexpr const char* kWhere =
    " WHERE (CAST($1 AS TEXT) IS NULL OR kind = $1) AND (CAST($2 AS TEXT) IS NULL OR username = $2)"
    " AND (CAST($3 AS BIGINT) IS NULL OR at_ms >= $3) AND (CAST($4 AS BIGINT) IS NULL OR at_ms < "
    "$4)";

std::vector<sql::Value> filters(const EventQuery& q) {
  auto text = [](const std::optional<std::string>& v) -> sql::Value {
    return v ? sql::Value(*v) : sql::Value(nullptr);
  };
  auto time = [](const std::optional<TimePoint>& v) -> sql::Value {
    return v ? sql::Value(toEpochMs(*v)) : sql::Value(nullptr);
  };
  return {text(q.kind), text(q.user), time(q.since), time(q.until)};
}

}  // namespace

const std::vector<std::string_view>& eventKinds() {
  static const std::vector<std::string_view> kKinds = {kSettingsChanged,
                                                       kDefenderDeleted,
                                                       kDefenderEvicted,
                                                       kAppIdIssued,
                                                       kCredentialIssued,
                                                       kCredentialRevoked,
                                                       kRegistryCredentialStored,
                                                       kRegistryCredentialDeleted,
                                                       kUserCreated,
                                                       kUserUpdated,
                                                       kUserDeleted,
                                                       kSignIn,
                                                       kSignInFailed,
                                                       kAccessRefused,
                                                       kImageEntrypointStored,
                                                       kImageEntrypointDeleted,
                                                       kEvictionsResumed};
  return kKinds;
}

bool isEventKind(std::string_view kind) {
  const auto& all = eventKinds();
  return std::find(all.begin(), all.end(), kind) != all.end();
}

AuditLog::AuditLog(std::shared_ptr<sql::Database> db, const Clock& clock, AuditRetention retention)
    : db_(std::move(db)), clock_(clock), retention_(retention) {}

AuditLog::~AuditLog() = default;

Result<std::unique_ptr<AuditLog>> AuditLog::open(std::shared_ptr<sql::Database> db,
                                                 const Clock& clock, AuditRetention retention) {
  if (auto st = db->migrate("audit", kMigrations); !st.ok()) return st.error();
  return std::unique_ptr<AuditLog>(new AuditLog(std::move(db), clock, retention));
}

Status AuditLog::record(std::string_view kind, std::string user, std::string address,
                        nlohmann::json detail) {
  Event e;
  e.kind = std::string(kind);
  e.user = std::move(user);
  e.address = std::move(address);
  e.detail = std::move(detail);
  std::vector<Event> one;
  one.push_back(std::move(e));
  return record(std::move(one));
}

Status AuditLog::record(std::vector<Event> events) {
  if (events.empty()) return Status::success();
  const TimePoint now = clock_.now();
  bool prune = false;
  {
    std::lock_guard lock(mu_);
    // One statement per row: audit writes are few (a sweep's evictions at most).
    auto st = db_->transaction([&](sql::Database& tx) -> Status {
      for (const auto& e : events) {
        auto w = tx.run(
            "INSERT INTO audit_events (at_ms, kind, username, address, detail) "
            "VALUES ($1, $2, $3, $4, $5)",
            {toEpochMs(e.at == TimePoint{} ? now : e.at), e.kind, e.user, e.address,
             e.detail.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)});
        if (!w.ok()) return failure(w.error(), "write");
      }
      return Status::success();
    });
    if (!st.ok()) return st;
    writesSincePrune_ += static_cast<long long>(events.size());
    if (writesSincePrune_ >= retention_.pruneEvery) {
      writesSincePrune_ = 0;
      prune = true;
    }
  }
  if (prune) {
    if (auto pruned = this->prune(now); !pruned.ok()) return pruned.error();
  }
  return Status::success();
}

Result<EventPage> AuditLog::list(const EventQuery& q) const {
  EventPage page;
  auto params = filters(q);
  auto count = db_->run(std::string("SELECT count(*) FROM audit_events") + kWhere, params);
  if (!count.ok()) return failure(count.error(), "count");
  page.total = (*count)[0].integer(0);
  params.emplace_back(q.limit > 0 ? static_cast<long long>(q.limit)
                                  : std::numeric_limits<long long>::max());
  params.emplace_back(static_cast<long long>(q.offset));
  auto rows =
      db_->run(std::string("SELECT id, at_ms, kind, username, address, detail FROM audit_events") +
                   kWhere + " ORDER BY id DESC LIMIT $5 OFFSET $6",
               params);
  if (!rows.ok()) return failure(rows.error(), "list");
  for (const auto& r : *rows) {
    Event e;
    e.id = r.integer(0);
    e.at = fromEpochMs(r.integer(1));
    e.kind = r.text(2);
    e.user = r.text(3);
    e.address = r.text(4);
    e.detail = nlohmann::json::parse(r.text(5), nullptr, false);
    if (e.detail.is_discarded()) e.detail = nlohmann::json::object();
    page.items.push_back(std::move(e));
  }
  return page;
}

Result<long long> AuditLog::prune(TimePoint now) {
  std::lock_guard lock(mu_);
  auto rows = db_->run(
      "DELETE FROM audit_events WHERE at_ms < $1 OR id <= "
      "(SELECT coalesce(max(id), 0) FROM audit_events) - $2 RETURNING id",
      {toEpochMs(now - retention_.maxAge), retention_.maxEvents});
  if (!rows.ok()) return failure(rows.error(), "prune");
  return static_cast<long long>(rows->size());
}

}  // namespace dc::audit
