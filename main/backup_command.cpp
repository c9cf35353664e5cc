#include "main/backup_command.h"

#include <spdlog/spdlog.h>

#include <chrono>

#include "common/sql_database.h"
#include "common/sqlite_backup.h"

namespace dc {

namespace {

bool onDisk(const std::string& database, const char* command) {
  if (sql::isPostgresUrl(database)) {
    spdlog::error(
        "{}: the database is PostgreSQL: use pg_dump and pg_restore (docs/operations.md "
        "\"PostgreSQL\")",
        command);
    return false;
  }
  if (database != ":memory:") return true;
  spdlog::error("{}: --database :memory: is not a file", command);
  return false;
}

}  // namespace

int runBackupCommand(const ConsoleConfig& config) {
  const std::string source = config.databasePath();
  if (!onDisk(source, "backup")) return 1;
  spdlog::info("backup: copying {} to {}", source, config.backupFile);
  SqliteBackupOptions options;
  auto lastLog = std::chrono::steady_clock::now();
  options.progress = [&lastLog](int remaining, int total) {
    const auto now = std::chrono::steady_clock::now();
    if (remaining > 0 && now - lastLog < std::chrono::seconds(1)) return;
    lastLog = now;
    spdlog::info("backup: {} of {} pages copied ({:.0f}%)", total - remaining, total,
                 total > 0 ? 100.0 * (total - remaining) / total : 100.0);
  };
  auto done = backupSqliteDatabase(source, config.backupFile, options);
  if (!done.ok()) {
    spdlog::error("backup failed: {}", done.error().message);
    return 1;
  }
  spdlog::info("backup: wrote {} ({} pages, {} bytes, integrity check ok) in {:.1f} s",
               config.backupFile, done->pages, done->bytes, done->elapsed.count() / 1000.0);
  return 0;
}

int runRestoreCommand(const ConsoleConfig& config) {
  const std::string target = config.databasePath();
  if (!onDisk(target, "restore")) return 1;
  spdlog::info("restore: putting {} in place of {}", config.backupFile, target);
  auto done = restoreSqliteDatabase(config.backupFile, target);
  if (!done.ok()) {
    spdlog::error("restore failed: {}", done.error().message);
    return 1;
  }
  spdlog::info(
      "restore: {} restored ({} bytes, integrity check ok){}; start the Console", target,
      done->bytes,
      done->replaced.empty() ? "" : "; the replaced database is kept as " + done->replaced);
  return 0;
}

}  // namespace dc
