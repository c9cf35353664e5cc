#include "web/routes.h"

#include <httplib.h>

#include <fstream>
#include <sstream>

#include <spdlog/spdlog.h>

#include "common/time_format.h"
#include "embed/handler.h"
#include "heartbeat/channel.h"
#include "inventory/inventory.h"
#include "web/http_errors.h"
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
        sendError(res, Error::invalid("bad_request", "", "malformed HTTP request"));
        break;
      default:
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

void registerEmbedRoutes(httplib::Server& server, embed::EmbedService& service) {
  auto embedRoute = [&server, &service](const char* path, embed::EndpointFormat format) {
    server.Post(path, [&service, format](const httplib::Request& req, httplib::Response& res) {
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
  server.Get("/api/v1/defenders/app-ids", [&service](const httplib::Request& req,
                                                     httplib::Response& res) {
    sendEmbed(res, service.listAppIds(embed::QueryParams(req.params.begin(), req.params.end())));
  });
  server.Get("/api/v1/images/entrypoints",
             [&service](const httplib::Request& req, httplib::Response& res) {
               sendEmbed(res, service.listImageEntrypoints(
                                  embed::QueryParams(req.params.begin(), req.params.end())));
             });
  server.Post("/api/v1/images/entrypoints",
              [&service](const httplib::Request& req, httplib::Response& res) {
                sendEmbed(res, service.putImageEntrypoint(req.body));
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

void registerConsoleApi(httplib::Server& server, Inventory& inv, ConsoleApiOptions options) {
  installErrorHandlers(server);
  // The Console's clock on every response, so that the page counts "removal in …" from it.
  server.set_post_routing_handler([&inv](const httplib::Request&, httplib::Response& res) {
    res.set_header("Date", httpDate(inv.clock().now()));
  });
  const auto opts = std::make_shared<ConsoleApiOptions>(std::move(options));
  // Specific /api/v1/defenders/... routes first: the {hostname} route would match them.
  if (opts->embed) registerEmbedRoutes(server, *opts->embed);
  auto render = [&inv, opts](const inventory::Defender& d, TimePoint now) {
    json j = defenderJson(d, inv.judge(d, now));
    if (opts->embed) j["appIDIssued"] = !d.appId.empty() && opts->embed->isIssued(d.appId);
    return j;
  };

  server.Get("/api/v1/defenders",
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

  server.Get("/api/v1/defenders/names",
             [&inv](const httplib::Request& req, httplib::Response& res) {
               auto q = parseDefenderQuery(paramsOf(req));
               if (!q.ok()) return sendError(res, q.error());
               auto page = inv.list(*q);
               if (!page.ok()) return sendError(res, page.error());
               json names = json::array();
               for (const auto& d : page->items) names.push_back(d.hostname);
               sendPage(res, names, page->total);
             });

  server.Get("/api/v1/defenders/summary", [&inv](const httplib::Request&, httplib::Response& res) {
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

  server.Get(
      "/api/v1/defenders/download", [&inv](const httplib::Request& req, httplib::Response& res) {
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
        res.set_header("Content-Disposition", "attachment; filename=\"defenders.csv\"");
        res.set_chunked_content_provider(
            "text/csv", [&inv, query, remaining, headerSent](size_t, httplib::DataSink& sink) {
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
                // Keyset paging: the next page starts after the last hostname sent, so a long
                // download does not re-skip every earlier row (OFFSET) on each page.
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

  server.Get("/api/v1/defenders/([^/]+)", [&inv, render](const httplib::Request& req,
                                                         httplib::Response& res) {
    auto d = inv.find(pathId(req));
    if (!d.ok()) return sendError(res, d.error());
    if (!d->has_value())
      return sendError(
          res, Error::notFound("unknown_defender",
                               "no Defender with hostname '" + pathId(req) + "'", "hostname"));
    sendJson(res, dumpJson(render(**d, inv.clock().now())));
  });

  server.Delete("/api/v1/defenders/([^/]+)",
                [&inv](const httplib::Request& req, httplib::Response& res) {
                  auto removed = inv.remove(pathId(req), "api");
                  if (!removed.ok()) return sendError(res, removed.error());
                  spdlog::info("Defender {} deleted through the API ({} observations removed)",
                               removed->hostname, removed->observationsRemoved);
                  sendJson(res, dumpJson(auditJson(*removed)));
                });

  server.Get("/api/v1/settings/defender", [&inv](const httplib::Request&, httplib::Response& res) {
    sendJson(res, dumpJson(settingsJson(inv.settings())));
  });

  server.Post("/api/v1/settings/defender",
              [&inv](const httplib::Request& req, httplib::Response& res) {
                auto s = parseSettings(req.body);
                if (!s.ok()) return sendError(res, s.error());
                if (auto st = inv.updateSettings(*s); !st.ok()) return sendError(res, st.error());
                spdlog::info("settings: disconnectPeriodDays = {}", s->disconnectPeriodDays);
                sendJson(res, dumpJson(settingsJson(inv.settings())));
              });

  server.Get("/api/v1/profiles/app-embedded",
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

  server.Get("/api/v1/profiles/app-embedded/([^/]+)", [&inv](const httplib::Request& req,
                                                             httplib::Response& res) {
    auto d = inv.find(pathId(req));
    if (!d.ok()) return sendError(res, d.error());
    if (!d->has_value() || inventory::categoryOf((*d)->type) != inventory::Category::kAppEmbedded)
      return sendError(
          res, Error::notFound("unknown_profile", "no App-Embedded profile '" + pathId(req) + "'"));
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

  server.Get("/api/v1/audit/defenders",
             [&inv](const httplib::Request& req, httplib::Response& res) {
               auto paging = parsePaging(paramsOf(req));
               if (!paging.ok()) return sendError(res, paging.error());
               auto page = inv.audit(paging->first, paging->second);
               if (!page.ok()) return sendError(res, page.error());
               json items = json::array();
               for (const auto& a : page->items) items.push_back(auditJson(a));
               sendPage(res, items, page->total);
             });

  server.Get("/api/v1/version", [opts](const httplib::Request&, httplib::Response& res) {
    sendJson(res, dumpJson(json(opts->version)));
  });

  server.Get("/api/v1/openapi.json", [opts](const httplib::Request&, httplib::Response& res) {
    std::ifstream in(opts->uiDir + "/openapi.json", std::ios::binary);
    if (!in)
      return sendError(
          res, Error::notFound("not_installed", "the OpenAPI document is not installed (--ui-dir)",
                               "path"));
    std::ostringstream text;
    text << in.rdbuf();
    sendJson(res, text.str());
  });

  server.Get("/healthz", [](const httplib::Request&, httplib::Response& res) {
    sendJson(res, R"({"status":"ok"})");
  });

  server.Get("/readyz", [opts](const httplib::Request&, httplib::Response& res) {
    if (opts->ready && !opts->ready())
      return sendError(res, Error::unavailable("starting: the inventory is not loaded yet"));
    sendJson(res, R"({"status":"ready"})");
  });

  server.Get("/metrics", [&inv, opts](const httplib::Request&, httplib::Response& res) {
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
}

void registerDefenderChannel(httplib::Server& server, heartbeat::DefenderChannel& channel) {
  installErrorHandlers(server);
  using Call = Result<json> (heartbeat::DefenderChannel::*)(std::string_view);
  auto route = [&server, &channel](const char* path, Call call) {
    server.Post(path, [&channel, call](const httplib::Request& req, httplib::Response& res) {
      auto reply = (channel.*call)(req.body);
      if (!reply.ok()) return sendError(res, reply.error());
      sendJson(res, dumpJson(*reply));
    });
  };
  route("/api/v1/defender/heartbeat", &heartbeat::DefenderChannel::heartbeat);
  route("/api/v1/defender/disconnect", &heartbeat::DefenderChannel::disconnect);
  route("/api/v1/defender/observations", &heartbeat::DefenderChannel::observations);
  server.Get("/healthz", [](const httplib::Request&, httplib::Response& res) {
    sendJson(res, R"({"status":"ok"})");
  });
}

}  // namespace dc::web
