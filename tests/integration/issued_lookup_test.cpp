// The Defender list marks each row's `appIDIssued` from one App ID lookup for the whole page,
// not one per row (docs/api.md, GET /api/v1/defenders).
#include <catch2/catch.hpp>

#include <atomic>

#include <nlohmann/json.hpp>

#include "embed/handler.h"
#include "embed/store.h"
#include "inventory/inventory.h"
#include "inventory/sqlite_store.h"
#include "tests/support/numbered.h"
#include "web/routes.h"

using namespace dc;
using nlohmann::json;

namespace {

/// An in-memory EmbedStore that counts the App ID lookups.
class CountingStore final : public embed::EmbedStore {
 public:
  std::atomic<int> single{0};  // findIssuedByUuid calls
  std::atomic<int> batch{0};   // findIssuedByUuids calls

  Status recordIssued(const std::vector<embed::IssuedAppId>& ids) override {
    return inner_.recordIssued(ids);
  }
  Result<embed::Page<embed::IssuedAppId>> listIssued(std::string_view family, size_t offset,
                                                     size_t limit) override {
    return inner_.listIssued(family, offset, limit);
  }
  Result<std::optional<embed::IssuedAppId>> findIssuedByUuid(std::string_view uuid) override {
    ++single;
    return inner_.findIssuedByUuid(uuid);
  }
  Result<std::vector<embed::IssuedAppId>> findIssuedByUuids(
      const std::vector<std::string>& uuids) override {
    ++batch;
    return inner_.findIssuedByUuids(uuids);
  }
  Status putImage(const embed::ImageEntrypoint& e) override { return inner_.putImage(e); }
  Result<std::optional<embed::ImageEntrypoint>> findImage(std::string_view image) override {
    return inner_.findImage(image);
  }
  Result<bool> deleteImage(std::string_view image) override { return inner_.deleteImage(image); }
  Result<embed::Page<embed::ImageEntrypoint>> listImages(std::string_view prefix, size_t offset,
                                                         size_t limit) override {
    return inner_.listImages(prefix, offset, limit);
  }

 private:
  embed::MemoryEmbedStore inner_;
};

/// "00000000-0000-4000-8000-0000000000NN".
std::string uuidOf(int i) {
  std::string digits = std::to_string(i);
  std::string uuid = "00000000-0000-4000-8000-";
  uuid.append(12 - digits.size(), '0');
  uuid += digits;
  return uuid;
}

}  // namespace

TEST_CASE("a page of the Defender list looks its App IDs up once") {
  ManualClock clock{TimePoint(Millis(1'800'000'000'000))};
  auto store = std::move(inventory::openSqliteStore({":memory:"})).value();
  inventory::Inventory inv(*store, clock, {});
  REQUIRE(inv.start().ok());
  CountingStore embedStore;
  embed::EmbedService service(embedStore, clock, embed::EmbedConfig{});

  // 40 Defenders: even ones carry an App ID this Console issued, odd ones an unknown App ID,
  // every tenth none at all.
  constexpr int kRows = 40;
  std::vector<embed::IssuedAppId> issued;
  for (int i = 0; i < kRows; ++i) {
    inventory::Defender d;
    d.hostname = testing::numbered("host-", i);
    d.type = inventory::DefenderType::kFargate;
    d.version = "32.07.123";
    d.details = {{"cloudMetadata", json::object()}};
    if (i % 10 != 9) {
      d.appId = "fam:";
      d.appId += uuidOf(i);
    }
    if (i % 2 == 0 && !d.appId.empty())
      issued.push_back({d.appId, uuidOf(i), "fam", false, "native-json", "", clock.now()});
    REQUIRE(inv.recordHeartbeat(d).ok());
  }
  REQUIRE(embedStore.recordIssued(issued).ok());

  web::ConsoleApiOptions api;
  api.version = "test";
  api.embed = &service;
  auto router = web::consoleApiRouter(inv, api);

  auto get = [&](const std::string& path, web::Params params) {
    web::Request req;
    req.method = "GET";
    req.path = path;
    req.params = std::move(params);
    req.remote_addr = "127.0.0.1";
    web::Response res;
    router->handle(req, res);
    return res;
  };

  for (const char* paging : {"offset", "cursor"}) {
    INFO(paging);
    embedStore.single = 0;
    embedStore.batch = 0;
    web::Params params{{"limit", "25"}, {"sort", "hostname"}};
    if (std::string(paging) == "cursor") params.emplace("cursor", "start");
    const auto res = get("/api/v1/defenders", params);
    REQUIRE(res.status == 200);
    const json rows = json::parse(res.body);
    REQUIRE(rows.size() == 25);
    CHECK(embedStore.batch == 1);
    CHECK(embedStore.single == 0);
    for (const auto& row : rows) {
      const std::string host = row.at("hostname");
      const int i = std::stoi(host.substr(host.rfind('-') + 1));
      INFO(host);
      CHECK(row.at("appIDIssued") == (i % 2 == 0 && i % 10 != 9));
    }
  }

  // One Defender: one lookup as well.
  embedStore.batch = 0;
  std::string path = "/api/v1/defenders/";
  path += testing::numbered("host-", 4);
  const auto one = get(path, {});
  REQUIRE(one.status == 200);
  CHECK(json::parse(one.body).at("appIDIssued") == true);
  CHECK(embedStore.batch == 1);
  CHECK(embedStore.single == 0);
  inv.stop();
}
