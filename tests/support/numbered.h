// Names with a number, e.g. numbered("task-", 7) == "task-7", for tests that make many Defenders.
// Written as an append: `"task-" + std::to_string(i)` makes GCC 12 report a false
// -Werror=restrict once inlined at -O2 (Release builds), which would stop a Release build.
#pragma once

#include <string>
#include <string_view>

namespace dc::testing {

inline std::string numbered(std::string_view prefix, long long n) {
  std::string out(prefix);
  out += std::to_string(n);
  return out;
}

}  // namespace dc::testing
