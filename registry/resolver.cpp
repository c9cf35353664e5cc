#include "registry/resolver.h"

#include <algorithm>
#include <chrono>

#include "registry/aws.h"

namespace dc::registry {

EntrypointResolver::EntrypointResolver(ImageConfigSource& source, CredentialStore* credentials,
                                       const Clock& clock, ResolverSettings settings)
    : source_(source), credentials_(credentials), clock_(clock), settings_(std::move(settings)) {}

Result<ImageConfigResult> EntrypointResolver::resolve(const ResolveRequest& request) {
  auto image = parseImageReference(request.image);
  if (!image.ok()) return image.error();

  RegistryType type =
      ecrRegion(image->registry).empty() ? RegistryType::kDockerV2 : RegistryType::kEcr;
  if (!request.registryType.empty()) {
    auto parsed = parseRegistryType(request.registryType);
    if (!parsed)
      return Error::invalid("invalid_parameter", "registryType",
                            "registryType: \"" + request.registryType +
                                "\" is not supported (expected 2 for Docker Registry v2, jfrog "
                                "for JFrog Artifactory or aws for Amazon ECR)");
    type = *parsed;
  }

  RegistryOptions options;
  options.type = type;
  options.caFile = settings_.caFile;
  options.requestTimeout = settings_.requestTimeout;
  options.deadline = std::min(settings_.fetchDeadline, request.budget);
  options.baseUrlOverride = settings_.baseUrlOverride;
  if (request.cpuArchitecture == "ARM64") {
    options.architecture = "arm64";
  }

  const auto started = std::chrono::steady_clock::now();
  std::optional<RegistryLogin> login;
  if (!request.credentialId.empty()) {
    const auto missing =
        Error::invalid("registry_credential_not_found", "registryCredentialID",
                       "registryCredentialID: no registry credential \"" + request.credentialId +
                           "\" (see GET /api/v1/registry/credentials)");
    if (!credentials_) return missing;
    auto found = credentials_->find(request.credentialId);
    if (!found.ok()) return found.error();
    if (!found->has_value()) return missing;
    const RegistryCredential& c = **found;
    if (c.type == "aws") {
      const std::string region = ecrRegion(image->registry);
      if (region.empty())
        return Error::invalid("invalid_parameter", "registryCredentialID",
                              "registryCredentialID: \"" + c.id + "\" is an AWS credential, but " +
                                  image->registry +
                                  " is not an ECR registry (<account>.dkr.ecr.<region>."
                                  "amazonaws.com)");
      auto token = ecrToken(AwsCredentials{c.accountId, c.secret, ""}, region, clock_.now(),
                            std::min(settings_.requestTimeout, options.deadline), settings_.caFile,
                            settings_.ecrEndpointOverride);
      if (!token.ok()) {
        Error e = token.error();
        e.message = "image " + request.image + ": " + e.message;
        return e;
      }
      login = RegistryLogin{"AWS", std::move(token).value()};
    } else {
      login = RegistryLogin{c.accountId, c.secret};
    }
  }
  // The token exchange spends from the same bound as the fetch.
  options.deadline -= std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - started);
  if (options.deadline.count() <= 0)
    return Error{ErrorKind::kUnavailable, "registry_timeout",
                 "image " + request.image + ": no time left for the registry", "image"};
  return source_.fetch(*image, login, options);
}

}  // namespace dc::registry
