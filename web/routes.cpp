#include "web/routes.h"

#include <httplib.h>

#include <charconv>
#include <fstream>
#include <sstream>
#include <unordered_set>

#include <spdlog/spdlog.h>

#include "appid/app_id.h"
#include "audit/log.h"
#include "auth/crypto.h"
#include "common/prometheus.h"
#include "common/time_format.h"
#include "embed/handler.h"
#include "heartbeat/channel.h"
#include "history/fleet_history.h"
#include "inventory/inventory.h"
#include "registry/credentials.h"
#include "views/saved_views.h"
#include "web/console_front.h"
#include "web/guard.h"
#include "web/http_errors.h"
#include "web/http_listener.h"
#include "web/query_params.h"
#include "web/render.h"

namespace dc::web {

using inventory::Inventory;
using nlohmann::json;

namespace {

std::string dumpJson(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

/// Records audit events for requests (docs/security.md "Audit log"). A failed write is logged
/// and does not fail the request: the change it describes is already made.
struct AuditTrail {
  audit::AuditLog* log = nullptr;

  void operator()(std::string_view kind, const std::string& user, const Request& req,
                  json detail) const {
    if (log == nullptr) return;
    if (auto st = log->record(kind, user, req.remote_addr, std::move(detail)); !st.ok())
      spdlog::error("audit event {} by '{}' not recorded: {}", kind, user, st.error().message);
  }
};

/// Records many events of one request in one transaction (a bulk delete: one per Defender).
void recordMany(const AuditTrail& trail, std::string_view kind, const std::string& user,
                const Request& req, std::vector<json> details) {
  if (trail.log == nullptr || details.empty()) return;
  std::vector<audit::Event> events;
  events.reserve(details.size());
  for (auto& d : details) {
    audit::Event e;
    e.kind = std::string(kind);
    e.user = user;
    e.address = req.remote_addr;
    e.detail = std::move(d);
    events.push_back(std::move(e));
  }
  if (auto st = trail.log->record(std::move(events)); !st.ok())
    spdlog::error("{} audit events {} by '{}' not recorded: {}", details.size(), kind, user,
                  st.error().message);
}

std::string actorOf(const auth::Principal& who) {
  return who.username.empty() ? "api" : who.username;
}

// Hostnames in paths may be URL-encoded; both fronts decode the path, so matches[1] is decoded.
std::string pathId(const Request& req) {
  return req.matches[1].str();
}

void sendPage(Response& res, const json& items, long long total) {
  res.set_header("Total-Count", std::to_string(total));
  sendJson(res, dumpJson(items));
}

Params paramsOf(const Request& req) {
  return Params(req.params.begin(), req.params.end());
}

/// One page of a cursor walk (docs/api.md "Cursor paging").
struct CursorPage {
  std::vector<inventory::Defender> rows;
  long long total = 0;  // Defenders in the snapshot
  std::string next;     // the Next-Cursor, empty on the last page
};

/// nullopt when the request has no `cursor` parameter (offset paging). `cursor=start` takes a
/// snapshot of the matching hostnames in `q`'s order; `<id>.<position>` continues one. Errors:
/// 400 invalid_parameter (field cursor) for a malformed cursor; cursor_expired (answered 410)
/// when the snapshot is gone; cursor_capacity (503) when it cannot be kept.
std::optional<Result<CursorPage>> cursorPage(Inventory& inv, inventory::SnapshotCache& cache,
                                             const Params& params,
                                             const inventory::DefenderQuery& q) {
  const auto cursorParam = rawParam(params, "cursor");
  if (!cursorParam) return std::nullopt;
  const std::string& cursor = *cursorParam;
  std::string id;
  size_t position = 0;
  std::shared_ptr<const inventory::KeySnapshot> snapshot;
  if (cursor == "start") {
    auto keys = inv.matchingKeys(q);
    if (!keys.ok()) return Result<CursorPage>(keys.error());
    snapshot = std::make_shared<inventory::KeySnapshot>(*keys);
    auto put = cache.put(snapshot);
    if (!put.ok()) return Result<CursorPage>(put.error());
    id = *put;
  } else {
    const auto dot = cursor.find('.');
    const char* digits = cursor.data() + std::min(dot + 1, cursor.size());
    const char* end = cursor.data() + cursor.size();
    auto parsed = std::from_chars(digits, end, position);
    if (dot != 16 || cursor.find_first_not_of("0123456789abcdef") != dot || digits == end ||
        parsed.ec != std::errc() || parsed.ptr != end)
      return Result<CursorPage>(Error::invalid(
          "invalid_parameter", "cursor",
          "cursor: must be 'start' or the Next-Cursor of the previous page, unchanged"));
    id = cursor.substr(0, dot);
    auto got = cache.get(id);
    if (!got.ok()) return Result<CursorPage>(got.error());
    snapshot = std::move(*got);
    if (position > snapshot->size())  // only a forged cursor points past its snapshot
      return Result<CursorPage>(Error::invalid(
          "invalid_parameter", "cursor",
          "cursor: must be 'start' or the Next-Cursor of the previous page, unchanged"));
  }
  CursorPage page;
  page.total = static_cast<long long>(snapshot->size());
  auto rows = inv.findMany(snapshot->slice(position, static_cast<size_t>(q.limit)));
  if (!rows.ok()) return Result<CursorPage>(rows.error());
  page.rows = std::move(*rows);
  const size_t next = position + static_cast<size_t>(q.limit);
  if (next < snapshot->size()) page.next = id + "." + std::to_string(next);
  return Result<CursorPage>(std::move(page));
}

/// The parameters without `cursor`, which only the list and names routes take (cursorPage).
Params withoutCursor(Params params) {
  params.erase("cursor");
  return params;
}

/// cursor_expired is 410 Gone: the client restarts with cursor=start.
void sendCursorError(Response& res, const Error& e) {
  if (e.code == "cursor_expired") return sendError(res, e, 410);
  sendError(res, e);
}

std::string prometheusText(const inventory::InventoryMetrics& m,
                           const std::vector<inventory::CategorySummary>& summary) {
  prometheus::Writer out;
  out.counter("dc_heartbeats_total", "Heartbeats accepted on the defender channel.", m.heartbeats);
  out.counter("dc_registrations_total", "Heartbeats that registered a Defender anew.",
              m.registrations);
  out.counter("dc_reconnections_total", "Heartbeats that reconnected a disconnected Defender.",
              m.reconnections);
  out.counter("dc_graceful_disconnects_total", "Graceful disconnects.", m.gracefulDisconnects);
  out.counter("dc_observations_total", "Observations accepted and stored.", m.observationsAccepted);
  out.counter("dc_flushes_total", "Write-behind flushes committed.", m.flushes);
  out.counter("dc_flush_failures_total", "Write-behind flushes that failed (retried).",
              m.flushFailures);
  out.counter("dc_evictions_total", "Defenders evicted by the scheduler.", m.evictions);
  out.counter("dc_manual_deletes_total", "Defenders deleted through the API.", m.manualDeletes);
  out.gauge("dc_pending_writes", "Defenders whose newest heartbeat is not yet stored.",
            m.pendingWrites);
  out.gauge("dc_flush_lag_seconds",
            "Age of the oldest heartbeat in the last flush: how far persisted lastSeen trails.",
            m.lastFlushLagSeconds);
  out.gauge("dc_flush_lag_max_seconds", "Largest flush lag since start.", m.maxFlushLagSeconds);
  out.counter("dc_storage_fault_episodes_total",
              "Times the database started refusing writes (full disk, read-only, I/O error).",
              m.storageFaultEpisodes);
  out.gauge("dc_storage_failing", "1 while the database refuses writes.", m.storageFailing ? 1 : 0);
  out.counter("dc_pauses_detected_total",
              "Times the Console noticed it had not run on schedule (stalled storage, paused "
              "process); Defenders connected then were judged from the end of the pause.",
              m.pausesDetected);
  out.counter("dc_overload_refusals_total",
              "Registrations refused with 503 overloaded because too many commits were waiting.",
              m.overloadRefusals);
  out.counter(
      "dc_identity_conflicts_total",
      "Defender-channel requests refused with 409 identity_conflict: a Fargate/App-Embedded "
      "hostname reported from another task ARN than the one it registered with.",
      m.identityConflicts);
  out.family("dc_defenders", "Defenders in the inventory by category and state.",
             prometheus::Type::kGauge);
  for (const auto& c : summary) {
    const auto cat = inventory::categoryName(c.category);
    out.sample({{"category", cat}, {"state", "connected"}}, c.connected);
    out.sample({{"category", cat}, {"state", "disconnected"}}, c.deployed - c.connected);
  }
  out.family("dc_defenders_outdated",
             "Defenders running a version older than the deployed Defender version, by category.",
             prometheus::Type::kGauge);
  for (const auto& c : summary)
    out.sample({{"category", inventory::categoryName(c.category)}}, c.outdated);
  return out.take();
}

std::string cursorMetricsText(const inventory::SnapshotMetrics& m) {
  prometheus::Writer out;
  out.gauge("dc_cursor_snapshots", "Cursor-paging snapshots kept.", m.snapshots);
  out.gauge("dc_cursor_snapshot_bytes", "Memory held by cursor-paging snapshots.", m.bytes);
  out.counter("dc_cursor_snapshots_created_total", "Cursor-paging snapshots taken (cursor=start).",
              m.created);
  out.counter("dc_cursor_snapshots_dropped_total",
              "Snapshots dropped before their TTL to stay within the bounds.", m.dropped);
  out.counter("dc_cursor_expired_total", "Cursors refused with 410 cursor_expired.", m.expired);
  return out.take();
}

Result<inventory::DefenderSettings> parseSettings(const std::string& body) {
  auto parsed = heartbeat::parseJsonObject(body, 8);
  if (!parsed.ok()) return parsed.error();
  auto it = parsed->find("disconnectPeriodDays");
  if (it == parsed->end())
    return Error::invalid("missing_field", "disconnectPeriodDays",
                          "disconnectPeriodDays: is required (whole days, 1..365)");
  if (!it->is_number_integer())
    return Error::invalid("invalid_field", "disconnectPeriodDays",
                          "disconnectPeriodDays: must be a whole number of days");
  const auto days = it->get<long long>();
  if (days < 1 || days > 365)
    return Error::invalid("invalid_field", "disconnectPeriodDays",
                          "disconnectPeriodDays: must be between 1 and 365");
  return inventory::DefenderSettings{static_cast<int>(days)};
}

// `GET /api/v1/defenders/summary?family=`: the rows of summary() counted over the Defenders
// whose App ID has that family, with the list's own filters (two counts per category).
Result<std::vector<inventory::CategorySummary>> familySummary(Inventory& inv,
                                                              const std::string& family) {
  std::vector<inventory::CategorySummary> out;
  for (auto c : {inventory::Category::kContainer, inventory::Category::kHost,
                 inventory::Category::kServerless, inventory::Category::kAppEmbedded}) {
    inventory::DefenderQuery q;
    q.family = family;
    q.category = c;
    q.limit = 1;
    auto deployed = inv.list(q);
    if (!deployed.ok()) return deployed.error();
    q.connected = true;
    auto connected = inv.list(q);
    if (!connected.ok()) return connected.error();
    out.push_back({c, connected->total, deployed->total});
  }
  return out;
}

// The CSV download's media type: its text is UTF-8 (docs/api.md).
constexpr const char* kCsvFormat = "text/csv; charset=utf-8";

// How many of the newest audit records a repeated DELETE looks through for the earlier removal
// of the same hostname (docs/api.md): one page, so a no-op delete stays cheap.
constexpr int kRemovalLookback = inventory::kMaxLimit;

// The newest removal (eviction or delete) of `hostname` among the kRemovalLookback newest audit
// records; nullopt when there is none.
Result<std::optional<inventory::AuditRecord>> latestRemoval(Inventory& inv,
                                                            const std::string& hostname) {
  auto page = inv.audit(0, kRemovalLookback);
  if (!page.ok()) return page.error();
  const std::string key = inventory::hostnameKey(hostname);
  for (const auto& a : page->items)
    if (inventory::hostnameKey(a.hostname) == key) return std::optional(a);
  return std::optional<inventory::AuditRecord>();
}

json settingsJson(const inventory::DefenderSettings& s) {
  return json{{"disconnectPeriodDays", s.disconnectPeriodDays}, {"appEmbeddedRemovalHours", 1}};
}

/// Registered last: a POST to a path no route serves still has its body bounded by the
/// listener's limit (postBounded) before the 404, instead of being read whole into memory.
void refuseUnknownPosts(httplib::Server& server) {
  postBounded(server, ".*", [](const httplib::Request& req, httplib::Response& res) {
    sendError(res,
              Error::notFound("not_found", "no route for " + req.method + " " + req.path, "path"));
  });
}

}  // namespace

void installErrorHandlers(httplib::Server& server) {
  server.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;  // a handler already answered
    switch (res.status) {
      case 404:
        sendError(res, Error::notFound("not_found", "no route for " + req.method + " " + req.path,
                                       "path"));
        break;
      case 413:
        sendError(res, Error{ErrorKind::kTooLarge, "body_too_large",
                             "request body exceeds this listener's limit", "body"});
        break;
      case 400:
        // cpp-httplib answers 400 by itself when it cannot parse the request line, or a header
        // line (which includes one longer than its compiled-in 8192 bytes). The path is only set
        // once the request line parsed.
        if (req.path.empty())
          sendError(res, Error::invalid("bad_request", "request",
                                        "malformed HTTP request line (expected METHOD "
                                        "/path HTTP/1.1 with a known method)"));
        else
          sendError(res, Error::invalid("invalid_header", "headers",
                                        "a request header is malformed or longer than 8192 "
                                        "bytes"));
        break;
      case 414:
        sendError(res,
                  Error::invalid("uri_too_long", "path",
                                 "the request line (method, path and query) exceeds 8192 bytes"),
                  414);
        break;
      default:
        // Any other status the library produced on its own (e.g. 416 for a bad Range).
        sendError(res,
                  Error::invalid(
                      "http_error", "",
                      "the request could not be served (HTTP " + std::to_string(res.status) + ")"),
                  res.status);
        break;
    }
  });
  server.set_exception_handler(
      [](const httplib::Request& req, httplib::Response& res, std::exception_ptr ep) {
        std::string what = "unknown";
        try {
          if (ep) std::rethrow_exception(ep);
        } catch (const std::exception& e) {
          what = e.what();
        } catch (...) {
        }
        spdlog::error("unhandled exception on {} {}: {}", req.method, req.path, what);
        sendError(res, Error::internal("internal error"));
      });
}

namespace {

// Copies an embed handler's response; its errors go through this layer's one status table.
void sendEmbed(Response& res, const embed::HttpResponse& r) {
  // A refused task definition lists every problem (docs/embed.md), the first one included.
  if (r.error) return sendError(res, *r.error, r.problems);
  for (const auto& [name, value] : r.headers) res.set_header(name, value);
  res.status = r.status;
  res.set_content(r.body, r.contentType);
}

void registerEmbedRoutes(GuardedRoutes& routes, embed::EmbedService& service, AuditTrail trail) {
  auto embedRoute = [&routes, &service, trail](const char* path, embed::EndpointFormat format) {
    routes.add(
        "POST", path,
        [&service, format, trail](const Request& req, Response& res, const auth::Principal& who) {
          embed::EmbedRequest er;
          er.body = req.body;
          er.contentType = req.get_header_value("Content-Type");
          er.query = embed::QueryParams(req.params.begin(), req.params.end());
          er.format = format;
          const auto response = service.embed(er);
          // Each App ID issued comes with a Defender credential scoped to it.
          if (!response.error) {
            json ids = json::array();
            for (const auto& [name, value] : response.headers) {
              if (name != "X-Defender-App-IDs") continue;
              std::istringstream list(value);
              for (std::string id; std::getline(list, id, ',');)
                if (!id.empty()) ids.push_back(id);
            }
            if (!ids.empty())
              trail(audit::kAppIdIssued, actorOf(who), req,
                    {{"appIDs", ids},
                     {"format", format == embed::EndpointFormat::kJson ? "json" : "yaml"},
                     {"credentialsIssued", static_cast<long long>(ids.size())}});
          }
          sendEmbed(res, response);
        });
  };
  embedRoute("/api/v1/defenders/fargate.json", embed::EndpointFormat::kJson);
  embedRoute("/api/v1/defenders/fargate.yaml", embed::EndpointFormat::kYaml);
  routes.add("GET", "/api/v1/defenders/app-ids", [&service](const Request& req, Response& res) {
    sendEmbed(res, service.listAppIds(embed::QueryParams(req.params.begin(), req.params.end())));
  });
  routes.add("GET", "/api/v1/images/entrypoints", [&service](const Request& req, Response& res) {
    sendEmbed(res, service.listImageEntrypoints(
                       embed::QueryParams(req.params.begin(), req.params.end())));
  });
  routes.add("POST", "/api/v1/images/entrypoints",
             [&service, trail](const Request& req, Response& res, const auth::Principal& who) {
               const auto response = service.putImageEntrypoint(req.body);
               if (!response.error) {
                 auto body = json::parse(req.body, nullptr, false);
                 trail(audit::kImageEntrypointStored, actorOf(who), req,
                       {{"image", body.is_object() ? body.value("image", "") : ""}});
               }
               sendEmbed(res, response);
             });
  routes.add("DELETE", "/api/v1/images/entrypoints",
             [&service, trail](const Request& req, Response& res, const auth::Principal& who) {
               const auto response = service.deleteImageEntrypoint(
                   embed::QueryParams(req.params.begin(), req.params.end()));
               if (!response.error) {
                 auto body = json::parse(response.body, nullptr, false);
                 trail(audit::kImageEntrypointDeleted, actorOf(who), req,
                       {{"image", body.is_object() ? body.value("image", "") : ""}});
               }
               sendEmbed(res, response);
             });
  routes.add("GET", "/api/v1/defenders/image-name",
             [&service](const Request&, Response& res) { sendEmbed(res, service.imageName()); });
  routes.add(
      "GET", "/api/v1/defenders/install-bundle",
      [&service, trail](const Request& req, Response& res, const auth::Principal& who) {
        // `defenderType` (vendor parameter) is checked against the vendor's type list; the
        // bundle works for every type, so it changes nothing else.
        for (const auto& type : paramValues(paramsOf(req), "defenderType"))
          if (!inventory::parseType(type))
            return sendError(res, Error::invalid("unknown_type", "defenderType",
                                                 "defenderType: '" + type.substr(0, 64) +
                                                     "' is not a Defender type (e.g. fargate, "
                                                     "appEmbedded)"));
        const std::string requester = who.username.empty() ? "api" : who.username;
        const auto response = service.installBundle(
            embed::QueryParams(req.params.begin(), req.params.end()), requester);
        if (!response.error) {
          spdlog::info("install bundle with a new Defender credential issued to {}", requester);
          trail(audit::kCredentialIssued, requester, req,
                {{"source", "install-bundle"}, {"scope", "enrolment"}});
        }
        sendEmbed(res, response);
      });
  routes.add("GET", "/api/v1/registry", [&service](const Request& req, Response& res) {
    sendEmbed(
        res, service.registryScanResults(embed::QueryParams(req.params.begin(), req.params.end())));
  });
}

/// A registry credential as the API shows it: never the secret (docs/api.md).
json registryCredentialJson(const registry::RegistryCredential& c) {
  return json{{"_id", c.id},
              {"type", c.type},
              {"accountID", c.accountId},
              {"description", c.description},
              {"lastModified", formatRfc3339(c.lastModified)}};
}

/// Body of POST /api/v1/registry/credentials: {"_id", "type", "accountID", "secret",
/// "description"}; `secret` is a string or the vendor's {"plain": "..."}.
Result<registry::RegistryCredential> parseRegistryCredential(const std::string& body,
                                                             TimePoint now) {
  auto parsed = heartbeat::parseJsonObject(body, 4);
  if (!parsed.ok()) return parsed.error();
  for (const auto& [key, value] : parsed->items())
    if (key != "_id" && key != "type" && key != "accountID" && key != "secret" &&
        key != "description")
      return Error::invalid("invalid_field", key,
                            key +
                                ": unknown field (expected _id, type, accountID, secret, "
                                "description)");
  registry::RegistryCredential c;
  c.lastModified = now;
  for (auto [field, target] : {std::pair<const char*, std::string*>{"_id", &c.id},
                               {"type", &c.type},
                               {"accountID", &c.accountId},
                               {"description", &c.description}}) {
    auto it = parsed->find(field);
    if (it == parsed->end()) continue;
    if (!it->is_string())
      return Error::invalid("invalid_field", field, std::string(field) + ": must be a string");
    *target = it->get<std::string>();
  }
  if (auto it = parsed->find("secret"); it != parsed->end()) {
    if (it->is_string()) {
      c.secret = it->get<std::string>();
    } else if (it->is_object() && it->contains("plain") && (*it)["plain"].is_string()) {
      c.secret = (*it)["plain"].get<std::string>();
    } else {
      return Error::invalid("invalid_field", "secret",
                            "secret: must be a string or {\"plain\": \"...\"}");
    }
  }
  if (auto st = registry::validateCredential(c); !st.ok()) return st.error();
  return c;
}

void registerRegistryCredentialRoutes(GuardedRoutes& routes, registry::CredentialStore& store,
                                      const Clock& clock, AuditTrail trail) {
  routes.add("GET", "/api/v1/registry/credentials", [&store](const Request&, Response& res) {
    auto listed = store.list();
    if (!listed.ok()) return sendError(res, listed.error());
    json out = json::array();
    for (const auto& c : *listed) out.push_back(registryCredentialJson(c));
    sendPage(res, out, static_cast<long long>(out.size()));
  });
  routes.add(
      "POST", "/api/v1/registry/credentials",
      [&store, &clock, trail](const Request& req, Response& res, const auth::Principal& who) {
        auto c = parseRegistryCredential(req.body, clock.now());
        if (!c.ok()) return sendError(res, c.error());
        auto existing = store.find(c->id);
        const bool replaced = existing.ok() && existing->has_value();
        if (auto st = store.put(*c); !st.ok()) return sendError(res, st.error());
        // Never the secret: only who stored which credential.
        spdlog::info("registry credential {} ({}) {} by {}", c->id, c->type,
                     replaced ? "replaced" : "stored", who.username.empty() ? "api" : who.username);
        // Never the secret.
        trail(audit::kRegistryCredentialStored, actorOf(who), req,
              {{"_id", c->id},
               {"type", c->type},
               {"accountID", c->accountId},
               {"replaced", replaced}});
        sendJson(res, dumpJson(registryCredentialJson(*c)), replaced ? 200 : 201);
      });
  routes.add("DELETE", "/api/v1/registry/credentials/([^/]+)",
             [&store, trail](const Request& req, Response& res, const auth::Principal& who) {
               if (auto st = store.remove(pathId(req)); !st.ok()) return sendError(res, st.error());
               trail(audit::kRegistryCredentialDeleted, actorOf(who), req, {{"_id", pathId(req)}});
               spdlog::info("registry credential {} deleted by {}", pathId(req),
                            who.username.empty() ? "api" : who.username);
               sendJson(res, dumpJson({{"_id", pathId(req)}, {"deleted", true}}));
             });
}

// RFC 9110 IMF-fixdate, e.g. "Sun, 29 Nov 2026 20:33:00 GMT".
std::string httpDate(TimePoint t) {
  using namespace std::chrono;
  static const char* const kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static const char* const kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                        "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  const auto day = floor<days>(t);
  const year_month_day ymd{day};
  const weekday wd{day};
  const hh_mm_ss<seconds> hms{floor<seconds>(t - day)};
  char buf[40];
  std::snprintf(buf, sizeof buf, "%s, %02u %s %04d %02d:%02d:%02d GMT", kDays[wd.c_encoding()],
                unsigned(ymd.day()), kMonths[unsigned(ymd.month()) - 1], int(ymd.year()),
                static_cast<int>(hms.hours().count()), static_cast<int>(hms.minutes().count()),
                static_cast<int>(hms.seconds().count()));
  return buf;
}

}  // namespace

namespace {

constexpr const char* kContentSecurityPolicy =
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'";

json userJson(const auth::UserInfo& u) {
  return {{"username", u.username},
          {"role", auth::roleName(u.role)},
          {"createdAt", formatRfc3339(u.createdAt)},
          {"passwordChangedAt", formatRfc3339(u.passwordChangedAt)}};
}

json credentialJson(const auth::CredentialRecord& c) {
  json j{{"id", c.id},
         {"scope", c.appId.empty() ? "enrolment" : "appID"},
         {"appID", c.appId},
         {"description", c.description},
         {"createdAt", formatRfc3339(c.createdAt)},
         {"revoked", c.revokedAt.has_value()}};
  if (c.revokedAt) j["revokedAt"] = formatRfc3339(*c.revokedAt);
  return j;
}

// Reads an optional string member; an error names the field when it is not a string.
Result<std::optional<std::string>> optionalString(const json& body, const char* name) {
  auto it = body.find(name);
  if (it == body.end() || it->is_null()) return std::optional<std::string>();
  if (!it->is_string())
    return Error::invalid("invalid_field", name, std::string(name) + ": must be a string");
  return std::optional<std::string>(it->get<std::string>());
}

Result<std::string> requiredString(const json& body, const char* name) {
  auto v = optionalString(body, name);
  if (!v.ok()) return v.error();
  if (!v->has_value())
    return Error::invalid("missing_field", name, std::string(name) + ": is required");
  return **v;
}

Result<std::optional<auth::Role>> optionalRole(const json& body) {
  auto v = optionalString(body, "role");
  if (!v.ok()) return v.error();
  if (!v->has_value()) return std::optional<auth::Role>();
  auto role = auth::parseRole(**v);
  if (!role)
    return Error::invalid("invalid_field", "role",
                          "role: must be one of auditor, defenderManager, admin");
  return std::optional<auth::Role>(*role);
}

// Sign-in, users (admin) and Defender credentials (defenderManager).
void registerAuthRoutes(GuardedRoutes& routes, auth::AuthService& service, AuditTrail trail) {
  routes.add("POST", "/api/v1/authenticate", [&service, trail](const Request& req, Response& res) {
    auto body = heartbeat::parseJsonObject(req.body, 4);
    if (!body.ok()) return sendError(res, body.error());
    auto username = requiredString(*body, "username");
    if (!username.ok()) return sendError(res, username.error());
    auto password = requiredString(*body, "password");
    if (!password.ok()) return sendError(res, password.error());
    auto token = service.login(*username, *password, req.remote_addr);
    if (!token.ok()) {
      trail(audit::kSignInFailed, username->substr(0, 128), req,
            {{"method", "password"}, {"code", token.error().code}});
      return sendError(res, token.error());
    }
    trail(audit::kSignIn, token->username, req, {{"method", "password"}});
    sendJson(res, dumpJson({{"token", token->token},
                            {"expiresAt", formatRfc3339(token->expiresAt)},
                            {"username", token->username},
                            {"role", auth::roleName(token->role)}}));
  });

  routes.add("GET", "/api/v1/users/current",
             [&service](const Request&, Response& res, const auth::Principal& who) {
               auto u = service.findUser(who.username);
               if (!u) return sendError(res, Error::notFound("unknown_user", "no such user"));
               sendJson(res, dumpJson(userJson(*u)));
             });

  routes.add("GET", "/api/v1/users", [&service](const Request&, Response& res) {
    json out = json::array();
    for (const auto& u : service.listUsers()) out.push_back(userJson(u));
    sendPage(res, out, static_cast<long long>(out.size()));
  });

  routes.add("POST", "/api/v1/users",
             [&service, trail](const Request& req, Response& res, const auth::Principal& who) {
               auto body = heartbeat::parseJsonObject(req.body, 4);
               if (!body.ok()) return sendError(res, body.error());
               auto username = requiredString(*body, "username");
               if (!username.ok()) return sendError(res, username.error());
               auto password = requiredString(*body, "password");
               if (!password.ok()) return sendError(res, password.error());
               auto role = optionalRole(*body);
               if (!role.ok()) return sendError(res, role.error());
               if (!role->has_value())
                 return sendError(
                     res, Error::invalid("missing_field", "role",
                                         "role: is required (auditor, defenderManager, admin)"));
               auto created = service.createUser(*username, *password, **role);
               if (!created.ok()) return sendError(res, created.error());
               spdlog::info("user {} created by {}", created->username, who.username);
               trail(audit::kUserCreated, actorOf(who), req,
                     {{"username", created->username}, {"role", auth::roleName(created->role)}});
               sendJson(res, dumpJson(userJson(*created)), 201);
             });

  routes.add(
      "PUT", "/api/v1/users/([^/]+)",
      [&service, trail](const Request& req, Response& res, const auth::Principal& who) {
        auto body = heartbeat::parseJsonObject(req.body, 4);
        if (!body.ok()) return sendError(res, body.error());
        auto password = optionalString(*body, "password");
        if (!password.ok()) return sendError(res, password.error());
        auto role = optionalRole(*body);
        if (!role.ok()) return sendError(res, role.error());
        if (!password->has_value() && !role->has_value())
          return sendError(res, Error::invalid("missing_field", "body",
                                               "body: give a new password, a new role or both"));
        auto updated = service.updateUser(pathId(req), *password, *role);
        if (!updated.ok()) return sendError(res, updated.error());
        json detail{{"username", updated->username}, {"passwordChanged", password->has_value()}};
        if (role->has_value()) detail["role"] = auth::roleName(**role);
        trail(audit::kUserUpdated, actorOf(who), req, std::move(detail));
        sendJson(res, dumpJson(userJson(*updated)));
      });

  routes.add("DELETE", "/api/v1/users/([^/]+)",
             [&service, trail](const Request& req, Response& res, const auth::Principal& who) {
               if (auto st = service.deleteUser(pathId(req)); !st.ok())
                 return sendError(res, st.error());
               trail(audit::kUserDeleted, actorOf(who), req, {{"username", pathId(req)}});
               sendJson(res, dumpJson({{"username", pathId(req)}, {"deleted", true}}));
             });

  routes.add("GET", "/api/v1/credentials", [&service](const Request&, Response& res) {
    json out = json::array();
    for (const auto& c : service.listCredentials()) out.push_back(credentialJson(c));
    sendPage(res, out, static_cast<long long>(out.size()));
  });

  routes.add("POST", "/api/v1/credentials",
             [&service, trail](const Request& req, Response& res, const auth::Principal& who) {
               auto body = heartbeat::parseJsonObject(req.body, 4);
               if (!body.ok()) return sendError(res, body.error());
               auto scope = requiredString(*body, "scope");
               if (!scope.ok()) return sendError(res, scope.error());
               auto appId = optionalString(*body, "appID");
               if (!appId.ok()) return sendError(res, appId.error());
               auto description = optionalString(*body, "description");
               if (!description.ok()) return sendError(res, description.error());
               const std::string desc = description->value_or("");
               if (desc.size() > 256)
                 return sendError(res, Error::invalid("invalid_field", "description",
                                                      "description: at most 256 bytes"));
               std::string scopedTo;
               if (*scope == "appID") {
                 if (!appId->has_value() || (*appId)->empty())
                   return sendError(res, Error::invalid("missing_field", "appID",
                                                        "appID: is required for scope appID"));
                 auto parsed = appid::parse(**appId, "appID");
                 if (!parsed.ok()) return sendError(res, parsed.error());
                 scopedTo = **appId;
               } else if (*scope == "enrolment") {
                 if (appId->has_value() && !(*appId)->empty())
                   return sendError(res, Error::invalid("invalid_field", "appID",
                                                        "appID: not allowed for scope enrolment"));
               } else {
                 return sendError(res, Error::invalid("invalid_field", "scope",
                                                      "scope: must be appID or enrolment"));
               }
               auto issued = service.issueCredential(scopedTo, desc);
               if (!issued.ok()) return sendError(res, issued.error());
               json out = credentialJson(issued->record);
               json detail = out;  // never the secret
               detail["source"] = "api";
               trail(audit::kCredentialIssued, actorOf(who), req, std::move(detail));
               out["credential"] = issued->secret;
               sendJson(res, dumpJson(out), 201);
             });

  routes.add("DELETE", "/api/v1/credentials/([^/]+)",
             [&service, trail](const Request& req, Response& res, const auth::Principal& who) {
               auto revoked = service.revokeCredential(pathId(req));
               if (!revoked.ok()) return sendError(res, revoked.error());
               trail(audit::kCredentialRevoked, actorOf(who), req,
                     {{"id", revoked->id}, {"appID", revoked->appId}});
               sendJson(res, dumpJson(credentialJson(*revoked)));
             });
}

// Failed sign-ins with a password (HTTP Basic), the failure slowdown (429) and every 403
// become audit events; a missing or expired token (the page before sign-in) does not.
GuardedRoutes::RefusalHook refusalRecorder(AuditTrail trail) {
  return [trail](const Request& req, const std::string& user, const Error& e) {
    if (e.kind == ErrorKind::kPermissionDenied) {
      trail(audit::kAccessRefused, user, req,
            {{"method", req.method}, {"path", req.path}, {"code", e.code}});
      return;
    }
    const std::string header = req.get_header_value("Authorization");
    if (header.rfind("Basic ", 0) != 0) return;
    std::string name;
    if (auto decoded = auth::base64Decode(std::string_view(header).substr(6)))
      name = decoded->substr(0, std::min<size_t>(decoded->find(':'), 128));
    trail(audit::kSignInFailed, name, req,
          {{"method", "basic"}, {"path", req.path}, {"code", e.code}});
  };
}

// GET /api/v1/audit/events{,/download} (docs/api.md): 404 not_found when there is no log.
void registerAuditEventRoutes(GuardedRoutes& routes, audit::AuditLog* log) {
  routes.add("GET", "/api/v1/audit/events", [log](const Request& req, Response& res) {
    if (log == nullptr) return sendError(res, Error::notFound("not_found", "no audit log"));
    auto q = parseAuditEventQuery(paramsOf(req), /*download=*/false);
    if (!q.ok()) return sendError(res, q.error());
    auto page = log->list(*q);
    if (!page.ok()) return sendError(res, page.error());
    json items = json::array();
    for (const auto& e : page->items) items.push_back(auditEventJson(e));
    sendPage(res, items, page->total);
  });
  routes.add("GET", "/api/v1/audit/events/download", [log](const Request& req, Response& res) {
    if (log == nullptr) return sendError(res, Error::notFound("not_found", "no audit log"));
    auto q = parseAuditEventQuery(paramsOf(req), /*download=*/true);
    if (!q.ok()) return sendError(res, q.error());
    auto page = log->list(*q);
    if (!page.ok()) return sendError(res, page.error());
    std::string text = auditEventCsvHeader();
    for (const auto& e : page->items) text += auditEventCsvRow(e);
    res.set_header("Content-Disposition", "attachment; filename=\"audit.csv\"");
    res.set_header("Total-Count", std::to_string(page->total));
    res.set_content(text, kCsvFormat);
  });
}

// Bulk delete (docs/api.md "POST /api/v1/defenders/delete").
constexpr size_t kMaxBulkDelete = 100000;     // Defenders one request may delete
constexpr size_t kMaxBulkHostnames = 10000;   // hostnames one request may list
constexpr size_t kBulkHostnamesShown = 1000;  // hostnames echoed in the answer
constexpr size_t kBulkBatch = 1000;           // Defenders per store transaction

/// What a bulk delete works on: the hostnames, and how many the client said it saw.
struct BulkSelection {
  std::vector<std::string> hostnames;
  std::optional<long long> expectedCount;
  std::string mode;  // "filter", "hostnames" or "all"
};

/// The filter parameters of GET /api/v1/defenders given as a JSON object (a bulk delete's
/// `filter`, a saved view's): strings, booleans or arrays of strings (e.g. `type`); empty
/// strings and nulls are left out. Paging and sort are refused: a filter has none. Errors: 400
/// invalid_field naming `filter.<name>`; then parseDefenderQuery's own (field prefixed).
Result<Params> filterParams(const json& filter) {
  Params params;
  for (const auto& item : filter.items()) {
    // Named copies, not structured bindings: a lambda below captures them (clang 14 refuses
    // to capture a structured binding, as C++17 did).
    const std::string& key = item.key();
    const json& value = item.value();
    if (key == "offset" || key == "limit" || key == "sort" || key == "reverse" || key == "cursor" ||
        key == "fields")
      return Error::invalid("invalid_field", "filter." + key,
                            "filter." + key + ": not a filter (paging and sort are not kept)");
    auto add = [&](const json& v) -> bool {
      if (v.is_string()) {
        if (!v.get<std::string>().empty()) params.emplace(key, v.get<std::string>());
      } else if (v.is_boolean()) {
        params.emplace(key, v.get<bool>() ? "true" : "false");
      } else if (!v.is_null()) {
        return false;
      }
      return true;
    };
    bool good = true;
    if (value.is_array())
      for (const auto& v : value) good = good && v.is_string() && add(v);
    else
      good = add(value);
    if (!good)
      return Error::invalid("invalid_field", "filter." + key,
                            "filter." + key + ": must be a string, a boolean or strings");
  }
  if (auto q = parseDefenderQuery(params); !q.ok()) {
    Error e = q.error();
    e.field = "filter." + e.field;
    return e;
  }
  return params;
}

/// The body of POST /api/v1/defenders/delete: exactly one of `filter` (an object with the
/// filter parameters of GET /api/v1/defenders), `hostnames` (array of strings) or `"all": true`;
/// `expectedCount` (whole number) required with `filter` and `all`. Errors: 400 naming the
/// field; 409 count_changed when the filter now matches another number than `expectedCount`.
Result<BulkSelection> bulkSelection(Inventory& inv, const std::string& body) {
  auto parsed = heartbeat::parseJsonObject(body, 4);
  if (!parsed.ok()) return parsed.error();
  for (const auto& [key, value] : parsed->items())
    if (key != "filter" && key != "hostnames" && key != "all" && key != "expectedCount")
      return Error::invalid("invalid_field", key,
                            key +
                                ": unknown field (expected filter, hostnames, all, "
                                "expectedCount)");
  BulkSelection sel;
  if (auto it = parsed->find("expectedCount"); it != parsed->end()) {
    if (!it->is_number_integer() || it->get<long long>() < 0)
      return Error::invalid("invalid_field", "expectedCount",
                            "expectedCount: must be a whole number >= 0");
    sel.expectedCount = it->get<long long>();
  }
  const bool hasFilter = parsed->contains("filter");
  const bool hasHostnames = parsed->contains("hostnames");
  bool all = false;
  if (auto it = parsed->find("all"); it != parsed->end()) {
    if (!it->is_boolean())
      return Error::invalid("invalid_field", "all", "all: must be true or false");
    all = it->get<bool>();
  }
  if (int(hasFilter) + int(hasHostnames) + int(all) > 1)
    return Error::invalid("invalid_field", hasFilter ? "filter" : "hostnames",
                          "give one of filter, hostnames or \"all\": true");
  if (hasHostnames) {
    sel.mode = "hostnames";
    const json& list = (*parsed)["hostnames"];
    if (!list.is_array() || list.empty() || list.size() > kMaxBulkHostnames)
      return Error::invalid(
          "invalid_field", "hostnames",
          "hostnames: must be an array of 1 to " + std::to_string(kMaxBulkHostnames) + " strings");
    std::unordered_set<std::string> seen;
    for (const auto& h : list) {
      if (!h.is_string() || h.get<std::string>().empty())
        return Error::invalid("invalid_field", "hostnames",
                              "hostnames: every item must be a non-empty string");
      if (seen.insert(inventory::hostnameKey(h.get<std::string>())).second)
        sel.hostnames.push_back(h.get<std::string>());
    }
    return sel;
  }
  inventory::DefenderQuery q;
  if (hasFilter) {
    sel.mode = "filter";
    const json& filter = (*parsed)["filter"];
    if (!filter.is_object())
      return Error::invalid("invalid_field", "filter",
                            "filter: must be an object of the list's filter parameters");
    auto converted = filterParams(filter);
    if (!converted.ok()) return converted.error();
    Params params = std::move(*converted);
    if (params.empty())
      return Error::invalid("missing_field", "filter",
                            "filter: names no filter; to delete every Defender send "
                            "{\"all\": true, \"expectedCount\": N}");
    auto parsedQuery = parseDefenderQuery(params);
    if (!parsedQuery.ok()) return parsedQuery.error();
    q = *parsedQuery;
  } else if (all) {
    sel.mode = "all";
  } else {
    return Error::invalid("missing_field", "filter",
                          "filter: is required (the filter parameters of GET /api/v1/defenders), "
                          "or hostnames, or \"all\": true");
  }
  if (!sel.expectedCount)
    return Error::invalid("missing_field", "expectedCount",
                          "expectedCount: is required with " + sel.mode +
                              " (the number of Defenders the user confirmed)");
  auto keys = inv.matchingKeys(q);
  if (!keys.ok()) return keys.error();
  if (static_cast<long long>(keys->size()) != *sel.expectedCount)
    return Error{ErrorKind::kConflict, "count_changed",
                 "the " + sel.mode + " now matches " + std::to_string(keys->size()) +
                     " Defender(s), not expectedCount " + std::to_string(*sel.expectedCount) +
                     "; confirm the new count",
                 "expectedCount"};
  if (keys->size() > kMaxBulkDelete)
    return Error::invalid("too_many", "filter",
                          "the selection has " + std::to_string(keys->size()) +
                              " Defenders; one request deletes at most " +
                              std::to_string(kMaxBulkDelete) + " (narrow the filter)");
  sel.hostnames = std::move(*keys);
  return sel;
}

void registerBulkDefenderRoutes(GuardedRoutes& routes, Inventory& inv, AuditTrail trail,
                                const DefenderVersion& deployed,
                                std::function<void(const std::string&)> deleted) {
  // The version distribution (docs/api.md): every reported version with its Defenders and
  // whether it needs an upgrade, for the web page's version chart.
  routes.add("GET", "/api/v1/defenders/versions",
             [&inv, deployed](const Request& req, Response& res) {
               if (auto known = requireKnownParams(paramsOf(req), {}); !known.ok())
                 return sendError(res, known.error());
               auto versions = inv.versions();
               if (!versions.ok()) return sendError(res, versions.error());
               json out = json::array();
               for (const auto& v : *versions) {
                 const auto judged = judgeVersion(v.version, deployed);
                 out.push_back({{"version", v.version},
                                {"count", v.count},
                                {"outdated", judged.outdated},
                                {"compatibleVersion", judged.compatibleVersion}});
               }
               sendJson(res, dumpJson(out));
             });
  routes.add("POST", "/api/v1/defenders/delete",
             [&inv, trail, deleted](const Request& req, Response& res, const auth::Principal& who) {
               auto sel = bulkSelection(inv, req.body);
               if (!sel.ok()) return sendError(res, sel.error());
               auto removed = inv.removeMany(sel->hostnames, actorOf(who), kBulkBatch);
               if (!removed.ok()) return sendError(res, removed.error());
               std::vector<json> details;
               details.reserve(removed->size());
               json names = json::array();
               for (const auto& r : *removed) {
                 json d = removalDetail(r);
                 d["bulk"] = true;
                 details.push_back(std::move(d));
                 if (names.size() < kBulkHostnamesShown) names.push_back(r.hostname);
                 if (deleted) deleted(r.hostname);  // e.g. `removed` to its WebSocket
               }
               recordMany(trail, audit::kDefenderDeleted, actorOf(who), req, std::move(details));
               spdlog::info("{} Defender(s) deleted through the API by {} (bulk, {})",
                            removed->size(), actorOf(who), sel->mode);
               const auto deleted = static_cast<long long>(removed->size());
               sendJson(
                   res,
                   dumpJson({{"deleted", deleted},
                             {"matched", static_cast<long long>(sel->hostnames.size())},
                             {"skipped", static_cast<long long>(sel->hostnames.size()) - deleted},
                             {"hostnames", names},
                             {"hostnamesTruncated", removed->size() > names.size()}}));
             });
}

json savedViewJson(const views::SavedView& v) {
  return json{{"name", v.name},
              {"filter", v.filter},
              {"createdAt", formatRfc3339(v.createdAt)},
              {"updatedAt", formatRfc3339(v.updatedAt)}};
}

// Saved views (docs/api.md "Saved views"): each user's own named filter sets. A view is
// applied as the list's query string (at most 8 KiB), so its values are bounded: one at most
// kMaxViewValueBytes, all of them (as JSON) at most kMaxViewFilterBytes.
constexpr size_t kMaxViewValueBytes = 1024;
constexpr size_t kMaxViewFilterBytes = 4096;
void registerViewRoutes(GuardedRoutes& routes, views::ViewStore* store) {
  auto missing = [](Response& res) {
    sendError(res, Error::notFound("not_found", "no saved views in this Console"));
  };
  routes.add("GET", "/api/v1/views",
             [store, missing](const Request& req, Response& res, const auth::Principal& who) {
               if (store == nullptr) return missing(res);
               if (auto known = requireKnownParams(paramsOf(req), {}); !known.ok())
                 return sendError(res, known.error());
               auto listed = store->list(actorOf(who));
               if (!listed.ok()) return sendError(res, listed.error());
               json out = json::array();
               for (const auto& v : *listed) out.push_back(savedViewJson(v));
               sendPage(res, out, static_cast<long long>(out.size()));
             });
  routes.add(
      "POST", "/api/v1/views",
      [store, missing](const Request& req, Response& res, const auth::Principal& who) {
        if (store == nullptr) return missing(res);
        auto body = heartbeat::parseJsonObject(req.body, 4);
        if (!body.ok()) return sendError(res, body.error());
        for (const auto& [key, value] : body->items())
          if (key != "name" && key != "filter")
            return sendError(res, Error::invalid("invalid_field", key,
                                                 key + ": unknown field (expected name, filter)"));
        auto name = requiredString(*body, "name");
        if (!name.ok()) return sendError(res, name.error());
        if (auto st = views::validateName(*name); !st.ok()) return sendError(res, st.error());
        auto it = body->find("filter");
        if (it == body->end() || !it->is_object())
          return sendError(
              res, Error::invalid(it == body->end() ? "missing_field" : "invalid_field", "filter",
                                  "filter: an object of the filter parameters of "
                                  "GET /api/v1/defenders is required"));
        auto params = filterParams(*it);
        if (!params.ok()) return sendError(res, params.error());
        // Stored as strings, one key each (repeated values joined: `type` takes a comma list).
        json filter = json::object();
        for (const auto& [key, value] : *params) {
          if (filter.contains(key))
            filter[key] = filter[key].get<std::string>() + "," + value;
          else
            filter[key] = value;
        }
        // The page applies a view as the list's query string (at most 8 KiB: 414 beyond).
        for (const auto& item : filter.items())
          if (item.value().get_ref<const std::string&>().size() > kMaxViewValueBytes)
            return sendError(res,
                             Error::invalid("invalid_field", "filter." + item.key(),
                                            "filter." + item.key() + ": at most " +
                                                std::to_string(kMaxViewValueBytes) + " bytes"));
        if (filter.dump().size() > kMaxViewFilterBytes)
          return sendError(res,
                           Error::invalid("invalid_field", "filter",
                                          "filter: at most " + std::to_string(kMaxViewFilterBytes) +
                                              " bytes of values in all"));
        auto put = store->put(actorOf(who), *name, filter);
        if (!put.ok()) return sendError(res, put.error());
        sendJson(res, dumpJson(savedViewJson(put->first)), put->second ? 200 : 201);
      });
  routes.add("DELETE", "/api/v1/views/([^/]+)",
             [store, missing](const Request& req, Response& res, const auth::Principal& who) {
               if (store == nullptr) return missing(res);
               if (auto st = store->remove(actorOf(who), pathId(req)); !st.ok())
                 return sendError(res, st.error());
               sendJson(res, dumpJson({{"name", pathId(req)}, {"deleted", true}}));
             });
}

}  // namespace

std::shared_ptr<Router> consoleApiRouter(Inventory& inv, ConsoleApiOptions options) {
  auto router = std::make_shared<Router>();
  // The Console's clock on every response, so that the page counts "removal in …" from it.
  // Security headers on every response of this listener (docs/security.md): the page loads
  // only its own scripts, styles and images, cannot be framed, and nothing is MIME-sniffed.
  router->set_post_routing_handler([&inv](const Request& req, Response& res) {
    res.set_header("Date", httpDate(inv.clock().now()));
    res.set_header("Content-Security-Policy", kContentSecurityPolicy);
    res.set_header("X-Frame-Options", "DENY");
    res.set_header("X-Content-Type-Options", "nosniff");
    res.set_header("Referrer-Policy", "no-referrer");
    if (req.path.rfind("/api/", 0) == 0 || req.path == "/metrics")
      res.set_header("Cache-Control", "no-store");
  });
  const auto opts = std::make_shared<ConsoleApiOptions>(std::move(options));
  GuardedRoutes routes(*router, auth::consolePermissions(), opts->auth);
  // Until the Console is ready (users created, scheduler running) every route but the probes
  // answers 503 starting, never a misleading 401 or an empty inventory.
  if (opts->ready) routes.gateUntil(opts->ready, {"/healthz", "/readyz"});
  const AuditTrail trail{opts->audit};
  if (opts->audit) routes.onRefusal(refusalRecorder(trail));
  if (opts->auth) registerAuthRoutes(routes, *opts->auth, trail);
  // Specific /api/v1/defenders/... routes first: the {hostname} route would match them.
  if (opts->embed) registerEmbedRoutes(routes, *opts->embed, trail);
  if (opts->registryCredentials)
    registerRegistryCredentialRoutes(routes, *opts->registryCredentials, inv.clock(), trail);
  registerAuditEventRoutes(routes, opts->audit);
  registerBulkDefenderRoutes(routes, inv, trail, opts->defenderVersion, opts->defenderDeleted);
  registerViewRoutes(routes, opts->views);
  // The rows of one answer as JSON, in order. The App IDs' `appIDIssued` flags come from one
  // store lookup for the whole page (EmbedService::issuedAmong), not one per row.
  auto render = [&inv, opts](const std::vector<inventory::Defender>& rows, TimePoint now) {
    std::unordered_set<std::string> issued;
    if (opts->embed) {
      std::vector<std::string> appIds;
      appIds.reserve(rows.size());
      for (const auto& d : rows)
        if (!d.appId.empty()) appIds.push_back(d.appId);
      if (!appIds.empty()) issued = opts->embed->issuedAmong(appIds);
    }
    json items = json::array();
    for (const auto& d : rows) {
      json j = defenderJson(d, inv.judge(d, now));
      const auto version = judgeVersion(d.version, opts->defenderVersion);
      j["compatibleVersion"] = version.compatibleVersion;
      j["outdated"] = version.outdated;
      if (opts->embed) j["appIDIssued"] = !d.appId.empty() && issued.contains(d.appId);
      items.push_back(std::move(j));
    }
    return items;
  };

  const auto cursors = std::make_shared<inventory::SnapshotCache>(inv.clock(), opts->cursorLimits);

  routes.add("GET", "/api/v1/defenders",
             [&inv, render, cursors](const Request& req, Response& res) {
               const Params params = paramsOf(req);
               auto q = parseDefenderQuery(withoutCursor(params));
               if (!q.ok()) return sendError(res, q.error());
               if (auto walk = cursorPage(inv, *cursors, params, *q)) {
                 if (!walk->ok()) return sendCursorError(res, walk->error());
                 const json items = render((*walk)->rows, inv.clock().now());
                 if (!(*walk)->next.empty()) res.set_header("Next-Cursor", (*walk)->next);
                 return sendPage(res, items, (*walk)->total);
               }
               auto page = inv.list(*q);
               if (!page.ok()) return sendError(res, page.error());
               const json items = render(page->items, inv.clock().now());
               sendPage(res, items, page->total);
             });

  routes.add("GET", "/api/v1/defenders/names", [&inv, cursors](const Request& req, Response& res) {
    const Params params = paramsOf(req);
    auto q = parseDefenderQuery(withoutCursor(params));
    if (!q.ok()) return sendError(res, q.error());
    if (auto walk = cursorPage(inv, *cursors, params, *q)) {
      if (!walk->ok()) return sendCursorError(res, walk->error());
      json names = json::array();
      for (const auto& d : (*walk)->rows) names.push_back(d.hostname);
      if (!(*walk)->next.empty()) res.set_header("Next-Cursor", (*walk)->next);
      return sendPage(res, names, (*walk)->total);
    }
    auto page = inv.list(*q);
    if (!page.ok()) return sendError(res, page.error());
    json names = json::array();
    for (const auto& d : page->items) names.push_back(d.hostname);
    sendPage(res, names, page->total);
  });

  routes.add("GET", "/api/v1/defenders/eviction-status", [opts](const Request&, Response& res) {
    if (!opts->evictionStatus)
      return sendError(res, Error::notFound("not_found", "no outage guard"));
    sendJson(res, dumpJson(opts->evictionStatus()));
  });
  routes.add("POST", "/api/v1/defenders/eviction-status/resume",
             [opts, trail](const Request& req, Response& res, const auth::Principal& who) {
               if (!opts->resumeEvictions)
                 return sendError(res, Error::notFound("not_found", "no outage guard"));
               // The incident log names the user who resumed.
               auto status = opts->resumeEvictions(who.username.empty() ? "api" : who.username);
               if (!status.ok()) return sendError(res, status.error());
               trail(audit::kEvictionsResumed, actorOf(who), req, json::object());
               sendJson(res, dumpJson(*status));
             });

  // Suggestions and counts for the web page's filters (docs/api.md): every cluster with its
  // Defenders, and every type with its deployed and connected Defenders.
  routes.add("GET", "/api/v1/defenders/clusters", [&inv](const Request& req, Response& res) {
    if (auto known = requireKnownParams(paramsOf(req), {}); !known.ok())
      return sendError(res, known.error());
    auto clusters = inv.clusters();
    if (!clusters.ok()) return sendError(res, clusters.error());
    json out = json::array();
    for (const auto& c : *clusters) out.push_back({{"cluster", c.cluster}, {"count", c.count}});
    sendJson(res, dumpJson(out));
  });
  routes.add("GET", "/api/v1/defenders/types", [&inv](const Request& req, Response& res) {
    if (auto known = requireKnownParams(paramsOf(req), {}); !known.ok())
      return sendError(res, known.error());
    auto counts = inv.typeCounts();
    if (!counts.ok()) return sendError(res, counts.error());
    json out = json::array();
    for (const auto& t : *counts) {
      const auto& info = inventory::typeInfo(t.type);
      out.push_back({{"type", info.apiName},
                     {"category", inventory::categoryName(info.category)},
                     {"deployed", t.deployed},
                     {"connected", t.connected},
                     {"disconnected", t.deployed - t.connected}});
    }
    sendJson(res, dumpJson(out));
  });
  routes.add("GET", "/api/v1/defenders/history", [&inv, opts](const Request& req, Response& res) {
    if (opts->history == nullptr)
      return sendError(res, Error::notFound("not_found", "no fleet history"));
    const Params params = paramsOf(req);
    if (auto known = requireKnownParams(params, {"range"}); !known.ok())
      return sendError(res, known.error());
    const std::string text = rawParam(params, "range").value_or("hour");
    auto range = history::parseRange(text);
    if (!range)
      return sendError(
          res, Error::invalid("invalid_parameter", "range", "range: must be hour, day or month"));
    const TimePoint now = inv.clock().now();
    auto samples = opts->history->query(*range, now);
    if (!samples.ok()) return sendError(res, samples.error());
    json points = json::array();
    for (const auto& s : *samples) {
      json counts = json::object();
      for (const auto& c : s.counts)
        counts[c.category] = {
            {"connected", c.connected}, {"disconnected", c.disconnected}, {"evicted", c.evicted}};
      points.push_back({{"time", formatRfc3339(s.at)}, {"counts", counts}});
    }
    sendJson(res,
             dumpJson({{"range", text},
                       {"from", formatRfc3339(now - history::rangeSpan(*range))},
                       {"to", formatRfc3339(now)},
                       {"bucketSeconds",
                        std::chrono::duration_cast<Seconds>(history::bucketWidth(*range)).count()},
                       {"retentionDays", opts->historyRetentionDays},
                       {"samples", points}}));
  });

  routes.add("GET", "/api/v1/defenders/summary", [&inv](const Request& req, Response& res) {
    const Params params = paramsOf(req);
    if (auto known = requireKnownParams(params, {"family"}); !known.ok())
      return sendError(res, known.error());
    auto q = parseDefenderQuery(params);  // validates the family's text
    if (!q.ok()) return sendError(res, q.error());
    auto summary = q->family ? familySummary(inv, *q->family) : inv.summary();
    if (!summary.ok()) return sendError(res, summary.error());
    json out = json::array();
    for (const auto& c : *summary)
      out.push_back({{"category", inventory::categoryName(c.category)},
                     {"connected", c.connected},
                     {"disconnected", c.deployed - c.connected},
                     {"deployed", c.deployed},
                     {"outdated", c.outdated}});
    sendJson(res, dumpJson(out));
  });

  routes.add("GET", "/api/v1/defenders/download", [&inv](const Request& req, Response& res) {
    // All matches from `offset` on, or `limit` of them when given, from one snapshot
    // of the matching hostnames taken now: every matching Defender exactly once,
    // however the fleet heartbeats meanwhile; each chunk renders current rows (one
    // evicted meanwhile is left out). Memory: the snapshot (~40 bytes per Defender)
    // and one chunk of rows.
    Params params = paramsOf(req);
    // `limit=` (empty) is no limit, as for the other parameters.
    const bool paged = textParam(params, "limit").has_value();
    // bom=true: a UTF-8 byte order mark first, so that spreadsheets read UTF-8.
    auto bom = parseBoolParam(params, "bom");
    if (!bom.ok()) return sendError(res, bom.error());
    params.erase("bom");
    auto q = parseDefenderQuery(params);
    if (!q.ok()) return sendError(res, q.error());
    auto keys = inv.matchingKeys(*q);
    if (!keys.ok()) return sendError(res, keys.error());
    auto snapshot = std::make_shared<const inventory::KeySnapshot>(*keys);
    const size_t from = std::min(static_cast<size_t>(q->offset), snapshot->size());
    const size_t end =
        paged ? std::min(snapshot->size(), from + static_cast<size_t>(q->limit)) : snapshot->size();
    auto next = std::make_shared<size_t>(from);
    auto headerText =
        std::make_shared<std::string>((bom->value_or(false) ? "\xEF\xBB\xBF" : "") + csvHeader());
    res.set_header("Content-Disposition", "attachment; filename=\"defenders.csv\"");
    res.set_chunked_content_provider(
        kCsvFormat, [&inv, snapshot, end, next, headerText](size_t, DataSink& sink) {
          if (!headerText->empty()) {  // sent once, first
            sink.write(headerText->data(), headerText->size());
            headerText->clear();
          }
          if (*next >= end) {
            sink.done();
            return true;
          }
          const size_t count = std::min<size_t>(1000, end - *next);
          auto rows = inv.findMany(snapshot->slice(*next, count));
          if (!rows.ok()) return false;  // aborts the transfer: the client sees a cut body
          const TimePoint now = inv.clock().now();
          std::string chunk;
          for (const auto& d : *rows) chunk += csvRow(d, inv.judge(d, now));
          if (!chunk.empty()) sink.write(chunk.data(), chunk.size());
          *next += count;
          if (*next >= end) sink.done();
          return true;
        });
  });

  routes.add("GET", "/api/v1/defenders/([^/]+)", [&inv, render](const Request& req, Response& res) {
    auto d = inv.find(pathId(req));
    if (!d.ok()) return sendError(res, d.error());
    if (!d->has_value())
      return sendError(
          res, Error::notFound("unknown_defender",
                               "no Defender with hostname '" + pathId(req) + "'", "hostname"));
    sendJson(res, dumpJson(render({**d}, inv.clock().now()).at(0)));
  });

  routes.add("DELETE", "/api/v1/defenders/([^/]+)",
             [&inv, trail, opts](const Request& req, Response& res, const auth::Principal& who) {
               // The audit record names the user who deleted.
               auto removed = inv.remove(pathId(req), who.username.empty() ? "api" : who.username);
               if (!removed.ok() && removed.error().code == "unknown_defender") {
                 // Idempotent: already gone (deleted twice, or evicted by the sweep) is not an
                 // error.
                 auto earlier = latestRemoval(inv, pathId(req));
                 if (!earlier.ok()) return sendError(res, earlier.error());
                 if (!*earlier) {
                   res.status = 204;
                   return;
                 }
                 json body = auditJson(**earlier);
                 body["alreadyRemoved"] = true;
                 return sendJson(res, dumpJson(body));
               }
               if (!removed.ok()) return sendError(res, removed.error());
               spdlog::info("Defender {} deleted through the API ({} observations removed)",
                            removed->hostname, removed->observationsRemoved);
               if (opts->defenderDeleted) opts->defenderDeleted(removed->hostname);
               trail(audit::kDefenderDeleted, actorOf(who), req, removalDetail(*removed));
               json body = auditJson(*removed);
               body["alreadyRemoved"] = false;
               sendJson(res, dumpJson(body));
             });

  routes.add("GET", "/api/v1/settings/defender", [&inv](const Request&, Response& res) {
    sendJson(res, dumpJson(settingsJson(inv.settings())));
  });

  routes.add("POST", "/api/v1/settings/defender",
             [&inv, trail, opts](const Request& req, Response& res, const auth::Principal& who) {
               auto s = parseSettings(req.body);
               if (!s.ok()) return sendError(res, s.error());
               const int before = inv.settings().disconnectPeriodDays;
               if (auto st = inv.updateSettings(*s); !st.ok()) return sendError(res, st.error());
               trail(audit::kSettingsChanged, actorOf(who), req,
                     {{"setting", "disconnectPeriodDays"},
                      {"from", before},
                      {"to", s->disconnectPeriodDays}});
               spdlog::info("settings: disconnectPeriodDays = {}", s->disconnectPeriodDays);
               if (opts->settingsChanged) opts->settingsChanged();
               sendJson(res, dumpJson(settingsJson(inv.settings())));
             });

  routes.add("GET", "/api/v1/profiles/app-embedded", [&inv](const Request& req, Response& res) {
    const Params params = paramsOf(req);
    if (auto known = requireKnownParams(
            params, {"offset", "limit", "id", "appID", "container", "image", "cluster"});
        !known.ok())
      return sendError(res, known.error());
    auto paging = parsePaging(params);
    if (!paging.ok()) return sendError(res, paging.error());
    inventory::DefenderQuery q;
    q.offset = paging->first;
    q.limit = paging->second;
    q.category = inventory::Category::kAppEmbedded;
    q.hostname = textParam(params, "id");
    q.appId = textParam(params, "appID");
    q.container = textParam(params, "container");
    q.image = textParam(params, "image");
    q.cluster = textParam(params, "cluster");
    auto page = inv.list(q);
    if (!page.ok()) return sendError(res, page.error());
    json items = json::array();
    for (const auto& d : page->items) {
      json cm = d.details.value("cloudMetadata", json::object());
      items.push_back({{"_id", d.hostname},
                       {"hostname", d.hostname},
                       {"appID", d.appId},
                       {"container", d.container},
                       {"image", cm.value("image", "")},
                       {"cluster", d.cluster},
                       {"cloudMetadata", defenderJson(d, {})["cloudMetadata"]},
                       {"startTime", formatRfc3339(d.registeredAt)}});
    }
    sendPage(res, items, page->total);
  });

  routes.add(
      "GET", "/api/v1/profiles/app-embedded/([^/]+)", [&inv](const Request& req, Response& res) {
        auto d = inv.find(pathId(req));
        if (!d.ok()) return sendError(res, d.error());
        if (!d->has_value() ||
            inventory::categoryOf((*d)->type) != inventory::Category::kAppEmbedded)
          return sendError(res, Error::notFound("unknown_profile",
                                                "no App-Embedded profile '" + pathId(req) + "'"));
        const Params params = paramsOf(req);
        if (auto known = requireKnownParams(params, {"offset", "limit"}); !known.ok())
          return sendError(res, known.error());
        auto paging = parsePaging(params);
        if (!paging.ok()) return sendError(res, paging.error());
        auto obs = inv.observations(pathId(req), paging->first, paging->second);
        if (!obs.ok()) return sendError(res, obs.error());
        const auto& def = **d;
        json events = json::array();
        for (const auto& o : obs->items) events.push_back(observationJson(o));
        json cm = defenderJson(def, {})["cloudMetadata"];
        res.set_header("Total-Count", std::to_string(obs->total));
        sendJson(res, dumpJson({{"_id", def.hostname},
                                {"hostname", def.hostname},
                                {"appID", def.appId},
                                {"container", def.container},
                                {"image", cm["image"]},
                                {"cluster", def.cluster},
                                {"cloudMetadata", cm},
                                {"startTime", formatRfc3339(def.registeredAt)},
                                {"observationsTotal", obs->total},
                                {"observations", events}}));
      });

  routes.add("GET", "/api/v1/audit/defenders", [&inv](const Request& req, Response& res) {
    const Params params = paramsOf(req);
    if (auto known = requireKnownParams(params, {"offset", "limit"}); !known.ok())
      return sendError(res, known.error());
    auto paging = parsePaging(params);
    if (!paging.ok()) return sendError(res, paging.error());
    auto page = inv.audit(paging->first, paging->second);
    if (!page.ok()) return sendError(res, page.error());
    json items = json::array();
    for (const auto& a : page->items) items.push_back(auditJson(a));
    sendPage(res, items, page->total);
  });

  routes.add("GET", "/api/v1/version", [opts](const Request&, Response& res) {
    // The vendor answers its release as a JSON string, which is also the Defender version it
    // deploys; automation compares Defenders' `version` with it.
    res.set_header("X-Console-Version", opts->version);
    sendJson(res, dumpJson(json(formatVersion(opts->defenderVersion))));
  });

  routes.add("GET", "/api/v1/_ping",
             [](const Request&, Response& res) { sendJson(res, R"({"status":"ok"})"); });

  routes.add("GET", "/api/v1/openapi.json", [opts](const Request&, Response& res) {
    std::ifstream in(opts->uiDir + "/openapi.json", std::ios::binary);
    if (!in)
      return sendError(
          res, Error::notFound("not_installed", "the OpenAPI document is not installed (--ui-dir)",
                               "path"));
    std::ostringstream text;
    text << in.rdbuf();
    sendJson(res, text.str());
  });

  routes.add("GET", "/healthz",
             [](const Request&, Response& res) { sendJson(res, R"({"status":"ok"})"); });

  routes.add("GET", "/readyz", [opts](const Request&, Response& res) {
    if (opts->ready && !opts->ready())
      return sendError(res, Error{ErrorKind::kUnavailable,
                                  "starting",
                                  "the Console is starting: the inventory is not loaded yet",
                                  {}});
    sendJson(res, R"({"status":"ready"})");
  });

  routes.add("GET", "/metrics", [&inv, opts, cursors](const Request&, Response& res) {
    auto summary = inv.summary();
    std::string text = prometheusText(
        inv.metrics(), summary.ok() ? *summary : std::vector<inventory::CategorySummary>{});
    text += cursorMetricsText(cursors->metrics());
    if (opts->extraMetrics) text += opts->extraMetrics();
    res.set_content(text, "text/plain; version=0.0.4");
  });

  if (!opts->uiDir.empty()) {
    if (!router->set_mount_point("/", opts->uiDir))
      spdlog::warn("web page not served: UI directory '{}' not found", opts->uiDir);
  }
  return router;
}

void registerConsoleApi(httplib::Server& server, Inventory& inv, ConsoleApiOptions options) {
  serveOnHttplib(server, consoleApiRouter(inv, std::move(options)));
}

namespace {

using ChannelCall = Result<json> (heartbeat::DefenderChannel::*)(std::string_view,
                                                                 std::string_view);
struct ChannelRoute {
  const char* method;
  const char* path;
  ChannelCall call;  // null: GET /healthz
};
constexpr ChannelRoute kChannelRoutes[] = {
    {"POST", "/api/v1/defender/heartbeat", &heartbeat::DefenderChannel::heartbeat},
    {"POST", "/api/v1/defender/disconnect", &heartbeat::DefenderChannel::disconnect},
    {"POST", "/api/v1/defender/observations", &heartbeat::DefenderChannel::observations},
    {"GET", "/healthz", nullptr},
};

void copyTo(channel::Response from, httplib::Response& res) {
  res.status = from.status;
  for (const auto& [name, value] : from.headers) res.set_header(name, value);
  res.set_content(std::move(from.body), from.contentType);
}

}  // namespace

namespace {

/// The Defender credential of `authorization`, or its refusal (401 with `WWW-Authenticate`).
Result<auth::Principal> authenticateDefender(auth::AuthService& auth,
                                             const std::string& authorization,
                                             channel::Response& refusal) {
  auto p = auth.authenticateDefender(authorization);
  if (!p.ok()) {
    refusal = channel::errorResponse(p.error());
    if (p.error().kind == ErrorKind::kUnauthenticated)
      refusal.headers.emplace_back("WWW-Authenticate", R"(Bearer realm="Defender Console")");
  }
  return p;
}

/// The route's DefenderChannel call for a caller already authenticated as `who`.
channel::Response serveAs(heartbeat::DefenderChannel& channel, const ChannelRoute& route,
                          const auth::Principal& who, const std::string& body) {
  auto reply = (channel.*route.call)(body, who.appId);
  if (!reply.ok()) return channel::errorResponse(reply.error());
  return channel::jsonResponse(dumpJson(*reply));
}

/// What a WebSocket connection is bound to at its upgrade: the Defender credential (checked
/// again, for revocation, with every message).
struct DefenderBinding {
  auth::Principal who;
  std::string authorization;
};

}  // namespace

channel::Response serveDefenderChannel(heartbeat::DefenderChannel& channel, auth::AuthService* auth,
                                       const channel::Request& req) {
  for (const auto& route : kChannelRoutes) {
    if (req.method != route.method || req.path != route.path) continue;
    if (!route.call) return channel::jsonResponse(R"({"status":"ok"})");
    auth::Principal who;
    const auto need =
        auth::findPermission(auth::defenderChannelPermissions(), route.method, route.path);
    if (auth && need != auth::Access::kPublic) {
      channel::Response refusal;
      auto p = authenticateDefender(*auth, req.authorization, refusal);
      if (!p.ok()) return refusal;
      who = *p;
    }
    return serveAs(channel, route, who, req.body);
  }
  return channel::errorResponse(
      Error::notFound("not_found", "no route for " + req.method + " " + req.path, "path"));
}

channel::WsUpgrade authorizeDefenderUpgrade(auth::AuthService* auth,
                                            const channel::Request& upgrade) {
  auto binding = std::make_shared<DefenderBinding>();
  if (auth) {
    channel::Response refusal;
    auto p = authenticateDefender(*auth, upgrade.authorization, refusal);
    if (!p.ok()) return {nullptr, std::move(refusal)};
    binding->who = *p;
    binding->authorization = upgrade.authorization;
  }
  return {std::move(binding), std::nullopt};
}

channel::WsAnswer serveDefenderMessage(heartbeat::DefenderChannel& channel, auth::AuthService* auth,
                                       const channel::WsBinding& bound, const std::string& boundKey,
                                       const channel::WsMessage& message) {
  channel::WsAnswer answer;
  const auto* binding = static_cast<const DefenderBinding*>(bound.get());
  if (auth && binding) {
    // The credential bound at the upgrade, checked again: a revoked one ends the connection.
    auto p = auth->authenticateDefender(binding->authorization);
    if (!p.ok()) {
      answer.closeCode = 1008;
      answer.closeReason = "credential_revoked";
      return answer;
    }
  }
  const ChannelRoute* route = nullptr;
  constexpr std::string_view kPrefix = "/api/v1/defender/";
  for (const auto& r : kChannelRoutes) {
    const std::string_view path = r.path;
    if (r.call && path.starts_with(kPrefix) && path.substr(kPrefix.size()) == message.type)
      route = &r;
  }
  if (!route) {
    answer.closeCode = 1008;
    answer.closeReason = "unknown_type";
    return answer;
  }
  // A connection speaks for the hostname of its first heartbeat.
  std::string key;
  if (auto body = json::parse(message.body, nullptr, /*allow_exceptions=*/false); body.is_object())
    if (auto h = body.find("hostname"); h != body.end() && h->is_string())
      key = inventory::hostnameKey(h->get_ref<const std::string&>());
  if (!boundKey.empty() && !key.empty() && key != boundKey) {
    std::string why = "this connection speaks for Defender ";
    why += boundKey;
    why += " (its first heartbeat); open another connection for another one";
    answer.result =
        channel::errorResponse(Error::invalid("hostname_mismatch", "hostname", std::move(why)));
    return answer;
  }
  answer.result =
      serveAs(channel, *route, binding ? binding->who : auth::Principal{}, message.body);
  if (route->call == &heartbeat::DefenderChannel::heartbeat && answer.result.status == 200 &&
      boundKey.empty())
    answer.bindKey = key;
  return answer;
}

namespace {

/// JSON answer of the cpp-httplib front to a WebSocket upgrade: it has no WebSocket.
void refuseWebSocket(const httplib::Request& req, httplib::Response& res) {
  std::string upgrade = req.get_header_value("Upgrade");
  for (auto& ch : upgrade) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  if (upgrade != "websocket")
    return copyTo(channel::errorResponse(Error::notFound(
                      "not_found", "no route for " + req.method + " " + req.path, "path")),
                  res);
  copyTo(channel::errorResponse(Error::invalid(
             "websocket_unsupported", "Upgrade",
             "the WebSocket transport of the defender channel needs --defender-front asio "
             "(this Console serves it with --defender-front httplib: HTTP POSTs only)")),
         res);
}

}  // namespace

void registerDefenderChannel(httplib::Server& server, heartbeat::DefenderChannel& channel,
                             auth::AuthService* auth) {
  installErrorHandlers(server);
  // The credential is checked by serveDefenderChannel, the same code the event-driven front
  // calls; the routes registered here are the ones it serves.
  auto handler = [&channel, auth](const httplib::Request& req, httplib::Response& res) {
    copyTo(serveDefenderChannel(channel, auth,
                                {req.method,
                                 req.path,
                                 req.get_header_value("Authorization"),
                                 req.remote_addr,
                                 req.body,
                                 {},
                                 {}}),
           res);
  };
  for (const auto& route : kChannelRoutes) {
    if (!auth::findPermission(auth::defenderChannelPermissions(), route.method, route.path))
      throw std::logic_error(std::string("route ") + route.method + " " + route.path +
                             " is not in the permission table (auth/permissions.cpp)");
    if (std::string_view(route.method) == "GET")
      server.Get(route.path, handler);
    else
      postBounded(server, route.path, handler);  // chunked bodies bounded too
  }
  server.Get("/", refuseWebSocket);
  server.Get("/api/v1/defender/ws", refuseWebSocket);
  refuseUnknownPosts(server);
}

}  // namespace dc::web
