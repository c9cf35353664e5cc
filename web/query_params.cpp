#include "web/query_params.h"

#include <algorithm>
#include <charconv>

#include "common/time_format.h"
#include "common/utf8.h"

namespace dc::web {

using inventory::DefenderQuery;

namespace {

Error badParam(const std::string& name, const std::string& message) {
  return Error::invalid("invalid_parameter", name, name + ": " + message);
}

const std::string* single(const Params& p, const std::string& name) {
  auto it = p.find(name);
  return it == p.end() ? nullptr : &it->second;
}

Result<int> intParam(const Params& p, const std::string& name, int def, int lo, int hi) {
  const auto* v = single(p, name);
  if (!v || v->empty()) return def;
  int out = 0;
  auto r = std::from_chars(v->data(), v->data() + v->size(), out);
  if (r.ec != std::errc() || r.ptr != v->data() + v->size())
    return badParam(name, "must be a whole number");
  if (out < lo || out > hi)
    return badParam(name, "must be between " + std::to_string(lo) + " and " + std::to_string(hi));
  return out;
}

// Filters of the vendor's `/api/v1/defenders` this Console does not implement (vendor API
// reference, "Get Deployed Defenders"): refused with their own message, since ignoring them
// would answer more Defenders than the client asked for.
constexpr std::string_view kUnsupportedVendorFilters[] = {"collections",
                                                          "provider",
                                                          "accountIDs",
                                                          "resourceIDs",
                                                          "region",
                                                          "role",
                                                          "latest",
                                                          "supportedVersion",
                                                          "tasClusterIDs",
                                                          "tasFoundations",
                                                          "tasBlobstoreScanner",
                                                          "usingOldVersion"};

}  // namespace

const std::initializer_list<std::string_view> kDefenderQueryParams = {
    "offset",  "limit", "sort",   "reverse", "hostname", "type",     "category",        "connected",
    "cluster", "appID", "family", "search",  "fields",   "outdated", "clusterContains", "version"};

Status requireKnownParams(const Params& params, std::initializer_list<std::string_view> known) {
  for (const auto& [name, value] : params) {
    if (name == "project" || std::find(known.begin(), known.end(), name) != known.end()) continue;
    const std::string shown = name.substr(0, 64);
    if (std::find(std::begin(kUnsupportedVendorFilters), std::end(kUnsupportedVendorFilters),
                  name) != std::end(kUnsupportedVendorFilters))
      return badParam(shown, "this filter of the vendor API is not supported by this Console");
    std::string list;
    for (auto k : known) {
      if (!list.empty()) list += ", ";
      list += k;
    }
    return badParam(shown,
                    "unknown parameter" + (list.empty() ? std::string("; this route takes none")
                                                        : "; this route takes " + list));
  }
  return Status::success();
}

std::optional<std::string> rawParam(const Params& p, const std::string& name) {
  const auto* v = single(p, name);
  if (!v) return std::nullopt;
  return *v;
}

std::optional<std::string> textParam(const Params& p, const std::string& name) {
  const auto* v = single(p, name);
  if (!v || v->empty()) return std::nullopt;
  return *v;
}

std::vector<std::string> paramValues(const Params& p, const std::string& name) {
  std::vector<std::string> out;
  for (auto [it, end] = p.equal_range(name); it != end; ++it) out.push_back(it->second);
  return out;
}

Result<std::optional<bool>> parseBoolParam(const Params& p, const std::string& name) {
  const auto* v = single(p, name);
  if (!v || v->empty()) return std::optional<bool>();
  if (*v == "true" || *v == "1") return std::optional<bool>(true);
  if (*v == "false" || *v == "0") return std::optional<bool>(false);
  return badParam(name, "must be true or false");
}

Result<std::pair<int, int>> parsePaging(const Params& params) {
  auto offset = intParam(params, "offset", 0, 0, 100'000'000);
  if (!offset.ok()) return offset.error();
  auto limit = intParam(params, "limit", inventory::kDefaultLimit, 1, inventory::kMaxLimit);
  if (!limit.ok()) return limit.error();
  return std::pair{*offset, *limit};
}

Result<audit::EventQuery> parseAuditEventQuery(const Params& params, bool download) {
  if (auto known =
          requireKnownParams(params, {"kind", "user", "since", "until", "offset", "limit"});
      !known.ok())
    return known.error();
  audit::EventQuery q;
  if (download) {
    auto offset = intParam(params, "offset", 0, 0, 100'000'000);
    if (!offset.ok()) return offset.error();
    auto limit = intParam(params, "limit", 0, 1, 100'000);
    if (!limit.ok()) return limit.error();
    q.offset = *offset;
    q.limit = *limit;  // 0 (absent): every match
  } else {
    auto paging = parsePaging(params);
    if (!paging.ok()) return paging.error();
    q.offset = paging->first;
    q.limit = paging->second;
  }
  if (auto kind = textParam(params, "kind")) {
    if (!audit::isEventKind(*kind)) {
      // Appended piece by piece: GCC 12 at -O2 reports a false -Wrestrict for `"'" + s`.
      std::string message = "'";
      message += kind->substr(0, 64);
      message += "' is not an audit event kind (";
      for (auto k : audit::eventKinds()) {
        if (message.back() != '(') message += ", ";
        message += k;
      }
      message += ')';
      return badParam("kind", message);
    }
    q.kind = *kind;
  }
  if (auto user = textParam(params, "user")) {
    if (user->size() > 256 || !isValidUtf8(*user))
      return badParam("user", "at most 256 bytes of UTF-8");
    q.user = *user;
  }
  for (auto [name, target] : {std::pair<const char*, std::optional<TimePoint>*>{"since", &q.since},
                              {"until", &q.until}}) {
    auto text = textParam(params, name);
    if (!text) continue;
    auto t = parseRfc3339(*text);
    if (!t) return badParam(name, "must be an RFC 3339 time, e.g. 2026-12-07T13:00:00Z");
    *target = *t;
  }
  return q;
}

Result<DefenderQuery> parseDefenderQuery(const Params& params) {
  if (auto known = requireKnownParams(params, kDefenderQueryParams); !known.ok())
    return known.error();
  DefenderQuery q;
  auto paging = parsePaging(params);
  if (!paging.ok()) return paging.error();
  q.offset = paging->first;
  q.limit = paging->second;
  if (auto s = textParam(params, "sort")) {
    auto key = inventory::parseSortKey(*s);
    if (!key)
      return badParam("sort",
                      "unknown sort key; use hostname, type, category, version, cluster, appID, "
                      "lastModified, connected or lastSeen");
    q.sort = *key;
  }
  auto reverse = parseBoolParam(params, "reverse");
  if (!reverse.ok()) return reverse.error();
  q.reverse = reverse->value_or(false);
  auto connected = parseBoolParam(params, "connected");
  if (!connected.ok()) return connected.error();
  q.connected = *connected;
  auto outdated = parseBoolParam(params, "outdated");
  if (!outdated.ok()) return outdated.error();
  q.outdated = *outdated;

  auto range = params.equal_range("type");
  for (auto it = range.first; it != range.second; ++it) {
    std::string_view rest = it->second;
    while (!rest.empty()) {
      const auto comma = rest.find(',');
      const auto name = rest.substr(0, comma);
      rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
      if (name.empty()) continue;
      auto type = inventory::parseType(name);
      if (!type)
        return Error::invalid("unknown_type", "type",
                              "type: '" + std::string(name.substr(0, 64)) +
                                  "' is not a Defender type (e.g. fargate, appEmbedded)");
      q.types.push_back(*type);
    }
  }
  if (auto c = textParam(params, "category")) {
    auto cat = inventory::parseCategory(*c);
    if (!cat) return badParam("category", "must be container, host, serverless or appEmbedded");
    q.category = *cat;
  }
  q.hostname = textParam(params, "hostname");
  q.cluster = textParam(params, "cluster");
  q.clusterContains = textParam(params, "clusterContains");
  q.appId = textParam(params, "appID");
  q.family = textParam(params, "family");
  q.search = textParam(params, "search");
  q.version = textParam(params, "version");
  // Control characters match nothing real and a NUL would end SQLite's LIKE pattern early;
  // bytes that are not UTF-8 match nothing either (stored text is UTF-8 JSON).
  for (auto [name, value] :
       {std::pair{"hostname", &q.hostname}, std::pair{"cluster", &q.cluster},
        std::pair{"appID", &q.appId}, std::pair{"family", &q.family},
        std::pair{"search", &q.search}, std::pair{"clusterContains", &q.clusterContains},
        std::pair{"version", &q.version}}) {
    if (!*value) continue;
    for (unsigned char c : **value)
      if (c < 0x20 || c == 0x7f) return badParam(name, "must not contain control characters");
    if (!isValidUtf8(**value)) return badParam(name, "must be UTF-8 text (percent-encoded bytes)");
  }
  return q;
}

}  // namespace dc::web
