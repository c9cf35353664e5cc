#include "tools/fleet_sim/protocol.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <nlohmann/json.hpp>

#include "common/time_format.h"

namespace dc::sim {
namespace {

using nlohmann::json;

Millis secondsToMillis(double s, Millis cap) {
  if (!std::isfinite(s) || s < 0) return Millis(0);
  double ms = std::min(s * 1000.0, static_cast<double>(cap.count()));
  return Millis(static_cast<Millis::rep>(std::llround(ms)));
}

std::optional<double> optionalNumber(const json& j, const char* key, bool& bad) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return std::nullopt;
  if (!it->is_number()) {
    bad = true;
    return std::nullopt;
  }
  return it->get<double>();
}

constexpr std::array<std::string_view, 6> kCommands = {
    "/usr/local/bin/node server.js",   "/usr/bin/python3 -m gunicorn app:app",
    "/bin/sh -c healthcheck.sh",       "/usr/bin/java -jar /app/service.jar",
    "/app/bin/worker --queue=default", "/usr/bin/curl -s http://169.254.170.2/v2/metadata",
};
constexpr std::array<std::string_view, 6> kDomains = {
    "sqs.us-east-1.amazonaws.com",  "api.stripe.com",     "dynamodb.us-east-1.amazonaws.com",
    "logs.us-east-1.amazonaws.com", "registry.npmjs.org", "s3.amazonaws.com",
};
constexpr std::array<std::string_view, 4> kPaths = {"/tmp/upload.part", "/app/cache/index.db",
                                                    "/var/log/app.log", "/etc/resolv.conf"};

}  // namespace

std::string heartbeatBody(const Fleet& fleet, const Task& task, TimePoint now) {
  const Family& f = fleet.families[task.family];
  json body = {
      {"hostname", task.taskId},
      {"type", "fargate"},
      {"version", f.version},
      {"cluster", f.cluster},
      {"appID", f.appId},
      {"container", f.name},
      {"collections", json::array({"All"})},
      {"cloudMetadata",
       {{"provider", "aws"},
        {"accountID", fleet.spec.account},
        {"region", fleet.spec.region},
        {"resourceID", taskArn(fleet, task)},
        {"awsExecutionEnv", "AWS_ECS_FARGATE"},
        {"image", f.image},
        {"name", f.name}}},
      {"features", json::object()},
      {"status", json::object()},
      {"systemInfo", json::object()},
      {"certificateExpiration", formatRfc3339(task.certificateExpiration)},
      {"time", formatRfc3339(now)},
  };
  return body.dump();
}

std::string disconnectBody(std::string_view hostname) {
  return json{{"hostname", hostname}}.dump();
}

std::string observationsBody(const Fleet& fleet, const Task& task, int count, TimePoint now,
                             Millis span, Rng& rng) {
  const Family& f = fleet.families[task.family];
  json list = json::array();
  std::uniform_int_distribution<int> kind(0, 3);
  std::uniform_int_distribution<long long> back(0, std::max<long long>(0, span.count()));
  std::uniform_int_distribution<size_t> pick(0, 1000);
  for (int i = 0; i < count; ++i) {
    json o;
    o["time"] = formatRfc3339(now - Millis(back(rng)));
    switch (kind(rng)) {
      case 0:
        o["kind"] = "process";
        o["fields"] = {{"command", kCommands[pick(rng) % kCommands.size()]},
                       {"pid", 7 + pick(rng)},
                       {"user", "root"},
                       {"container", f.name}};
        break;
      case 1:
        o["kind"] = "network";
        o["fields"] = {{"direction", "outbound"},
                       {"remoteIP", "10.0." + std::to_string(pick(rng) % 256) + "." +
                                        std::to_string(pick(rng) % 256)},
                       {"port", pick(rng) % 2 ? 443 : 5432},
                       {"protocol", "tcp"},
                       {"container", f.name}};
        break;
      case 2:
        o["kind"] = "dns";
        o["fields"] = {{"domain", kDomains[pick(rng) % kDomains.size()]}, {"container", f.name}};
        break;
      default:
        o["kind"] = "filesystem";
        o["fields"] = {{"path", kPaths[pick(rng) % kPaths.size()]},
                       {"operation", pick(rng) % 2 ? "write" : "open"},
                       {"container", f.name}};
        break;
    }
    list.push_back(std::move(o));
  }
  return json{{"hostname", task.taskId}, {"observations", std::move(list)}}.dump();
}

Result<HeartbeatReply> parseHeartbeatReply(std::string_view body) {
  json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return Error::invalid("bad_reply", "", "heartbeat reply is not a JSON object");
  }
  HeartbeatReply r;
  bool bad = false;
  if (auto it = j.find("registered"); it != j.end()) {
    if (it->is_boolean()) {
      r.registered = it->get<bool>();
    } else {
      bad = true;
    }
  }
  r.intervalSeconds = optionalNumber(j, "intervalSeconds", bad);
  r.nextHeartbeatSeconds = optionalNumber(j, "nextHeartbeatSeconds", bad);
  if (bad) return Error::invalid("bad_reply", "", "heartbeat reply has a field of the wrong type");
  return r;
}

NextHeartbeat nextHeartbeat(const Response& response, TimePoint now, int failuresBefore,
                            const SchedulePolicy& policy, Rng& rng) {
  NextHeartbeat next;
  if (response.status == 200) {
    auto reply = parseHeartbeatReply(response.body);
    if (reply) {
      next.outcome = Outcome::kOk;
      next.registered = reply->registered;
      Millis delay = policy.defaultInterval;
      if (policy.intervalOverride) {
        delay = *policy.intervalOverride;
      } else if (reply->nextHeartbeatSeconds) {
        delay = secondsToMillis(*reply->nextHeartbeatSeconds, policy.maxDelay);
      } else if (reply->intervalSeconds) {
        delay = secondsToMillis(*reply->intervalSeconds, policy.maxDelay);
      }
      next.due = now + std::min(delay, policy.maxDelay);
      return next;
    }
  }
  if ((response.status == 429 || response.status == 503) && response.retryAfterSeconds) {
    next.outcome = Outcome::kRetryAfter;
    next.due = now + secondsToMillis(*response.retryAfterSeconds, policy.maxDelay);
    return next;
  }
  next.outcome = Outcome::kFailed;
  int doublings = std::clamp(failuresBefore, 0, 30);
  double backoff =
      std::min(static_cast<double>(policy.minBackoff.count()) * std::pow(2.0, doublings),
               static_cast<double>(policy.maxBackoff.count()));
  double jittered = backoff * std::uniform_real_distribution<double>(0.5, 1.0)(rng);
  next.due = now + Millis(static_cast<Millis::rep>(jittered));
  return next;
}

}  // namespace dc::sim
