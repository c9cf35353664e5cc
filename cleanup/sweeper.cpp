#include "cleanup/sweeper.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <thread>

#include <spdlog/spdlog.h>

#include "common/prometheus.h"
#include "common/thread_priority.h"
#include "common/time_format.h"

namespace dc::cleanup {

using inventory::Category;

Sweeper::Sweeper(inventory::Inventory& inventory, SweepOptions options)
    : inventory_(inventory),
      options_(std::move(options)),
      guard_(options_.outage, inventory.liveness().grace) {}

bool Sweeper::holdLease(TimePoint now) {
  const std::string& me = inventory_.replicaId();
  bool wasHeld;
  long long epochBefore;
  std::string holderBefore;
  {
    std::lock_guard lock(leaseMutex_);
    if (held_ && now < lease_.expiresAt && now - renewedAt_ < options_.leaseRenewEvery) return true;
    wasHeld = held_;
    epochBefore = lease_.epoch;
    holderBefore = lease_.holder;
  }
  auto taken = inventory_.acquireSweepLease(now, options_.leaseTtl);
  if (!taken.ok()) {
    ++leaseErrors_;
    if (!leaseErrorLogged_)
      spdlog::warn("replica {}: the sweeper lease could not be read or renewed: {}", me,
                   taken.error().message);
    leaseErrorLogged_ = true;
    // Still ours until it expires (the deleting statement checks it again).
    std::lock_guard lock(leaseMutex_);
    if (held_ && now >= lease_.expiresAt) {
      held_ = false;
      ++leaseLost_;
      spdlog::warn(
          "replica {} lost the sweeper lease (epoch {}): it expired while it could not "
          "be renewed; this replica does not sweep",
          me, lease_.epoch);
    }
    return held_;
  }
  leaseErrorLogged_ = false;
  const bool held = taken->holder == me;
  {
    std::lock_guard lock(leaseMutex_);
    lease_ = *taken;
    held_ = held;
    if (held) renewedAt_ = now;
  }
  if (held && (!wasHeld || taken->epoch != epochBefore)) {
    ++leaseAcquired_;
    spdlog::info("replica {} holds the sweeper lease (epoch {}, until {}): it sweeps", me,
                 taken->epoch, formatRfc3339(taken->expiresAt));
  } else if (!held && wasHeld) {
    ++leaseLost_;
    spdlog::warn("replica {} lost the sweeper lease to replica {} (epoch {}): it no longer sweeps",
                 me, taken->holder, taken->epoch);
  } else if (!held && (taken->holder != holderBefore || taken->epoch != epochBefore)) {
    spdlog::info(
        "replica {} does not sweep: replica {} holds the sweeper lease (epoch {}, until {})", me,
        taken->holder, taken->epoch, formatRfc3339(taken->expiresAt));
  }
  return held;
}

void Sweeper::noteLeaseLost(TimePoint now, const std::string& why) {
  std::lock_guard lock(leaseMutex_);
  if (!held_) return;
  held_ = false;
  renewedAt_ = TimePoint{};
  ++leaseLost_;
  spdlog::warn("replica {} lost the sweeper lease (epoch {}) at {}: {}", inventory_.replicaId(),
               lease_.epoch, formatRfc3339(now), why);
}

void Sweeper::releaseLease() {
  long long epoch;
  {
    std::lock_guard lock(leaseMutex_);
    if (!held_) return;
    held_ = false;
    epoch = lease_.epoch;
    lease_.expiresAt = TimePoint{};
  }
  if (auto st = inventory_.releaseSweepLease(epoch); !st.ok()) {
    spdlog::warn(
        "replica {}: the sweeper lease could not be given up ({}); another replica "
        "takes it when it expires",
        inventory_.replicaId(), st.error().message);
    return;
  }
  spdlog::info("replica {} gave the sweeper lease up (epoch {})", inventory_.replicaId(), epoch);
}

LeaseView Sweeper::lease(TimePoint now) const {
  std::lock_guard lock(leaseMutex_);
  return {inventory_.replicaId(), held_ && now < lease_.expiresAt, lease_.holder, lease_.epoch,
          lease_.expiresAt};
}

Result<SweepReport> Sweeper::sweep(TimePoint now) {
  const auto started = std::chrono::steady_clock::now();
  SweepReport report;
  ++sweeps_;
  const Clock& clock = inventory_.clock();
  if (!holdLease(clock.now())) {
    ++withoutLease_;
    report.noLease = true;
    spdlog::debug("sweep skipped: replica {} does not hold the sweeper lease",
                  inventory_.replicaId());
    return report;
  }
  if (options_.heartbeatsWaiting) {
    const size_t waiting = options_.heartbeatsWaiting();
    if (waiting == 0) {
      deferredSince_.reset();
    } else {
      if (!deferredSince_) deferredSince_ = now;
      // Waiting is bounded by one grace period: a channel that stays behind longer must not
      // stop cleanup for ever.
      if (now - *deferredSince_ < inventory_.liveness().grace) {
        ++deferred_;
        spdlog::info("sweep deferred: {} connections on the defender channel wait for a worker",
                     waiting);
        report.deferred = true;
        return report;
      }
      spdlog::warn("sweep runs although the defender channel has been behind since {}",
                   formatRfc3339(*deferredSince_));
    }
  }
  if (guard_.update(now, [&](TimePoint since) {
        const auto s = inventory_.silence(since, now);
        return FleetSilence{s.fleet, s.silent};
      })) {
    report.paused = true;
    return report;
  }
  for (auto category :
       {Category::kAppEmbedded, Category::kContainer, Category::kHost, Category::kServerless}) {
    if (report.noLease) break;
    for (;;) {
      if (stopRequested_) {
        report.stopped = true;
        break;
      }
      // Each batch runs under a lease valid now, renewed when due; its epoch fences the delete.
      const TimePoint leaseNow = clock.now();
      if (!holdLease(leaseNow)) {
        report.noLease = true;
        spdlog::warn(
            "sweep stopped after {} evictions: replica {} no longer holds the sweeper "
            "lease",
            report.evicted, inventory_.replicaId());
        break;
      }
      inventory::LeaseFence fence{inventory_.replicaId(), lease(leaseNow).epoch, leaseNow};
      auto batch =
          inventory_.evictDue(category, now, options_.batchSize, options_.unflushedMargin, fence);
      if (!batch.ok() && batch.error().code == "sweep_lease_lost") {
        // Another replica took the lease (this one was paused past it): nothing was deleted.
        noteLeaseLost(leaseNow, batch.error().message);
        report.noLease = true;
        spdlog::warn("sweep stopped after {} evictions: {}", report.evicted, batch.error().message);
        break;
      }
      if (!batch.ok()) {
        ++failures_;
        spdlog::warn("sweep stopped after {} evictions: {}", report.evicted, batch.error().message);
        return batch.error();
      }
      ++report.batches;
      report.refreshed += batch->refreshed;
      refreshed_ += batch->refreshed;
      for (const auto& a : batch->evicted) {
        report.observationsRemoved += static_cast<size_t>(a.observationsRemoved);
        spdlog::info("evicted Defender {} (type {}, App ID '{}', {} observations): {}", a.hostname,
                     inventory::typeInfo(a.type).apiName, a.appId, a.observationsRemoved, a.reason);
      }
      if (options_.onEvicted && !batch->evicted.empty()) options_.onEvicted(batch->evicted);
      report.evicted += batch->evicted.size();
      // Done when the index had fewer candidates than asked for, or nothing changed (every
      // candidate heartbeated meanwhile). Candidates whose stored row was not due were read
      // back with it and are no longer due here: the next batch offers others.
      if (batch->candidates < options_.batchSize ||
          (batch->evicted.empty() && batch->refreshed == 0))
        break;
    }
  }
  report.took = std::chrono::duration_cast<Millis>(std::chrono::steady_clock::now() - started);
  evicted_ += report.evicted;
  lastSweepMs_ = report.took.count();
  if (report.evicted > 0)
    spdlog::info("sweep: {} Defenders evicted with {} observations in {} ms ({} batches)",
                 report.evicted, report.observationsRemoved, report.took.count(), report.batches);
  return report;
}

Sweeper::HeldBack Sweeper::heldBack(TimePoint now) const {
  const auto outage = guard_.status();
  if (!outage.paused || !outage.incident) return {};
  return {std::max(Millis(0), now - outage.incident->startedAt), inventory_.countDue(now)};
}

std::string Sweeper::metricsText(TimePoint now) const {
  prometheus::Writer out;
  out.counter("dc_sweeps_total", "Eviction sweeps run.", sweeps_.load());
  out.counter("dc_sweep_failures_total", "Sweeps stopped by a storage error.", failures_.load());
  out.gauge("dc_sweep_last_duration_seconds", "Duration of the last sweep.",
            static_cast<double>(lastSweepMs_.load()) / 1000.0);
  const auto outage = guard_.status();
  out.counter("dc_sweeps_deferred_total",
              "Sweeps skipped because heartbeats waited to be recorded.", deferred_.load());
  out.counter("dc_outage_incidents_total",
              "Outage guard incidents: a large share of the fleet went silent within one grace "
              "period.",
              outage.incidents);
  out.gauge("dc_evictions_paused", "1 while the outage guard holds evictions.",
            outage.paused ? 1 : 0);
  const HeldBack held = heldBack(now);
  out.gauge("dc_evictions_paused_seconds",
            "How long the outage guard has held evictions (0 when not paused).",
            held.pausedFor.count() / 1000);
  out.gauge("dc_evictions_held_back",
            "Defenders due for eviction that the paused outage guard holds back (0 when not "
            "paused).",
            held.due);
  const LeaseView l = lease(now);
  out.family("dc_replica_info", "This Console replica's id (generated at each start).",
             prometheus::Type::kGauge)
      .sample({{"replica", l.replica}}, 1);
  out.gauge("dc_sweeper_lease_held",
            "1 while this replica holds the sweeper lease (it is the one that evicts).",
            l.held ? 1 : 0);
  out.gauge("dc_sweeper_lease_epoch",
            "Epoch (fencing token) of the sweeper lease as this replica last read it.", l.epoch);
  out.family("dc_sweeper_lease_holder",
             "The replica holding the sweeper lease as this replica last read it.",
             prometheus::Type::kGauge)
      .sample({{"holder", l.holder}}, 1);
  out.counter("dc_sweeper_lease_acquired_total", "Times this replica took the sweeper lease.",
              leaseAcquired_.load());
  out.counter("dc_sweeper_lease_lost_total", "Times this replica lost the sweeper lease.",
              leaseLost_.load());
  out.counter("dc_sweeper_lease_errors_total", "Sweeper lease reads or renewals that failed.",
              leaseErrors_.load());
  out.counter("dc_sweeps_without_lease_total",
              "Sweeps that did nothing because another replica holds the sweeper lease.",
              withoutLease_.load());
  out.counter("dc_eviction_candidates_refreshed_total",
              "Eviction candidates whose stored row was not due (a heartbeat another replica "
              "wrote), read back instead of evicted.",
              refreshed_.load());
  return out.take();
}

struct SweepScheduler::Impl {
  Sweeper& sweeper;
  const Clock& clock;
  Millis period;
  boost::asio::io_context io;
  boost::asio::steady_timer timer{io};
  boost::asio::steady_timer leaseTimer{io};
  std::thread thread;
  // Set by stop(). Cancelling a timer does not reach a handler already queued (its wait ended
  // while a long sweep held the thread): such a handler sees this and does not arm it again.
  std::atomic<bool> stopping{false};

  Impl(Sweeper& s, const Clock& c, Millis p) : sweeper(s), clock(c), period(p) {}

  void arm() {
    timer.expires_after(period);
    timer.async_wait([this](const boost::system::error_code& ec) {
      if (ec || stopping) return;  // cancelled, or the stop came first
      (void)sweeper.sweep(clock.now());
      arm();
    });
  }
  void armLease(Millis after) {
    leaseTimer.expires_after(after);
    leaseTimer.async_wait([this](const boost::system::error_code& ec) {
      if (ec || stopping) return;  // cancelled, or the stop came first
      (void)sweeper.holdLease(clock.now());
      armLease(sweeper.options().leaseRenewEvery);
    });
  }
};

SweepScheduler::SweepScheduler(Sweeper& sweeper, const Clock& clock, Millis period)
    : impl_(std::make_unique<Impl>(sweeper, clock, period)) {}

SweepScheduler::~SweepScheduler() {
  stop();
}

void SweepScheduler::start() {
  impl_->arm();
  impl_->armLease(Millis(0));  // the lease at once: the holder is known from the start
  impl_->thread = std::thread([this] {
    if (!setThisThreadNice(impl_->sweeper.options().threadNice))
      spdlog::warn("could not lower the priority of the sweep thread");
    impl_->io.run();
  });
}

void SweepScheduler::stop() {
  if (!impl_->thread.joinable()) return;
  impl_->sweeper.requestStop();  // a running sweep ends after its current batch
  impl_->stopping = true;
  boost::asio::post(impl_->io, [this] {
    impl_->timer.cancel();
    impl_->leaseTimer.cancel();
  });
  impl_->thread.join();
  impl_->sweeper.releaseLease();  // another replica takes over at once
}

}  // namespace dc::cleanup
