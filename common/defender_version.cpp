#include "common/defender_version.h"

#include <charconv>
#include <cstdio>

namespace dc {

namespace {

// Parses three dot-separated digit groups whose widths lie in [minWidth[i], maxWidth[i]].
std::optional<DefenderVersion> parseGroups(std::string_view text, const int (&minWidth)[3],
                                           const int (&maxWidth)[3]) {
  int parts[3] = {0, 0, 0};
  for (int i = 0; i < 3; ++i) {
    const auto dot = i < 2 ? text.find('.') : std::string_view::npos;
    if (i < 2 && dot == std::string_view::npos) return std::nullopt;
    const std::string_view group = text.substr(0, dot);
    const int width = static_cast<int>(group.size());
    if (width < minWidth[i] || width > maxWidth[i]) return std::nullopt;
    for (char c : group)
      if (c < '0' || c > '9') return std::nullopt;
    std::from_chars(group.data(), group.data() + group.size(), parts[i]);
    text = i < 2 ? text.substr(dot + 1) : std::string_view();
  }
  return DefenderVersion{parts[0], parts[1], parts[2]};
}

}  // namespace

std::optional<DefenderVersion> parseDeployedVersion(std::string_view text) {
  return parseGroups(text, {2, 2, 3}, {2, 2, 3});
}

std::optional<DefenderVersion> parseReportedVersion(std::string_view text) {
  return parseGroups(text, {1, 1, 1}, {6, 6, 6});
}

std::string formatVersion(const DefenderVersion& v) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%02d.%02d.%03d", v.major, v.minor, v.build);
  return buf;
}

std::string defenderImageTag(const DefenderVersion& v) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "defender_%02d_%02d_%03d", v.major, v.minor, v.build);
  return buf;
}

long long versionKey(const DefenderVersion& v) {
  return (static_cast<long long>(v.major) * 1'000'000 + v.minor) * 1'000'000 + v.build;
}

VersionJudgement judgeVersion(std::string_view reported, const DefenderVersion& deployed) {
  const auto v = parseReportedVersion(reported);
  if (!v) return {};
  return {.outdated = *v < deployed,
          .compatibleVersion = *v <= deployed && v->major >= deployed.major - 3};
}

}  // namespace dc
