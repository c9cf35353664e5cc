// Reads an image's ENTRYPOINT and CMD from the registry that holds it (docs/embed.md,
// "Entrypoints from the registry").
//
// Protocol: Docker Registry HTTP API v2 / OCI distribution-spec v1.1 — GET the manifest (a
// manifest list or OCI index is resolved to the platform's manifest), then GET its config blob
// (checked against its sha256 digest) and read `config.Entrypoint` / `config.Cmd` (OCI image-spec
// "config" object). Authentication answers a `WWW-Authenticate: Bearer realm=…,service=…,scope=…`
// challenge (distribution "token authentication", with Basic credentials at the realm when
// given) or a Basic challenge. Always HTTPS, verified against the system CAs or a configured CA
// bundle.
//
// Registry types (the vendor's `registryType` values): "2" Docker Registry v2, "jfrog"
// Artifactory (the same API under /artifactory/api/docker/<repository key>/), "aws" ECR (the v2
// API with Basic "AWS:<token>"; the token from ECR GetAuthorizationToken, see ecrToken()).
//
// Bounds: every HTTP exchange has a connect/read/write timeout (requestTimeout) and the whole
// fetch a deadline (RegistryOptions::deadline) checked before each request and while a body is
// read; a body over maxBodyBytes is refused. No retries.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace dc::registry {

/// Registry flavours, as the vendor's `registryType` strings.
enum class RegistryType { kDockerV2, kArtifactory, kEcr };
/// "2" / "jfrog" / "aws" (also accepted on input: "docker", "artifactory", "ecr", and the
/// vendor's other registry types whose registries serve the same v2 API — "acr", "gcr", "gar",
/// "gitlab", "harbor", "nexus", "sonatype", "openshift", "redhat", "coreos", "quay", "dtr",
/// "bluemix" — which are spoken as Docker Registry v2). nullopt for anything else.
std::optional<RegistryType> parseRegistryType(std::string_view text);
std::string_view toString(RegistryType type);

/// An image reference split the way the v2 API addresses it.
struct ImageReference {
  std::string registry;    // host[:port]; "registry-1.docker.io" for Docker Hub
  std::string repository;  // path, e.g. "library/nginx"
  std::string reference;   // tag or "sha256:…" digest (the digest wins when both are given)
};
/// Parses a normalized reference "host/repo[:tag][@digest]" (embed::normalizeImage output).
/// "docker.io" becomes "registry-1.docker.io". Error "invalid_image" (kInvalidArgument).
Result<ImageReference> parseImageReference(std::string_view normalized);

/// What the registry answered for an image.
struct ImageConfigResult {
  std::vector<std::string> entrypoint;  // config.Entrypoint (empty when null/absent)
  std::vector<std::string> cmd;         // config.Cmd
  std::string manifestDigest;           // "sha256:…" of the platform manifest
  std::string platform;                 // "linux/amd64" as found (empty for a single manifest)
};

/// Credentials for one fetch. For "aws" the password is the ECR token (see ecrToken()).
struct RegistryLogin {
  std::string username;
  std::string password;
};

struct RegistryOptions {
  RegistryType type = RegistryType::kDockerV2;
  /// PEM file with the CA certificates to trust; empty: the system store.
  std::string caFile;
  /// Platform picked from a manifest list / OCI index (GOOS/GOARCH names).
  std::string os = "linux";
  std::string architecture = "amd64";
  std::string variant;  // e.g. "v8" for arm64; empty: any
  /// Connect, read and write timeout of each HTTP exchange.
  std::chrono::milliseconds requestTimeout{5000};
  /// Bound of the whole fetch (all requests together).
  std::chrono::milliseconds deadline{10000};
  /// Largest manifest, token or config body accepted (bytes).
  size_t maxBodyBytes = 4 * 1024 * 1024;
  /// Test hook: overrides "https://<registry>" as the base URL (scheme://host:port).
  std::string baseUrlOverride;
};

/// Errors (all carry a message naming the image and the registry's answer):
///   registry_unauthorized (401/403 from the registry or its token service) — kInvalidArgument
///   registry_not_found    (404: no such repository, tag or manifest)       — kInvalidArgument
///   registry_no_platform  (an index without the requested platform)        — kInvalidArgument
///   registry_timeout      (a request or the overall deadline ran out)      — kUnavailable
///   registry_tls          (TLS handshake / certificate verification failed) — kUnavailable
///   registry_unreachable  (connection refused, DNS)                        — kUnavailable
///   registry_bad_response (unexpected status, media type, JSON, digest)    — kUnavailable
/// Thread-safe (no shared state).
class ImageConfigSource {
 public:
  virtual ~ImageConfigSource() = default;
  virtual Result<ImageConfigResult> fetch(const ImageReference& image,
                                          const std::optional<RegistryLogin>& login,
                                          const RegistryOptions& options) = 0;
};

/// The HTTP implementation (cpp-httplib with OpenSSL).
class RegistryClient final : public ImageConfigSource {
 public:
  Result<ImageConfigResult> fetch(const ImageReference& image,
                                  const std::optional<RegistryLogin>& login,
                                  const RegistryOptions& options) override;
};

/// Path prefix of the v2 API for a registry type and repository: "/v2/<repo>" or, for
/// Artifactory's repository-path method, "/artifactory/api/docker/<key>/v2/<rest>" where <key>
/// is the first path component of the repository. Error "invalid_image" when an Artifactory
/// repository has no second component.
Result<std::string> apiPath(RegistryType type, const std::string& repository);

/// A parsed `WWW-Authenticate` challenge (RFC 7235 §4.1; distribution token auth).
struct AuthChallenge {
  std::string scheme;  // lower case: "bearer", "basic"
  std::string realm, service, scope;
};
std::optional<AuthChallenge> parseChallenge(std::string_view header);

}  // namespace dc::registry
