// Defender versions in the vendor's `MM.mm.bbb` form (e.g. "34.01.132"): the version the
// Console deploys (`--defender-version`), its sidecar image tag (`defender_34_01_132`) and the
// comparison that marks a Defender outdated (docs/api.md, "Defender versions").
#pragma once

#include <compare>
#include <optional>
#include <string>
#include <string_view>

namespace dc {

struct DefenderVersion {
  int major = 0;  // vendor release, e.g. 34
  int minor = 0;  // e.g. 1 in 34.01
  int build = 0;  // e.g. 132
  auto operator<=>(const DefenderVersion&) const = default;
};

/// The default of `--defender-version`: the vendor release this Console's embed flow and
/// Defender channel follow.
inline constexpr std::string_view kDefaultDefenderVersion = "34.01.132";

/// Strict form, for the configured version: exactly `DD.DD.DDD` (two, two and three decimal
/// digits), as the vendor writes its releases. nullopt otherwise.
std::optional<DefenderVersion> parseDeployedVersion(std::string_view text);

/// Lenient form, for what a Defender reports (free text): three dot-separated groups of 1..6
/// decimal digits, nothing else (no prefix, suffix or spaces). nullopt otherwise: such a
/// Defender is neither outdated nor compatible (docs/api.md).
std::optional<DefenderVersion> parseReportedVersion(std::string_view text);

/// "34.01.132": two-digit major and minor, three-digit build (wider values as they are).
std::string formatVersion(const DefenderVersion& v);

/// The sidecar image tag the vendor's automation reads the version from: "defender_34_01_132".
std::string defenderImageTag(const DefenderVersion& v);

/// One integer that orders like the version (stored beside each Defender for the `outdated`
/// filter): (major·10⁶ + minor)·10⁶ + build. Every parseable version fits in 63 bits.
long long versionKey(const DefenderVersion& v);

/// A Defender's judgement against the deployed version. `outdated`: its version parses and is
/// older. `compatibleVersion` (vendor field): its version parses, is not newer than the
/// deployed one and its major release is at most three behind (the vendor's support window:
/// since release 33.00 the Console accepts Defenders of the three previous major releases).
struct VersionJudgement {
  bool outdated = false;
  bool compatibleVersion = false;
};
VersionJudgement judgeVersion(std::string_view reported, const DefenderVersion& deployed);

}  // namespace dc
