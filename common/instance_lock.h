// One Console per database: an exclusive advisory lock (flock) on `<database>.lock`, held for the
// process's lifetime. Two Consoles on one SQLite file would each keep their own in-memory
// liveness table and each run the eviction sweep, so the second is refused before it reads or
// writes anything. The kernel releases the lock when the holder exits, however it exits
// (SIGKILL included), so a crash never leaves a stale lock behind.
#pragma once

#include <string>

#include "common/status.h"

namespace dc {

class InstanceLock {
 public:
  /// Takes the lock on `path` (created 0600 if missing) without waiting and writes this
  /// process's id into it. Errors: "already_running" (kConflict) naming the holder's process id
  /// when another process holds it; "lock_file" (kUnavailable) when the file cannot be opened.
  static Result<InstanceLock> acquire(const std::string& path);

  InstanceLock(InstanceLock&& other) noexcept;
  InstanceLock& operator=(InstanceLock&& other) noexcept;
  InstanceLock(const InstanceLock&) = delete;
  InstanceLock& operator=(const InstanceLock&) = delete;
  ~InstanceLock();

 private:
  explicit InstanceLock(int fd) : fd_(fd) {}
  int fd_ = -1;
};

}  // namespace dc
