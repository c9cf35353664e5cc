// The simulated ECS Fargate fleet: task-definition families, clusters and running tasks.
//
// Each family is one protected task definition with one App ID (DESIGN §2) shared by all of its
// tasks; each running task carries one App-Embedded Defender whose hostname is the ECS task id.
// Everything random is drawn from an injected `Rng`, so a seed reproduces a fleet (except App
// IDs, which come from `dc::appid::generate` and are always fresh).
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/status.h"

namespace dc::sim {

using Rng = std::mt19937_64;

/// What the fleet looks like. Validated by `validateFleetSpec`.
struct FleetSpec {
  int families = 5;                      // >= 1
  int clusters = 2;                      // >= 1
  std::string account = "123456789012";  // 12 digits
  std::string region = "us-east-1";      // e.g. us-east-1, eu-central-1
};

/// One ECS task-definition family protected with an App-Embedded Defender.
struct Family {
  std::string name;     // ECS family (letters, digits, '-', '_'); also the app container's name
  std::string appId;    // `<family>:<uuid v4>`, shared by every task of the family
  std::string cluster;  // ECS cluster the family's service runs in
  std::string image;    // `<account>.dkr.ecr.<region>.amazonaws.com/<family>:<tag>`
  std::string version;  // Defender version, e.g. "32.07.123"
};

struct Fleet {
  FleetSpec spec;
  std::vector<Family> families;
  /// Cumulative share of tasks per family (last element 1.0); see `pickFamily`.
  std::vector<double> cumulativeWeights;
};

/// One running Fargate task, i.e. one Defender.
struct Task {
  std::string taskId;   // 32 lowercase hex digits: the Defender's hostname
  uint32_t family = 0;  // index into Fleet::families
  TimePoint certificateExpiration;
};

/// OK, or an "invalid_option" error naming the offending field.
Status validateFleetSpec(const FleetSpec& spec);

/// Builds the families (realistic service names, one App ID each), assigns each to a cluster and
/// gives them uneven sizes, as real services have. Errors: an invalid spec.
Result<Fleet> makeFleet(const FleetSpec& spec, Rng& rng);

/// Realistic family name for index `i` ("checkout-api", "payments-worker", ...); unique per index.
std::string familyName(int i);
/// Realistic cluster name for index `i` ("prod-web", "prod-batch", ...); unique per index.
std::string clusterName(int i);

/// A new ECS task id: 32 lowercase hex digits.
std::string randomTaskId(Rng& rng);
/// `arn:aws:ecs:<region>:<account>:task/<cluster>/<task id>`.
std::string taskArn(const Fleet& fleet, const Task& task);

/// A family index drawn with the fleet's weights.
uint32_t pickFamily(const Fleet& fleet, Rng& rng);
/// A new task of `family` started at `now` (fresh task id, certificate valid for ~2–3 years).
Task newTask(const Fleet& fleet, uint32_t family, TimePoint now, Rng& rng);

}  // namespace dc::sim
