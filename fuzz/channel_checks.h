// Properties shared by the defender-channel fuzz targets (heartbeat, observations).
#pragma once

#include <set>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "common/time_format.h"
#include "fuzz/fuzz_check.h"
#include "heartbeat/channel.h"

namespace dc::fuzz {

/// Nesting depth of a JSON value: scalars 0, `[]` and `{}` 1.
inline int jsonDepth(const nlohmann::json& j) {
  if (!j.is_structured()) return 0;
  int deepest = 0;
  for (const auto& v : j) deepest = std::max(deepest, jsonDepth(v));
  return deepest + 1;
}

/// A hostname the channel accepted: 1..limit bytes of letters, digits, '.', '-', '_'
/// (docs/defender-channel.md).
inline void checkHostname(const std::string& h, const heartbeat::ChannelLimits& limits) {
  DC_FUZZ_CHECK(!h.empty());
  DC_FUZZ_CHECK(h.size() <= limits.maxHostnameLength);
  for (unsigned char c : h)
    DC_FUZZ_CHECK((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '-' || c == '_');
}

/// parseJsonObject: an accepted body is an object within the nesting limit that survives
/// dump → parse unchanged; a refused body carries one of the documented codes.
inline std::optional<nlohmann::json> parseBody(std::string_view body,
                                               const heartbeat::ChannelLimits& limits) {
  auto parsed = heartbeat::parseJsonObject(body, limits.maxJsonDepth);
  if (!parsed.ok()) {
    static const std::set<std::string> kCodes = {"invalid_json", "too_deep", "invalid_body",
                                                 "invalid_text"};
    DC_FUZZ_CHECK(kCodes.count(parsed.error().code) == 1);
    DC_FUZZ_CHECK(!parsed.error().message.empty());
    return std::nullopt;
  }
  DC_FUZZ_CHECK(parsed->is_object());
  // The parser counts depth from 1 at the top-level object (nlohmann's callback depth + 1).
  DC_FUZZ_CHECK(jsonDepth(*parsed) <= limits.maxJsonDepth + 1);
  auto again = heartbeat::parseJsonObject(parsed->dump(), limits.maxJsonDepth);
  DC_FUZZ_CHECK(again.ok());
  DC_FUZZ_CHECK(*again == *parsed);
  return std::move(parsed).value();
}

/// An RFC 3339 text the Console accepted formats back to text that parses to the same instant.
inline void checkTimeRoundTrip(TimePoint t) {
  const std::string text = formatRfc3339(t);
  DC_FUZZ_CHECK(text.size() == 24 && text.back() == 'Z');
  auto back = parseRfc3339(text);
  DC_FUZZ_CHECK(back.has_value());
  DC_FUZZ_CHECK(*back == t);
}

/// Every refusal of a channel parser is a client error with a code, a field and a message.
inline void checkRefusal(const Error& e) {
  DC_FUZZ_CHECK(e.kind == ErrorKind::kInvalidArgument);
  DC_FUZZ_CHECK(!e.code.empty());
  DC_FUZZ_CHECK(!e.field.empty());
  DC_FUZZ_CHECK(!e.message.empty());
}

}  // namespace dc::fuzz
