// Fuzz target: an observations batch as the defender channel receives it
// (parseJsonObject → parseObservations, docs/defender-channel.md).
//
// Properties beyond "no crash": an accepted batch has a valid hostname, at most the per-batch
// limit of observations, each of a documented kind with an instant that formats back to itself
// and `fields` an object within its size limit; the batch keeps the order and count of the body.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fuzz/channel_checks.h"

using namespace dc;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const heartbeat::ChannelLimits limits;
  auto body = fuzz::parseBody(std::string_view(reinterpret_cast<const char*>(data), size), limits);
  if (!body) return 0;
  auto batch = heartbeat::parseObservations(*body, limits);
  if (!batch.ok()) {
    fuzz::checkRefusal(batch.error());
    return 0;
  }
  const auto& [hostname, observations] = *batch;
  fuzz::checkHostname(hostname, limits);
  DC_FUZZ_CHECK(observations.size() <= limits.maxObservationsPerBatch);
  DC_FUZZ_CHECK(observations.size() == body->at("observations").size());
  for (size_t i = 0; i < observations.size(); ++i) {
    const auto& o = observations[i];
    DC_FUZZ_CHECK(o.kind == "process" || o.kind == "network" || o.kind == "dns" ||
                  o.kind == "filesystem");
    DC_FUZZ_CHECK(o.kind == body->at("observations")[i].at("kind").get<std::string>());
    fuzz::checkTimeRoundTrip(o.time);
    DC_FUZZ_CHECK(o.fields.is_object());
    DC_FUZZ_CHECK(o.fields.dump().size() <= limits.maxObservationFieldsBytes);
  }
  return 0;
}
