#include <catch2/catch.hpp>

#include <set>

#include "appid/app_id.h"

using namespace dc;

TEST_CASE("generated App IDs are <family>:<uuid v4>") {
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    auto id = appid::generate("webserver");
    REQUIRE(id.ok());
    CHECK(id->family == "webserver");
    CHECK(appid::isCanonicalUuid(id->uuid));
    CHECK(id->uuid[14] == '4');                                          // version nibble
    CHECK(std::string("89ab").find(id->uuid[19]) != std::string::npos);  // RFC 4122 variant
    auto parsed = appid::parse(id->str());
    REQUIRE(parsed.ok());
    CHECK(*parsed == *id);
    seen.insert(id->str());
  }
  CHECK(seen.size() == 1000);
}

TEST_CASE("family follows the ECS rules") {
  CHECK(appid::validateFamily("a").ok());
  CHECK(appid::validateFamily("TASK-NAME_2").ok());
  CHECK(appid::validateFamily(std::string(255, 'x')).ok());
  CHECK_FALSE(appid::validateFamily(std::string(256, 'x')).ok());
  CHECK_FALSE(appid::validateFamily("").ok());
  CHECK_FALSE(appid::validateFamily("web server").ok());
  CHECK_FALSE(appid::validateFamily("web:server").ok());
  CHECK_FALSE(appid::validateFamily("caf\xc3\xa9").ok());
  auto st = appid::validateFamily("a.b", "Family");
  REQUIRE_FALSE(st.ok());
  CHECK(st.error().code == "invalid_family");
  CHECK(st.error().field == "Family");
  CHECK(st.error().message.find("Family") != std::string::npos);
  CHECK_FALSE(appid::generate("bad family").ok());
}

TEST_CASE("App ID parsing rejects malformed text and names the field") {
  for (const char* bad : {"", "webserver", "webserver:", ":0b7e6c4e-3f4b-4b7b-9d3c-1a2b3c4d5e6f",
                          "webserver:not-a-uuid", "web server:0b7e6c4e-3f4b-4b7b-9d3c-1a2b3c4d5e6f",
                          "webserver:0b7e6c4e3f4b4b7b9d3c1a2b3c4d5e6f",
                          "webserver:0b7e6c4e-3f4b-4b7b-9d3c-1a2b3c4d5e6fx",
                          "webserver:0b7e6c4e-3f4b-4b7b-9d3c-1a2b3c4d5e6g"}) {
    INFO(bad);
    auto r = appid::parse(bad);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == "invalid_app_id");
    CHECK(r.error().field == "appID");
  }
  auto ok = appid::parse("TASK-NAME:0B7E6C4E-3F4B-4B7B-9D3C-1A2B3C4D5E6F");
  REQUIRE(ok.ok());
  CHECK(ok->family == "TASK-NAME");
}
