#include "common/thread_priority.h"

#include <sys/resource.h>
#include <unistd.h>

namespace dc {

bool setThisThreadNice(int nice) {
  if (nice <= 0) return true;
  return ::setpriority(PRIO_PROCESS, static_cast<id_t>(::gettid()), nice) == 0;
}

}  // namespace dc
