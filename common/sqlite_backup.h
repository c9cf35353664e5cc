// Online backup of a SQLite database that another process (a running Console) may be writing:
// SQLite's backup API (https://www.sqlite.org/backup.html) from a separate connection, into a
// temporary file next to the destination that is checked and then renamed into place.
#pragma once

#include <functional>
#include <string>

#include "common/clock.h"
#include "common/status.h"

namespace dc {

struct SqliteBackupOptions {
  /// Pages copied per sqlite3_backup_step (a page is 4 KiB by default).
  int pagesPerStep = 1024;
  /// How long SQLITE_BUSY/SQLITE_LOCKED from a step is retried before the backup gives up.
  Millis busyTimeout = Seconds(60);
  /// Called after every step with the pages still to copy and the pages in all.
  std::function<void(int remaining, int total)> progress;
};

/// What a finished backup copied.
struct SqliteBackupSummary {
  long long pages = 0;
  long long bytes = 0;  // size of the written file
  Millis elapsed{0};
};

/// Copies the database at `source` into `destination`, consistently (one read transaction of
/// the source, as of the moment the copy starts: writes committed after it are not in the copy,
/// every write committed before it is) and without stopping writers (the source is in WAL mode;
/// its writers keep committing while the copy is read). The copy is written to
/// "<destination>.tmp" (mode 0600: it holds password hashes and credentials), synced, checked
/// with `PRAGMA integrity_check` and renamed onto `destination` (an existing file there is
/// replaced only by a good copy). A Console stopped or running on `source` makes no difference.
///
/// Errors (nothing is left at `destination` or the temporary path):
/// - kInvalidArgument "backup_source": `source` does not exist or is not a SQLite database;
///   "backup_destination": `destination` is the source or its directory does not exist;
/// - kUnavailable "backup_failed": SQLite failed, the source stayed busy longer than
///   `busyTimeout`, the copy failed its integrity check, or the file could not be renamed.
/// Each message names the path and SQLite's reason.
Result<SqliteBackupSummary> backupSqliteDatabase(const std::string& source,
                                                 const std::string& destination,
                                                 const SqliteBackupOptions& options = {});

}  // namespace dc
