#include "common/sqlite_backup.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <optional>
#include <thread>

namespace dc {

namespace fs = std::filesystem;

namespace {

Error failed(const std::string& message) {
  return Error{ErrorKind::kUnavailable, "backup_failed", message, {}};
}

std::string reason(sqlite3* db, int rc) {
  return db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
}

/// Closes both connections and removes the temporary copy and its side files on every path out.
struct Session {
  std::string tmp;
  sqlite3* src = nullptr;
  sqlite3* dst = nullptr;
  bool keep = false;
  ~Session() {
    sqlite3_close(dst);
    sqlite3_close(src);
    if (keep) return;
    std::error_code ec;
    for (const char* suffix : {"", "-journal", "-wal", "-shm"}) fs::remove(tmp + suffix, ec);
  }
};

Result<sqlite3*> open(const std::string& path, int flags) {
  sqlite3* db = nullptr;
  const int rc = sqlite3_open_v2(path.c_str(), &db, flags, nullptr);
  if (rc != SQLITE_OK) {
    std::string why = reason(db, rc);
    sqlite3_close(db);
    return failed("cannot open " + path + ": " + why);
  }
  return db;
}

/// "ok", or the first problem `PRAGMA integrity_check` reports (or SQLite's error).
std::string integrityCheck(sqlite3* db) {
  sqlite3_stmt* stmt = nullptr;
  std::string result;
  int rc = sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &stmt, nullptr);
  if (rc == SQLITE_OK) rc = sqlite3_step(stmt);
  if (rc == SQLITE_ROW)
    result = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
  else
    result = sqlite3_errmsg(db);
  sqlite3_finalize(stmt);
  return result;
}

bool syncPath(const std::string& path, int flags) {
  const int fd = ::open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0) return false;
  const bool ok = ::fsync(fd) == 0;
  ::close(fd);
  return ok;
}

}  // namespace

Result<SqliteBackupSummary> backupSqliteDatabase(const std::string& source,
                                                 const std::string& destination,
                                                 const SqliteBackupOptions& options) {
  const auto started = std::chrono::steady_clock::now();
  std::error_code ec;
  if (!fs::is_regular_file(source, ec))
    return Error{ErrorKind::kInvalidArgument,
                 "backup_source",
                 "database " + source + " does not exist (check --data-dir/--database)",
                 {}};
  const fs::path dest(destination);
  const fs::path destDir = dest.has_parent_path() ? dest.parent_path() : fs::path(".");
  if (destination.empty() || !fs::is_directory(destDir, ec))
    return Error{
        ErrorKind::kInvalidArgument,
        "backup_destination",
        "backup file " + destination + ": directory " + destDir.string() + " does not exist",
        {}};
  if (fs::exists(dest, ec) && fs::equivalent(dest, source, ec))
    return Error{ErrorKind::kInvalidArgument,
                 "backup_destination",
                 "backup file " + destination + " is the database itself",
                 {}};
  // The database's directory holds the running Console's files (its WAL and shared memory,
  // the lock, the keys): a backup written there could replace one of them. Backups go
  // elsewhere.
  const fs::path sourceDir =
      fs::path(source).has_parent_path() ? fs::path(source).parent_path() : fs::path(".");
  if (fs::equivalent(destDir, sourceDir, ec))
    return Error{ErrorKind::kInvalidArgument,
                 "backup_destination",
                 "backup file " + destination + " is in the database's own directory " +
                     sourceDir.string() +
                     " (beside its WAL, lock and key files); write backups to another directory",
                 {}};

  Session s;
  s.tmp = destination + ".tmp";
  for (const char* suffix : {"", "-journal", "-wal", "-shm"}) fs::remove(s.tmp + suffix, ec);

  // A read-only connection of its own: the Console's connections are in another process.
  auto src = open(source, SQLITE_OPEN_READONLY);
  if (!src.ok()) return src.error();
  s.src = *src;
  sqlite3_busy_timeout(s.src, static_cast<int>(options.busyTimeout.count()));
  // One read transaction for the whole copy: every step reads the same snapshot, so the Console's
  // commits meanwhile neither restart the copy nor make it inconsistent (WAL readers do not block
  // the writer).
  if (int rc = sqlite3_exec(s.src, "BEGIN; SELECT count(*) FROM sqlite_schema;", nullptr, nullptr,
                            nullptr);
      rc != SQLITE_OK) {
    const ErrorKind kind =
        rc == SQLITE_NOTADB ? ErrorKind::kInvalidArgument : ErrorKind::kUnavailable;
    return Error{kind,
                 kind == ErrorKind::kInvalidArgument ? "backup_source" : "backup_failed",
                 "cannot read " + source + ": " + reason(s.src, rc),
                 {}};
  }

  // Owner-only from the start: the copy holds password hashes and Defender credentials. SQLite
  // creates its journal with the same mode.
  if (int fd = ::open(s.tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600); fd >= 0)
    ::close(fd);
  else
    return failed("cannot create " + s.tmp + ": " + std::strerror(errno));
  auto dst = open(s.tmp, SQLITE_OPEN_READWRITE);
  if (!dst.ok()) return dst.error();
  s.dst = *dst;
  sqlite3_backup* backup = sqlite3_backup_init(s.dst, "main", s.src, "main");
  if (!backup) return failed("cannot start the backup into " + s.tmp + ": " + reason(s.dst, 0));

  SqliteBackupSummary summary;
  int rc = SQLITE_OK;
  auto busySince = std::chrono::steady_clock::now();
  bool busy = false;
  while (true) {
    rc = sqlite3_backup_step(backup, options.pagesPerStep);
    if (options.progress && (rc == SQLITE_OK || rc == SQLITE_DONE))
      options.progress(sqlite3_backup_remaining(backup), sqlite3_backup_pagecount(backup));
    if (rc == SQLITE_DONE) break;
    if (rc == SQLITE_OK) {
      busy = false;
      continue;
    }
    if (rc != SQLITE_BUSY && rc != SQLITE_LOCKED) break;
    const auto now = std::chrono::steady_clock::now();
    if (!busy) busySince = now;
    busy = true;
    if (now - busySince > options.busyTimeout) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  summary.pages = sqlite3_backup_pagecount(backup);
  const int finished = sqlite3_backup_finish(backup);
  if (rc != SQLITE_DONE)
    return failed(
        "backup of " + source + " into " + s.tmp + " failed: " + sqlite3_errstr(rc) +
        (rc == SQLITE_BUSY || rc == SQLITE_LOCKED ? " for longer than the busy timeout" : ""));
  if (finished != SQLITE_OK)
    return failed("cannot write " + s.tmp + ": " + reason(s.dst, finished));
  sqlite3_close(s.dst);
  s.dst = nullptr;
  sqlite3_close(s.src);
  s.src = nullptr;

  // Check the file as a restore will find it, through a connection of its own.
  auto check = open(s.tmp, SQLITE_OPEN_READWRITE);
  if (!check.ok()) return check.error();
  s.dst = *check;
  if (std::string verdict = integrityCheck(s.dst); verdict != "ok")
    return failed("the copy " + s.tmp + " failed PRAGMA integrity_check: " + verdict);
  sqlite3_close(s.dst);  // the last connection: SQLite folds and removes -wal and -shm
  s.dst = nullptr;

  if (!syncPath(s.tmp, O_RDONLY)) return failed("cannot sync " + s.tmp);
  fs::rename(s.tmp, dest, ec);
  if (ec) return failed("cannot rename " + s.tmp + " to " + destination + ": " + ec.message());
  s.keep = true;
  syncPath(destDir.string(), O_RDONLY | O_DIRECTORY);  // best effort: the rename's durability
  summary.bytes = static_cast<long long>(fs::file_size(dest, ec));
  summary.elapsed = std::chrono::duration_cast<Millis>(std::chrono::steady_clock::now() - started);
  return summary;
}

int sqliteDatabaseOpenedBy(const std::string& path) {
  const std::string shm = path + "-shm";
  const int fd = ::open(shm.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;  // no -shm: no connection in WAL mode
  struct flock lock {};
  lock.l_type = F_WRLCK;
  lock.l_whence = SEEK_SET;
  lock.l_start = 128;  // the DMS lock; every open connection holds it shared
  lock.l_len = 1;
  int pid = 0;
  if (::fcntl(fd, F_GETLK, &lock) == 0 && lock.l_type != F_UNLCK) pid = lock.l_pid;
  ::close(fd);
  return pid;
}

Result<SqliteRestoreSummary> restoreSqliteDatabase(const std::string& backup,
                                                   const std::string& target) {
  std::error_code ec;
  if (!fs::is_regular_file(backup, ec))
    return Error{ErrorKind::kInvalidArgument,
                 "restore_source",
                 "backup file " + backup + " does not exist",
                 {}};
  const fs::path dest(target);
  const fs::path destDir = dest.has_parent_path() ? dest.parent_path() : fs::path(".");
  if (!fs::is_directory(destDir, ec))
    return Error{ErrorKind::kInvalidArgument,
                 "restore_destination",
                 "data directory " + destDir.string() + " does not exist",
                 {}};
  const auto inUse = [&]() -> std::optional<Error> {
    if (int pid = sqliteDatabaseOpenedBy(target))
      return Error{ErrorKind::kConflict,
                   "database_in_use",
                   "database " + target + " is open in process " + std::to_string(pid) +
                       " (a running Console?): stop it first (systemctl stop defender-console)",
                   {}};
    return std::nullopt;
  };
  if (auto e = inUse()) return *e;

  Session s;
  s.tmp = target + ".restore";
  for (const char* suffix : {"", "-journal", "-wal", "-shm"}) fs::remove(s.tmp + suffix, ec);
  fs::copy_file(backup, s.tmp, ec);
  if (ec) return failed("cannot copy " + backup + " to " + s.tmp + ": " + ec.message());
  fs::permissions(s.tmp, fs::perms::owner_read | fs::perms::owner_write, ec);
  auto check = open(s.tmp, SQLITE_OPEN_READWRITE);
  if (!check.ok()) return check.error();
  s.dst = *check;
  if (std::string verdict = integrityCheck(s.dst); verdict != "ok")
    return Error{ErrorKind::kInvalidArgument,
                 "restore_source",
                 "backup file " + backup + " is not a sound database: " + verdict,
                 {}};
  sqlite3_close(s.dst);  // the last connection: SQLite folds and removes -wal and -shm
  s.dst = nullptr;
  if (!syncPath(s.tmp, O_RDONLY)) return failed("cannot sync " + s.tmp);
  struct stat dirStat {};
  if (::geteuid() == 0 && ::stat(destDir.c_str(), &dirStat) == 0 &&
      ::chown(s.tmp.c_str(), dirStat.st_uid, dirStat.st_gid) != 0)
    return failed("cannot give " + s.tmp + " to the owner of " + destDir.string() + ": " +
                  std::strerror(errno));

  if (auto e = inUse()) return *e;  // started meanwhile
  SqliteRestoreSummary summary;
  // Moves the replaced database (and its -wal) back when a later step fails.
  const auto putBack = [&](const std::string& why) {
    std::error_code ignored;
    if (!summary.replaced.empty()) {
      fs::rename(summary.replaced, dest, ignored);
      if (fs::exists(summary.replaced + "-wal", ignored))
        fs::rename(summary.replaced + "-wal", target + "-wal", ignored);
    }
    return failed(why);
  };
  if (fs::exists(dest, ec)) {
    for (const char* suffix : {"", "-wal"}) fs::remove(target + ".replaced" + suffix, ec);
    fs::rename(dest, target + ".replaced", ec);
    if (ec) return failed("cannot move " + target + " aside: " + ec.message());
    summary.replaced = target + ".replaced";
    if (fs::exists(target + "-wal", ec)) fs::rename(target + "-wal", summary.replaced + "-wal", ec);
    if (ec) return putBack("cannot move " + target + "-wal aside: " + ec.message());
  }
  fs::remove(target + "-shm", ec);
  fs::rename(s.tmp, dest, ec);
  if (ec) return putBack("cannot rename " + s.tmp + " to " + target + ": " + ec.message());
  s.keep = true;
  syncPath(destDir.string(), O_RDONLY | O_DIRECTORY);
  summary.bytes = static_cast<long long>(fs::file_size(dest, ec));
  return summary;
}

}  // namespace dc
