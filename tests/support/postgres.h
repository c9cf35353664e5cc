// PostgreSQL in tests: each test case gets a schema of its own on the server that
// scripts/with-postgres.sh started (DC_TEST_POSTGRES_URL), so cases never see each other's rows.
#pragma once

#include <unistd.h>
#include <catch2/catch.hpp>

#include <atomic>
#include <cstdlib>
#include <string>

#include "common/pg.h"

namespace dc::testing {

/// The server's URL. Fails the test (never skips it) when DC_TEST_POSTGRES_URL is not set: the
/// PostgreSQL cases run under `scripts/with-postgres.sh -- <test binary> [postgres]`.
inline std::string postgresUrl() {
  const char* url = std::getenv("DC_TEST_POSTGRES_URL");
  if (!url || !*url)
    FAIL("DC_TEST_POSTGRES_URL is not set: run this case under scripts/with-postgres.sh");
  return url;
}

/// Creates a new empty schema and returns a URL whose connections use it first (search_path):
/// unqualified table names in the stores then land in it. Names are unique per process and call.
inline std::string freshPostgresSchema() {
  static std::atomic<int> counter{0};
  const std::string base = postgresUrl();
  std::string schema = "case_";
  schema += std::to_string(::getpid());
  schema += '_';
  schema += std::to_string(++counter);
  auto admin = pg::Connection::open(base);
  if (!admin.ok()) FAIL("cannot reach the test server: " << admin.error().message);
  // An identifier built from digits and a fixed prefix only.
  auto created = (*admin)->exec("CREATE SCHEMA " + schema);
  if (!created.ok()) FAIL("CREATE SCHEMA failed: " << created.error().message);
  std::string url = base;
  url += base.find('?') == std::string::npos ? '?' : '&';
  url += "options=-c%20search_path%3D";
  url += schema;
  return url;
}

}  // namespace dc::testing
