// Route tables of the two listeners (DESIGN §3): the Console API + UI, and the defender channel.
// Reference: docs/api.md (Console API) and docs/defender-channel.md.
#pragma once

#include <functional>
#include <memory>

#include <nlohmann/json.hpp>

#include <string>
#include "channel/asio_listener.h"
#include "channel/message.h"
#include "common/defender_version.h"
#include "common/status.h"
#include "inventory/snapshots.h"
#include "web/router.h"

namespace httplib {
class Server;
}

namespace dc::inventory {
class Inventory;
}
namespace dc::heartbeat {
class DefenderChannel;
}
namespace dc::embed {
class EmbedService;
}

namespace dc::auth {
class AuthService;
}
namespace dc::registry {
class CredentialStore;
}
namespace dc::audit {
class AuditLog;
}
namespace dc::history {
class FleetHistory;
}
namespace dc::views {
class ViewStore;
}

namespace dc::web {

struct ConsoleApiOptions {
  std::string version;  // Console build version, header X-Console-Version of GET /api/v1/version
  /// The Defender version the Console deploys: the body of `GET /api/v1/version` (vendor
  /// shape, a JSON string "34.01.132") and what each Defender's `outdated` and
  /// `compatibleVersion` compare with.
  DefenderVersion defenderVersion = *parseDeployedVersion(kDefaultDefenderVersion);
  std::string uiDir;  // static files of the web page, served at `/`; empty = no UI
  /// Extra Prometheus text appended to /metrics (e.g. the sweeper's counters).
  std::function<std::string()> extraMetrics;
  /// Ready for traffic (store open, inventory loaded). /readyz answers 503 until true.
  std::function<bool()> ready;
  /// The embed flow (POST /api/v1/defenders/fargate.{json,yaml}, App IDs, image entrypoints);
  /// null = not served. Also marks each Defender's `appIDIssued`.
  embed::EmbedService* embed = nullptr;
  /// Outage guard: `GET /api/v1/defenders/eviction-status` answers evictionStatus();
  /// `POST /api/v1/defenders/eviction-status/resume` calls resumeEvictions(actor) and answers
  /// the new status (409 "not_paused" when nothing was paused). Unset = the routes answer 404.
  std::function<nlohmann::json()> evictionStatus;
  std::function<Result<nlohmann::json>(const std::string& actor)> resumeEvictions;
  /// Bounds of the cursor-paging snapshots (docs/api.md "Cursor paging").
  inventory::SnapshotLimits cursorLimits;
  /// Access control (docs/security.md): every route but sign-in and the probes needs a Console
  /// user; also serves POST /api/v1/authenticate, /api/v1/users and /api/v1/credentials.
  /// Null only in in-process tests of the handlers: then nothing is checked.
  auth::AuthService* auth = nullptr;
  /// Registry credentials for the embed flow's registry reads: GET/POST
  /// /api/v1/registry/credentials, DELETE /api/v1/registry/credentials/{id}; null = not served.
  registry::CredentialStore* registryCredentials = nullptr;
  /// The general audit log (docs/security.md "Audit log"): every change and security event
  /// made through this API is recorded there, and GET /api/v1/audit/events{,/download} read
  /// it. Null: nothing is recorded and those routes answer 404.
  audit::AuditLog* audit = nullptr;
  /// The fleet over time: GET /api/v1/defenders/history. Null: that route answers 404.
  history::FleetHistory* history = nullptr;
  /// How long the fleet history keeps samples (shown in its answer), in days.
  int historyRetentionDays = 30;
  /// Told after DELETE /api/v1/defenders/{hostname} (or the bulk delete) removed a Defender (e.g. to push `removed`
  /// to its WebSocket), with the removed hostname. Runs on the request's thread; must not block.
  std::function<void(const std::string& hostname)> defenderDeleted;
  /// Told after POST /api/v1/settings/defender changed the settings (pushes `settings`).
  std::function<void()> settingsChanged;
  /// Saved views of the web page, per user: GET/POST /api/v1/views, DELETE
  /// /api/v1/views/{name}. Null: those routes answer 404.
  views::ViewStore* views = nullptr;
};

/// Console API + UI routes: /api/v1/defenders (list, names, summary, download, {id}, DELETE,
/// image-name, install-bundle), /api/v1/_ping,
/// /api/v1/settings/defender, /api/v1/profiles/app-embedded, /api/v1/audit/defenders,
/// /api/v1/audit/events{,/download},
/// /api/v1/version, /api/v1/openapi.json, /healthz, /readyz, /metrics, the embed flow, and the
/// UI under `/`, as one Router (web/router.h: 404 JSON for unknown routes, 500 JSON for a
/// handler that throws), served by either front of the Console listener
/// (web/console_front.h). The post-routing handler sets the Console's Date and the security
/// headers. `inventory` and the services in `options` must outlive the router.
std::shared_ptr<Router> consoleApiRouter(inventory::Inventory& inventory,
                                         ConsoleApiOptions options);

/// consoleApiRouter() served on a cpp-httplib server (serveOnHttplib, web/console_front.h).
void registerConsoleApi(httplib::Server& server, inventory::Inventory& inventory,
                        ConsoleApiOptions options);

/// Defender channel routes: POST /api/v1/defender/{heartbeat,disconnect,observations}, each
/// needing a Defender credential (`Authorization: Bearer dcd1_…`) whose App ID scope the
/// channel enforces, plus /healthz. A WebSocket upgrade (`GET /` or `/api/v1/defender/ws` with
/// `Upgrade: websocket`) is answered 400 websocket_unsupported: this front has none. `auth` null:
/// nothing is checked (in-process tests only).
void registerDefenderChannel(httplib::Server& server, heartbeat::DefenderChannel& channel,
                             auth::AuthService* auth);

/// The defender channel's routes, independent of the HTTP front (both fronts call this; the
/// cpp-httplib one through registerDefenderChannel, the event-driven one directly): the routes
/// above, the Defender credential checked per request (401 with `WWW-Authenticate: Bearer`,
/// codes of AuthService::authenticateDefender), then the DefenderChannel call and its JSON
/// reply or error; 404 not_found (field path) for any other method or path. Thread-safe; may
/// block until the inventory has made a heartbeat durable.
channel::Response serveDefenderChannel(heartbeat::DefenderChannel& channel, auth::AuthService* auth,
                                       const channel::Request& request);

/// The WebSocket transport of the defender channel (docs/defender-channel.md, "WebSocket
/// transport"; the event-driven front only). At the upgrade: the Defender credential is checked
/// once (the refusals of serveDefenderChannel) and bound to the connection.
channel::WsUpgrade authorizeDefenderUpgrade(auth::AuthService* auth,
                                            const channel::Request& upgrade);

/// One WebSocket message, answered by the same route as its HTTP POST
/// (`/api/v1/defender/<type>`) with the bound credential's App ID scope. The credential is
/// checked again first: revoked (or deleted) closes the connection 1008 credential_revoked.
/// A type without a route closes it 1008 unknown_type. Once bound to a hostname key
/// (`boundKey`, set by the first heartbeat answered 200 through WsAnswer::bindKey), a message
/// about another hostname is answered 400 hostname_mismatch (field hostname), nothing written.
channel::WsAnswer serveDefenderMessage(heartbeat::DefenderChannel& channel, auth::AuthService* auth,
                                       const channel::WsBinding& binding,
                                       const std::string& boundKey,
                                       const channel::WsMessage& message);

/// JSON error bodies for httplib's own errors (404, 413, 400) and exceptions, on `server`.
void installErrorHandlers(httplib::Server& server);

}  // namespace dc::web
