#include "heartbeat/channel.h"

#include <random>

#include "appid/app_id.h"
#include "common/time_format.h"

namespace dc::heartbeat {

using inventory::DefenderType;
using nlohmann::json;

namespace {

struct TooDeep {};
struct HasNul {
  std::string what;
};

Error invalid(std::string code, const std::string& field, std::string message) {
  return Error::invalid(std::move(code), field, field + ": " + message);
}

bool isHostnameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '-' || c == '_';
}

/// Reads an optional string field into `out`; errors name the field.
Status optString(const json& body, const char* field, size_t maxLen, std::string& out) {
  auto it = body.find(field);
  if (it == body.end() || it->is_null()) return Status::success();
  if (!it->is_string()) return invalid("invalid_field", field, "must be a string");
  const auto& s = it->get_ref<const std::string&>();
  if (s.size() > maxLen)
    return invalid("field_too_large", field,
                   "is " + std::to_string(s.size()) + " bytes; at most " + std::to_string(maxLen));
  out = s;
  return Status::success();
}

Status optObject(const json& body, const char* field, size_t maxBytes, json& out) {
  auto it = body.find(field);
  if (it == body.end() || it->is_null()) {
    out = json::object();
    return Status::success();
  }
  if (!it->is_object()) return invalid("invalid_field", field, "must be an object");
  const size_t size = it->dump().size();
  if (size > maxBytes)
    return invalid("field_too_large", field,
                   "is " + std::to_string(size) + " bytes; at most " + std::to_string(maxBytes));
  out = *it;
  return Status::success();
}

Result<TimePoint> requireTime(const json& value, const std::string& field) {
  if (!value.is_string()) return invalid("invalid_field", field, "must be an RFC 3339 string");
  auto t = parseRfc3339(value.get_ref<const std::string&>());
  if (!t) return invalid("invalid_field", field, "must be RFC 3339, e.g. 2026-11-29T19:35:41Z");
  return *t;
}

Result<std::string> requireHostname(const json& body, const ChannelLimits& limits) {
  auto it = body.find("hostname");
  if (it == body.end() || it->is_null()) return invalid("missing_field", "hostname", "is required");
  if (!it->is_string()) return invalid("invalid_field", "hostname", "must be a string");
  const auto& h = it->get_ref<const std::string&>();
  if (h.empty()) return invalid("invalid_field", "hostname", "must not be empty");
  if (h.size() > limits.maxHostnameLength)
    return invalid("field_too_large", "hostname",
                   "is " + std::to_string(h.size()) + " characters; at most " +
                       std::to_string(limits.maxHostnameLength));
  for (char c : h)
    if (!isHostnameChar(c))
      return invalid("invalid_field", "hostname",
                     "may contain only letters, digits, '.', '-' and '_'");
  // A path segment of its own in /api/v1/defenders/{hostname}: clients resolve "." and "..".
  if (h == "." || h == "..") return invalid("invalid_field", "hostname", "must not be '.' or '..'");
  return h;
}

}  // namespace

Result<json> parseJsonObject(std::string_view body, int maxDepth) {
  json parsed;
  try {
    parsed = json::parse(
        body.begin(), body.end(),
        [maxDepth](int depth, json::parse_event_t event, json& value) {
          if (depth > maxDepth) throw TooDeep{};
          // U+0000 in a string or a key: PostgreSQL's text cannot hold it, and no field of the
          // product needs it.
          if ((event == json::parse_event_t::key || event == json::parse_event_t::value) &&
              value.is_string() &&
              value.get_ref<const std::string&>().find('\0') != std::string::npos)
            throw HasNul{event == json::parse_event_t::key ? "a key" : "a string"};
          return true;
        },
        /*allow_exceptions=*/true, /*ignore_comments=*/false);
  } catch (const HasNul& nul) {
    return Error::invalid(
        "invalid_text", "body",
        "body: " + nul.what + " contains the NUL character (\\u0000), which no field accepts");
  } catch (const TooDeep&) {
    return Error::invalid("too_deep", "body",
                          "JSON nesting exceeds " + std::to_string(maxDepth) + " levels");
  } catch (const json::parse_error& e) {
    return Error::invalid("invalid_json", "body",
                          "body is not valid JSON (at byte " + std::to_string(e.byte) + ")");
  } catch (const json::exception& e) {
    // e.g. out_of_range 406: a number literal too large for any JSON number type.
    return Error::invalid("invalid_json", "body",
                          std::string("body is not usable JSON: ") + e.what());
  }
  if (!parsed.is_object())
    return Error::invalid("invalid_body", "body", "body must be a JSON object");
  return parsed;
}

Result<HeartbeatReport> parseHeartbeat(const json& body, const ChannelLimits& limits) {
  HeartbeatReport r;
  auto& d = r.defender;
  auto host = requireHostname(body, limits);
  if (!host.ok()) return host.error();
  d.hostname = *host;

  auto type = body.find("type");
  if (type == body.end() || type->is_null()) return invalid("missing_field", "type", "is required");
  if (!type->is_string()) return invalid("invalid_field", "type", "must be a string");
  auto parsedType = inventory::parseType(type->get_ref<const std::string&>());
  if (!parsedType)
    return invalid("unknown_type", "type",
                   "'" + type->get<std::string>().substr(0, 64) +
                       "' is not a Defender type (e.g. fargate, appEmbedded, daemonset)");
  d.type = *parsedType;

  for (auto [field, out] : {std::pair{"version", &d.version}, std::pair{"cluster", &d.cluster},
                            std::pair{"container", &d.container}})
    if (auto st = optString(body, field, limits.maxStringLength, *out); !st.ok()) return st.error();

  std::string appId;
  if (auto st = optString(body, "appID", limits.maxStringLength, appId); !st.ok())
    return st.error();
  const bool needsAppId = d.type == DefenderType::kFargate || d.type == DefenderType::kAppEmbedded;
  if (appId.empty() && needsAppId)
    return invalid("missing_field", "appID",
                   "is required for App-Embedded Defenders (type " +
                       std::string(inventory::typeInfo(d.type).apiName) + ")");
  if (!appId.empty()) {
    auto parsed = appid::parse(appId, "appID");
    if (!parsed.ok()) return parsed.error();
  }
  d.appId = appId;

  json details = json::object();
  for (const char* field : {"cloudMetadata", "features", "status", "systemInfo"}) {
    json obj;
    if (auto st = optObject(body, field, limits.maxObjectBytes, obj); !st.ok()) return st.error();
    details[field] = std::move(obj);
  }
  // One rule for every optional field: null is the same as absent. cloudMetadata's members are
  // all optional, so null ones are dropped (they then read as "", like absent ones).
  auto& cloud = details["cloudMetadata"];
  for (auto it = cloud.begin(); it != cloud.end();) it = it->is_null() ? cloud.erase(it) : ++it;
  // The vendor's cloudMetadata members are strings (docs/api.md, Defender object): a number or
  // object there is refused, not stored as "". cloudMetadata.image feeds the profile filter and
  // cloudMetadata.resourceID pins a Fargate Defender's identity (docs/reliability.md).
  for (const char* key :
       {"provider", "accountID", "region", "resourceID", "awsExecutionEnv", "image", "name"})
    if (auto v = cloud.find(key); v != cloud.end() && !v->is_string())
      return invalid("invalid_field", std::string("cloudMetadata.") + key,
                     "must be a string or null");

  json collections = json::array();
  if (auto it = body.find("collections"); it != body.end() && !it->is_null()) {
    if (!it->is_array())
      return invalid("invalid_field", "collections", "must be an array of strings");
    if (it->size() > limits.maxCollections)
      return invalid("field_too_large", "collections",
                     "has " + std::to_string(it->size()) + " entries; at most " +
                         std::to_string(limits.maxCollections));
    for (size_t i = 0; i < it->size(); ++i) {
      const auto& c = (*it)[i];
      if (!c.is_string() || c.get_ref<const std::string&>().size() > limits.maxStringLength)
        return invalid(
            "invalid_field", "collections[" + std::to_string(i) + "]",
            "must be a string of at most " + std::to_string(limits.maxStringLength) + " bytes");
    }
    collections = *it;
  }
  details["collections"] = std::move(collections);

  std::string certExpiration;
  if (auto st = optString(body, "certificateExpiration", limits.maxStringLength, certExpiration);
      !st.ok())
    return st.error();
  if (!certExpiration.empty()) {
    auto t = requireTime(certExpiration, "certificateExpiration");
    if (!t.ok()) return t.error();
    certExpiration = formatRfc3339(*t);
  }
  details["certificateExpiration"] = certExpiration;
  d.details = std::move(details);

  if (auto it = body.find("time"); it != body.end() && !it->is_null()) {
    auto t = requireTime(*it, "time");
    if (!t.ok()) return t.error();
    r.defenderTime = *t;
  }
  return r;
}

Result<std::pair<std::string, std::vector<inventory::Observation>>> parseObservations(
    const json& body, const ChannelLimits& limits) {
  auto host = requireHostname(body, limits);
  if (!host.ok()) return host.error();
  auto list = body.find("observations");
  if (list == body.end() || list->is_null())
    return invalid("missing_field", "observations", "is required");
  if (!list->is_array()) return invalid("invalid_field", "observations", "must be an array");
  if (list->size() > limits.maxObservationsPerBatch)
    return invalid("field_too_large", "observations",
                   "has " + std::to_string(list->size()) + " entries; at most " +
                       std::to_string(limits.maxObservationsPerBatch) + " per batch");
  std::vector<inventory::Observation> out;
  out.reserve(list->size());
  for (size_t i = 0; i < list->size(); ++i) {
    const std::string at = "observations[" + std::to_string(i) + "]";
    const auto& o = (*list)[i];
    if (!o.is_object()) return invalid("invalid_field", at, "must be an object");
    inventory::Observation obs;
    auto kind = o.find("kind");
    if (kind == o.end() || !kind->is_string())
      return invalid("missing_field", at + ".kind",
                     "is required (process, network, dns, filesystem)");
    obs.kind = kind->get<std::string>();
    if (obs.kind != "process" && obs.kind != "network" && obs.kind != "dns" &&
        obs.kind != "filesystem")
      return invalid("invalid_field", at + ".kind",
                     "must be one of process, network, dns, filesystem");
    auto time = o.find("time");
    if (time == o.end()) return invalid("missing_field", at + ".time", "is required");
    auto t = requireTime(*time, at + ".time");
    if (!t.ok()) return t.error();
    obs.time = *t;
    auto fields = o.find("fields");
    if (fields != o.end() && !fields->is_null()) {
      if (!fields->is_object())
        return invalid("invalid_field", at + ".fields", "must be an object");
      const size_t size = fields->dump().size();
      if (size > limits.maxObservationFieldsBytes)
        return invalid("field_too_large", at + ".fields",
                       "is " + std::to_string(size) + " bytes; at most " +
                           std::to_string(limits.maxObservationFieldsBytes));
      obs.fields = *fields;
    }
    out.push_back(std::move(obs));
  }
  return std::pair{*host, std::move(out)};
}

int retryAfterSeconds(std::string_view hostname, const RetryAfterRange& range) {
  thread_local std::mt19937 rng{std::random_device{}()};
  const int span = std::max(0, range.maxSeconds - range.minSeconds);
  const int stable = span / 2, random = span - stable;
  // The stable part spreads a fleet refused at once; the random part spreads one Defender's
  // successive retries.
  const int own =
      stable > 0 ? static_cast<int>(std::hash<std::string>{}(inventory::hostnameKey(hostname)) %
                                    static_cast<size_t>(stable + 1))
                 : 0;
  const int extra = random > 0 ? std::uniform_int_distribution<int>(0, random)(rng) : 0;
  return range.minSeconds + own + extra;
}

DefenderChannel::DefenderChannel(inventory::Inventory& inventory, ChannelOptions options)
    : inventory_(inventory), options_(options) {}

double DefenderChannel::nextHeartbeatSeconds() const {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  std::uniform_real_distribution<double> u(1.0 - options_.jitter, 1.0);
  const double h = static_cast<double>(inventory_.liveness().heartbeatInterval.count()) / 1000.0;
  return std::round(h * u(rng) * 1000.0) / 1000.0;
}

Error DefenderChannel::withRetryAfter(Error e, std::string_view hostname) const {
  if (e.kind == ErrorKind::kRateLimited || e.kind == ErrorKind::kUnavailable)
    e.retryAfterSeconds = retryAfterSeconds(hostname, options_.retryAfter);
  return e;
}

namespace {

Error appIdMismatch(std::string_view scope, std::string_view what) {
  return Error{ErrorKind::kPermissionDenied, "app_id_mismatch",
               "appID: this Defender credential is scoped to App ID " + std::string(scope) +
                   " and cannot report " + std::string(what),
               "appID"};
}

}  // namespace

bool scopeAllows(std::string_view scope, std::string_view appId) {
  if (scope.empty() || scope == appId) return true;
  // An App ID issued for a CloudFormation intrinsic family ("{\"Ref\":…}:<uuid>") is reported
  // with the resolved family: the UUID, unique per issued App ID, decides.
  if (scope.front() != '{' && scope.front() != '[') return false;
  const auto s = scope.rfind(':');
  const auto a = appId.rfind(':');
  return s != std::string_view::npos && a != std::string_view::npos &&
         scope.substr(s + 1) == appId.substr(a + 1);
}

Status DefenderChannel::checkScope(const std::string& hostname, std::string_view scope) {
  if (scope.empty()) return Status::success();
  auto known = inventory_.appIdOf(hostname);
  if (known && !scopeAllows(scope, *known))
    return appIdMismatch(scope, "for Defender " + hostname + " of another App ID");
  return Status::success();
}

Result<json> DefenderChannel::heartbeat(std::string_view body, std::string_view scopeAppId) {
  auto parsed = parseJsonObject(body, options_.limits.maxJsonDepth);
  if (!parsed.ok()) return parsed.error();
  auto report = parseHeartbeat(*parsed, options_.limits);
  if (!report.ok()) return report.error();
  const std::string hostname = report->defender.hostname;
  if (!scopeAllows(scopeAppId, report->defender.appId))
    return appIdMismatch(scopeAppId, report->defender.appId.empty()
                                         ? std::string("a Defender without an App ID")
                                         : "as App ID " + report->defender.appId);
  if (auto st = checkScope(hostname, scopeAppId); !st.ok()) return st.error();
  // Checked again atomically with the write: two credentials racing for a new hostname cannot
  // both register it (the second finds it under the first one's App ID).
  auto mayUpdate = [scopeAppId](const std::string& storedAppId) {
    return scopeAllows(scopeAppId, storedAppId);
  };
  auto outcome = inventory_.recordHeartbeat(
      std::move(report->defender), report->defenderTime,
      scopeAppId.empty() ? std::function<bool(const std::string&)>() : mayUpdate);
  if (!outcome.ok()) return withRetryAfter(outcome.error(), hostname);
  return json{
      {"hostname", hostname},
      {"connected", true},
      {"registered", *outcome == inventory::HeartbeatOutcome::kRegistered},
      {"intervalSeconds",
       static_cast<double>(inventory_.liveness().heartbeatInterval.count()) / 1000.0},
      {"nextHeartbeatSeconds", nextHeartbeatSeconds()},
  };
}

namespace {

/// The optional top-level `resourceID` of a disconnect or observations body: the task ARN the
/// sender runs as, checked against the one the Defender registered with.
Result<std::string> optionalResourceId(const json& body, const ChannelLimits& limits) {
  auto it = body.find("resourceID");
  if (it == body.end() || it->is_null()) return std::string();
  if (!it->is_string()) return invalid("invalid_field", "resourceID", "must be a string");
  if (it->get_ref<const std::string&>().size() > limits.maxStringLength)
    return invalid("field_too_large", "resourceID",
                   "at most " + std::to_string(limits.maxStringLength) + " bytes");
  return it->get<std::string>();
}

}  // namespace

Result<json> DefenderChannel::disconnect(std::string_view body, std::string_view scopeAppId) {
  auto parsed = parseJsonObject(body, options_.limits.maxJsonDepth);
  if (!parsed.ok()) return parsed.error();
  auto host = requireHostname(*parsed, options_.limits);
  if (!host.ok()) return host.error();
  auto resource = optionalResourceId(*parsed, options_.limits);
  if (!resource.ok()) return resource.error();
  if (auto st = checkScope(*host, scopeAppId); !st.ok()) return st.error();
  auto d = inventory_.recordDisconnect(*host, *resource);
  if (!d.ok()) return withRetryAfter(d.error(), *host);
  return json{{"hostname", d->hostname},
              {"connected", false},
              {"disconnectedAt", formatRfc3339(d->gracefulDisconnectAt.value_or(TimePoint{}))}};
}

Result<json> DefenderChannel::observations(std::string_view body, std::string_view scopeAppId) {
  auto parsed = parseJsonObject(body, options_.limits.maxJsonDepth);
  if (!parsed.ok()) return parsed.error();
  auto batch = parseObservations(*parsed, options_.limits);
  if (!batch.ok()) return batch.error();
  auto resource = optionalResourceId(*parsed, options_.limits);
  if (!resource.ok()) return resource.error();
  if (auto st = checkScope(batch->first, scopeAppId); !st.ok()) return st.error();
  const size_t n = batch->second.size();
  if (auto st = inventory_.recordObservations(batch->first, std::move(batch->second), *resource);
      !st.ok())
    return withRetryAfter(st.error(), batch->first);
  return json{{"accepted", n}};
}

}  // namespace dc::heartbeat
