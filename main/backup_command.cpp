#include "main/backup_command.h"

#include <spdlog/spdlog.h>

#include <chrono>

#include "common/sqlite_backup.h"

namespace dc {

int runBackupCommand(const ConsoleConfig& config) {
  const std::string source = config.databasePath();
  if (source == ":memory:") {
    spdlog::error("backup: --database :memory: has nothing on disk to copy");
    return 1;
  }
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

}  // namespace dc
