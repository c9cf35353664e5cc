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

Result<SweepReport> Sweeper::sweep(TimePoint now) {
  const auto started = std::chrono::steady_clock::now();
  SweepReport report;
  ++sweeps_;
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
    for (;;) {
      if (stopRequested_) {
        report.stopped = true;
        break;
      }
      auto batch = inventory_.evictDue(category, now, options_.batchSize);
      if (!batch.ok()) {
        ++failures_;
        spdlog::warn("sweep stopped after {} evictions: {}", report.evicted, batch.error().message);
        return batch.error();
      }
      ++report.batches;
      for (const auto& a : batch->evicted) {
        report.observationsRemoved += static_cast<size_t>(a.observationsRemoved);
        spdlog::info("evicted Defender {} (type {}, App ID '{}', {} observations): {}", a.hostname,
                     inventory::typeInfo(a.type).apiName, a.appId, a.observationsRemoved, a.reason);
      }
      if (options_.onEvicted && !batch->evicted.empty()) options_.onEvicted(batch->evicted);
      report.evicted += batch->evicted.size();
      // Done when the store had fewer candidates than asked for, or nothing could be evicted
      // (every candidate heartbeated meanwhile; the store catches up at the next flush).
      if (batch->candidates < options_.batchSize || batch->evicted.empty()) break;
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
  return out.take();
}

struct SweepScheduler::Impl {
  Sweeper& sweeper;
  const Clock& clock;
  Millis period;
  boost::asio::io_context io;
  boost::asio::steady_timer timer{io};
  std::thread thread;

  Impl(Sweeper& s, const Clock& c, Millis p) : sweeper(s), clock(c), period(p) {}

  void arm() {
    timer.expires_after(period);
    timer.async_wait([this](const boost::system::error_code& ec) {
      if (ec) return;  // cancelled
      (void)sweeper.sweep(clock.now());
      arm();
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
  impl_->thread = std::thread([this] {
    if (!setThisThreadNice(impl_->sweeper.options().threadNice))
      spdlog::warn("could not lower the priority of the sweep thread");
    impl_->io.run();
  });
}

void SweepScheduler::stop() {
  if (!impl_->thread.joinable()) return;
  impl_->sweeper.requestStop();  // a running sweep ends after its current batch
  boost::asio::post(impl_->io, [this] { impl_->timer.cancel(); });
  impl_->thread.join();
}

}  // namespace dc::cleanup
