// Online backup of a SQLite database that another process (a running Console) may be writing:
// SQLite's backup API (https://www.sqlite.org/backup.html) from a separate connection, into a
// temporary file next to the destination that is checked and then renamed into place; and the
// restore of such a copy while nothing has the database open.
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

/// What a finished restore did.
struct SqliteRestoreSummary {
  long long bytes = 0;
  /// Where the database that was replaced now is ("<target>.replaced", with its "-wal" when it
  /// had one); empty when there was none.
  std::string replaced;
};

/// The id of a process that has the WAL-mode database at `path` open (it holds the shared lock on
/// byte 128 of "<path>-shm", SQLite's "DMS" lock: https://www.sqlite.org/walformat.html), or 0
/// when none has. Checked with F_GETLK: takes no lock itself.
int sqliteDatabaseOpenedBy(const std::string& path);

/// Puts the backup file `backup` in place of the database `target` while nothing has it open:
/// copies it to "<target>.restore" (mode 0600; owned like the target's directory when run as
/// root, so that a service user can write it), checks the copy with `PRAGMA integrity_check`,
/// moves the current database and its -wal to "<target>.replaced"/"<target>.replaced-wal"
/// (replacing older ones), removes its -shm, and renames the copy onto `target`.
///
/// Errors (the current database is untouched):
/// - kInvalidArgument "restore_source": `backup` does not exist or is not a sound SQLite
///   database; "restore_destination": the target's directory does not exist;
/// - kConflict "database_in_use": a process (named by its id) has `target` open — a running
///   Console: stop it first;
/// - kUnavailable "restore_failed": copying, syncing or renaming failed.
Result<SqliteRestoreSummary> restoreSqliteDatabase(const std::string& backup,
                                                   const std::string& target);

}  // namespace dc
