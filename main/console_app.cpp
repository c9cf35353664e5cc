#include "main/console_app.h"

#include <httplib.h>

#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <optional>
#include <thread>

#include <spdlog/spdlog.h>

#include "audit/log.h"
#include "auth/crypto.h"
#include "auth/service.h"
#include "auth/tls.h"
#include "channel/asio_listener.h"
#include "cleanup/sweeper.h"
#include "common/instance_lock.h"
#include "common/prometheus.h"
#include "common/sql_database.h"
#include "common/time_format.h"
#include "embed/handler.h"
#include "embed/sql_store.h"
#include "heartbeat/channel.h"
#include "history/fleet_history.h"
#include "inventory/inventory.h"
#include "inventory/pg_store.h"
#include "inventory/sqlite_store.h"
#include "registry/client.h"
#include "registry/credentials.h"
#include "registry/resolver.h"
#include "views/saved_views.h"
#include "web/console_front.h"
#include "web/http_listener.h"
#include "web/render.h"
#include "web/routes.h"

#ifndef DC_DEFAULT_UI_DIR
#define DC_DEFAULT_UI_DIR ""
#endif

namespace dc {

namespace {

// Build and process figures for /metrics (Prometheus conventions): the version as a label of a
// constant 1, resident memory and open file descriptors read from /proc/self (Linux proc(5):
// statm's second field is resident pages), and each listener's open connections.
std::string processMetricsText(const std::string& version, std::optional<size_t> consoleConnections,
                               std::optional<size_t> defenderConnections) {
  prometheus::Writer out;
  out.family("dc_build_info", "The Console's build: version label, value 1.",
             prometheus::Type::kGauge)
      .sample({{"version", version}}, 1);
  long long pages = 0, resident = 0;
  if (std::ifstream statm("/proc/self/statm"); statm >> pages >> resident)
    out.gauge("process_resident_memory_bytes", "Resident memory (RSS).",
              resident * ::sysconf(_SC_PAGESIZE));
  std::error_code ec;
  long long fds = 0;
  for (std::filesystem::directory_iterator it("/proc/self/fd", ec), end; !ec && it != end;
       it.increment(ec))
    ++fds;
  if (!ec && fds > 0)  // minus the descriptor that reads the directory
    out.gauge("process_open_fds", "Open file descriptors.", fds - 1);
  out.family("dc_open_connections",
             "Connections being served or waiting for a worker, per listener.",
             prometheus::Type::kGauge);
  if (consoleConnections) out.sample({{"listener", "console"}}, *consoleConnections);
  if (defenderConnections) out.sample({{"listener", "defender"}}, *defenderConnections);
  return out.take();
}

// Retry-After of a defender-channel request shed for overload. It is answered before its body is
// read, so the Defender's hostname is unknown: the client address keys the stable share of
// heartbeat::retryAfterSeconds instead (each Fargate task has an address of its own).
int shedRetryAfter(const httplib::Request& req) {
  return heartbeat::retryAfterSeconds(req.remote_addr, {});
}

// The event-driven front sheds after the body is read: the Defender's hostname, when the body
// names one, keys the stable share; the client address otherwise.
int shedRetryAfterAsio(const channel::Request& req) {
  auto body = nlohmann::json::parse(req.body, nullptr, /*allow_exceptions=*/false);
  if (body.is_object())
    if (auto h = body.find("hostname"); h != body.end() && h->is_string())
      return heartbeat::retryAfterSeconds(h->get_ref<const std::string&>(), {});
  return heartbeat::retryAfterSeconds(req.remoteAddr, {});
}

/// The WebSocket sessions of the defender channel, in Prometheus text.
std::string webSocketMetricsText(const channel::AsioListenerLoad& l) {
  prometheus::Writer out;
  out.gauge("dc_defender_ws_sessions", "Open WebSocket sessions of the defender channel.",
            l.wsSessions);
  out.counter("dc_defender_ws_messages_total", "WebSocket messages answered (result frames).",
              l.wsMessages);
  out.counter("dc_defender_ws_pushes_total",
              "WebSocket push messages sent (settings, removed, backoff).", l.wsPushes);
  out.family("dc_defender_ws_closes_total",
             "WebSocket sessions ended, by close code (1006: without a close handshake).",
             prometheus::Type::kCounter);
  for (const auto& [code, n] : l.wsCloses) {
    const std::string codeText = std::to_string(code);
    out.sample({{"code", codeText}}, n);
  }
  return out.take();
}

}  // namespace

/// How often a replica on PostgreSQL reads users and Defender credentials again: a change made
/// on another replica (a revoked credential, a changed password) applies here within this.
constexpr Millis kAuthRefreshPeriod{5000};

struct ConsoleApp::Impl {
  ConsoleConfig config;
  const Clock& clock;
  std::string version;
  std::optional<InstanceLock> lock;  // one Console per database file (common/instance_lock.h)
  std::unique_ptr<inventory::Store> store;
  std::unique_ptr<inventory::Inventory> inventory;
  std::unique_ptr<heartbeat::DefenderChannel> channel;
  std::unique_ptr<cleanup::Sweeper> sweeper;
  std::unique_ptr<embed::EmbedStore> embedStore;
  std::unique_ptr<embed::EmbedService> embed;
  std::unique_ptr<registry::CredentialStore> registryCredentials;
  registry::RegistryClient registryClient;
  std::unique_ptr<registry::EntrypointResolver> registryResolver;
  std::unique_ptr<cleanup::SweepScheduler> scheduler;
  std::unique_ptr<auth::AuthStore> authStore;
  std::unique_ptr<audit::AuditLog> audit;
  /// Audit log, saved views, fleet history, users and credentials, issued App IDs and image
  /// entrypoints, registry credentials.
  std::shared_ptr<sql::Database> tables;
  std::unique_ptr<views::ViewStore> views;
  std::unique_ptr<history::FleetHistory> history;
  std::unique_ptr<history::HistorySampler> historySampler;
  std::unique_ptr<auth::AuthService> auth;
  std::optional<std::string> generatedAdminPassword;
  std::string tlsCert, tlsKey;
  std::unique_ptr<web::HttpListener> consoleListener;   // --console-front httplib
  std::unique_ptr<channel::AsioListener> consoleAsio;   // --console-front asio
  std::unique_ptr<web::HttpListener> defenderListener;  // --defender-front httplib
  std::unique_ptr<channel::AsioListener> defenderAsio;  // --defender-front asio
  std::atomic<bool> ready{false};

  /// On PostgreSQL, where other replicas change users, credentials and settings too: reloads
  /// them into the AuthService and the Inventory every kAuthRefreshPeriod (docs/operations.md
  /// "Replicas on one PostgreSQL database").
  std::thread authRefresher;
  std::mutex refreshMu;
  std::condition_variable refreshWake;
  bool refreshStop = false;  // guarded by refreshMu

  void startAuthRefresher() {
    authRefresher = std::thread([this] {
      std::unique_lock lock(refreshMu);
      while (!refreshWake.wait_for(lock, kAuthRefreshPeriod, [this] { return refreshStop; })) {
        lock.unlock();
        if (auto st = auth->reload(); !st.ok())
          spdlog::warn("users and credentials not reloaded: {}", st.error().message);
        if (auto st = inventory->reloadSettings(); !st.ok())
          spdlog::warn("Defender settings not reloaded: {}", st.error().message);
        lock.lock();
      }
    });
  }
  void stopAuthRefresher() {
    {
      std::lock_guard lock(refreshMu);
      refreshStop = true;
    }
    refreshWake.notify_all();
    if (authRefresher.joinable()) authRefresher.join();
  }

  /// The defender channel's admission figures, whichever front serves it: queued = requests
  /// (asio) or connections (httplib) waiting for a worker; busy = being served.
  web::ListenerLoad defenderLoad() const {
    if (defenderAsio) {
      const auto l = defenderAsio->load();
      return {l.queued, l.busy, l.shed};
    }
    return defenderListener ? defenderListener->load() : web::ListenerLoad{};
  }
  std::optional<size_t> consoleConnections() const {
    if (consoleAsio) return consoleAsio->load().connections;
    if (consoleListener) {
      const auto l = consoleListener->load();
      return l.busy + l.queued;
    }
    return std::nullopt;
  }
  std::optional<size_t> defenderConnections() const {
    if (defenderAsio) return defenderAsio->load().connections;
    if (defenderListener) {
      const auto l = defenderListener->load();
      return l.busy + l.queued;
    }
    return std::nullopt;
  }

  /// Tells the WebSocket sessions of Defender `hostname` that it was removed ("deleted" or
  /// "evicted"): it registers again with its next heartbeat.
  void pushRemoved(const std::string& hostname, const char* reason) const {
    if (!defenderAsio) return;
    defenderAsio->pushTo(
        inventory::hostnameKey(hostname),
        nlohmann::json{{"type", "removed"}, {"hostname", hostname}, {"reason", reason}}.dump());
  }
  /// Tells every WebSocket session the heartbeat interval.
  void pushSettings() const {
    if (!defenderAsio) return;
    defenderAsio->pushAll(nlohmann::json{
        {"type", "settings"},
        {"intervalSeconds",
         static_cast<double>(inventory->liveness().heartbeatInterval.count()) /
             1000.0}}.dump());
  }

  Impl(ConsoleConfig c, const Clock& k, std::string v)
      : config(std::move(c)), clock(k), version(std::move(v)) {}
};

ConsoleApp::ConsoleApp(ConsoleConfig config, const Clock& clock, std::string version)
    : impl_(std::make_unique<Impl>(std::move(config), clock, std::move(version))) {}

ConsoleApp::~ConsoleApp() {
  stop();
}

Status ConsoleApp::start(bool startScheduler) {
  auto& m = *impl_;
  const auto& c = m.config;
  const std::string dbPath = c.databasePath();
  const bool postgres = c.onPostgres();
  if (postgres) {
    // Replicas share the database: no file lock, and the stores' rules for several writers hold
    // (docs/operations.md "PostgreSQL").
    spdlog::info("database: PostgreSQL at {}", c.databaseForLogs());
    // Keys and the self-signed certificate still live in the data directory.
    std::error_code ec;
    std::filesystem::create_directories(c.dataDir.empty() ? std::string(".") : c.dataDir, ec);
    if (ec)
      return Error{ErrorKind::kUnavailable, "data_dir",
                   "cannot create the data directory " + c.dataDir + ": " + ec.message(),
                   "data-dir"};
    auto store = inventory::openPgStore({.url = dbPath, .poolSize = c.databasePool});
    if (!store.ok()) return store.error();
    m.store = std::move(store).value();
  } else {
    if (dbPath != ":memory:") {
      std::error_code ec;
      std::filesystem::create_directories(std::filesystem::path(dbPath).parent_path().empty()
                                              ? std::filesystem::path(".")
                                              : std::filesystem::path(dbPath).parent_path(),
                                          ec);
      if (ec)
        return Error{ErrorKind::kUnavailable, "data_dir",
                     "cannot create the directory of " + dbPath + ": " + ec.message(), "data-dir"};
      // Before anything is read or written: a second Console on this file is refused.
      auto lock = InstanceLock::acquire(dbPath + ".lock");
      if (!lock.ok()) return lock.error();
      m.lock.emplace(std::move(lock).value());
    }
    auto store = inventory::openSqliteStore({dbPath});
    if (!store.ok()) return store.error();
    m.store = std::move(store).value();
    if (dbPath != ":memory:") {
      // The database holds password hashes and credential digests: owner-only, like the keys
      // (also one created before this rule, or by a process with a wider umask).
      std::error_code ec;
      for (const char* suffix : {"", "-wal", "-shm"})
        std::filesystem::permissions(
            dbPath + suffix,
            std::filesystem::perms::owner_read | std::filesystem::perms::owner_write,
            std::filesystem::perm_options::replace, ec);
    }
  }

  inventory::InventoryOptions io;
  io.liveness.heartbeatInterval = c.heartbeatInterval;
  io.liveness.grace = c.effectiveGrace();
  io.flushInterval = c.flushInterval;
  // A loop that should run every flush interval and did not for this long means the Console
  // itself was stalled or paused.
  io.pauseThreshold = c.pauseThreshold.value_or(std::max<Millis>(Seconds(2), 5 * c.flushInterval));
  io.defenderVersion = c.defenderVersion;
  // Replicas (DESIGN §7): this process's id names its alive time and its sweeper lease. On a
  // database other replicas share, a gap since the newest alive time of any replica shorter
  // than a pause is not downtime (some replica was running). A SQLite file has one Console
  // (InstanceLock): every gap counts, as before replicas.
  const bool sharedDatabase = postgres;
  // The database is the truth on PostgreSQL: reads, counts and eviction candidates come from
  // it, so a replica sees what any replica wrote (docs/operations.md "What each replica sees").
  io.sharedDatabase = sharedDatabase;
  io.replicaId = inventory::newReplicaId();
  io.downtimeThreshold = sharedDatabase ? io.pauseThreshold : Millis(0);
  spdlog::info("replica id {}", io.replicaId);
  m.inventory = std::make_unique<inventory::Inventory>(*m.store, m.clock, io);
  if (auto st = m.inventory->start(); !st.ok()) return st;

  m.channel =
      std::make_unique<heartbeat::DefenderChannel>(*m.inventory, heartbeat::ChannelOptions{});
  // The stores with a few tables of their own share one connection (SQLite) or one pool
  // (PostgreSQL) to the same database.
  auto tables = sql::openDatabase(dbPath, "console");
  if (!tables.ok()) return tables.error();
  m.tables = std::move(tables).value();
  // The general audit log (docs/security.md "Audit log").
  auto auditLog = audit::AuditLog::open(m.tables, m.clock);
  if (!auditLog.ok()) return auditLog.error();
  m.audit = std::move(auditLog).value();
  // Saved views of the web page (docs/api.md "Saved views").
  auto savedViews = views::ViewStore::open(m.tables, m.clock);
  if (!savedViews.ok()) return savedViews.error();
  m.views = std::move(savedViews).value();

  // The fleet over time (docs/api.md "Fleet history"): a sample a minute, kept 30 days.
  auto fleetHistory = history::FleetHistory::open(
      m.tables, [this]() -> Result<std::vector<history::CategoryCounts>> {
        auto summary = impl_->inventory->summary();
        if (!summary.ok()) return summary.error();
        std::vector<history::CategoryCounts> out;
        for (const auto& c : *summary)
          out.push_back({std::string(inventory::categoryName(c.category)), c.connected,
                         c.deployed - c.connected, 0});
        return out;
      });
  if (!fleetHistory.ok()) return fleetHistory.error();
  m.history = std::move(fleetHistory).value();

  cleanup::SweepOptions so;
  so.onEvicted = [this](const std::vector<inventory::AuditRecord>& evicted) {
    std::vector<audit::Event> events;
    for (const auto& a : evicted) {
      audit::Event e;
      e.at = a.at;
      e.kind = std::string(audit::kDefenderEvicted);
      e.user = a.actor;
      e.detail = web::removalDetail(a);
      events.push_back(std::move(e));
    }
    for (const auto& a : evicted)
      impl_->history->noteEvicted(inventory::categoryName(inventory::categoryOf(a.type)), 1);
    if (auto st = impl_->audit->record(std::move(events)); !st.ok())
      spdlog::error("{} evictions not copied to the audit log: {}", evicted.size(),
                    st.error().message);
    for (const auto& a : evicted) impl_->pushRemoved(a.hostname, "evicted");
  };
  so.period = c.sweepInterval;
  so.leaseTtl = c.sweeperLeaseTtl;
  so.leaseRenewEvery = c.sweeperLeaseRenewEvery();
  // Room for heartbeats other replicas received but have not written yet (one flush interval
  // while their storage keeps up), twice over (docs/operations.md "Which replica sweeps").
  // None on a SQLite file: no other replica writes it.
  so.unflushedMargin = sharedDatabase ? 2 * c.flushInterval : Millis(0);
  so.outage = {.threshold = c.outageThreshold, .minFleet = c.outageMinFleet};
  so.heartbeatsWaiting = [this] { return impl_->defenderLoad().queued; };
  m.sweeper = std::make_unique<cleanup::Sweeper>(*m.inventory, so);

  // Access control: users and Defender credentials in the same database; the token signing key
  // in <dataDir>/token.key (0600), or only in memory for a throw-away (":memory:") database. On
  // PostgreSQL the key is kept in the database (console_secrets), so that every replica signs
  // and verifies with the same key.
  auto authStore = auth::openAuthStore(m.tables);
  if (!authStore.ok()) return authStore.error();
  m.authStore = std::move(authStore).value();
  auth::AuthOptions ao;
  ao.passwordIterations = c.passwordIterations;
  ao.tokenLifetime = c.tokenLifetime;
  ao.failuresAllowed = c.failedSignInsAllowed;
  if (m.tables->backend() == sql::Backend::kPostgres) {
    auto key = auth::loadOrCreateSharedSecret(*m.tables, "token_key", 32);
    if (!key.ok()) return key.error();
    ao.tokenKey = std::move(key).value();
    ao.sharedStore = true;
  } else if (dbPath != ":memory:") {
    auto key = auth::loadOrCreateSecretFile(
        (std::filesystem::path(c.dataDir.empty() ? "." : c.dataDir) / "token.key").string(), 32);
    if (!key.ok()) return key.error();
    ao.tokenKey = std::move(key).value();
  }
  m.auth = std::make_unique<auth::AuthService>(*m.authStore, m.clock, ao);
  if (auto st = m.auth->start(); !st.ok()) return st;

  if (!c.plainHttp) {
    if (!c.tlsCert.empty()) {
      m.tlsCert = c.tlsCert;
      m.tlsKey = c.tlsKey;
    } else {
      const std::string dir =
          (std::filesystem::path(c.dataDir.empty() ? "." : c.dataDir) / "tls").string();
      auto files = auth::ensureSelfSignedCertificate(dir, {c.host});
      if (!files.ok()) return files.error();
      if (files->generated)
        spdlog::info("generated a self-signed TLS certificate: {}", files->certFile);
      m.tlsCert = files->certFile;
      m.tlsKey = files->keyFile;
    }
  }

  auto embedStore = embed::openEmbedStore(m.tables);
  if (!embedStore.ok()) return embedStore.error();
  m.embedStore = std::move(embedStore).value();
  embed::EmbedConfig ec;
  ec.defenderPort = c.defenderPort;
  // The tag carries the Defender version the way the vendor's automation reads it.
  ec.sidecarImage = "defender-console/fargate-defender:" + defenderImageTag(c.defenderVersion);
  ec.defenderTls = !c.plainHttp;
  ec.issueCredential = [this](const std::string& appId,
                              const std::string& description) -> Result<std::string> {
    auto issued = impl_->auth->issueCredential(appId, description);
    if (!issued.ok()) return issued.error();
    return issued->secret;
  };
  // Registry credentials, sealed with the key in <dataDir>/registry.key (0600); for a
  // throw-away database the key lives only in memory. The key stays a file on PostgreSQL too
  // (kept next to what it seals it would protect nothing): replicas need the same file.
  std::string registryKey = auth::randomBytes(32);
  if (dbPath != ":memory:") {
    auto key = auth::loadOrCreateSecretFile(
        (std::filesystem::path(c.dataDir.empty() ? "." : c.dataDir) / "registry.key").string(), 32);
    if (!key.ok()) return key.error();
    registryKey = std::move(key).value();
  }
  auto credentials = registry::openCredentialStore(m.tables, std::move(registryKey));
  if (!credentials.ok()) return credentials.error();
  m.registryCredentials = std::move(credentials).value();
  registry::ResolverSettings rs;
  rs.caFile = c.registryCa;
  rs.requestTimeout = c.registryRequestTimeout;
  rs.fetchDeadline = c.registryBudget;
  m.registryResolver = std::make_unique<registry::EntrypointResolver>(
      m.registryClient, m.registryCredentials.get(), m.clock, rs);
  ec.registryBudget = c.registryBudget;
  ec.readFromRegistry = [this](const embed::RegistryLookup& l) -> Result<embed::ImageConfig> {
    auto r = impl_->registryResolver->resolve(registry::ResolveRequest{
        l.image, l.registryType, l.credentialId, l.cpuArchitecture, l.budget});
    if (!r.ok()) {
      spdlog::warn("registry read of {} failed: {} ({})", l.image, r.error().message,
                   r.error().code);
      return r.error();
    }
    spdlog::info("read the entrypoint of {} from its registry (manifest {}{})", l.image,
                 r->manifestDigest, r->platform.empty() ? "" : ", " + r->platform);
    return embed::ImageConfig{std::move(r->entrypoint), std::move(r->cmd)};
  };
  m.embed = std::make_unique<embed::EmbedService>(*m.embedStore, m.clock, ec);

  web::ConsoleApiOptions api;
  api.version = m.version;
  api.defenderVersion = c.defenderVersion;
  api.uiDir = c.uiDir.empty() ? std::string(DC_DEFAULT_UI_DIR) : c.uiDir;
  api.extraMetrics = [this] {
    std::string text = impl_->sweeper->metricsText(impl_->clock.now()) +
                       processMetricsText(impl_->version, impl_->consoleConnections(),
                                          impl_->defenderConnections());
    {
      const auto load = impl_->defenderLoad();
      prometheus::Writer out;
      out.gauge("dc_defender_channel_queued", "Defender-channel connections waiting for a worker.",
                load.queued);
      out.gauge("dc_defender_channel_busy", "Defender-channel connections being served.",
                load.busy);
      out.counter("dc_defender_channel_shed_total",
                  "Defender-channel requests answered 503 overloaded because the queue was full.",
                  load.shed);
      text += out.text();
    }
    if (impl_->defenderAsio) text += webSocketMetricsText(impl_->defenderAsio->load());
    return text;
  };
  api.ready = [this] { return impl_->ready.load(); };
  api.embed = m.embed.get();
  api.registryCredentials = m.registryCredentials.get();
  api.evictionStatus = [this] { return evictionStatusJson(); };
  api.cursorLimits = {c.cursorTtl, c.cursorMaxSnapshots, c.cursorMaxMiB << 20};
  api.resumeEvictions = [this](const std::string& actor) -> Result<nlohmann::json> {
    if (!impl_->sweeper->outageGuard().resume(impl_->clock.now(), actor))
      return Error{
          ErrorKind::kConflict, "not_paused", "evictions are not paused; nothing to resume", {}};
    return evictionStatusJson();
  };
  api.auth = m.auth.get();
  api.defenderDeleted = [this](const std::string& hostname) {
    impl_->pushRemoved(hostname, "deleted");
  };
  api.settingsChanged = [this] { impl_->pushSettings(); };
  api.audit = m.audit.get();
  api.views = m.views.get();
  api.history = m.history.get();
  auto router = web::consoleApiRouter(*m.inventory, api);
  if (c.consoleFront == "asio") {
    m.consoleAsio = std::make_unique<channel::AsioListener>(
        channel::AsioListenerOptions{
            .name = "console",
            .host = c.host,
            .port = c.consolePort,
            .ioThreads = c.consoleIoThreads,
            .workers = c.consoleThreads,
            .maxQueued = c.consoleMaxQueued,
            .maxBodyBytes = c.consoleMaxBodyBytes,
            .headerTimeoutSeconds = c.consoleHeaderTimeoutSeconds,
            .idleTimeoutSeconds = c.consoleIdleTimeoutSeconds,
            .maxConnectionsPerAddress = c.consoleMaxConnectionsPerAddress,
            .shedRetryAfter = {},
            .decorate = [router](
                            const channel::Request& req,
                            channel::Response& res) { web::decorateOnAsio(*router, req, res); },
            .tlsCertFile = m.tlsCert,
            .tlsKeyFile = m.tlsKey,
            .clientCaFile = {},
            .webSocket = {},
            .clock = &m.clock},
        [router](const channel::Request& req) { return web::serveOnAsio(*router, req); });
  } else {
    m.consoleListener = std::make_unique<web::HttpListener>(
        web::ListenerOptions{.name = "console",
                             .host = c.host,
                             .port = c.consolePort,
                             .threads = c.consoleThreads,
                             .maxBodyBytes = c.consoleMaxBodyBytes,
                             .maxQueued = 0,
                             .shedRetryAfter = {},
                             .tlsCertFile = m.tlsCert,
                             .tlsKeyFile = m.tlsKey,
                             .clientCaFile = {}});
    web::serveOnHttplib(m.consoleListener->server(), router);
  }

  Result<int> defenderPort = 0;
  if (c.defenderFront == "asio") {
    channel::AsioListenerOptions ao{.name = "defender channel",
                                    .host = c.host,
                                    .port = c.defenderPort,
                                    .ioThreads = c.defenderIoThreads,
                                    .workers = c.defenderThreads,
                                    .maxQueued = c.defenderMaxQueued,
                                    .maxBodyBytes = c.defenderMaxBodyBytes,
                                    .headerTimeoutSeconds = c.defenderHeaderTimeoutSeconds,
                                    .idleTimeoutSeconds = c.defenderIdleTimeoutSeconds,
                                    .maxConnectionsPerAddress = c.defenderMaxConnectionsPerAddress,
                                    .shedRetryAfter = shedRetryAfterAsio,
                                    .decorate = {},
                                    .tlsCertFile = m.tlsCert,
                                    .tlsKeyFile = m.tlsKey,
                                    .clientCaFile = c.defenderClientCa,
                                    .webSocket = {}};
    // The WebSocket transport (docs/defender-channel.md): the credential checked once at the
    // upgrade, then each message answered by the same route as its HTTP POST.
    ao.webSocket.authorize = [auth = m.auth.get()](const channel::Request& req) {
      return web::authorizeDefenderUpgrade(auth, req);
    };
    ao.webSocket.handle = [channel = m.channel.get(), auth = m.auth.get()](
                              const channel::WsBinding& binding, const std::string& boundKey,
                              const channel::WsMessage& message) {
      return web::serveDefenderMessage(*channel, auth, binding, boundKey, message);
    };
    ao.webSocket.pingSeconds = c.defenderWsPingSeconds;
    ao.clock = &m.clock;  // the drain bound of a stop
    m.defenderAsio = std::make_unique<channel::AsioListener>(
        std::move(ao),
        [channel = m.channel.get(), auth = m.auth.get()](const channel::Request& req) {
          return web::serveDefenderChannel(*channel, auth, req);
        });
    // The defender channel first: the embed flow writes its bound port (`--defender-port 0`)
    // into every protected task definition, so it must be known before the API serves.
    defenderPort = m.defenderAsio->start();
  } else {
    m.defenderListener = std::make_unique<web::HttpListener>(
        web::ListenerOptions{.name = "defender channel",
                             .host = c.host,
                             .port = c.defenderPort,
                             .threads = c.defenderThreads,
                             .maxBodyBytes = c.defenderMaxBodyBytes,
                             .maxQueued = c.defenderMaxQueued,
                             .workerNice = c.defenderNice,
                             .shedRetryAfter = shedRetryAfter,
                             .tlsCertFile = m.tlsCert,
                             .tlsKeyFile = m.tlsKey,
                             .clientCaFile = c.defenderClientCa});
    web::registerDefenderChannel(m.defenderListener->server(), *m.channel, m.auth.get());
    defenderPort = m.defenderListener->start();
  }
  if (!defenderPort.ok()) return defenderPort.error();
  m.embed->setDefenderPort(*defenderPort);
  if (auto p = m.consoleAsio ? m.consoleAsio->start() : m.consoleListener->start(); !p.ok()) {
    if (m.defenderListener) m.defenderListener->stop();
    if (m.defenderAsio) m.defenderAsio->stop();
    return p.error();
  }

  // The first admin only once the Console is sure to run: a generated password must not be
  // stored by a start that then fails (bad certificate, port in use) and is never shown.
  auto generated = m.auth->bootstrapAdmin(c.adminPassword);
  if (!generated.ok()) {
    stop();
    return generated.error();
  }
  m.generatedAdminPassword = std::move(generated).value();

  if (startScheduler) {
    m.scheduler = std::make_unique<cleanup::SweepScheduler>(*m.sweeper, m.clock, c.sweepInterval);
    m.scheduler->start();
    m.historySampler =
        std::make_unique<history::HistorySampler>(*m.history, m.clock, c.historyInterval);
    m.historySampler->start();
  }
  if (m.tables->backend() == sql::Backend::kPostgres) m.startAuthRefresher();
  m.ready = true;
  return Status::success();
}

void ConsoleApp::stop() {
  auto& m = *impl_;
  m.ready = false;
  if (m.defenderListener) m.defenderListener->stop();
  if (m.defenderAsio) m.defenderAsio->stop();
  if (m.consoleListener) m.consoleListener->stop();
  if (m.consoleAsio) m.consoleAsio->stop();
  if (m.historySampler) m.historySampler->stop();
  if (m.scheduler) m.scheduler->stop();
  m.stopAuthRefresher();
  if (m.inventory) m.inventory->stop();
  m.lock.reset();  // nothing is written after the final flush
}

int ConsoleApp::consolePort() const {
  return impl_->consoleAsio ? impl_->consoleAsio->port() : impl_->consoleListener->port();
}
int ConsoleApp::defenderPort() const {
  return impl_->defenderAsio ? impl_->defenderAsio->port() : impl_->defenderListener->port();
}
inventory::Inventory& ConsoleApp::inventory() {
  return *impl_->inventory;
}
nlohmann::json ConsoleApp::evictionStatusJson() const {
  const auto s = impl_->sweeper->outageGuard().status();
  const auto held = impl_->sweeper->heldBack(impl_->clock.now());
  nlohmann::json out{{"paused", s.paused},
                     {"pausedSeconds", held.pausedFor.count() / 1000},
                     {"heldBack", held.due},
                     {"incidents", s.incidents},
                     {"threshold", s.options.threshold},
                     {"minFleet", s.options.minFleet},
                     {"graceSeconds", impl_->inventory->liveness().grace.count() / 1000},
                     {"incident", nullptr}};
  if (s.incident) {
    const auto& i = *s.incident;
    out["incident"] = {
        {"startedAt", formatRfc3339(i.startedAt)},
        {"fleetSince", formatRfc3339(i.since)},
        {"fleet", i.latest.fleet},
        {"silent", i.latest.silent},
        {"fleetAtStart", i.atStart.fleet},
        {"silentAtStart", i.atStart.silent},
        {"endedAt",
         i.endedAt ? nlohmann::json(formatRfc3339(*i.endedAt)) : nlohmann::json(nullptr)},
        {"endedBy", i.endedAt ? nlohmann::json(i.endedBy) : nlohmann::json(nullptr)}};
  }
  return out;
}

history::FleetHistory& ConsoleApp::fleetHistory() {
  return *impl_->history;
}

cleanup::Sweeper& ConsoleApp::sweeper() {
  return *impl_->sweeper;
}
auth::AuthService& ConsoleApp::auth() {
  return *impl_->auth;
}
bool ConsoleApp::tls() const {
  return !impl_->tlsCert.empty();
}
std::string ConsoleApp::tlsCertFile() const {
  return impl_->tlsCert;
}
std::optional<std::string> ConsoleApp::takeGeneratedAdminPassword() {
  auto p = std::move(impl_->generatedAdminPassword);
  impl_->generatedAdminPassword.reset();
  return p;
}

}  // namespace dc
