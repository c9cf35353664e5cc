#include "web/routes.h"

#include <httplib.h>

#include <fstream>
#include <sstream>

#include <spdlog/spdlog.h>

#include "appid/app_id.h"
#include "common/time_format.h"
#include "embed/handler.h"
#include "heartbeat/channel.h"
#include "inventory/inventory.h"
#include "registry/credentials.h"
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

// Hostnames in paths may be URL-encoded; httplib decodes path parameters in matches[1].
std::string pathId(const httplib::Request& req) {
  return req.matches[1].str();
}

void sendPage(httplib::Response& res, const json& items, long long total) {
  res.set_header("Total-Count", std::to_string(total));
  sendJson(res, dumpJson(items));
}

Params paramsOf(const httplib::Request& req) {
  return Params(req.params.begin(), req.params.end());
}

std::string prometheusText(const inventory::InventoryMetrics& m,
                           const std::vector<inventory::CategorySummary>& summary) {
  std::ostringstream out;
  auto counter = [&](const char* name, const char* help, uint64_t v) {
    out << "# HELP " << name << ' ' << help << "\n# TYPE " << name << " counter\n"
        << name << ' ' << v << '\n';
  };
  auto gauge = [&](const char* name, const char* help, double v) {
    out << "# HELP " << name << ' ' << help << "\n# TYPE " << name << " gauge\n"
        << name << ' ' << v << '\n';
  };
  counter("dc_heartbeats_total", "Heartbeats accepted on the defender channel.", m.heartbeats);
  counter("dc_registrations_total", "Heartbeats that registered a Defender anew.", m.registrations);
  counter("dc_reconnections_total", "Heartbeats that reconnected a disconnected Defender.",
          m.reconnections);
  counter("dc_graceful_disconnects_total", "Graceful disconnects.", m.gracefulDisconnects);
  counter("dc_observations_total", "Observations accepted and stored.", m.observationsAccepted);
  counter("dc_flushes_total", "Write-behind flushes committed.", m.flushes);
  counter("dc_flush_failures_total", "Write-behind flushes that failed (retried).",
          m.flushFailures);
  counter("dc_evictions_total", "Defenders evicted by the scheduler.", m.evictions);
  counter("dc_manual_deletes_total", "Defenders deleted through the API.", m.manualDeletes);
  gauge("dc_pending_writes", "Defenders whose newest heartbeat is not yet stored.",
        static_cast<double>(m.pendingWrites));
  gauge("dc_flush_lag_seconds",
        "Age of the oldest heartbeat in the last flush: how far persisted lastSeen trails.",
        m.lastFlushLagSeconds);
  gauge("dc_flush_lag_max_seconds", "Largest flush lag since start.", m.maxFlushLagSeconds);
  counter("dc_storage_fault_episodes_total",
          "Times the database started refusing writes (full disk, read-only, I/O error).",
          m.storageFaultEpisodes);
  gauge("dc_storage_failing", "1 while the database refuses writes.", m.storageFailing ? 1 : 0);
  counter("dc_pauses_detected_total",
          "Times the Console noticed it had not run on schedule (stalled storage, paused "
          "process); Defenders connected then were judged from the end of the pause.",
          m.pausesDetected);
  counter("dc_overload_refusals_total",
          "Registrations refused with 503 overloaded because too many commits were waiting.",
          m.overloadRefusals);
  out << "# HELP dc_defenders Defenders in the inventory by category and state.\n"
         "# TYPE dc_defenders gauge\n";
  for (const auto& c : summary) {
    const auto cat = inventory::categoryName(c.category);
    out << "dc_defenders{category=\"" << cat << "\",state=\"connected\"} " << c.connected << '\n';
    out << "dc_defenders{category=\"" << cat << "\",state=\"disconnected\"} "
        << (c.deployed - c.connected) << '\n';
  }
  return out.str();
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
void sendEmbed(httplib::Response& res, const embed::HttpResponse& r) {
  if (r.error) return sendError(res, *r.error);
  for (const auto& [name, value] : r.headers) res.set_header(name, value);
  res.status = r.status;
  res.set_content(r.body, r.contentType);
}

void registerEmbedRoutes(GuardedRoutes& routes, embed::EmbedService& service) {
  auto embedRoute = [&routes, &service](const char* path, embed::EndpointFormat format) {
    routes.add("POST", path,
               [&service, format](const httplib::Request& req, httplib::Response& res) {
                 embed::EmbedRequest er;
                 er.body = req.body;
                 er.contentType = req.get_header_value("Content-Type");
                 er.query = embed::QueryParams(req.params.begin(), req.params.end());
                 er.format = format;
                 sendEmbed(res, service.embed(er));
               });
  };
  embedRoute("/api/v1/defenders/fargate.json", embed::EndpointFormat::kJson);
  embedRoute("/api/v1/defenders/fargate.yaml", embed::EndpointFormat::kYaml);
  routes.add("GET", "/api/v1/defenders/app-ids",
             [&service](const httplib::Request& req, httplib::Response& res) {
               sendEmbed(res, service.listAppIds(
                                  embed::QueryParams(req.params.begin(), req.params.end())));
             });
  routes.add("GET", "/api/v1/images/entrypoints",
             [&service](const httplib::Request& req, httplib::Response& res) {
               sendEmbed(res, service.listImageEntrypoints(
                                  embed::QueryParams(req.params.begin(), req.params.end())));
             });
  routes.add("POST", "/api/v1/images/entrypoints",
             [&service](const httplib::Request& req, httplib::Response& res) {
               sendEmbed(res, service.putImageEntrypoint(req.body));
             });
  routes.add("GET", "/api/v1/registry",
             [&service](const httplib::Request& req, httplib::Response& res) {
               sendEmbed(res, service.registryScanResults(
                                  embed::QueryParams(req.params.begin(), req.params.end())));
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
                                      const Clock& clock) {
  routes.add("GET", "/api/v1/registry/credentials",
             [&store](const httplib::Request&, httplib::Response& res) {
               auto listed = store.list();
               if (!listed.ok()) return sendError(res, listed.error());
               json out = json::array();
               for (const auto& c : *listed) out.push_back(registryCredentialJson(c));
               sendPage(res, out, static_cast<long long>(out.size()));
             });
  routes.add("POST", "/api/v1/registry/credentials",
             [&store, &clock](const httplib::Request& req, httplib::Response& res,
                              const auth::Principal& who) {
               auto c = parseRegistryCredential(req.body, clock.now());
               if (!c.ok()) return sendError(res, c.error());
               auto existing = store.find(c->id);
               const bool replaced = existing.ok() && existing->has_value();
               if (auto st = store.put(*c); !st.ok()) return sendError(res, st.error());
               // Never the secret: only who stored which credential.
               spdlog::info("registry credential {} ({}) {} by {}", c->id, c->type,
                            replaced ? "replaced" : "stored",
                            who.username.empty() ? "api" : who.username);
               sendJson(res, dumpJson(registryCredentialJson(*c)), replaced ? 200 : 201);
             });
  routes.add(
      "DELETE", "/api/v1/registry/credentials/([^/]+)",
      [&store](const httplib::Request& req, httplib::Response& res, const auth::Principal& who) {
        if (auto st = store.remove(pathId(req)); !st.ok()) return sendError(res, st.error());
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
void registerAuthRoutes(GuardedRoutes& routes, auth::AuthService& service) {
  routes.add("POST", "/api/v1/authenticate",
             [&service](const httplib::Request& req, httplib::Response& res) {
               auto body = heartbeat::parseJsonObject(req.body, 4);
               if (!body.ok()) return sendError(res, body.error());
               auto username = requiredString(*body, "username");
               if (!username.ok()) return sendError(res, username.error());
               auto password = requiredString(*body, "password");
               if (!password.ok()) return sendError(res, password.error());
               auto token = service.login(*username, *password, req.remote_addr);
               if (!token.ok()) return sendError(res, token.error());
               sendJson(res, dumpJson({{"token", token->token},
                                       {"expiresAt", formatRfc3339(token->expiresAt)},
                                       {"username", token->username},
                                       {"role", auth::roleName(token->role)}}));
             });

  routes.add(
      "GET", "/api/v1/users/current",
      [&service](const httplib::Request&, httplib::Response& res, const auth::Principal& who) {
        auto u = service.findUser(who.username);
        if (!u) return sendError(res, Error::notFound("unknown_user", "no such user"));
        sendJson(res, dumpJson(userJson(*u)));
      });

  routes.add("GET", "/api/v1/users", [&service](const httplib::Request&, httplib::Response& res) {
    json out = json::array();
    for (const auto& u : service.listUsers()) out.push_back(userJson(u));
    sendPage(res, out, static_cast<long long>(out.size()));
  });

  routes.add(
      "POST", "/api/v1/users",
      [&service](const httplib::Request& req, httplib::Response& res, const auth::Principal& who) {
        auto body = heartbeat::parseJsonObject(req.body, 4);
        if (!body.ok()) return sendError(res, body.error());
        auto username = requiredString(*body, "username");
        if (!username.ok()) return sendError(res, username.error());
        auto password = requiredString(*body, "password");
        if (!password.ok()) return sendError(res, password.error());
        auto role = optionalRole(*body);
        if (!role.ok()) return sendError(res, role.error());
        if (!role->has_value())
          return sendError(res,
                           Error::invalid("missing_field", "role",
                                          "role: is required (auditor, defenderManager, admin)"));
        auto created = service.createUser(*username, *password, **role);
        if (!created.ok()) return sendError(res, created.error());
        spdlog::info("user {} created by {}", created->username, who.username);
        sendJson(res, dumpJson(userJson(*created)), 201);
      });

  routes.add("PUT", "/api/v1/users/([^/]+)",
             [&service](const httplib::Request& req, httplib::Response& res) {
               auto body = heartbeat::parseJsonObject(req.body, 4);
               if (!body.ok()) return sendError(res, body.error());
               auto password = optionalString(*body, "password");
               if (!password.ok()) return sendError(res, password.error());
               auto role = optionalRole(*body);
               if (!role.ok()) return sendError(res, role.error());
               if (!password->has_value() && !role->has_value())
                 return sendError(res,
                                  Error::invalid("missing_field", "body",
                                                 "body: give a new password, a new role or both"));
               auto updated = service.updateUser(pathId(req), *password, *role);
               if (!updated.ok()) return sendError(res, updated.error());
               sendJson(res, dumpJson(userJson(*updated)));
             });

  routes.add("DELETE", "/api/v1/users/([^/]+)",
             [&service](const httplib::Request& req, httplib::Response& res) {
               if (auto st = service.deleteUser(pathId(req)); !st.ok())
                 return sendError(res, st.error());
               sendJson(res, dumpJson({{"username", pathId(req)}, {"deleted", true}}));
             });

  routes.add("GET", "/api/v1/credentials",
             [&service](const httplib::Request&, httplib::Response& res) {
               json out = json::array();
               for (const auto& c : service.listCredentials()) out.push_back(credentialJson(c));
               sendPage(res, out, static_cast<long long>(out.size()));
             });

  routes.add("POST", "/api/v1/credentials",
             [&service](const httplib::Request& req, httplib::Response& res) {
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
               out["credential"] = issued->secret;
               sendJson(res, dumpJson(out), 201);
             });

  routes.add("DELETE", "/api/v1/credentials/([^/]+)",
             [&service](const httplib::Request& req, httplib::Response& res) {
               auto revoked = service.revokeCredential(pathId(req));
               if (!revoked.ok()) return sendError(res, revoked.error());
               sendJson(res, dumpJson(credentialJson(*revoked)));
             });
}

}  // namespace

void registerConsoleApi(httplib::Server& server, Inventory& inv, ConsoleApiOptions options) {
  installErrorHandlers(server);
  // The Console's clock on every response, so that the page counts "removal in …" from it.
  // Security headers on every response of this listener (docs/security.md): the page loads
  // only its own scripts, styles and images, cannot be framed, and nothing is MIME-sniffed.
  server.set_post_routing_handler([&inv](const httplib::Request& req, httplib::Response& res) {
    res.set_header("Date", httpDate(inv.clock().now()));
    res.set_header("Content-Security-Policy", kContentSecurityPolicy);
    res.set_header("X-Frame-Options", "DENY");
    res.set_header("X-Content-Type-Options", "nosniff");
    res.set_header("Referrer-Policy", "no-referrer");
    if (req.path.rfind("/api/", 0) == 0 || req.path == "/metrics")
      res.set_header("Cache-Control", "no-store");
  });
  const auto opts = std::make_shared<ConsoleApiOptions>(std::move(options));
  GuardedRoutes routes(server, auth::consolePermissions(), opts->auth);
  if (opts->auth) registerAuthRoutes(routes, *opts->auth);
  // Specific /api/v1/defenders/... routes first: the {hostname} route would match them.
  if (opts->embed) registerEmbedRoutes(routes, *opts->embed);
  if (opts->registryCredentials)
    registerRegistryCredentialRoutes(routes, *opts->registryCredentials, inv.clock());
  auto render = [&inv, opts](const inventory::Defender& d, TimePoint now) {
    json j = defenderJson(d, inv.judge(d, now));
    if (opts->embed) j["appIDIssued"] = !d.appId.empty() && opts->embed->isIssued(d.appId);
    return j;
  };

  routes.add("GET", "/api/v1/defenders",
             [&inv, render](const httplib::Request& req, httplib::Response& res) {
               auto q = parseDefenderQuery(paramsOf(req));
               if (!q.ok()) return sendError(res, q.error());
               auto page = inv.list(*q);
               if (!page.ok()) return sendError(res, page.error());
               const TimePoint now = inv.clock().now();
               json items = json::array();
               for (const auto& d : page->items) items.push_back(render(d, now));
               sendPage(res, items, page->total);
             });

  routes.add("GET", "/api/v1/defenders/names",
             [&inv](const httplib::Request& req, httplib::Response& res) {
               auto q = parseDefenderQuery(paramsOf(req));
               if (!q.ok()) return sendError(res, q.error());
               auto page = inv.list(*q);
               if (!page.ok()) return sendError(res, page.error());
               json names = json::array();
               for (const auto& d : page->items) names.push_back(d.hostname);
               sendPage(res, names, page->total);
             });

  routes.add("GET", "/api/v1/defenders/eviction-status",
             [opts](const httplib::Request&, httplib::Response& res) {
               if (!opts->evictionStatus)
                 return sendError(res, Error::notFound("not_found", "no outage guard"));
               sendJson(res, dumpJson(opts->evictionStatus()));
             });
  routes.add("POST", "/api/v1/defenders/eviction-status/resume",
             [opts](const httplib::Request&, httplib::Response& res, const auth::Principal& who) {
               if (!opts->resumeEvictions)
                 return sendError(res, Error::notFound("not_found", "no outage guard"));
               // The incident log names the user who resumed.
               auto status = opts->resumeEvictions(who.username.empty() ? "api" : who.username);
               if (!status.ok()) return sendError(res, status.error());
               sendJson(res, dumpJson(*status));
             });

  routes.add("GET", "/api/v1/defenders/summary",
             [&inv](const httplib::Request&, httplib::Response& res) {
               auto summary = inv.summary();
               if (!summary.ok()) return sendError(res, summary.error());
               json out = json::array();
               for (const auto& c : *summary)
                 out.push_back({{"category", inventory::categoryName(c.category)},
                                {"connected", c.connected},
                                {"disconnected", c.deployed - c.connected},
                                {"deployed", c.deployed}});
               sendJson(res, dumpJson(out));
             });

  routes.add("GET", "/api/v1/defenders/download",
             [&inv](const httplib::Request& req, httplib::Response& res) {
               // All matches from `offset` on, or `limit` of them when given.
               const Params params = paramsOf(req);
               const bool paged = params.count("limit") > 0;
               auto q = parseDefenderQuery(params);
               if (!q.ok()) return sendError(res, q.error());
               // Streamed page by page so memory stays bounded whatever the inventory size.
               auto query = std::make_shared<inventory::DefenderQuery>(*q);
               auto remaining = std::make_shared<long long>(paged ? q->limit : -1);
               auto headerSent = std::make_shared<bool>(false);
               if (!paged) query->limit = 1000;
               query->countTotal = false;  // not sent; would be counted again per page
               res.set_header("Content-Disposition", "attachment; filename=\"defenders.csv\"");
               res.set_chunked_content_provider("text/csv", [&inv, query, remaining, headerSent](
                                                                size_t, httplib::DataSink& sink) {
                 if (!*headerSent) {
                   const std::string h = csvHeader();
                   sink.write(h.data(), h.size());
                   *headerSent = true;
                 }
                 if (*remaining == 0) {
                   sink.done();
                   return true;
                 }
                 auto page = inv.list(*query);
                 if (!page.ok()) return false;  // aborts the transfer; the client sees a cut body
                 const TimePoint now = inv.clock().now();
                 std::string chunk;
                 for (const auto& d : page->items) chunk += csvRow(d, inv.judge(d, now));
                 if (!chunk.empty()) sink.write(chunk.data(), chunk.size());
                 if (query->sort == inventory::SortKey::kHostname && !page->items.empty()) {
                   // Keyset paging: the next page starts after the last hostname sent, so a
                   // long download does not re-skip every earlier row (OFFSET) on each page.
                   query->afterKey = inventory::hostnameKey(page->items.back().hostname);
                   query->offset = 0;
                 } else {
                   query->offset += static_cast<int>(page->items.size());
                 }
                 if (*remaining > 0) *remaining = 0;
                 if (page->items.size() < static_cast<size_t>(query->limit) || *remaining == 0)
                   sink.done();
                 return true;
               });
             });

  routes.add(
      "GET", "/api/v1/defenders/([^/]+)",
      [&inv, render](const httplib::Request& req, httplib::Response& res) {
        auto d = inv.find(pathId(req));
        if (!d.ok()) return sendError(res, d.error());
        if (!d->has_value())
          return sendError(
              res, Error::notFound("unknown_defender",
                                   "no Defender with hostname '" + pathId(req) + "'", "hostname"));
        sendJson(res, dumpJson(render(**d, inv.clock().now())));
      });

  routes.add(
      "DELETE", "/api/v1/defenders/([^/]+)",
      [&inv](const httplib::Request& req, httplib::Response& res, const auth::Principal& who) {
        // The audit record names the user who deleted.
        auto removed = inv.remove(pathId(req), who.username.empty() ? "api" : who.username);
        if (!removed.ok()) return sendError(res, removed.error());
        spdlog::info("Defender {} deleted through the API ({} observations removed)",
                     removed->hostname, removed->observationsRemoved);
        sendJson(res, dumpJson(auditJson(*removed)));
      });

  routes.add("GET", "/api/v1/settings/defender",
             [&inv](const httplib::Request&, httplib::Response& res) {
               sendJson(res, dumpJson(settingsJson(inv.settings())));
             });

  routes.add("POST", "/api/v1/settings/defender",
             [&inv](const httplib::Request& req, httplib::Response& res) {
               auto s = parseSettings(req.body);
               if (!s.ok()) return sendError(res, s.error());
               if (auto st = inv.updateSettings(*s); !st.ok()) return sendError(res, st.error());
               spdlog::info("settings: disconnectPeriodDays = {}", s->disconnectPeriodDays);
               sendJson(res, dumpJson(settingsJson(inv.settings())));
             });

  routes.add("GET", "/api/v1/profiles/app-embedded",
             [&inv](const httplib::Request& req, httplib::Response& res) {
               const Params params = paramsOf(req);
               auto paging = parsePaging(params);
               if (!paging.ok()) return sendError(res, paging.error());
               inventory::DefenderQuery q;
               q.offset = paging->first;
               q.limit = paging->second;
               q.category = inventory::Category::kAppEmbedded;
               auto text = [&](const char* name) -> std::optional<std::string> {
                 auto it = params.find(name);
                 if (it == params.end() || it->second.empty()) return std::nullopt;
                 return it->second;
               };
               q.hostname = text("id");
               q.appId = text("appID");
               q.container = text("container");
               q.image = text("image");
               q.cluster = text("cluster");
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

  routes.add("GET", "/api/v1/profiles/app-embedded/([^/]+)",
             [&inv](const httplib::Request& req, httplib::Response& res) {
               auto d = inv.find(pathId(req));
               if (!d.ok()) return sendError(res, d.error());
               if (!d->has_value() ||
                   inventory::categoryOf((*d)->type) != inventory::Category::kAppEmbedded)
                 return sendError(res,
                                  Error::notFound("unknown_profile",
                                                  "no App-Embedded profile '" + pathId(req) + "'"));
               auto paging = parsePaging(paramsOf(req));
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

  routes.add("GET", "/api/v1/audit/defenders",
             [&inv](const httplib::Request& req, httplib::Response& res) {
               auto paging = parsePaging(paramsOf(req));
               if (!paging.ok()) return sendError(res, paging.error());
               auto page = inv.audit(paging->first, paging->second);
               if (!page.ok()) return sendError(res, page.error());
               json items = json::array();
               for (const auto& a : page->items) items.push_back(auditJson(a));
               sendPage(res, items, page->total);
             });

  routes.add("GET", "/api/v1/version", [opts](const httplib::Request&, httplib::Response& res) {
    sendJson(res, dumpJson(json(opts->version)));
  });

  routes.add(
      "GET", "/api/v1/openapi.json", [opts](const httplib::Request&, httplib::Response& res) {
        std::ifstream in(opts->uiDir + "/openapi.json", std::ios::binary);
        if (!in)
          return sendError(
              res, Error::notFound("not_installed",
                                   "the OpenAPI document is not installed (--ui-dir)", "path"));
        std::ostringstream text;
        text << in.rdbuf();
        sendJson(res, text.str());
      });

  routes.add("GET", "/healthz", [](const httplib::Request&, httplib::Response& res) {
    sendJson(res, R"({"status":"ok"})");
  });

  routes.add("GET", "/readyz", [opts](const httplib::Request&, httplib::Response& res) {
    if (opts->ready && !opts->ready())
      return sendError(res, Error::unavailable("starting: the inventory is not loaded yet"));
    sendJson(res, R"({"status":"ready"})");
  });

  routes.add("GET", "/metrics", [&inv, opts](const httplib::Request&, httplib::Response& res) {
    auto summary = inv.summary();
    std::string text = prometheusText(
        inv.metrics(), summary.ok() ? *summary : std::vector<inventory::CategorySummary>{});
    if (opts->extraMetrics) text += opts->extraMetrics();
    res.set_content(text, "text/plain; version=0.0.4");
  });

  if (!opts->uiDir.empty()) {
    if (!server.set_mount_point("/", opts->uiDir))
      spdlog::warn("web page not served: UI directory '{}' not found", opts->uiDir);
  }
  refuseUnknownPosts(server);
}

void registerDefenderChannel(httplib::Server& server, heartbeat::DefenderChannel& channel,
                             auth::AuthService* auth) {
  installErrorHandlers(server);
  GuardedRoutes routes(server, auth::defenderChannelPermissions(), auth);
  using Call = Result<json> (heartbeat::DefenderChannel::*)(std::string_view, std::string_view);
  auto route = [&routes, &channel](const char* path, Call call) {
    routes.add("POST", path,
               [&channel, call](const httplib::Request& req, httplib::Response& res,
                                const auth::Principal& who) {
                 auto reply = (channel.*call)(req.body, who.appId);
                 if (!reply.ok()) return sendError(res, reply.error());
                 sendJson(res, dumpJson(*reply));
               });
  };
  route("/api/v1/defender/heartbeat", &heartbeat::DefenderChannel::heartbeat);
  route("/api/v1/defender/disconnect", &heartbeat::DefenderChannel::disconnect);
  route("/api/v1/defender/observations", &heartbeat::DefenderChannel::observations);
  routes.add("GET", "/healthz", [](const httplib::Request&, httplib::Response& res) {
    sendJson(res, R"({"status":"ok"})");
  });
  refuseUnknownPosts(server);
}

}  // namespace dc::web
