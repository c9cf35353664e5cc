// Fuzz target: a heartbeat body as the defender channel receives it
// (parseJsonObject → parseHeartbeat, docs/defender-channel.md).
//
// Properties beyond "no crash": accepted bodies re-parse unchanged and respect the nesting
// limit; an accepted heartbeat has a valid hostname, a known type, an App ID when the type needs
// one (and it parses), strings and objects within the documented limits, every details field
// present, and timestamps that format back to the same instant; refusals are 4xx with a code.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "appid/app_id.h"
#include "fuzz/channel_checks.h"

using namespace dc;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const heartbeat::ChannelLimits limits;
  auto body = fuzz::parseBody(std::string_view(reinterpret_cast<const char*>(data), size), limits);
  if (!body) return 0;
  auto report = heartbeat::parseHeartbeat(*body, limits);
  if (!report.ok()) {
    fuzz::checkRefusal(report.error());
    return 0;
  }
  const auto& d = report->defender;
  fuzz::checkHostname(d.hostname, limits);
  DC_FUZZ_CHECK(d.hostname == body->at("hostname").get<std::string>());
  DC_FUZZ_CHECK(d.type != inventory::DefenderType::kNone);
  DC_FUZZ_CHECK(inventory::parseType(inventory::typeInfo(d.type).apiName) == d.type);
  for (const auto* s : {&d.version, &d.cluster, &d.container, &d.appId})
    DC_FUZZ_CHECK(s->size() <= limits.maxStringLength);
  if (d.type == inventory::DefenderType::kFargate ||
      d.type == inventory::DefenderType::kAppEmbedded)
    DC_FUZZ_CHECK(!d.appId.empty());
  if (!d.appId.empty()) DC_FUZZ_CHECK(appid::parse(d.appId).ok());

  DC_FUZZ_CHECK(d.details.is_object());
  for (const char* field : {"cloudMetadata", "features", "status", "systemInfo"}) {
    DC_FUZZ_CHECK(d.details.contains(field));
    DC_FUZZ_CHECK(d.details[field].is_object());
    DC_FUZZ_CHECK(d.details[field].dump().size() <= limits.maxObjectBytes);
  }
  DC_FUZZ_CHECK(d.details["collections"].is_array());
  DC_FUZZ_CHECK(d.details["collections"].size() <= limits.maxCollections);
  for (const auto& c : d.details["collections"]) DC_FUZZ_CHECK(c.is_string());
  const auto& cert = d.details["certificateExpiration"];
  DC_FUZZ_CHECK(cert.is_string());
  if (!cert.get<std::string>().empty()) {
    auto t = parseRfc3339(cert.get<std::string>());
    DC_FUZZ_CHECK(t.has_value());
    fuzz::checkTimeRoundTrip(*t);
  }
  if (report->defenderTime) fuzz::checkTimeRoundTrip(*report->defenderTime);
  return 0;
}
