#include "inventory/inventory.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <functional>
#include <random>

#include <spdlog/spdlog.h>

#include "common/time_format.h"

namespace dc::inventory {

namespace {

Error unknownDefender(const std::string& hostname, std::string_view hint = {}) {
  return Error::notFound("unknown_defender",
                         "no Defender with hostname '" + hostname + "'" + std::string(hint),
                         "hostname");
}

double seconds(Millis d) {
  return static_cast<double>(d.count()) / 1000.0;
}

}  // namespace

std::optional<Millis> PauseDetector::overslept(Millis planned,
                                               std::chrono::steady_clock::time_point began,
                                               std::chrono::steady_clock::time_point ended) const {
  if (threshold_.count() <= 0) return std::nullopt;
  const auto over = std::chrono::duration_cast<Millis>(ended - began) - planned;
  if (over <= threshold_) return std::nullopt;
  return over;
}

std::string newReplicaId() {
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) != 0 || host[0] == '\0') std::strcpy(host, "console");
  std::string id(host, std::min<size_t>(std::strlen(host), 40));
  std::random_device rd;
  char hex[16];
  std::snprintf(hex, sizeof hex, "-%08x", static_cast<unsigned>(rd()));
  id += hex;
  return id;
}

Inventory::Inventory(Store& store, const Clock& clock, InventoryOptions options)
    : store_(store),
      clock_(clock),
      options_(options),
      replicaId_(options_.replicaId.empty() ? newReplicaId() : options_.replicaId) {}

Inventory::~Inventory() {
  stop();
}

Status Inventory::start(bool startFlusher) {
  auto settings = store_.loadSettings();
  if (!settings.ok()) return settings.error();
  const TimePoint now = clock_.now();
  auto alive = store_.loadConsoleAlive();
  if (!alive.ok()) return alive.error();
  // Downtime discount (DESIGN §4): a Defender connected when the Console stopped (no graceful
  // disconnect, judgedFrom ≥ stoppedAt − G) is judged from now. Applied in memory while loading;
  // the changed rows are written behind in bounded chunks (discountBacklog_), not in one
  // statement that would rewrite every row before the Console could serve. "Stopped" is the
  // newest alive time of any replica: while another replica runs, the Console was not down.
  const std::optional<TimePoint> stoppedAt =
      alive->has_value() && now - **alive > options_.downtimeThreshold ? *alive
                                                                       : std::optional<TimePoint>();
  if (alive->has_value() && !stoppedAt && **alive < now)
    spdlog::info(
        "replica {}: a Console on this database (another replica, or this one before a restart) "
        "was alive {:.1f} s ago; no downtime to discount",
        replicaId_, seconds(now - **alive));
  std::vector<std::string> backlog;
  const auto t0 = std::chrono::steady_clock::now();
  // Only the liveness columns: descriptive fields stay in the Store.
  std::unordered_map<std::string, LiveState> loaded;
  if (auto n = store_.countDefenders(); n.ok()) loaded.reserve(static_cast<size_t>(*n));
  auto st = store_.forEachLiveness([&](const StoredLiveness& l) {
    LiveState& s = loaded[l.key];
    s.registeredAt = l.registeredAt;
    s.lastSeen = l.lastSeen;
    s.judgedFrom = l.judgedFrom;
    s.connectedSince = l.connectedSince;
    s.gracefulAt = l.gracefulDisconnectAt;
    s.clockSkewMs = l.clockSkewMs;
    s.type = l.type;
    s.appId = internAppId(l.appId);
    s.fingerprint = l.fingerprint;
    s.resourceHash = resourceHash(l.resourceId);
    if (stoppedAt && connected(s.judgedFrom, s.gracefulAt, *stoppedAt, options_.liveness.grace) &&
        s.judgedFrom < now) {
      s.judgedFrom = now;
      backlog.push_back(l.key);
    }
    return true;
  });
  if (!st.ok()) return st;
  const auto t1 = std::chrono::steady_clock::now();
  if (!backlog.empty())
    spdlog::info(
        "Console was down {:.0f} s (since its last complete write); {} {} connected then {} "
        "judged from now",
        seconds(now - *stoppedAt), backlog.size(), backlog.size() == 1 ? "Defender" : "Defenders",
        backlog.size() == 1 ? "is" : "are");
  // The stored "alive" time moves on only once the discount is stored (see flushLocked), so a
  // crash before that discounts the same Defenders again at the next start.
  if (backlog.empty()) {
    WriteBatch aliveNow;
    aliveNow.consoleAlive = now;
    aliveNow.replica = replicaId_;
    if (auto w = store_.write(aliveNow); !w.ok()) return w;
  }
  {
    std::lock_guard lock(stateMutex_);
    live_ = std::move(loaded);
    index_.reset(connectedCutoff(now, options_.liveness.grace));
    std::vector<std::pair<const std::string*, LiveIndex::Entry>> entries;
    entries.reserve(live_.size());
    for (const auto& [key, s] : live_) entries.emplace_back(&key, indexEntry(s));
    index_.addAll(std::move(entries));
    discountBacklog_ = std::move(backlog);
    settings_ = *settings;
    started_ = true;
    stopping_ = false;
  }
  const auto t2 = std::chrono::steady_clock::now();
  auto ms = [](auto d) { return std::chrono::duration_cast<Millis>(d).count(); };
  spdlog::info("inventory loaded: {} Defenders in {} ms (read {} ms, index {} ms)", live_.size(),
               ms(t2 - t0), ms(t1 - t0), ms(t2 - t1));
  if (startFlusher) flusher_ = std::thread([this] { flusherLoop(); });
  return Status::success();
}

void Inventory::stop() {
  {
    std::lock_guard lock(stateMutex_);
    if (!started_) return;
    stopping_ = true;
    started_ = false;
  }
  wake_.notify_all();
  if (flusher_.joinable()) flusher_.join();
  std::lock_guard w(writeMutex_);
  // Every pending heartbeat and observation, in bounded chunks, until a write fails. A downtime
  // discount not yet stored may stay so: "alive" then stays put and the next start applies it.
  for (;;) {
    if (auto st = flushLocked(); !st.ok()) {
      spdlog::error("final flush failed: {}", st.error().message);
      return;
    }
    std::lock_guard lock(stateMutex_);
    if (pending_.empty() && pendingObservations_.empty()) return;
  }
}

Inventory::LiveState Inventory::liveStateOf(const Defender& d) {
  LiveState s;
  s.registeredAt = d.registeredAt;
  s.lastSeen = d.lastSeen;
  s.judgedFrom = d.judgedFrom;
  s.connectedSince = d.connectedSince;
  s.gracefulAt = d.gracefulDisconnectAt;
  s.clockSkewMs = d.clockSkewMs;
  s.type = d.type;
  s.appId = internAppId(d.appId);
  s.fingerprint = descriptiveFingerprint(d);
  s.resourceHash = resourceHash(resourceIdOf(d));
  return s;
}

const std::string* Inventory::internAppId(const std::string& appId) {
  if (appId.empty()) return &kNoAppId;
  return &*appIds_.insert(appId).first;
}

std::optional<std::string> Inventory::appIdOf(const std::string& hostname) {
  const std::string key = hostnameKey(hostname);
  if (options_.sharedDatabase) {
    bool known;
    {
      std::lock_guard lock(stateMutex_);
      known = live_.contains(key);
    }
    // Registered at another replica: its App ID is the stored one.
    if (!known) (void)readThrough(key);
  }
  std::lock_guard lock(stateMutex_);
  auto it = live_.find(key);
  if (it == live_.end()) return std::nullopt;
  return *it->second.appId;
}

void Inventory::applyLiveState(const LiveState& s, Defender& d) const {
  d.registeredAt = s.registeredAt;
  d.lastSeen = s.lastSeen;
  d.judgedFrom = s.judgedFrom;
  d.connectedSince = s.connectedSince;
  d.gracefulDisconnectAt = s.gracefulAt;
  d.clockSkewMs = s.clockSkewMs;
}

Status Inventory::readThrough(const std::string& key) {
  auto row = store_.findDefender(key);
  if (!row.ok()) {
    spdlog::debug("stored row of {} not read: {}", key, row.error().message);
    return row.error();
  }
  std::lock_guard lock(stateMutex_);
  auto it = live_.find(key);
  if (!row->has_value()) {
    // Deleted or evicted elsewhere: forgotten here too (a heartbeat registers it anew), unless
    // this replica still has a write of it to make (one in flight included).
    if (it != live_.end() && !pending_.contains(key) && inFlight_ == 0) {
      index_.remove(it->first, indexEntry(it->second));
      live_.erase(it);
    }
    return Status::success();
  }
  const Defender& d = **row;
  if (it == live_.end()) {
    const auto placed = live_.try_emplace(key, liveStateOf(d)).first;
    index_.add(placed->first, indexEntry(placed->second));
    return Status::success();
  }
  LiveState& s = it->second;
  // Newer than here: another replica stored a later heartbeat or a disconnect (lastSeen only
  // moves forward; a disconnect keeps it and sets graceful_at).
  const bool newer = d.lastSeen > s.lastSeen || storedDisconnectIsNewer(s, d) ||
                     (d.lastSeen == s.lastSeen && !pending_.contains(key) &&
                      (d.judgedFrom > s.judgedFrom || d.gracefulDisconnectAt != s.gracefulAt));
  if (!newer) return Status::success();
  const LiveIndex::Entry before = indexEntry(s);
  const LiveState fresh = liveStateOf(d);
  s.registeredAt = fresh.registeredAt;
  s.lastSeen = fresh.lastSeen;
  s.judgedFrom = fresh.judgedFrom;
  s.connectedSince = fresh.connectedSince;
  s.gracefulAt = fresh.gracefulAt;
  s.clockSkewMs = fresh.clockSkewMs;
  s.type = fresh.type;
  s.appId = fresh.appId;
  if (fresh.resourceHash != 0) s.resourceHash = fresh.resourceHash;
  if (!pending_.contains(key)) s.fingerprint = fresh.fingerprint;
  index_.update(it->first, before, indexEntry(s));
  return Status::success();
}

bool Inventory::storedDisconnectIsNewer(const LiveState& s, const Defender& stored) {
  return stored.gracefulDisconnectAt && !s.gracefulAt && *stored.gracefulDisconnectAt >= s.lastSeen;
}

void Inventory::overlayShared(const std::string& key, Defender& d) const {
  const auto it = live_.find(key);
  if (it == live_.end()) return;
  const LiveState& s = it->second;
  // A graceful disconnect stored (by another replica) no earlier than this replica's newest
  // heartbeat is newer than anything here; the store would refuse this replica's older write.
  if (storedDisconnectIsNewer(s, d)) return;
  const auto p = pending_.find(key);
  const bool pending = p != pending_.end();
  if (pending && p->second.descriptiveChanged && p->second.defender.lastSeen >= d.lastSeen)
    d = p->second.defender;
  // This replica's state when it is newer than the stored row: a heartbeat not written yet, or
  // a downtime discount (judgedFrom moved on) still in the backlog.
  if (s.lastSeen > d.lastSeen ||
      (s.lastSeen == d.lastSeen && (pending || s.judgedFrom > d.judgedFrom)))
    applyLiveState(s, d);
}

Liveness Inventory::judge(const Defender& d, TimePoint now) const {
  int days;
  {
    std::lock_guard lock(stateMutex_);
    days = settings_.disconnectPeriodDays;
  }
  return inventory::judge(d, now, options_.liveness, days);
}

uint64_t Inventory::waitTicket() {
  return openGeneration_;
}

Status Inventory::awaitDurable(uint64_t ticket) {
  std::unique_lock lock(stateMutex_);
  urgent_ = true;
  wake_.notify_one();
  const bool done = durable_.wait_for(lock, options_.durableTimeout, [&] {
    return committedGeneration_ >= ticket || failedGeneration_ >= ticket || stopping_;
  });
  if (committedGeneration_ >= ticket) return Status::success();
  if (failedGeneration_ >= ticket)
    return Error::unavailable("the write could not be stored (" + lastFlushError_.message +
                              "); it is kept and retried");
  if (!done) return Error::unavailable("storage is slow: the write is queued but not yet durable");
  return Error::unavailable("the Console is shutting down");
}

Inventory::PendingWrite& Inventory::pendingFor(const std::string& key, TimePoint now) {
  auto [it, fresh] = pending_.try_emplace(key);
  if (fresh) {
    it->second.oldestUnwritten = now;
    pendingOrder_.push_back(key);
  }
  return it->second;
}

void Inventory::markDurable(const std::string& key, PendingWrite& p) {
  if (p.durable) return;
  p.durable = true;
  ++pendingDurable_;
  durableKeys_.push_back(key);
}

Result<HeartbeatOutcome> Inventory::recordHeartbeat(
    Defender d, std::optional<TimePoint> defenderTime,
    const std::function<bool(const std::string& storedAppId)>& mayUpdate) {
  const TimePoint now = clock_.now();
  const std::string key = hostnameKey(d.hostname);
  const uint64_t fp = descriptiveFingerprint(d);
  if (options_.sharedDatabase) {
    // Unknown here or disconnected here: another replica may have registered it or seen it
    // since. The stored row decides whether this is a registration, a reconnection or a
    // refresh (one point read; a connected Defender this replica knows needs none).
    bool mustCommitHere;
    {
      std::lock_guard lock(stateMutex_);
      const auto known = live_.find(key);
      mustCommitHere =
          known == live_.end() || !connected(known->second.judgedFrom, known->second.gracefulAt,
                                             now, options_.liveness.grace);
    }
    // Unread (the database is down): judged on what is here; the durable write then fails.
    if (mustCommitHere) (void)readThrough(key);
  }
  HeartbeatOutcome outcome;
  uint64_t ticket = 0;
  {
    std::lock_guard lock(stateMutex_);
    ++metrics_.heartbeats;
    // Admission: a heartbeat that must be committed before its answer is refused up front
    // (nothing kept) while the store fails writes or too many commits are waiting.
    const auto known = live_.find(key);
    if (known != live_.end() && mayUpdate && !mayUpdate(*known->second.appId))
      return Error{ErrorKind::kPermissionDenied, "app_id_mismatch",
                   "appID: Defender " + d.hostname +
                       " is registered under another App ID than this credential's",
                   "appID"};
    const uint64_t reportedResource = resourceHash(resourceIdOf(d));
    if (known != live_.end())
      if (auto e = identityConflict(d.hostname, known->second, d.type, resourceIdOf(d))) return *e;
    const bool mustCommit =
        known == live_.end() || !connected(known->second.judgedFrom, known->second.gracefulAt, now,
                                           options_.liveness.grace);
    const auto waiting = pending_.find(key);
    const bool uncommitted = waiting != pending_.end() && waiting->second.durable;
    if ((mustCommit || uncommitted) && failingSince_) return storageFault();
    if (mustCommit && !uncommitted && pendingDurable_ >= options_.maxPendingDurable) {
      ++metrics_.overloadRefusals;
      return Error{ErrorKind::kUnavailable,
                   "overloaded",
                   "too many registrations are waiting to be stored; retry later",
                   {}};
    }
    auto [it, inserted] = live_.try_emplace(key);
    LiveState& s = it->second;
    const LiveIndex::Entry before = indexEntry(s);
    if (inserted) {
      outcome = HeartbeatOutcome::kRegistered;
      s.registeredAt = now;
      s.connectedSince = now;
      ++metrics_.registrations;
    } else if (!connected(s.judgedFrom, s.gracefulAt, now, options_.liveness.grace)) {
      outcome = HeartbeatOutcome::kReconnected;
      s.connectedSince = now;
      ++metrics_.reconnections;
    } else {
      outcome = HeartbeatOutcome::kRefreshed;
    }
    s.lastSeen = now;
    s.judgedFrom = std::max(s.judgedFrom, now);
    s.gracefulAt.reset();
    if (defenderTime) s.clockSkewMs = (*defenderTime - now).count();
    s.type = d.type;
    if (*s.appId != d.appId) s.appId = internAppId(d.appId);
    if (reportedResource != 0) s.resourceHash = reportedResource;
    if (inserted)
      index_.add(it->first, indexEntry(s));
    else
      index_.update(it->first, before, indexEntry(s));
    applyLiveState(s, d);

    PendingWrite& p = pendingFor(key, now);
    // On a shared database a registration or reconnection writes the whole row: one deleted
    // or evicted elsewhere since it was read is stored again, not lost to a touch of nothing.
    p.descriptiveChanged = p.descriptiveChanged || inserted || fp != s.fingerprint ||
                           (options_.sharedDatabase && outcome != HeartbeatOutcome::kRefreshed);
    s.fingerprint = fp;
    p.defender = std::move(d);
    if (outcome != HeartbeatOutcome::kRefreshed) markDurable(key, p);
    if (p.durable) ticket = waitTicket();
  }
  if (ticket != 0)
    if (auto st = awaitDurable(ticket); !st.ok()) return st.error();
  return outcome;
}

Result<Defender> Inventory::recordDisconnect(const std::string& hostname,
                                             std::string_view resourceId) {
  const TimePoint now = clock_.now();
  const std::string key = hostnameKey(hostname);
  // Shared database: judged on the newest stored liveness (another replica may have seen a
  // later heartbeat, whose lastSeen an older disconnect could not overwrite).
  // Unknown here and unread (the database is down): 503, not 404 (it may be stored).
  Status unread = Status::success();
  if (options_.sharedDatabase) unread = readThrough(key);
  uint64_t ticket;
  Defender out;
  {
    std::lock_guard lock(stateMutex_);
    auto it = live_.find(key);
    if (it == live_.end()) {
      if (!unread.ok()) return unread.error();
      return unknownDefender(hostname);
    }
    LiveState& s = it->second;
    if (auto e = identityConflict(hostname, s, s.type, resourceId)) return *e;
    if (failingSince_) return storageFault();
    if (!s.gracefulAt) {
      const LiveIndex::Entry before = indexEntry(s);
      // A Defender already timed out keeps its earlier disconnect time.
      s.gracefulAt = connected(s.judgedFrom, std::nullopt, now, options_.liveness.grace)
                         ? now
                         : s.judgedFrom + options_.liveness.grace;
      index_.update(it->first, before, indexEntry(s));
      ++metrics_.gracefulDisconnects;
    }
    const bool fresh = !pending_.contains(key);
    PendingWrite& p = pendingFor(key, now);
    if (fresh) {
      p.defender.hostname = hostname;
      p.defender.type = s.type;
    }
    applyLiveState(s, p.defender);
    markDurable(key, p);
    out = p.defender;
    ticket = waitTicket();
  }
  if (auto st = awaitDurable(ticket); !st.ok()) return st.error();
  return out;
}

Status Inventory::recordObservations(const std::string& hostname, std::vector<Observation> batch,
                                     std::string_view resourceId) {
  const TimePoint now = clock_.now();
  const std::string key = hostnameKey(hostname);
  // Unknown here and unread (the database is down): 503, not 404 (it may be stored).
  Status unread = Status::success();
  if (options_.sharedDatabase) {
    bool known;
    {
      std::lock_guard lock(stateMutex_);
      known = live_.contains(key);
    }
    if (!known) unread = readThrough(key);  // registered at another replica
  }
  uint64_t ticket;
  {
    std::lock_guard lock(stateMutex_);
    auto it = live_.find(key);
    if (it == live_.end()) {
      if (!unread.ok()) return unread.error();
      return unknownDefender(hostname, "; send a heartbeat first");
    }
    LiveState& s = it->second;
    if (auto e = identityConflict(hostname, s, s.type, resourceId)) return *e;
    if (failingSince_) return storageFault();
    const double elapsed = static_cast<double>((now - s.observationRefill).count()) / 1000.0;
    s.observationTokens = s.observationTokens < 0
                              ? options_.observationBurst
                              : std::min(options_.observationBurst,
                                         s.observationTokens + std::max(0.0, elapsed) *
                                                                   options_.observationsPerSecond);
    s.observationRefill = now;
    if (static_cast<double>(batch.size()) > s.observationTokens)
      return Error{ErrorKind::kRateLimited, "observation_rate_limited",
                   "Defender '" + hostname + "' sends more than " +
                       std::to_string(static_cast<int>(options_.observationsPerSecond)) +
                       " observations per second; retry later",
                   "observations"};
    s.observationTokens -= static_cast<double>(batch.size());
    if (pendingObservations_.size() + batch.size() > options_.maxPendingObservations)
      return Error{ErrorKind::kRateLimited,
                   "observations_backlog",
                   "too many observations are waiting to be stored; retry later",
                   {}};
    for (auto& o : batch) {
      o.receivedAt = now;
      pendingObservations_.emplace_back(key, std::move(o));
    }
    metrics_.observationsAccepted += batch.size();
    ticket = waitTicket();
  }
  return awaitDurable(ticket);
}

Status Inventory::flush() {
  std::lock_guard w(writeMutex_);
  return flushLocked();
}

Status Inventory::flushLocked() {
  WriteBatch batch;
  std::unordered_map<std::string, PendingWrite> taken;
  std::vector<std::pair<std::string, Observation>> observations;
  std::vector<std::string> discounted;  // keys from discountBacklog_ written by this flush
  uint64_t generation;
  bool complete;                   // nothing is left unwritten after this flush
  bool discountCompletes = false;  // this flush writes the last of the downtime discount
  {
    std::lock_guard lock(stateMutex_);
    const size_t cap = std::max<size_t>(1, options_.maxFlushRows);
    if (pending_.size() <= cap) {
      taken.swap(pending_);
      pendingDurable_ = 0;
      pendingOrder_.clear();
      durableKeys_.clear();
    } else {
      // Bounded: every durable write (a request waits for it), then the oldest refreshes up to
      // the cap (first pending, first written: none waits behind newer ones); the rest stays
      // pending for the next flush, which follows at once.
      for (const auto& key : durableKeys_)
        if (auto node = pending_.extract(key)) taken.insert(std::move(node));
      durableKeys_.clear();
      pendingDurable_ = 0;
      while (taken.size() < cap && !pendingOrder_.empty()) {
        // Keys taken or removed since they were queued are skipped.
        if (auto node = pending_.extract(pendingOrder_.front())) taken.insert(std::move(node));
        pendingOrder_.pop_front();
      }
    }
    while (taken.size() + discounted.size() < cap && !discountBacklog_.empty()) {
      std::string key = std::move(discountBacklog_.back());
      discountBacklog_.pop_back();
      // A pending heartbeat carries the new liveness itself; a removed Defender needs nothing.
      if (taken.contains(key) || pending_.contains(key)) continue;
      auto it = live_.find(key);
      if (it == live_.end()) continue;
      Defender d;
      d.hostname = key;
      d.type = it->second.type;
      applyLiveState(it->second, d);
      batch.touches.push_back(std::move(d));
      discounted.push_back(std::move(key));
    }
    complete = pending_.empty() && discountBacklog_.empty();
    inFlight_ = taken.size() + discounted.size();
    if (complete && !discounted.empty()) discountCompletes = true;
    observations.swap(pendingObservations_);
    urgent_ = false;
    backlogged_ = !complete;
    generation = openGeneration_++;
  }
  const TimePoint now = clock_.now();
  TimePoint oldest = now;
  for (auto& [key, p] : taken) {
    oldest = std::min(oldest, p.oldestUnwritten);
    (p.descriptiveChanged ? batch.upserts : batch.touches).push_back(std::move(p.defender));
  }
  batch.observations = std::move(observations);
  // "Alive" tells the next start from when to discount downtime; it moves on only when the
  // stored liveness is complete, so a crash during a backlog never under-discounts.
  if (complete) {
    batch.consoleAlive = now;
    batch.replica = replicaId_;
  }
  // Shared database: a liveness-only write that finds no row tells that the Defender was
  // deleted or evicted elsewhere.
  std::vector<std::string> goneElsewhere;
  if (options_.sharedDatabase) batch.missingTouches = &goneElsewhere;
  const Status st = store_.write(batch);

  std::lock_guard lock(stateMutex_);
  inFlight_ = 0;
  if (st.ok()) {
    // Forgotten here as after a delete on this replica: its next heartbeat registers it anew.
    // A registration waiting here (a whole-row write) stands: it stores the row again.
    size_t forgotten = 0;
    for (const auto& key : goneElsewhere) {
      auto p = pending_.find(key);
      if (p != pending_.end() && p->second.descriptiveChanged) continue;
      if (p != pending_.end()) {
        if (p->second.durable) --pendingDurable_;
        pending_.erase(p);
      }
      if (auto it = live_.find(key); it != live_.end()) {
        index_.remove(it->first, indexEntry(it->second));
        live_.erase(it);
        ++forgotten;
      }
    }
    if (forgotten > 0)
      spdlog::info("{} {} removed by another replica: forgotten here", forgotten,
                   forgotten == 1 ? "Defender was" : "Defenders were");
    if (discountCompletes)
      spdlog::info("downtime discount stored: every Defender's liveness is written");
    if (failingSince_) {
      spdlog::warn(
          "storage accepts writes again after {:.0f} s: {} Defenders and {} observations kept "
          "meanwhile are stored",
          seconds(now - *failingSince_), taken.size(), batch.observations.size());
      failingSince_.reset();
    }
    committedGeneration_ = std::max(committedGeneration_, generation);
    ++metrics_.flushes;
    const double lag = seconds(now - oldest);
    metrics_.lastFlushLagSeconds = lag;
    metrics_.maxFlushLagSeconds = std::max(metrics_.maxFlushLagSeconds, lag);
  } else {
    // Keep everything for the next attempt; newer pending state wins over what was taken. The
    // rows were moved into the batch in this same iteration order (after the discounted ones).
    size_t upsert = 0, touch = discounted.size();
    for (auto& [key, p] : taken) {
      p.defender =
          std::move(p.descriptiveChanged ? batch.upserts[upsert++] : batch.touches[touch++]);
      if (!live_.contains(key)) continue;  // removed meanwhile
      const bool durable = p.durable;
      auto [it, fresh] = pending_.try_emplace(key, std::move(p));
      if (!fresh) {
        it->second.descriptiveChanged = it->second.descriptiveChanged || p.descriptiveChanged;
        it->second.oldestUnwritten = std::min(it->second.oldestUnwritten, p.oldestUnwritten);
      } else {
        it->second.durable = false;     // counted again just below
        pendingOrder_.push_front(key);  // written first next time
      }
      if (durable) markDurable(key, it->second);
    }
    pendingObservations_.insert(pendingObservations_.begin(),
                                std::make_move_iterator(batch.observations.begin()),
                                std::make_move_iterator(batch.observations.end()));
    discountBacklog_.insert(discountBacklog_.end(), std::make_move_iterator(discounted.begin()),
                            std::make_move_iterator(discounted.end()));
    failedGeneration_ = std::max(failedGeneration_, generation);
    lastFlushError_ = st.error();
    ++metrics_.flushFailures;
    if (!failingSince_) {
      // One line per fault episode, not one per attempt or request.
      failingSince_ = now;
      ++metrics_.storageFaultEpisodes;
      spdlog::error(
          "storage does not accept writes: {}. Registrations, disconnects and observations are "
          "answered 503 until it recovers; reads keep working; {} pending writes are kept and "
          "retried every flush interval",
          st.error().message, pending_.size() + pendingObservations_.size());
    }
  }
  durable_.notify_all();
  return st;
}

void Inventory::flusherLoop() {
  const PauseDetector pause(options_.pauseThreshold);
  std::unique_lock lock(stateMutex_);
  while (!stopping_) {
    // With a backlog (a bounded flush left work behind) the next flush follows after a short
    // breath, so that reads and sweeps waiting for the writer get their turn.
    const Millis planned =
        backlogged_ ? std::min(options_.flushInterval, Millis(10)) : options_.flushInterval;
    const auto began = std::chrono::steady_clock::now();
    const bool woken = wake_.wait_for(lock, planned, [&] { return urgent_ || stopping_; });
    const auto ended = std::chrono::steady_clock::now();
    if (stopping_) break;
    lock.unlock();
    // Sleeping far beyond the plan means the Console itself did not run (a paused or starved
    // process), which must not count against Defenders.
    if (!woken)
      if (auto paused = pause.overslept(planned, began, ended))
        (void)noteResumed(clock_.now() - *paused);
    {
      std::lock_guard w(writeMutex_);
      if (auto st = flushLocked(); !st.ok())
        spdlog::debug("flush failed, will retry: {}", st.error().message);
    }
    lock.lock();
  }
}

size_t Inventory::noteResumed(TimePoint pausedAt) {
  const TimePoint now = clock_.now();
  // Shared database: the rows are every replica's. Another replica that ran meanwhile saw the
  // fleet (its heartbeats are stored); only this replica stalled, so nothing is discounted. Nor
  // when that is unknown (a Defender wrongly judged silent reconnects with its next heartbeat;
  // one wrongly kept connected would hide a real silence).
  if (options_.sharedDatabase) {
    std::string ranMeanwhile;  // why nothing is discounted; empty: discount
    if (auto alive = store_.listReplicasAlive(); !alive.ok()) {
      ranMeanwhile = "the other replicas' alive times are unreadable (";
      ranMeanwhile += alive.error().message;
      ranMeanwhile += ")";
    } else {
      for (const auto& r : *alive)
        if (r.replica != replicaId_ && r.aliveAt > pausedAt) {
          ranMeanwhile = "replica ";
          ranMeanwhile += r.replica;
          ranMeanwhile += " ran meanwhile";
          break;
        }
    }
    if (!ranMeanwhile.empty()) {
      std::lock_guard lock(stateMutex_);
      ++metrics_.pausesDetected;
      spdlog::warn(
          "replica {} did not run for {:.1f} s (a paused or starved process); {}, so no "
          "Defender is judged from now",
          replicaId_, seconds(now - pausedAt), ranMeanwhile);
      return 0;
    }
  }
  size_t judged = 0;
  {
    std::lock_guard lock(stateMutex_);
    ++metrics_.pausesDetected;
    for (auto& [key, s] : live_) {
      if (!connected(s.judgedFrom, s.gracefulAt, pausedAt, options_.liveness.grace) ||
          s.judgedFrom >= now)
        continue;
      const LiveIndex::Entry before = indexEntry(s);
      s.judgedFrom = now;
      index_.update(key, before, indexEntry(s));
      ++judged;
      // Written behind like the downtime discount at start-up ("alive" waits for it); a pending
      // heartbeat carries the new liveness itself.
      if (auto p = pending_.find(key); p != pending_.end())
        applyLiveState(s, p->second.defender);
      else
        discountBacklog_.push_back(key);
    }
  }
  spdlog::warn(
      "the Console did not run for {:.1f} s (a paused or starved process); {} Defenders "
      "connected when it began are judged from now",
      seconds(now - pausedAt), judged);
  return judged;
}

Inventory::Silence Inventory::silence(TimePoint since, TimePoint now) const {
  const Millis g = options_.liveness.grace;
  Silence out;
  if (options_.sharedDatabase) {
    if (auto stored = store_.countSilence(since, now, g); stored.ok())
      return {static_cast<size_t>(stored->fleet), static_cast<size_t>(stored->silent)};
    else
      spdlog::debug("outage guard counts from memory: {}", stored.error().message);
  }
  std::lock_guard lock(stateMutex_);
  for (const auto& [key, s] : live_) {
    if (s.gracefulAt && *s.gracefulAt <= since) continue;            // left on purpose before
    if (!connected(s.judgedFrom, std::nullopt, since, g)) continue;  // already silent before
    ++out.fleet;
    if (!s.gracefulAt && !connected(s.judgedFrom, std::nullopt, now, g)) ++out.silent;
  }
  return out;
}

std::optional<TimePoint> Inventory::storageFailingSince() const {
  std::lock_guard lock(stateMutex_);
  return failingSince_;
}

std::optional<Error> Inventory::identityConflict(const std::string& hostname, const LiveState& s,
                                                 DefenderType type, std::string_view resourceId) {
  // Only App-Embedded-category Defenders are pinned: for Fargate the hostname is the task id,
  // part of the task ARN, so another ARN under the same hostname is a misbehaving or spoofing
  // client. Other types keep a host name across machines (a replacement host reuses it).
  if (resourceId.empty() || s.resourceHash == 0) return std::nullopt;
  if (categoryOf(s.type) != Category::kAppEmbedded && categoryOf(type) != Category::kAppEmbedded)
    return std::nullopt;
  if (resourceHash(resourceId) == s.resourceHash) return std::nullopt;
  ++metrics_.identityConflicts;
  spdlog::warn(
      "identity conflict: Defender {} is registered from another resource than '{}'; refused "
      "(a second task or a misbehaving client reports its hostname)",
      hostname, resourceId.substr(0, 256));
  return Error{ErrorKind::kConflict, "identity_conflict",
               "cloudMetadata.resourceID: Defender " + hostname +
                   " is registered from another resource (task ARN); a Fargate hostname is its "
                   "task id and belongs to one task only",
               "cloudMetadata.resourceID"};
}

Error Inventory::storageFault() const {
  return Error{ErrorKind::kUnavailable,
               "storage_unavailable",
               "the database does not accept writes since " + formatRfc3339(*failingSince_) + " (" +
                   lastFlushError_.message + "); retry later",
               {}};
}

Result<std::optional<Defender>> Inventory::find(const std::string& hostname) {
  const std::string key = hostnameKey(hostname);
  auto writer = flushBeforeRead();
  auto stored = store_.findDefender(key);
  if (!stored.ok()) return stored.error();
  std::lock_guard lock(stateMutex_);
  if (options_.sharedDatabase) {
    // The stored row, whichever replica wrote it; this replica's newer state overlaid.
    if (!stored->has_value()) {
      // Only a registration this replica could not write yet (the store fails writes).
      const auto p = pending_.find(key);
      if (p == pending_.end() || !p->second.descriptiveChanged || !live_.contains(key))
        return std::optional<Defender>();
      Defender d = p->second.defender;
      applyLiveState(live_.at(key), d);
      return std::optional<Defender>(std::move(d));
    }
    overlayShared(key, **stored);
    return std::move(stored).value();
  }
  auto it = live_.find(key);
  if (it == live_.end()) return std::optional<Defender>();
  Defender d;
  if (auto p = pending_.find(key); p != pending_.end() && p->second.descriptiveChanged)
    d = p->second.defender;
  else if (stored->has_value())
    d = std::move(**stored);
  else
    return std::optional<Defender>();
  applyLiveState(it->second, d);
  return std::optional<Defender>(std::move(d));
}

std::unique_lock<std::mutex> Inventory::flushBeforeRead() {
  // Filters and counts run in SQL, so the rows they see must carry every answered heartbeat.
  // The writer stays held during the read so that no flush is half-way (taken from memory but
  // not committed) while the read runs. If the flush fails the read still runs and the
  // in-memory overlay keeps rows current.
  // A stalled or failing store must not stall reads: after a short wait, or while writes fail,
  // the read runs on the stored rows with the in-memory liveness overlaid.
  // (A polled try_lock rather than a timed mutex: ThreadSanitizer with GCC 12 does not see
  // pthread_mutex_clocklock, which std::timed_mutex uses, and reports false unlock errors.)
  std::unique_lock w(writeMutex_, std::try_to_lock);
  const auto deadline = std::chrono::steady_clock::now() + options_.readWaitForWriter;
  while (!w.owns_lock() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    (void)w.try_lock();
  }
  if (!w.owns_lock()) return w;
  // Everything pending when the read began, in bounded chunks (a backlog after a restart takes
  // a few of them); heartbeats arriving meanwhile do not prolong the wait.
  size_t chunks;
  {
    std::lock_guard lock(stateMutex_);
    const bool pending =
        !pending_.empty() || !pendingObservations_.empty() || !discountBacklog_.empty();
    const size_t cap = std::max<size_t>(1, options_.maxFlushRows);
    chunks = pending && !failingSince_ ? (pending_.size() + discountBacklog_.size()) / cap + 1 : 0;
  }
  for (; chunks > 0; --chunks)
    if (!flushLocked().ok()) break;
  return w;
}

std::optional<Result<Page<Defender>>> Inventory::listFromIndex(const DefenderQuery& q) {
  if (q.sort != SortKey::kHostname || q.types.size() != 1 || !q.connected || q.hostname ||
      q.category || q.cluster || q.clusterContains || q.appId || q.image || q.container ||
      q.version || q.search || q.afterKey || q.outdated)
    return std::nullopt;
  std::vector<std::string> keys;
  size_t total = 0;
  {
    std::lock_guard lock(stateMutex_);
    index_.advance(connectedCutoff(clock_.now(), options_.liveness.grace));
    keys = index_.page(q.types.front(), *q.connected, q.reverse, static_cast<size_t>(q.offset),
                       static_cast<size_t>(q.limit), total);
  }
  // Descriptive fields from the Store (no flush needed: registrations and reconnections are
  // durable before their reply, newer descriptive changes are overlaid from pending_ below).
  auto stored = store_.findDefenders(keys);
  if (!stored.ok()) return Result<Page<Defender>>(stored.error());
  std::unordered_map<std::string, Defender*> byKey;
  for (auto& d : *stored) byKey.emplace(hostnameKey(d.hostname), &d);
  Page<Defender> page;
  page.total = static_cast<long long>(total);
  page.items.reserve(keys.size());
  std::lock_guard lock(stateMutex_);
  for (const auto& key : keys) {
    auto it = live_.find(key);
    if (it == live_.end()) continue;  // removed since the index was read
    if (auto p = pending_.find(key); p != pending_.end() && p->second.descriptiveChanged)
      page.items.push_back(p->second.defender);
    else if (auto d = byKey.find(key); d != byKey.end())
      page.items.push_back(std::move(*d->second));
    else
      continue;  // not stored (its registration could not be written)
    applyLiveState(it->second, page.items.back());
  }
  return Result<Page<Defender>>(std::move(page));
}

Result<Page<Defender>> Inventory::list(const DefenderQuery& query) {
  // The index knows only the Defenders this replica saw: on a shared database every list is
  // the Store's.
  if (!options_.sharedDatabase)
    if (auto fromIndex = listFromIndex(query)) return std::move(*fromIndex);
  auto writer = flushBeforeRead();
  DefenderQuery q = query;
  q.deployedVersion = options_.defenderVersion;
  auto page = store_.listDefenders(q, {clock_.now(), options_.liveness.grace});
  if (!page.ok()) return page;
  std::lock_guard lock(stateMutex_);
  for (auto& d : page->items) {
    const std::string key = hostnameKey(d.hostname);
    if (options_.sharedDatabase) {
      overlayShared(key, d);
      continue;
    }
    if (auto p = pending_.find(key); p != pending_.end() && p->second.descriptiveChanged)
      d = p->second.defender;
    if (auto it = live_.find(key); it != live_.end()) applyLiveState(it->second, d);
  }
  return page;
}

Result<std::vector<std::string>> Inventory::matchingKeys(const DefenderQuery& query) {
  auto writer = flushBeforeRead();
  return store_.listKeys(query, {clock_.now(), options_.liveness.grace});
}

Result<std::vector<Defender>> Inventory::findMany(const std::vector<std::string>& keys) {
  auto writer = flushBeforeRead();
  auto stored = store_.findDefenders(keys);
  if (!stored.ok()) return stored.error();
  std::unordered_map<std::string, Defender*> byKey;
  byKey.reserve(stored->size());
  for (auto& d : *stored) byKey.emplace(hostnameKey(d.hostname), &d);
  std::vector<Defender> out;
  out.reserve(keys.size());
  std::lock_guard lock(stateMutex_);
  for (const auto& key : keys) {
    if (options_.sharedDatabase) {
      // Stored rows, whichever replica wrote them; gone since the snapshot: skipped.
      if (auto s = byKey.find(key); s != byKey.end()) {
        out.push_back(std::move(*s->second));
        overlayShared(key, out.back());
      }
      continue;
    }
    auto it = live_.find(key);
    if (it == live_.end()) continue;  // evicted or deleted since the snapshot
    if (auto p = pending_.find(key); p != pending_.end() && p->second.descriptiveChanged)
      out.push_back(p->second.defender);
    else if (auto s = byKey.find(key); s != byKey.end())
      out.push_back(std::move(*s->second));
    else
      continue;  // registered but not stored yet and not pending: not listable yet
    applyLiveState(it->second, out.back());
  }
  return out;
}

Result<std::vector<CategorySummary>> Inventory::summary() {
  if (options_.sharedDatabase) {
    // Every replica's Defenders: counted on the stored rows once this replica's are written.
    auto writer = flushBeforeRead();
    auto counts = store_.summarize({clock_.now(), options_.liveness.grace});
    if (!counts.ok()) return counts.error();
    auto outdated = store_.countOutdated(options_.defenderVersion);
    if (!outdated.ok()) return outdated.error();
    for (size_t i = 0; i < counts->size() && i < outdated->size(); ++i)
      (*counts)[i].outdated = (*outdated)[i].outdated;
    return counts;
  }
  // From memory: every Defender in live_ is counted, with the same rule as judge().
  std::vector<CategorySummary> out;
  for (auto c :
       {Category::kContainer, Category::kHost, Category::kServerless, Category::kAppEmbedded})
    out.push_back({c, 0, 0, 0});
  // Outdated counts from the stored rows (an index range scan of the older versions): a
  // version change not yet written (at most one flush interval) is counted once it is.
  auto outdated = store_.countOutdated(options_.defenderVersion);
  if (!outdated.ok()) return outdated.error();
  const TimePoint cutoff = connectedCutoff(clock_.now(), options_.liveness.grace);
  std::lock_guard lock(stateMutex_);
  for (const auto& info : allTypes()) {
    auto& row = out[static_cast<size_t>(info.category)];
    row.deployed += static_cast<long long>(index_.deployed(info.type));
    row.connected += static_cast<long long>(index_.connected(info.type, cutoff));
  }
  for (size_t i = 0; i < out.size(); ++i) out[i].outdated = (*outdated)[i].outdated;
  return out;
}

Result<std::vector<TypeCount>> Inventory::typeCounts() {
  if (options_.sharedDatabase) {
    auto writer = flushBeforeRead();
    return store_.countTypes({clock_.now(), options_.liveness.grace});
  }
  const TimePoint cutoff = connectedCutoff(clock_.now(), options_.liveness.grace);
  std::vector<TypeCount> out;
  std::lock_guard lock(stateMutex_);
  for (const auto& info : allTypes())
    out.push_back({info.type, static_cast<long long>(index_.connected(info.type, cutoff)),
                   static_cast<long long>(index_.deployed(info.type))});
  return out;
}

Result<std::vector<ClusterCount>> Inventory::clusters() {
  auto writer = flushBeforeRead();
  return store_.countClusters();
}

Result<std::vector<VersionCount>> Inventory::versions() {
  auto writer = flushBeforeRead();
  return store_.countVersions();
}

Result<Page<Observation>> Inventory::observations(const std::string& hostname, int offset,
                                                  int limit) {
  return store_.listObservations(hostnameKey(hostname), offset, limit);
}

Result<Page<AuditRecord>> Inventory::audit(int offset, int limit) {
  return store_.listAudit(offset, limit);
}

Result<AuditRecord> Inventory::remove(const std::string& hostname, const std::string& actor) {
  const std::string key = hostnameKey(hostname);
  std::lock_guard w(writeMutex_);
  // A registration still waiting to be written must be stored before it can be deleted.
  if (auto st = flushLocked(); !st.ok()) return st.error();
  {
    std::lock_guard lock(stateMutex_);
    auto it = live_.find(key);
    // On a shared database the stored row decides (another replica may have registered it).
    if (it == live_.end() && !options_.sharedDatabase) return unknownDefender(hostname);
    if (it != live_.end()) {
      index_.remove(it->first, indexEntry(it->second));
      live_.erase(it);
    }
    if (auto p = pending_.find(key); p != pending_.end()) {
      if (p->second.durable) --pendingDurable_;
      pending_.erase(p);
    }
    std::erase_if(pendingObservations_, [&](const auto& o) { return o.first == key; });
  }
  const std::string keys[] = {key};
  auto removed = store_.removeDefenders(keys, actor, "manual delete", clock_.now());
  if (!removed.ok()) return removed.error();
  if (removed->empty()) return unknownDefender(hostname);
  std::lock_guard lock(stateMutex_);
  ++metrics_.manualDeletes;
  return removed->front();
}

void Inventory::reloadDropped(std::span<const std::string> keys) {
  for (const auto& key : keys) {
    auto d = store_.findDefender(key);
    if (!d.ok() || !d->has_value()) continue;
    std::lock_guard lock(stateMutex_);
    if (auto [it, fresh] = live_.try_emplace(key, liveStateOf(**d)); fresh)
      index_.add(it->first, indexEntry(it->second));
  }
}

Result<std::vector<AuditRecord>> Inventory::removeMany(std::span<const std::string> hostnames,
                                                       const std::string& actor, size_t batch) {
  std::vector<AuditRecord> out;
  batch = std::max<size_t>(batch, 1);
  for (size_t from = 0; from < hostnames.size(); from += batch) {
    std::lock_guard w(writeMutex_);
    // Registrations still waiting to be written must be stored before they can be deleted.
    if (auto st = flushLocked(); !st.ok()) return st.error();
    std::vector<std::string> keys;
    {
      std::lock_guard lock(stateMutex_);
      std::unordered_set<std::string> dropped;
      for (size_t i = from; i < std::min(hostnames.size(), from + batch); ++i) {
        std::string key = hostnameKey(hostnames[i]);
        auto it = live_.find(key);
        if (it == live_.end() && !options_.sharedDatabase) continue;  // gone meanwhile
        if (it != live_.end()) {
          index_.remove(it->first, indexEntry(it->second));
          live_.erase(it);
        } else if (dropped.contains(key)) {
          continue;  // named twice
        }
        if (auto p = pending_.find(key); p != pending_.end()) {
          if (p->second.durable) --pendingDurable_;
          pending_.erase(p);
        }
        dropped.insert(key);
        keys.push_back(std::move(key));
      }
      if (!dropped.empty())
        std::erase_if(pendingObservations_,
                      [&](const auto& o) { return dropped.contains(o.first); });
    }
    if (keys.empty()) continue;
    auto removed = store_.removeDefenders(keys, actor, "manual delete", clock_.now());
    if (!removed.ok()) {
      reloadDropped(keys);  // rolled back: the rows stay visible
      return removed.error();
    }
    std::lock_guard lock(stateMutex_);
    metrics_.manualDeletes += removed->size();
    out.insert(out.end(), std::make_move_iterator(removed->begin()),
               std::make_move_iterator(removed->end()));
  }
  return out;
}

size_t Inventory::countDue(TimePoint now) const {
  std::lock_guard lock(stateMutex_);
  size_t n = 0;
  for (const auto& info : allTypes()) {
    const Millis retention = retentionFor(info.category, settings_.disconnectPeriodDays);
    n += index_.countDue(info.type, now - retention, now - retention - options_.liveness.grace);
  }
  return n;
}

Result<Inventory::EvictionBatch> Inventory::evictDue(Category category, TimePoint now, size_t limit,
                                                     Millis margin, const LeaseFence& fence) {
  std::lock_guard w(writeMutex_);
  // Write what is pending first (one bounded flush), and do not evict at all while writes fail.
  if (auto st = flushLocked(); !st.ok()) return st.error();
  const TimePoint dueAt = now - margin;  // the rule is judged at now − margin, here and in SQL
  std::vector<std::string> due;
  // The candidates' in-memory state, pending writes and observations, kept aside while the
  // store decides: put back for those it keeps.
  std::unordered_map<std::string, LiveState> parkedLive;
  std::unordered_map<std::string, PendingWrite> parked;
  std::vector<std::pair<std::string, Observation>> parkedObservations;
  size_t candidates = 0;
  int days;
  if (options_.sharedDatabase) {
    // The retention setting as any replica last saved it.
    if (auto saved = store_.loadSettings(); saved.ok()) {
      std::lock_guard lock(stateMutex_);
      settings_ = *saved;
    }
  }
  {
    std::lock_guard lock(stateMutex_);
    days = settings_.disconnectPeriodDays;
  }
  // Shared database: candidates from the stored rows (every replica's Defenders, this replica's
  // written just above), by the rule the deleting statement re-checks.
  std::vector<std::string> keys;
  if (options_.sharedDatabase) {
    auto stored =
        store_.listDueKeys(category, DueRule{now, margin, options_.liveness.grace, days}, limit);
    if (!stored.ok()) return stored.error();
    keys = std::move(stored).value();
  }
  {
    std::lock_guard lock(stateMutex_);
    const Millis retention = retentionFor(category, days);
    // Candidates from the in-memory index (oldest first); removalAt = disconnectedAt + retention,
    // disconnectedAt = the graceful disconnect or judgedFrom + G.
    for (const auto& info : allTypes()) {
      if (options_.sharedDatabase || info.category != category || keys.size() >= limit) continue;
      auto more = index_.due(info.type, dueAt - retention,
                             dueAt - retention - options_.liveness.grace, limit - keys.size());
      keys.insert(keys.end(), std::make_move_iterator(more.begin()),
                  std::make_move_iterator(more.end()));
    }
    candidates = keys.size();
    for (auto& key : keys) {
      auto it = live_.find(key);
      if (it == live_.end()) {
        // Only another replica saw it: the stored row, due, decides.
        if (options_.sharedDatabase) due.push_back(std::move(key));
        continue;
      }
      Defender probe;
      probe.type = it->second.type;
      applyLiveState(it->second, probe);
      const Liveness l = inventory::judge(probe, dueAt, options_.liveness, days);
      if (l.connected || !l.removalAt || *l.removalAt > dueAt) continue;  // not due after all
      // Out of memory before the delete: a heartbeat from now on registers it anew (after the
      // delete, which holds the writer), so a heartbeat during a sweep is never lost.
      index_.remove(it->first, indexEntry(it->second));
      parkedLive.insert(live_.extract(it));
      if (auto p = pending_.find(key); p != pending_.end()) {
        if (p->second.durable) --pendingDurable_;
        parked.insert(pending_.extract(p));
      }
      due.push_back(std::move(key));
    }
    // Observations that arrive from now on belong to a new registration and stay.
    const auto split =
        std::stable_partition(pendingObservations_.begin(), pendingObservations_.end(),
                              [&](const auto& o) { return !parkedLive.contains(o.first); });
    parkedObservations.assign(std::make_move_iterator(split),
                              std::make_move_iterator(pendingObservations_.end()));
    pendingObservations_.erase(split, pendingObservations_.end());
  }
  if (due.empty()) return EvictionBatch{{}, candidates, 0};
  const std::string reason =
      category == Category::kAppEmbedded
          ? "disconnected for 1 h (App-Embedded rule)"
          : "disconnected for " + std::to_string(days) + " day(s) (disconnectPeriodDays)";
  auto removed = store_.evictDefenders(due, DueRule{now, margin, options_.liveness.grace, days},
                                       fence, reason);
  std::unordered_set<std::string> gone;
  if (removed.ok())
    for (const auto& a : *removed) gone.insert(hostnameKey(a.hostname));
  // What the store kept (not due on its stored row, or everything when the transaction rolled
  // back or the lease was lost) comes back: with the stored liveness when that is newer (a
  // heartbeat another replica wrote), else as it was here; with its pending writes and
  // observations. A key deleted from the store meanwhile (elsewhere) stays out.
  std::vector<std::string> kept;
  for (const auto& key : due)
    if (!gone.contains(key)) kept.push_back(key);
  std::unordered_map<std::string, Defender> stored;
  bool storedKnown = kept.empty();
  if (!kept.empty()) {
    if (auto rows = store_.findDefenders(kept); rows.ok()) {
      storedKnown = true;
      for (auto& d : *rows) stored.emplace(hostnameKey(d.hostname), std::move(d));
    }
  }
  {
    std::lock_guard lock(stateMutex_);
    for (const auto& key : kept) {
      if (live_.contains(key)) continue;        // registered anew meanwhile: that one stands
      if (!parkedLive.contains(key)) continue;  // never in memory here: the store has it
      const auto row = stored.find(key);
      if (storedKnown && row == stored.end()) continue;  // deleted elsewhere
      LiveState s = std::move(parkedLive[key]);
      if (row != stored.end() && row->second.judgedFrom >= s.judgedFrom) {
        const LiveState fresh = liveStateOf(row->second);
        s.registeredAt = fresh.registeredAt;
        s.lastSeen = fresh.lastSeen;
        s.judgedFrom = fresh.judgedFrom;
        s.connectedSince = fresh.connectedSince;
        s.gracefulAt = fresh.gracefulAt;
        s.clockSkewMs = fresh.clockSkewMs;
        s.appId = fresh.appId;
      }
      const auto it = live_.try_emplace(key, std::move(s)).first;
      index_.add(it->first, indexEntry(it->second));
      if (auto node = parked.extract(key); !node.empty() && !pending_.contains(key)) {
        const bool durable = node.mapped().durable;
        node.mapped().durable = false;
        pendingOrder_.push_back(key);
        auto placed = pending_.insert(std::move(node));
        if (durable) markDurable(key, placed.position->second);
      }
    }
    for (auto& o : parkedObservations)
      if (!gone.contains(o.first) && live_.contains(o.first))
        pendingObservations_.push_back(std::move(o));
  }
  if (!removed.ok()) return removed.error();
  std::lock_guard lock(stateMutex_);
  metrics_.evictions += removed->size();
  return EvictionBatch{std::move(removed).value(), candidates, kept.size()};
}

Result<SweepLease> Inventory::acquireSweepLease(TimePoint now, Millis ttl) {
  return store_.acquireSweepLease(replicaId_, now, ttl);
}

Status Inventory::releaseSweepLease(long long epoch) {
  return store_.releaseSweepLease(replicaId_, epoch);
}

DefenderSettings Inventory::settings() const {
  std::lock_guard lock(stateMutex_);
  return settings_;
}

Status Inventory::reloadSettings() {
  auto saved = store_.loadSettings();
  if (!saved.ok()) return saved.error();
  std::lock_guard lock(stateMutex_);
  settings_ = *saved;
  return Status::success();
}

Status Inventory::updateSettings(const DefenderSettings& settings) {
  std::lock_guard w(writeMutex_);
  if (auto st = store_.saveSettings(settings); !st.ok()) return st;
  std::lock_guard lock(stateMutex_);
  settings_ = settings;
  return Status::success();
}

InventoryMetrics Inventory::metrics() const {
  std::lock_guard lock(stateMutex_);
  InventoryMetrics m = metrics_;
  m.defenders = live_.size();
  m.pendingWrites = pending_.size() + discountBacklog_.size() + inFlight_;
  m.storageFailing = failingSince_.has_value();
  return m;
}

}  // namespace dc::inventory
