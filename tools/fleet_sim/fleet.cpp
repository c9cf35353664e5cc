#include "tools/fleet_sim/fleet.h"

#include <algorithm>
#include <array>
#include <cassert>

#include "appid/app_id.h"

namespace dc::sim {
namespace {

constexpr std::array<std::string_view, 20> kFamilyNames = {
    "checkout-api",     "payments-worker",     "orders-service",  "inventory-sync",
    "auth-gateway",     "notification-sender", "search-indexer",  "billing-cron",
    "user-profile-api", "image-resizer",       "recommendations", "shipping-tracker",
    "fraud-scorer",     "email-dispatcher",    "cart-service",    "pricing-engine",
    "catalog-api",      "audit-log-shipper",   "session-proxy",   "report-generator",
};

constexpr std::array<std::string_view, 8> kClusterNames = {
    "prod-web", "prod-batch", "prod-payments", "staging", "prod-data", "dev", "qa", "prod-edge",
};

// Defender versions in the field: most tasks run the current release, some lag behind.
constexpr std::array<std::string_view, 3> kVersions = {"32.07.123", "32.06.115", "31.03.103"};
constexpr std::array<double, 3> kVersionShare = {0.7, 0.2, 0.1};

bool allDigits(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

}  // namespace

Status validateFleetSpec(const FleetSpec& spec) {
  if (spec.families < 1 || spec.families > 10000) {
    return Error::invalid("invalid_option", "families", "--families must be in 1..10000");
  }
  if (spec.clusters < 1 || spec.clusters > 1000) {
    return Error::invalid("invalid_option", "clusters", "--clusters must be in 1..1000");
  }
  if (spec.account.size() != 12 || !allDigits(spec.account)) {
    return Error::invalid("invalid_option", "account", "--account must be 12 digits");
  }
  // AWS region names: lowercase words and a trailing number, e.g. us-east-1, ap-southeast-2.
  const std::string& r = spec.region;
  bool regionOk = r.size() >= 4 && r.size() <= 32 && allDigits(r.substr(r.rfind('-') + 1)) &&
                  r.back() != '-' && r.front() != '-' &&
                  std::all_of(r.begin(), r.end(), [](char c) {
                    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
                  });
  if (!regionOk) {
    return Error::invalid("invalid_option", "region",
                          "--region must look like an AWS region, e.g. us-east-1");
  }
  return Status::success();
}

std::string familyName(int i) {
  assert(i >= 0);
  const size_t n = kFamilyNames.size();
  std::string name(kFamilyNames[static_cast<size_t>(i) % n]);
  if (static_cast<size_t>(i) >= n) {
    name += '-';
    name += std::to_string(static_cast<size_t>(i) / n + 1);
  }
  return name;
}

std::string clusterName(int i) {
  assert(i >= 0);
  const size_t n = kClusterNames.size();
  std::string name(kClusterNames[static_cast<size_t>(i) % n]);
  if (static_cast<size_t>(i) >= n) {
    name += '-';
    name += std::to_string(static_cast<size_t>(i) / n + 1);
  }
  return name;
}

Result<Fleet> makeFleet(const FleetSpec& spec, Rng& rng) {
  if (Status s = validateFleetSpec(spec); !s) return s.error();
  Fleet fleet;
  fleet.spec = spec;
  std::uniform_int_distribution<int> minor(0, 40);
  std::uniform_int_distribution<int> patch(0, 9);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  std::vector<double> weights;
  for (int i = 0; i < spec.families; ++i) {
    Family f;
    f.name = familyName(i);
    auto appId = appid::generate(f.name);
    if (!appId) return appId.error();
    f.appId = appId->str();
    f.cluster = clusterName(i % spec.clusters);
    f.image = spec.account + ".dkr.ecr." + spec.region + ".amazonaws.com/" + f.name + ":v" +
              std::to_string(1 + i % 3) + "." + std::to_string(minor(rng)) + "." +
              std::to_string(patch(rng));
    double u = unit(rng);
    size_t v = 0;
    for (double acc = kVersionShare[0]; v + 1 < kVersions.size() && u >= acc;) {
      acc += kVersionShare[++v];
    }
    f.version = std::string(kVersions[v]);
    fleet.families.push_back(std::move(f));
    // Uneven service sizes: a few big services, a long tail of small ones (Zipf-like).
    weights.push_back(1.0 / (1.0 + i));
  }
  double total = 0;
  for (double w : weights) total += w;
  double acc = 0;
  for (double w : weights) {
    acc += w / total;
    fleet.cumulativeWeights.push_back(acc);
  }
  fleet.cumulativeWeights.back() = 1.0;
  return fleet;
}

std::string randomTaskId(Rng& rng) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id(32, '0');
  uint64_t bits[2] = {rng(), rng()};
  for (size_t i = 0; i < 32; ++i) id[i] = kHex[(bits[i / 16] >> (4 * (i % 16))) & 0xF];
  return id;
}

std::string taskArn(const Fleet& fleet, const Task& task) {
  return "arn:aws:ecs:" + fleet.spec.region + ":" + fleet.spec.account + ":task/" +
         fleet.families[task.family].cluster + "/" + task.taskId;
}

uint32_t pickFamily(const Fleet& fleet, Rng& rng) {
  double u = std::uniform_real_distribution<double>(0.0, 1.0)(rng);
  auto it = std::upper_bound(fleet.cumulativeWeights.begin(), fleet.cumulativeWeights.end(), u);
  size_t i = static_cast<size_t>(it - fleet.cumulativeWeights.begin());
  return static_cast<uint32_t>(std::min(i, fleet.families.size() - 1));
}

Task newTask([[maybe_unused]] const Fleet& fleet, uint32_t family, TimePoint now, Rng& rng) {
  assert(family < fleet.families.size());
  Task t;
  t.taskId = randomTaskId(rng);
  t.family = family;
  // Defender certificates are issued for three years; the fleet was installed over the last year.
  auto ageDays = std::uniform_int_distribution<int>(0, 365)(rng);
  t.certificateExpiration = std::chrono::floor<Seconds>(now) + std::chrono::days(3 * 365 - ageDays);
  return t;
}

}  // namespace dc::sim
