// RFC 3339 timestamps, always UTC with a trailing `Z` (DESIGN §4). Independent of TZ.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "common/clock.h"

namespace dc {

/// Formats `t` as RFC 3339 UTC with millisecond precision: "2026-11-29T19:35:41.123Z".
std::string formatRfc3339(TimePoint t);

/// Parses an RFC 3339 timestamp ("2026-11-29T19:35:41Z", optional fraction, `Z` or `±hh:mm`
/// offset) into UTC. Returns nullopt when the text is not RFC 3339, the date is invalid, second 60
/// is not at 23:59, or the instant falls outside the years 0000–9999 once the offset applies.
std::optional<TimePoint> parseRfc3339(std::string_view text);

}  // namespace dc
