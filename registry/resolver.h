// Resolves an image's ENTRYPOINT/CMD from its registry for the embed flow: picks the registry
// type, turns a stored credential into a login (an "aws" credential through ECR
// GetAuthorizationToken) and fetches within the request's remaining budget (docs/embed.md).
#pragma once

#include <chrono>
#include <string>

#include "common/clock.h"
#include "common/status.h"
#include "registry/client.h"
#include "registry/credentials.h"

namespace dc::registry {

struct ResolverSettings {
  std::string caFile;  // extra CA bundle for registries ("" = system store)
  std::chrono::milliseconds requestTimeout{5000};
  std::chrono::milliseconds fetchDeadline{10000};
  std::string ecrEndpointOverride;  // tests only
  std::string baseUrlOverride;      // tests only
};

struct ResolveRequest {
  std::string image;            // normalized reference (embed::normalizeImage)
  std::string registryType;     // "" = "aws" for an ECR host, else "2"
  std::string credentialId;     // "" = anonymous
  std::string cpuArchitecture;  // ECS runtimePlatform.cpuArchitecture: "", "X86_64", "ARM64"
  std::chrono::milliseconds budget{10000};  // what is left of the embed request's bound
};

class EntrypointResolver {
 public:
  /// `source`, `credentials` (may be null: no credential can be named) and `clock` outlive it.
  EntrypointResolver(ImageConfigSource& source, CredentialStore* credentials, const Clock& clock,
                     ResolverSettings settings);

  /// Errors: the client's registry_* errors; invalid_parameter (registryType) and
  /// registry_credential_not_found (field registryCredentialID), both 400; credential_unreadable.
  Result<ImageConfigResult> resolve(const ResolveRequest& request);

 private:
  ImageConfigSource& source_;
  CredentialStore* credentials_;
  const Clock& clock_;
  ResolverSettings settings_;
};

}  // namespace dc::registry
