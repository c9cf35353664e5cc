#include "common/pg.h"

#include <libpq-fe.h>

#include <algorithm>
#include <cassert>
#include <charconv>
#include <cstring>

namespace dc::pg {

namespace {

// SQLSTATE classes a caller may retry: connection exception (08), transaction rollback
// (40: serialization failure, deadlock), insufficient resources (53), operator intervention
// (57: admin shutdown, cannot connect now), and lock_not_available (55P03).
bool retryable(std::string_view state) {
  if (state.size() != 5) return true;  // no SQLSTATE: the connection itself failed
  const std::string_view cls = state.substr(0, 2);
  return cls == "08" || cls == "40" || cls == "53" || cls == "57" || state == "55P03";
}

std::string trimmed(const char* msg) {
  std::string s = msg ? msg : "";
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

// "host:port/db" from the parsed connection options, for messages. No user, no password.
std::string describeOptions(PQconninfoOption* opts) {
  std::string host, port, db;
  for (auto* o = opts; o && o->keyword; ++o) {
    if (!o->val) continue;
    if (std::strcmp(o->keyword, "host") == 0 ||
        (host.empty() && !std::strcmp(o->keyword, "hostaddr")))
      host = o->val;
    else if (std::strcmp(o->keyword, "port") == 0)
      port = o->val;
    else if (std::strcmp(o->keyword, "dbname") == 0)
      db = o->val;
  }
  std::string out = host.empty() ? std::string("localhost") : host;
  if (!port.empty()) {
    out += ':';
    out += port;
  }
  out += '/';
  out += db;
  return out;
}

// libpq's messages may quote the connection string it was given; never let a password through.
std::string withoutSecrets(std::string msg, const std::string& url) {
  auto mask = [&msg](const std::string& secret, const char* with) {
    if (secret.empty()) return;
    for (size_t at = msg.find(secret); at != std::string::npos; at = msg.find(secret, at))
      msg.replace(at, secret.size(), with);
  };
  mask(url, "<database url>");
  // libpq quotes the piece of a URL it cannot read, which may be the password itself (a bad
  // percent escape in it): the user-info's password is masked wherever it appears.
  if (const size_t scheme = url.find("://"); scheme != std::string::npos) {
    const size_t start = scheme + 3;
    const size_t end = url.find_first_of("/?", start);
    const std::string authority = url.substr(start, end == std::string::npos ? end : end - start);
    if (const size_t at = authority.rfind('@'); at != std::string::npos) {
      const std::string userInfo = authority.substr(0, at);
      if (const size_t colon = userInfo.find(':'); colon != std::string::npos)
        mask(userInfo.substr(colon + 1), "***");
    }
  }
  return msg;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Rows

Rows::Rows(pg_result* r) : r_(r) {}

Rows::~Rows() {
  if (r_) PQclear(r_);
}

Rows::Rows(Rows&& o) noexcept : r_(o.r_) {
  o.r_ = nullptr;
}

Rows& Rows::operator=(Rows&& o) noexcept {
  if (this != &o) {
    if (r_) PQclear(r_);
    r_ = o.r_;
    o.r_ = nullptr;
  }
  return *this;
}

int Rows::rows() const {
  return r_ ? PQntuples(r_) : 0;
}

int Rows::columns() const {
  return r_ ? PQnfields(r_) : 0;
}

unsigned Rows::columnType(int col) const {
  return r_ ? static_cast<unsigned>(PQftype(r_, col)) : 0;
}

long long Rows::affected() const {
  if (!r_) return 0;
  const char* n = PQcmdTuples(r_);
  long long v = 0;
  if (n && *n) std::from_chars(n, n + std::strlen(n), v);
  return v;
}

bool Rows::isNull(int row, int col) const {
  assert(r_ && row < rows() && col < columns());
  return PQgetisnull(r_, row, col) != 0;
}

std::string_view Rows::view(int row, int col) const {
  assert(r_ && row < rows() && col < columns());
  if (PQgetisnull(r_, row, col)) return {};
  return {PQgetvalue(r_, row, col), static_cast<size_t>(PQgetlength(r_, row, col))};
}

std::string Rows::text(int row, int col) const {
  return std::string(view(row, col));
}

long long Rows::integer(int row, int col) const {
  const auto v = view(row, col);
  long long out = 0;
  [[maybe_unused]] const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
  assert(v.empty() || (ec == std::errc() && end == v.data() + v.size()));
  return out;
}

std::optional<long long> Rows::optInteger(int row, int col) const {
  if (isNull(row, col)) return std::nullopt;
  return integer(row, col);
}

bool Rows::boolean(int row, int col) const {
  const auto v = view(row, col);
  return !v.empty() && v[0] == 't';
}

std::optional<TimePoint> Rows::optEpochMs(int row, int col) const {
  if (isNull(row, col)) return std::nullopt;
  return epochMs(row, col);
}

// ---------------------------------------------------------------------------------------------
// Connection

Result<std::unique_ptr<Connection>> Connection::open(const std::string& url) {
  char* parseError = nullptr;
  PQconninfoOption* opts = PQconninfoParse(url.c_str(), &parseError);
  if (!opts) {
    std::string why = parseError ? trimmed(parseError) : std::string("out of memory");
    if (parseError) PQfreemem(parseError);
    return Error::invalid("invalid_database_url", "database",
                          "the database URL does not parse: " + withoutSecrets(why, url));
  }
  const std::string where = describeOptions(opts);
  PQconninfoFree(opts);

  // Later keywords override earlier ones; the URL comes last, so what it says wins.
  const char* keys[] = {"connect_timeout", "application_name", "dbname", nullptr};
  const char* values[] = {"10", "defender-console", url.c_str(), nullptr};
  pg_conn* c = PQconnectdbParams(keys, values, /*expand_dbname=*/1);
  if (!c) return Error::unavailable("cannot connect to PostgreSQL at " + where + ": out of memory");
  if (PQstatus(c) != CONNECTION_OK) {
    std::string why = withoutSecrets(trimmed(PQerrorMessage(c)), url);
    PQfinish(c);
    return Error::unavailable("cannot connect to PostgreSQL at " + where + ": " + why);
  }
  std::unique_ptr<Connection> conn(new Connection(c, where));
  PQsetNoticeReceiver(c, &Connection::onNotice, conn.get());
  return conn;
}

Connection::~Connection() {
  if (c_) PQfinish(c_);
}

bool Connection::healthy() const {
  return !ended_ && PQstatus(c_) == CONNECTION_OK;
}

void Connection::onNotice(void* self, const pg_result* r) {
  // Server NOTICEs ("relation … already exists, skipping") are for interactive sessions; libpq
  // would print each to stderr. A FATAL one arriving between statements is the server ending
  // the session (restart, pg_terminate_backend): the socket closes right after it.
  const char* severity = PQresultErrorField(r, PG_DIAG_SEVERITY_NONLOCALIZED);
  if (severity && (!std::strcmp(severity, "FATAL") || !std::strcmp(severity, "PANIC")))
    static_cast<Connection*>(self)->ended_ = true;
}

bool Connection::alive() {
  if (ended_ || PQstatus(c_) != CONNECTION_OK) return false;
  // Reads what arrived while idle (at once when nothing did) and parses it: a FATAL message
  // reaches onNotice, an end-of-file marks the connection bad.
  if (!PQconsumeInput(c_)) return false;
  (void)PQisBusy(c_);
  return !ended_ && PQstatus(c_) == CONNECTION_OK;
}

bool Connection::inTransaction() const {
  const auto s = PQtransactionStatus(c_);
  return s == PQTRANS_INTRANS || s == PQTRANS_INERROR || s == PQTRANS_ACTIVE;
}

Status Connection::reconnect() {
  PQreset(c_);
  ended_ = false;
  if (PQstatus(c_) != CONNECTION_OK)
    return Error::unavailable("cannot reconnect to PostgreSQL at " + where_ + ": " +
                              trimmed(PQerrorMessage(c_)));
  return Status::success();
}

Error Connection::errorOf(pg_result* r, std::string_view what) {
  const char* stateField = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : nullptr;
  const std::string state = stateField ? stateField : "";
  lastState_ = state;
  std::string msg = std::string(what) + " on " + where_ + ": ";
  msg += trimmed(r ? PQresultErrorMessage(r) : PQerrorMessage(c_));
  if (msg.back() == ' ') msg += trimmed(PQerrorMessage(c_));
  if (!state.empty()) {
    msg += " (SQLSTATE ";
    msg += state;
    msg += ')';
  }
  if (!healthy() || retryable(state)) return Error::unavailable(std::move(msg));
  if (state.compare(0, 2, "23") == 0)
    return Error{ErrorKind::kConflict, "constraint_violation", std::move(msg), {}};
  return Error::internal(std::move(msg));
}

Result<Rows> Connection::exec(std::string_view sql, const std::vector<Param>& params) {
  std::vector<const char*> values;
  values.reserve(params.size());
  for (const auto& p : params) values.push_back(p ? p->c_str() : nullptr);
  const std::string statement(sql);  // libpq wants a NUL-terminated string
  pg_result* r = PQexecParams(c_, statement.c_str(), static_cast<int>(params.size()),
                              /*paramTypes=*/nullptr, values.data(), /*paramLengths=*/nullptr,
                              /*paramFormats=*/nullptr, /*resultFormat=*/0);
  const auto status = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
  if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) return Rows(r);
  Error e = errorOf(r, "SQL");
  if (r) PQclear(r);
  return e;
}

Status Connection::execScript(std::string_view sql) {
  const std::string script(sql);
  pg_result* r = PQexec(c_, script.c_str());
  const auto status = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
  if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) {
    PQclear(r);
    return Status::success();
  }
  Error e = errorOf(r, "SQL script");
  if (r) PQclear(r);
  return e;
}

// ---------------------------------------------------------------------------------------------
// Transaction

Result<Transaction> Transaction::begin(Connection& conn, std::string_view isolation) {
  const char* sql = "BEGIN";
  if (isolation == "REPEATABLE READ")
    sql = "BEGIN ISOLATION LEVEL REPEATABLE READ";
  else if (isolation == "SERIALIZABLE")
    sql = "BEGIN ISOLATION LEVEL SERIALIZABLE";
  else
    assert(isolation.empty());
  auto r = conn.exec(sql);
  if (!r.ok()) return r.error();
  return Transaction(conn);
}

Transaction::~Transaction() {
  rollback();
}

Status Transaction::commit() {
  if (!conn_) return Error::internal("commit of a finished transaction");
  Connection* c = conn_;
  conn_ = nullptr;
  auto r = c->exec("COMMIT");
  if (!r.ok()) {
    if (c->inTransaction()) (void)c->exec("ROLLBACK");
    return r.error();
  }
  return Status::success();
}

void Transaction::rollback() {
  if (!conn_) return;
  Connection* c = conn_;
  conn_ = nullptr;
  if (c->healthy()) (void)c->exec("ROLLBACK");
}

// ---------------------------------------------------------------------------------------------
// Pool

Result<std::unique_ptr<Pool>> Pool::open(const PoolOptions& options) {
  if (options.size < 1 || options.size > 64) {
    std::string msg = "the pool size must be 1..64, not ";
    msg += std::to_string(options.size);
    return Error::invalid("invalid_pool_size", "database-pool-size", std::move(msg));
  }
  std::unique_ptr<Pool> pool(new Pool(options));
  for (int i = 0; i < options.size; ++i) {
    auto c = Connection::open(options.url);
    if (!c.ok()) return c.error();
    pool->free_.push_back(std::move(c).value());
  }
  return pool;
}

Pool::~Pool() {
  assert(lent_ == 0);
}

int Pool::inUse() const {
  std::lock_guard lock(mutex_);
  return lent_;
}

Result<Pool::Lease> Pool::acquire() {
  std::unique_ptr<Connection> c;
  {
    std::unique_lock lock(mutex_);
    if (!freed_.wait_for(lock, options_.checkoutTimeout, [&] { return !free_.empty(); })) {
      std::string msg = "PostgreSQL pool: no free connection within ";
      msg += std::to_string(options_.checkoutTimeout.count());
      msg += " ms";
      return Error::unavailable(std::move(msg));
    }
    c = std::move(free_.back());
    free_.pop_back();
    ++lent_;
  }
  // (Re)connect outside the lock: it may take up to connect_timeout.
  Status st;
  if (!c) {
    auto opened = Connection::open(options_.url);
    if (opened.ok())
      c = std::move(opened).value();
    else
      st = opened.error();
  } else if (!c->alive()) {
    st = c->reconnect();
  }
  if (!st.ok()) {
    giveBack(std::move(c));
    return st.error();
  }
  return Lease(this, std::move(c));
}

void Pool::giveBack(std::unique_ptr<Connection> c) {
  // A connection left in a transaction (a bug, or an exception) must not carry it to the next
  // borrower; a lost one is reconnected at its next checkout.
  if (c && c->healthy() && c->inTransaction()) (void)c->exec("ROLLBACK");
  {
    std::lock_guard lock(mutex_);
    free_.push_back(std::move(c));
    --lent_;
  }
  freed_.notify_one();
}

Pool::Lease::~Lease() {
  if (pool_) pool_->giveBack(std::move(conn_));
}

// ---------------------------------------------------------------------------------------------
// Streaming

Status forEachRow(Connection& conn, std::string_view select, const std::vector<Param>& params,
                  int batchRows, const std::function<bool(const Rows& rows, int row)>& fn) {
  std::optional<Result<Transaction>> own;
  if (!conn.inTransaction()) {
    own.emplace(Transaction::begin(conn));
    if (!own->ok()) return own->error();
  }
  std::string declare = "DECLARE dc_rows NO SCROLL CURSOR FOR ";
  declare += select;
  if (auto r = conn.exec(declare, params); !r.ok()) return r.error();
  std::string fetch = "FETCH ";
  fetch += std::to_string(std::max(batchRows, 1));
  fetch += " FROM dc_rows";
  bool more = true;
  while (more) {
    auto batch = conn.exec(fetch);
    if (!batch.ok()) return batch.error();
    const int n = batch->rows();
    more = n > 0;
    for (int i = 0; i < n && more; ++i) more = fn(*batch, i);
  }
  if (auto r = conn.exec("CLOSE dc_rows"); !r.ok()) return r.error();
  if (own) return (**own).commit();
  return Status::success();
}

// ---------------------------------------------------------------------------------------------
// Migrations

namespace {

// The key of the transaction-scoped advisory lock every migration step holds: one for all
// components, so steps of different components never interleave either.
constexpr const char* kMigrationLock = "SELECT pg_advisory_xact_lock(4702884950573260849)";

Status prefixed(Status st, std::string_view component, int version) {
  if (st.ok()) return st;
  Error e = st.error();
  std::string prefix = std::string(component);
  prefix += " schema";
  if (version > 0) {
    prefix += " version ";
    prefix += std::to_string(version);
  }
  e.message = prefix + ": " + e.message;
  return e;
}

Result<int> readVersion(Connection& conn, std::string_view component) {
  auto r = conn.exec("SELECT coalesce(max(version), 0) FROM schema_migrations WHERE component = $1",
                     {text(component)});
  if (!r.ok()) return r.error();
  return static_cast<int>(r->integer(0, 0));
}

}  // namespace

Result<int> schemaVersion(Connection& conn, std::string_view component) {
  auto exists = conn.exec("SELECT to_regclass('schema_migrations') IS NOT NULL");
  if (!exists.ok()) return exists.error();
  if (!exists->boolean(0, 0)) return 0;
  return readVersion(conn, component);
}

Status runMigrations(Connection& conn, std::string_view component,
                     std::span<const std::string_view> steps) {
  const int known = static_cast<int>(steps.size());
  {
    // Creating the table under the lock too: concurrent CREATE TABLE IF NOT EXISTS can fail
    // with a unique violation in the catalog.
    auto tx = Transaction::begin(conn);
    if (!tx.ok()) return prefixed(tx.error(), component, 0);
    if (auto r = conn.exec(kMigrationLock); !r.ok()) return prefixed(r.error(), component, 0);
    if (auto r = conn.exec(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            "component text NOT NULL, version integer NOT NULL, applied_at bigint NOT NULL, "
            "PRIMARY KEY (component, version))");
        !r.ok())
      return prefixed(r.error(), component, 0);
    if (auto st = tx->commit(); !st.ok()) return prefixed(st, component, 0);
  }
  for (;;) {
    auto tx = Transaction::begin(conn);
    if (!tx.ok()) return prefixed(tx.error(), component, 0);
    if (auto r = conn.exec(kMigrationLock); !r.ok()) return prefixed(r.error(), component, 0);
    auto current = readVersion(conn, component);
    if (!current.ok()) return prefixed(current.error(), component, 0);
    if (*current > known) {
      std::string msg = "the ";
      msg += component;
      msg += " tables have schema version ";
      msg += std::to_string(*current);
      msg += "; this Console knows up to ";
      msg += std::to_string(known);
      msg += ". Upgrade the Console or point it at another database.";
      return Error::invalid("schema_too_new", "database", std::move(msg));
    }
    if (*current == known) return prefixed(tx->commit(), component, 0);
    const int next = *current + 1;
    if (auto st = conn.execScript(steps[static_cast<size_t>(next - 1)]); !st.ok())
      return prefixed(st, component, next);
    if (auto r = conn.exec(
            "INSERT INTO schema_migrations (component, version, applied_at) VALUES ($1, $2, "
            "(extract(epoch from clock_timestamp()) * 1000)::bigint)",
            {text(component), integer(next)});
        !r.ok())
      return prefixed(r.error(), component, next);
    if (auto st = tx->commit(); !st.ok()) return prefixed(st, component, next);
  }
}

std::string describeUrl(const std::string& url) {
  char* parseError = nullptr;
  PQconninfoOption* opts = PQconninfoParse(url.c_str(), &parseError);
  if (parseError) PQfreemem(parseError);
  if (!opts) return "(unparsable database URL)";
  std::string where = describeOptions(opts);
  PQconninfoFree(opts);
  return where;
}

}  // namespace dc::pg
