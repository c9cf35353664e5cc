// The PostgreSQL side of common/sql_database.h, over the libpq layer of common/pg.h.
#include <libpq-fe.h>

#include "common/pg.h"
#include "common/sql_database.h"

namespace dc::sql {

namespace {

constexpr unsigned kByteaOid = 17;  // pg_type.oid of bytea (catalog/pg_type.dat)

pg::Param toParam(const Value& v) {
  if (std::holds_alternative<std::nullptr_t>(v)) return pg::null();
  if (const auto* n = std::get_if<long long>(&v)) return pg::integer(*n);
  if (const auto* s = std::get_if<std::string>(&v)) return *s;
  // bytea input in hex format: "\x" followed by two hex digits per byte.
  static constexpr char kHex[] = "0123456789abcdef";
  const auto& bytes = std::get<Blob>(v).bytes;
  std::string out = "\\x";
  out.reserve(2 + 2 * bytes.size());
  for (unsigned char c : bytes) {
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 0xf]);
  }
  return out;
}

int hexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/// bytea output in hex format (the server's default, bytea_output = hex) back to bytes.
std::string fromByteaHex(std::string_view text) {
  if (!text.starts_with("\\x")) return std::string(text);
  std::string out;
  out.reserve((text.size() - 2) / 2);
  for (size_t i = 2; i + 1 < text.size(); i += 2) {
    const int hi = hexDigit(text[i]), lo = hexDigit(text[i + 1]);
    if (hi < 0 || lo < 0) break;
    out.push_back(static_cast<char>(hi * 16 + lo));
  }
  return out;
}

Rows convert(const pg::Rows& r) {
  Rows rows;
  rows.reserve(static_cast<size_t>(r.rows()));
  for (int i = 0; i < r.rows(); ++i) {
    std::vector<std::optional<std::string>> cols;
    cols.reserve(static_cast<size_t>(r.columns()));
    for (int c = 0; c < r.columns(); ++c) {
      if (r.isNull(i, c))
        cols.emplace_back(std::nullopt);
      else if (r.columnType(c) == kByteaOid)
        cols.emplace_back(fromByteaHex(r.view(i, c)));
      else
        cols.emplace_back(r.text(i, c));
    }
    rows.emplace_back(std::move(cols));
  }
  return rows;
}

Error named(Error e, const std::string& component) {
  e.message = component + ": " + e.message;
  return e;
}

Result<Rows> runOn(pg::Connection& conn, std::string_view sql, std::span<const Value> params,
                   const std::string& component) {
  std::vector<pg::Param> bound;
  bound.reserve(params.size());
  for (const auto& v : params) bound.push_back(toParam(v));
  auto r = conn.exec(sql, bound);
  if (!r.ok()) return named(r.error(), component);
  return convert(*r);
}

/// Statements on one borrowed connection, inside a transaction.
class BoundPg final : public Database {
 public:
  BoundPg(pg::Connection& c, const std::string& component) : conn_(c), component_(component) {}
  Backend backend() const override { return Backend::kPostgres; }
  Result<Rows> run(std::string_view sql, std::span<const Value> params) override {
    return runOn(conn_, sql, params, component_);
  }
  Status transaction(const std::function<Status(Database&)>&) override {
    return Error::internal("nested transactions are not supported");
  }
  Status migrate(std::string_view, std::span<const Migration>) override {
    return Error::internal("migrate inside a transaction");
  }

 private:
  pg::Connection& conn_;
  const std::string& component_;
};

class PostgresDatabase final : public Database {
 public:
  PostgresDatabase(std::unique_ptr<pg::Pool> pool, std::string component)
      : pool_(std::move(pool)), component_(std::move(component)) {}

  Backend backend() const override { return Backend::kPostgres; }

  Result<Rows> run(std::string_view sql, std::span<const Value> params) override {
    auto lease = pool_->acquire();
    if (!lease.ok()) return named(lease.error(), component_);
    return runOn(**lease, sql, params, component_);
  }

  Status transaction(const std::function<Status(Database&)>& body) override {
    auto lease = pool_->acquire();
    if (!lease.ok()) return named(lease.error(), component_);
    auto tx = pg::Transaction::begin(**lease);
    if (!tx.ok()) return named(tx.error(), component_);
    BoundPg bound(**lease, component_);
    if (auto st = body(bound); !st.ok()) return st;  // the guard rolls back
    if (auto st = tx->commit(); !st.ok()) return named(st.error(), component_);
    return Status::success();
  }

  Status migrate(std::string_view component, std::span<const Migration> steps) override {
    std::vector<std::string_view> scripts;
    for (size_t i = 0; i < steps.size(); ++i) {
      if (steps[i].version != static_cast<int>(i) + 1)
        return Error::internal(std::string(component) + ": migration versions must be 1, 2, …");
      scripts.push_back(steps[i].postgres.empty() ? std::string_view(steps[i].sqlite)
                                                  : std::string_view(steps[i].postgres));
    }
    auto lease = pool_->acquire();
    if (!lease.ok()) return named(lease.error(), component_);
    return pg::runMigrations(**lease, component, scripts);
  }

 private:
  std::unique_ptr<pg::Pool> pool_;
  std::string component_;
};

}  // namespace

Result<std::unique_ptr<Database>> openPostgresDatabase(const std::string& url,
                                                       std::string_view component, int poolSize) {
  auto pool = pg::Pool::open({.url = url, .size = poolSize, .checkoutTimeout = Millis(5000)});
  if (!pool.ok()) return named(pool.error(), std::string(component));
  return std::unique_ptr<Database>(
      new PostgresDatabase(std::move(pool).value(), std::string(component)));
}

}  // namespace dc::sql
