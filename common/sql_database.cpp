#include "common/sql_database.h"

#include <sqlite3.h>

#include <cctype>
#include <mutex>

#include "common/sqlite_tables.h"

namespace dc::sql {

namespace {

const std::string kEmpty;

}  // namespace

const std::string& Row::text(size_t col) const {
  const auto& c = columns_.at(col);
  return c ? *c : kEmpty;
}

long long Row::integer(size_t col) const {
  const auto& c = columns_.at(col);
  if (!c) return 0;
  try {
    return std::stoll(*c);
  } catch (const std::exception&) {
    return 0;
  }
}

bool isPostgresUrl(std::string_view target) {
  // URL schemes are case-insensitive (RFC 3986 §3.1).
  auto startsWith = [target](std::string_view scheme) {
    if (target.size() < scheme.size()) return false;
    for (size_t i = 0; i < scheme.size(); ++i)
      if (std::tolower(static_cast<unsigned char>(target[i])) != scheme[i]) return false;
    return true;
  };
  return startsWith("postgresql://") || startsWith("postgres://");
}

// ---- SQLite ----

namespace {

/// Statements and transactions on one SQLite connection. `Bound` runs on a connection whose
/// mutex the caller already holds (inside a transaction).
class SqliteDatabase final : public Database {
 public:
  SqliteDatabase(sqlite3* db, std::string component)
      : db_(db), component_(std::move(component)), bound_(*this) {}
  ~SqliteDatabase() override { sqlite3_close(db_); }

  Backend backend() const override { return Backend::kSqlite; }

  Result<Rows> run(std::string_view sql, std::span<const Value> params) override {
    std::lock_guard lock(mu_);
    return runLocked(sql, params);
  }

  Status transaction(const std::function<Status(Database&)>& body) override {
    std::lock_guard lock(mu_);
    return transactionLocked(body);
  }

  Status migrate(std::string_view component, std::span<const Migration> steps) override {
    std::lock_guard lock(mu_);
    const std::string meta = std::string(component) + "_meta";
    if (auto r = runLocked(
            "CREATE TABLE IF NOT EXISTS " + meta + " (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
            {});
        !r.ok())
      return r.error();
    auto stored = runLocked("SELECT value FROM " + meta + " WHERE key = 'schema_version'", {});
    if (!stored.ok()) return stored.error();
    long long version = stored->empty() ? 0 : (*stored)[0].integer(0);
    const long long newest = steps.empty() ? 0 : steps.back().version;
    if (version > newest)
      return Error::invalid("schema_too_new", "",
                            "the " + std::string(component) + " tables have schema version " +
                                std::to_string(version) + "; this Console knows up to " +
                                std::to_string(newest));
    for (const auto& step : steps) {
      if (step.version <= version) continue;
      auto st = transactionLocked([&](Database& db) -> Status {
        auto* self = static_cast<Bound&>(db).owner;
        if (auto s = self->execScript(step.sqlite); !s.ok()) return s;
        auto w = db.run("INSERT INTO " + meta +
                            " (key, value) VALUES ('schema_version', $1) ON CONFLICT (key) DO "
                            "UPDATE SET value = excluded.value",
                        {std::to_string(step.version)});
        return w.ok() ? Status::success() : Status(w.error());
      });
      if (!st.ok()) return st;
      version = step.version;
    }
    return Status::success();
  }

 private:
  struct Bound final : Database {
    explicit Bound(SqliteDatabase& o) : owner(&o) {}
    Backend backend() const override { return Backend::kSqlite; }
    Result<Rows> run(std::string_view sql, std::span<const Value> params) override {
      return owner->runLocked(sql, params);
    }
    Status transaction(const std::function<Status(Database&)>&) override {
      return Error::internal("nested transactions are not supported");
    }
    Status migrate(std::string_view, std::span<const Migration>) override {
      return Error::internal("migrate inside a transaction");
    }
    SqliteDatabase* owner;
  };

  Error failure(std::string_view what) const {
    const int ext = sqlite3_extended_errcode(db_);
    const std::string msg =
        component_ + ": " + std::string(what) + ": " + std::string(sqlite3_errmsg(db_));
    if ((ext & 0xff) == SQLITE_CONSTRAINT)
      return Error{ErrorKind::kConflict, "constraint_violation", msg, {}};
    return Error::unavailable(msg);
  }

  Status execScript(const std::string& script) {
    char* msg = nullptr;
    if (sqlite3_exec(db_, script.c_str(), nullptr, nullptr, &msg) != SQLITE_OK) {
      std::string m = msg ? msg : "unknown error";
      sqlite3_free(msg);
      return Error::unavailable(component_ + ": cannot create tables: " + m);
    }
    return Status::success();
  }

  Result<Rows> runLocked(std::string_view sql, std::span<const Value> params) {
    sqlite3_stmt* raw = nullptr;
    if (sqlite3_prepare_v2(db_, sql.data(), static_cast<int>(sql.size()), &raw, nullptr) !=
        SQLITE_OK)
      return Error::internal(component_ + ": prepare: " + std::string(sqlite3_errmsg(db_)));
    std::unique_ptr<sqlite3_stmt, decltype(&sqlite3_finalize)> stmt(raw, &sqlite3_finalize);
    if (sqlite3_bind_parameter_count(raw) != static_cast<int>(params.size()))
      return Error::internal(component_ + ": statement takes " +
                             std::to_string(sqlite3_bind_parameter_count(raw)) +
                             " parameters, given " + std::to_string(params.size()));
    for (size_t i = 0; i < params.size(); ++i) {
      // Appended, not `"$" + std::to_string(…)`: GCC 12 reports a false -Wrestrict on that at -O2.
      std::string name = "$";
      name += std::to_string(i + 1);
      const int at = sqlite3_bind_parameter_index(raw, name.c_str());
      if (at == 0) return Error::internal(component_ + ": statement does not use " + name);
      const Value& v = params[i];
      int rc = SQLITE_OK;
      if (std::holds_alternative<std::nullptr_t>(v)) {
        rc = sqlite3_bind_null(raw, at);
      } else if (const auto* n = std::get_if<long long>(&v)) {
        rc = sqlite3_bind_int64(raw, at, *n);
      } else if (const auto* s = std::get_if<std::string>(&v)) {
        rc = sqlite3_bind_text(raw, at, s->data(), static_cast<int>(s->size()), SQLITE_TRANSIENT);
      } else {
        const auto& b = std::get<Blob>(v).bytes;
        rc = sqlite3_bind_blob(raw, at, b.data(), static_cast<int>(b.size()), SQLITE_TRANSIENT);
      }
      if (rc != SQLITE_OK) return failure("bind");
    }
    Rows rows;
    for (;;) {
      const int rc = sqlite3_step(raw);
      if (rc == SQLITE_DONE) break;
      if (rc != SQLITE_ROW) return failure("step");
      const int n = sqlite3_column_count(raw);
      std::vector<std::optional<std::string>> cols;
      cols.reserve(static_cast<size_t>(n));
      for (int c = 0; c < n; ++c) {
        const int type = sqlite3_column_type(raw, c);
        if (type == SQLITE_NULL) {
          cols.emplace_back(std::nullopt);
        } else if (type == SQLITE_BLOB) {
          const auto* p = static_cast<const char*>(sqlite3_column_blob(raw, c));
          cols.emplace_back(
              std::string(p ? p : "", static_cast<size_t>(sqlite3_column_bytes(raw, c))));
        } else {
          const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(raw, c));
          cols.emplace_back(
              std::string(p ? p : "", static_cast<size_t>(sqlite3_column_bytes(raw, c))));
        }
      }
      rows.emplace_back(std::move(cols));
    }
    return rows;
  }

  Status transactionLocked(const std::function<Status(Database&)>& body) {
    if (sqlite3_exec(db_, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) != SQLITE_OK)
      return failure("begin");
    Status st = Status::success();
    try {
      st = body(bound_);
    } catch (...) {
      sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
      throw;
    }
    if (!st.ok()) {
      sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
      return st;
    }
    if (sqlite3_exec(db_, "COMMIT", nullptr, nullptr, nullptr) != SQLITE_OK) {
      Error e = failure("commit");
      sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
      return e;
    }
    return Status::success();
  }

  sqlite3* db_;
  std::string component_;
  std::mutex mu_;
  Bound bound_;
};

}  // namespace

Result<std::unique_ptr<Database>> openPostgresDatabase(const std::string& url,
                                                       std::string_view component, int poolSize);

Result<std::unique_ptr<Database>> openDatabase(const std::string& target,
                                               std::string_view component, int poolSize,
                                               int busyTimeoutMs) {
  if (isPostgresUrl(target)) return openPostgresDatabase(target, component, poolSize);
  auto db = openSqliteConnection(target, busyTimeoutMs);
  if (!db.ok()) return db.error();
  return std::unique_ptr<Database>(new SqliteDatabase(*db, std::string(component)));
}

}  // namespace dc::sql
