#include "web/render.h"

#include "common/time_format.h"

namespace dc::web {

using nlohmann::json;

namespace {

json optTime(const std::optional<TimePoint>& t) {
  return t ? json(formatRfc3339(*t)) : json(nullptr);
}

json objectOr(const json& details, const char* key) {
  auto it = details.find(key);
  return it != details.end() && it->is_object() ? *it : json::object();
}

std::string cloudField(const json& cm, const char* key) {
  auto it = cm.find(key);
  return it != cm.end() && it->is_string() ? it->get<std::string>() : std::string();
}

}  // namespace

json defenderJson(const inventory::Defender& d, const inventory::Liveness& l) {
  json cloud = objectOr(d.details, "cloudMetadata");
  for (const char* key :
       {"provider", "accountID", "region", "resourceID", "awsExecutionEnv", "image", "name"})
    if (!cloud.contains(key)) cloud[key] = "";
  auto collections = d.details.find("collections");
  auto cert = d.details.find("certificateExpiration");
  const auto& info = inventory::typeInfo(d.type);
  return json{
      {"hostname", d.hostname},
      {"type", info.apiName},
      {"typeLabel", info.label},
      {"category", inventory::categoryName(info.category)},
      {"version", d.version},
      {"connected", l.connected},
      {"lastModified", formatRfc3339(l.lastModified)},
      {"cluster", d.cluster},
      {"collections",
       collections != d.details.end() && collections->is_array() ? *collections : json::array()},
      {"appID", d.appId},
      {"container", d.container},
      {"cloudMetadata", std::move(cloud)},
      {"features", objectOr(d.details, "features")},
      {"status", objectOr(d.details, "status")},
      {"systemInfo", objectOr(d.details, "systemInfo")},
      {"certificateExpiration", cert != d.details.end() && cert->is_string() ? *cert : json("")},
      {"registeredAt", formatRfc3339(d.registeredAt)},
      {"lastSeen", formatRfc3339(d.lastSeen)},
      {"disconnectedAt", optTime(l.disconnectedAt)},
      {"removalAt", optTime(l.removalAt)},
      {"clockSkewSeconds",
       d.clockSkewMs ? json(static_cast<double>(*d.clockSkewMs) / 1000.0) : json(nullptr)},
  };
}

json observationJson(const inventory::Observation& o) {
  return json{{"id", o.id},
              {"kind", o.kind},
              {"time", formatRfc3339(o.time)},
              {"receivedAt", formatRfc3339(o.receivedAt)},
              {"fields", o.fields}};
}

json auditJson(const inventory::AuditRecord& a) {
  return json{{"id", a.id},
              {"time", formatRfc3339(a.at)},
              {"actor", a.actor},
              {"reason", a.reason},
              {"hostname", a.hostname},
              {"appID", a.appId},
              {"type", inventory::typeInfo(a.type).apiName},
              {"lastSeen", formatRfc3339(a.lastSeen)},
              {"observationsRemoved", a.observationsRemoved}};
}

json removalDetail(const inventory::AuditRecord& a) {
  json j = auditJson(a);
  j.erase("id");
  j.erase("time");
  return j;
}

json auditEventJson(const audit::Event& e) {
  return json{{"id", e.id},     {"time", formatRfc3339(e.at)}, {"kind", e.kind},
              {"user", e.user}, {"address", e.address},        {"detail", e.detail}};
}

std::string auditEventCsvHeader() {
  return "id,time,kind,user,address,detail\r\n";
}

std::string auditEventCsvRow(const audit::Event& e) {
  std::string row;
  for (const std::string& v : {std::to_string(e.id), formatRfc3339(e.at), e.kind, e.user, e.address,
                               e.detail.dump(-1, ' ', false, json::error_handler_t::replace)}) {
    if (!row.empty()) row += ',';
    row += csvCell(v);
  }
  return row + "\r\n";
}

std::string csvCell(std::string_view value) {
  std::string v(value);
  if (!v.empty() &&
      (v[0] == '=' || v[0] == '+' || v[0] == '-' || v[0] == '@' || v[0] == '\t' || v[0] == '\r'))
    v.insert(v.begin(), '\'');
  if (v.find_first_of(",\"\r\n") == std::string::npos) return v;
  std::string out = "\"";
  for (char c : v) {
    if (c == '"') out += '"';
    out += c;
  }
  out += '"';
  return out;
}

std::string csvHeader() {
  return "hostname,type,category,version,connected,lastModified,lastSeen,disconnectedAt,"
         "removalAt,cluster,appID,container,provider,accountID,region,resourceID,image\r\n";
}

std::string csvRow(const inventory::Defender& d, const inventory::Liveness& l) {
  const json cm = objectOr(d.details, "cloudMetadata");
  const auto& info = inventory::typeInfo(d.type);
  std::string row;
  auto add = [&](std::string_view v) {
    if (!row.empty()) row += ',';
    row += csvCell(v);
  };
  add(d.hostname);
  add(info.apiName);
  add(inventory::categoryName(info.category));
  add(d.version);
  add(l.connected ? "true" : "false");
  add(formatRfc3339(l.lastModified));
  add(formatRfc3339(d.lastSeen));
  add(l.disconnectedAt ? formatRfc3339(*l.disconnectedAt) : "");
  add(l.removalAt ? formatRfc3339(*l.removalAt) : "");
  add(d.cluster);
  add(d.appId);
  add(d.container);
  for (const char* key : {"provider", "accountID", "region", "resourceID", "image"})
    add(cloudField(cm, key));
  row += "\r\n";
  return row;
}

}  // namespace dc::web
