// The synthetic fleet every benchmark uses: Defender i of a run has hostname
// `task%028d` (a valid ECS-task-id-like hostname) and the heartbeat body below. bench/heartbeat.lua
// builds byte-identical bodies, so Defenders written by `dc-bench seed` are only refreshed (not
// re-registered, not rewritten in full) when the load generators heartbeat them.
#pragma once

#include <cstdio>
#include <string>

namespace dc::bench {

/// Hostname of Defender `i` (0-based).
inline std::string hostnameOf(long long i) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "task%028lld", i);
  return buf;
}

/// Task-definition family of Defender `i`: 8 families, so with 80 % Fargate an App ID + type filter
/// over 1,000,000 Defenders selects exactly 100,000.
inline int familyOf(long long i) {
  return static_cast<int>(i % 8);
}

/// A heartbeat body for Defender `i`, about 560 bytes, as a Fargate App-Embedded Defender sends it
/// (docs/defender-channel.md). Byte-identical to bench/heartbeat.lua.
inline std::string heartbeatBody(long long i) {
  const std::string host = hostnameOf(i);
  const int f = familyOf(i);
  const std::string cluster = f % 2 == 0 ? "prod-web" : "prod-batch";
  char buf[1024];
  std::snprintf(buf, sizeof buf,
                "{\"hostname\":\"%s\",\"type\":\"fargate\","
                "\"appID\":\"service-%02d:0b7e6c4e-3f4b-4b7b-9d3c-1a2b3c4d5e%02d\","
                "\"version\":\"32.07.123\",\"cluster\":\"%s\",\"collections\":[\"All\"],"
                "\"cloudMetadata\":{\"provider\":\"aws\",\"accountID\":\"123456789012\","
                "\"region\":\"us-east-1\",\"resourceID\":\"arn:aws:ecs:us-east-1:123456789012:"
                "task/%s/%s\",\"awsExecutionEnv\":\"AWS_ECS_FARGATE\","
                "\"image\":\"123456789012.dkr.ecr.us-east-1.amazonaws.com/service-%02d:v1.4.2\"},"
                "\"status\":{\"defender\":true,\"features\":true}}",
                host.c_str(), f, f, cluster.c_str(), cluster.c_str(), host.c_str(), f);
  return buf;
}

}  // namespace dc::bench
