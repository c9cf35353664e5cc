#include "audit/log.h"

#include <algorithm>

#include "common/sqlite_tables.h"

namespace dc::audit {

namespace {

constexpr long long kSchemaVersion = 1;

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS audit_meta (
  key   TEXT PRIMARY KEY,
  value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS audit_events (
  id       INTEGER PRIMARY KEY AUTOINCREMENT,
  at_ms    INTEGER NOT NULL,
  kind     TEXT NOT NULL,
  username TEXT NOT NULL,
  address  TEXT NOT NULL,
  detail   TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_events_at ON audit_events (at_ms);
)sql";

using Stmt = SqliteStatement;

Error failure(sqlite3* db, const std::string& what) {
  return Error::unavailable("audit log: " + what + ": " + sqlite3_errmsg(db));
}

// The WHERE clause of `q` over ?1..?4 (each bound, NULL when the filter is unset).
constexpr const char* kWhere =
    " WHERE (?1 IS NULL OR kind = ?1) AND (?2 IS NULL OR username = ?2)"
    " AND (?3 IS NULL OR at_ms >= ?3) AND (?4 IS NULL OR at_ms < ?4)";

void bindFilters(Stmt& s, const EventQuery& q) {
  q.kind ? s.text(1, *q.kind) : s.null(1);
  q.user ? s.text(2, *q.user) : s.null(2);
  q.since ? s.integer(3, toEpochMs(*q.since)) : s.null(3);
  q.until ? s.integer(4, toEpochMs(*q.until)) : s.null(4);
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

AuditLog::AuditLog(sqlite3* db, const Clock& clock, AuditRetention retention)
    : db_(db), clock_(clock), retention_(retention) {}

AuditLog::~AuditLog() {
  sqlite3_close(db_);
}

Result<std::unique_ptr<AuditLog>> AuditLog::open(const std::string& path, const Clock& clock,
                                                 AuditRetention retention) {
  auto db = openSqliteConnection(path, 5000);
  if (!db.ok()) return db.error();
  std::unique_ptr<AuditLog> log(new AuditLog(*db, clock, retention));
  if (auto st = createVersionedTables(*db, kSchema, "audit_meta", kSchemaVersion, "audit");
      !st.ok())
    return st.error();
  return log;
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
    if (sqlite3_exec(db_, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) != SQLITE_OK)
      return failure(db_, "begin");
    {
      for (const auto& e : events) {
        // One statement per row: audit writes are few (a sweep's evictions at most).
        Stmt row(db_,
                 "INSERT INTO audit_events (at_ms, kind, username, address, detail) "
                 "VALUES (?1, ?2, ?3, ?4, ?5)");
        if (!row.ok()) {
          const Error err = failure(db_, "prepare write");
          sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
          return err;
        }
        row.integer(1, toEpochMs(e.at == TimePoint{} ? now : e.at));
        row.text(2, e.kind);
        row.text(3, e.user);
        row.text(4, e.address);
        row.text(5, e.detail.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
        if (row.step() != SQLITE_DONE) {
          const Error err = failure(db_, "write");
          sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
          return err;
        }
      }
    }
    if (sqlite3_exec(db_, "COMMIT", nullptr, nullptr, nullptr) != SQLITE_OK) {
      const Error err = failure(db_, "commit");
      sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
      return err;
    }
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
  std::lock_guard lock(mu_);
  EventPage page;
  {
    Stmt c(db_, (std::string("SELECT count(*) FROM audit_events") + kWhere).c_str());
    if (!c.ok()) return failure(db_, "prepare count");
    bindFilters(c, q);
    if (c.step() != SQLITE_ROW) return failure(db_, "count");
    page.total = c.columnInteger(0);
  }
  Stmt s(db_, (std::string("SELECT id, at_ms, kind, username, address, detail FROM audit_events") +
               kWhere + " ORDER BY id DESC LIMIT ?5 OFFSET ?6")
                  .c_str());
  if (!s.ok()) return failure(db_, "prepare list");
  bindFilters(s, q);
  s.integer(5, q.limit > 0 ? q.limit : -1);  // SQLite: a negative LIMIT is no limit
  s.integer(6, q.offset);
  int rc;
  while ((rc = s.step()) == SQLITE_ROW) {
    Event e;
    e.id = s.columnInteger(0);
    e.at = fromEpochMs(s.columnInteger(1));
    e.kind = s.columnText(2);
    e.user = s.columnText(3);
    e.address = s.columnText(4);
    e.detail = nlohmann::json::parse(s.columnText(5), nullptr, false);
    if (e.detail.is_discarded()) e.detail = nlohmann::json::object();
    page.items.push_back(std::move(e));
  }
  if (rc != SQLITE_DONE) return failure(db_, "list");
  return page;
}

Result<long long> AuditLog::prune(TimePoint now) {
  std::lock_guard lock(mu_);
  Stmt s(db_,
         "DELETE FROM audit_events WHERE at_ms < ?1 OR id <= "
         "(SELECT coalesce(max(id), 0) FROM audit_events) - ?2");
  if (!s.ok()) return failure(db_, "prepare prune");
  s.integer(1, toEpochMs(now - retention_.maxAge));
  s.integer(2, retention_.maxEvents);
  if (s.step() != SQLITE_DONE) return failure(db_, "prune");
  return static_cast<long long>(sqlite3_changes(db_));
}

}  // namespace dc::audit
