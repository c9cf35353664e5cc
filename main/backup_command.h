// `defender-console backup <file>`: an online, consistent copy of the Console's database, with
// progress on the log; `defender-console restore <file>`: the copy put back while no Console
// runs (common/sqlite_backup.h, docs/operations.md).
#pragma once

#include "main/config.h"

namespace dc {

/// Copies `config.databasePath()` to `config.backupFile` while a Console may be running on it,
/// logging progress (at most once a second) and a summary line. Returns the process exit code:
/// 0 when the copy is written and passed its integrity check, 1 otherwise (the reason is logged
/// as an error; no file is left at `backupFile` or `<backupFile>.tmp`).
int runBackupCommand(const ConsoleConfig& config);

/// Puts `config.backupFile` in place of `config.databasePath()`; refused while a process (a
/// Console) has the database open. Returns the exit code: 0 when restored, 1 otherwise (the
/// reason is logged as an error and the current database is untouched).
int runRestoreCommand(const ConsoleConfig& config);

}  // namespace dc
