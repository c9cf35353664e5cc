// Shared helpers of the embed tests: deterministic UUIDs and the corpus location.
#pragma once

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include "embed/handler.h"

namespace dc::embed::test {

/// "00000000-0000-4000-8000-000000000001", "...002", ... — deterministic App ID UUIDs.
inline UuidGenerator sequentialUuids() {
  auto n = std::make_shared<int>(0);
  return [n] {
    char buf[64];
    std::snprintf(buf, sizeof buf, "00000000-0000-4000-8000-%012d", ++*n);
    return std::string(buf);
  };
}

inline std::string readFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

inline bool fileExists(const std::string& path) {
  return std::ifstream(path).good();
}

}  // namespace dc::embed::test
