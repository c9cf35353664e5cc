#include "inventory/defender.h"

#include <cassert>

#define XXH_STATIC_LINKING_ONLY  // XXH3_state_t on the stack
#include <xxhash.h>

namespace dc::inventory {

namespace {

using T = DefenderType;
using C = Category;

constexpr std::array<TypeInfo, 17> kTypes{{
    {T::kNone, "none", C::kContainer, "None"},
    {T::kDocker, "docker", C::kContainer, "Container Defender - Docker"},
    {T::kDockerWindows, "dockerWindows", C::kContainer, "Container Defender - Windows"},
    {T::kContainerdWindows, "containerdWindows", C::kContainer,
     "Container Defender - containerd Windows"},
    {T::kSwarm, "swarm", C::kContainer, "Container Defender - Swarm"},
    {T::kDaemonset, "daemonset", C::kContainer, "Container Defender - Kubernetes"},
    {T::kServerLinux, "serverLinux", C::kHost, "Host Defender - Linux"},
    {T::kServerWindows, "serverWindows", C::kHost, "Host Defender - Windows"},
    {T::kCri, "cri", C::kContainer, "Container Defender - CRI"},
    {T::kFargate, "fargate", C::kAppEmbedded, "Fargate"},
    {T::kAppEmbedded, "appEmbedded", C::kAppEmbedded, "Container Defender - App-Embedded"},
    {T::kTas, "tas", C::kHost, "Tanzu Application Service Defender - Linux"},
    {T::kTasWindows, "tasWindows", C::kHost, "Tanzu Application Service Defender - Windows"},
    {T::kServerless, "serverless", C::kServerless, "Serverless Defender"},
    {T::kEcs, "ecs", C::kContainer, "Container Defender - ECS"},
    {T::kPodman, "podman", C::kContainer, "Container Defender - Podman"},
    {T::kEksFargate, "eksFargate", C::kAppEmbedded, "EKS Fargate"},
}};

}  // namespace

const std::array<TypeInfo, 17>& allTypes() {
  return kTypes;
}

const TypeInfo& typeInfo(DefenderType type) {
  const auto& info = kTypes[static_cast<size_t>(type)];
  assert(info.type == type);
  return info;
}

std::optional<DefenderType> parseType(std::string_view name) {
  for (const auto& info : kTypes)
    if (info.apiName == name) return info.type;
  return std::nullopt;
}

std::string_view categoryName(Category c) {
  switch (c) {
    case C::kContainer:
      return "container";
    case C::kHost:
      return "host";
    case C::kServerless:
      return "serverless";
    case C::kAppEmbedded:
      return "appEmbedded";
  }
  return "container";
}

std::optional<Category> parseCategory(std::string_view name) {
  for (auto c : {C::kContainer, C::kHost, C::kServerless, C::kAppEmbedded})
    if (categoryName(c) == name) return c;
  return std::nullopt;
}

std::string hostnameKey(std::string_view hostname) {
  std::string key(hostname);
  for (auto& ch : key)
    if (ch >= 'A' && ch <= 'Z') ch = static_cast<char>(ch - 'A' + 'a');
  return key;
}

std::string_view resourceIdOf(const Defender& d) {
  const auto cm = d.details.find("cloudMetadata");
  if (cm == d.details.end() || !cm->is_object()) return {};
  const auto id = cm->find("resourceID");
  if (id == cm->end() || !id->is_string()) return {};
  return id->get_ref<const std::string&>();
}

uint64_t resourceHash(std::string_view resourceId) {
  if (resourceId.empty()) return 0;
  const uint64_t h = XXH3_64bits(resourceId.data(), resourceId.size());
  return h == 0 ? 1 : h;
}

uint64_t descriptiveFingerprint(const Defender& d) {
  XXH3_state_t state;
  XXH3_64bits_reset(&state);
  const std::string details = d.details.dump();
  for (std::string_view part :
       {std::string_view(d.hostname), typeInfo(d.type).apiName, std::string_view(d.version),
        std::string_view(d.cluster), std::string_view(d.appId), std::string_view(d.container),
        std::string_view(details)}) {
    XXH3_64bits_update(&state, part.data(), part.size());
    XXH3_64bits_update(&state, "\x1f", 1);  // separator: ("ab","c") differs from ("a","bc")
  }
  const uint64_t h = XXH3_64bits_digest(&state);
  return h == 0 ? 1 : h;
}

}  // namespace dc::inventory
