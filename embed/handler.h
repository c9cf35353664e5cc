// HTTP-agnostic handlers of the embed flow's Console API (docs/embed.md).
//
//   POST /api/v1/defenders/fargate.json   embed(EmbedRequest{format = kJson})
//   POST /api/v1/defenders/fargate.yaml   embed(EmbedRequest{format = kYaml})
//   GET  /api/v1/defenders/app-ids        listAppIds(query)
//   GET  /api/v1/images/entrypoints       listImageEntrypoints(query)
//   DELETE /api/v1/images/entrypoints?image=  deleteImageEntrypoint(query)
//   POST /api/v1/images/entrypoints       putImageEntrypoint(body)
//   GET  /api/v1/defenders/install-bundle installBundle(query, requestedBy)
//   GET  /api/v1/defenders/image-name     imageName()
//   GET  /api/v1/registry                 registryScanResults(query)
//
// The web layer copies the request's body and query parameters in and the response out; it
// does authentication. Every failure is the Console's JSON error body (errorResponse) with a 4xx
// (or 503 when storage fails), never a partial document. Thread-safe when the store is.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/clock.h"
#include "common/defender_version.h"
#include "common/status.h"
#include "embed/document.h"
#include "embed/store.h"
#include "embed/transform.h"

namespace dc::embed {

/// Query parameters as the HTTP server parsed them (same shape as httplib::Params).
using QueryParams = std::multimap<std::string, std::string>;

enum class EndpointFormat { kJson, kYaml };  // fargate.json or fargate.yaml

struct EmbedRequest {
  std::string body;
  std::string contentType;  // informational: the endpoint decides the format
  QueryParams query;
  EndpointFormat format = EndpointFormat::kJson;
};

struct HttpResponse {
  int status = 200;
  std::string contentType = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  /// Set on failure, so the web layer may re-map it through its own ErrorKind -> status table.
  std::optional<Error> error;
  /// A refused embed: every problem found (the first is `error`); the web layer adds them to
  /// its error body as "problems".
  std::vector<Error> problems;
};

/// Header of a successful embed: what the Console changed besides embedding, as compact JSON
/// {"dropped": [{"field", "reason"}], "skipped": [{"resource", "code", "message", "field"}]}
/// (docs/embed.md). Always sent; both arrays may be empty.
inline constexpr const char* kReportHeader = "X-Defender-Embed-Report";

/// An error response whose body is errorJson(error, problems) (common/error_json.h): the
/// Console's error body {"code", "message", "field"?, "err"} and, when `problems` is not empty,
/// "problems": [{"code", "message", "field"}, ...] (every problem, the first one included).
HttpResponse errorResponse(const Error& error, const std::vector<Error>& problems = {});

/// What the embed flow asks of an image's registry: with extractEntrypoint=true, for an image
/// the store has no record of.
struct RegistryLookup {
  std::string image;            // normalized reference (normalizeImage)
  std::string registryType;     // the request's registryType ("" = decided by the registry host)
  std::string credentialId;     // the request's registryCredentialID ("" = anonymous)
  std::string cpuArchitecture;  // the task's runtimePlatform.cpuArchitecture ("" = X86_64)
  std::chrono::milliseconds budget{0};  // what is left of EmbedConfig::registryBudget
};
/// Reads an image's ENTRYPOINT/CMD from its registry (main wires registry::EntrypointResolver).
/// Errors carry stable registry_* codes (docs/embed.md).
using RegistryReader = std::function<Result<ImageConfig>(const RegistryLookup&)>;

/// Fixed configuration of the embed flow, validated by main.
struct EmbedConfig {
  ParseLimits limits;
  /// Image of the TwistlockDefender sidecar; its tag carries the Defender version the
  /// Console deploys (`--defender-version`) as the vendor writes it: `defender_34_01_132`.
  std::string sidecarImage = "defender-console/fargate-defender:" +
                             defenderImageTag(*parseDeployedVersion(kDefaultDefenderVersion));
  /// Port of the Console's defender channel, written into WS_ADDRESS.
  int defenderPort = 8084;
  /// Used when a request has no `consoleaddr`; empty: the parameter is required.
  std::string defaultConsoleHost;
  /// The defender channel speaks TLS: WS_ADDRESS is wss://, else ws:// (plain-HTTP Consoles).
  bool defenderTls = true;
  /// Issues the Defender credential that goes into an install bundle (the Console's
  /// AuthService): scoped to `appId`, or Console-wide (enrolment) when it is empty;
  /// `description` is shown in GET /api/v1/credentials. Empty: bundles carry no credential
  /// (tests of the transform).
  std::function<Result<std::string>(const std::string& appId, const std::string& description)>
      issueCredential;
  /// Reads entrypoints from registries; empty: only stored records are used.
  RegistryReader readFromRegistry;
  /// Bound on the time one embed request spends in registries, all images together. When it
  /// runs out the request fails with registry_timeout (no partial output).
  std::chrono::milliseconds registryBudget{15000};
};

/// A random (v4, lower-case) UUID from libuuid.
std::string randomUuid();

class EmbedService {
 public:
  /// `store` and `clock` must outlive the service. `newUuid` makes App IDs deterministic in
  /// tests; `installBundle` gives the INSTALL_BUNDLE members besides "appID" (default:
  /// {"consoleHost","defenderPort","credential"} where `credential` comes from
  /// EmbedConfig::issueCredential and is omitted without one; the channel's scheme is in
  /// WS_ADDRESS). The sidecar's value is base64 of {"appID", ...those members}.
  EmbedService(EmbedStore& store, const Clock& clock, EmbedConfig config,
               UuidGenerator newUuid = randomUuid, BundleIssuer installBundle = {});

  /// POST /api/v1/defenders/fargate.{json,yaml}. 200 with the protected document in the
  /// endpoint's format, header X-Defender-App-IDs (comma-separated App IDs issued) and
  /// kReportHeader (dropped fields, skipped task definitions). A refusal lists every problem
  /// found (errorResponse's "problems").
  HttpResponse embed(const EmbedRequest& request);

  /// GET /api/v1/defenders/app-ids?family=&offset=&limit= (limit default 50, max 250).
  /// JSON array, header Total-Count.
  HttpResponse listAppIds(const QueryParams& query);

  /// GET /api/v1/images/entrypoints?image=&prefix=&offset=&limit=. JSON array, Total-Count.
  HttpResponse listImageEntrypoints(const QueryParams& query);

  /// DELETE /api/v1/images/entrypoints?image=<reference>: removes the stored entry of that image
  /// (normalized as by POST). 200 {"image": <normalized>, "deleted": true}; 404
  /// "unknown_image" when none is stored; 400 "missing_parameter"/"invalid_image" for a
  /// missing or malformed `image`.
  HttpResponse deleteImageEntrypoint(const QueryParams& query);

  /// POST /api/v1/images/entrypoints with {"image": "...", "entrypoint": [...], "cmd": [...]}.
  /// 200 with the stored entry (image normalized).
  HttpResponse putImageEntrypoint(std::string_view body);

  /// GET /api/v1/defenders/install-bundle?consoleaddr=&appID= (vendor shape): 200 with
  /// {"installBundle", "wsAddress"} and `Cache-Control: no-store`. `installBundle` is the same
  /// base64 JSON the embed flow puts into INSTALL_BUNDLE, with a new Defender credential:
  /// scoped to `appID` when given (it must be a valid App ID), else Console-wide (enrolment).
  /// Each call issues one credential, described as requested by `requestedBy` (listed and
  /// revocable under /api/v1/credentials). `consoleaddr` follows the embed flow's rules.
  /// Errors: missing_parameter / invalid_parameter (consoleaddr), invalid_app_id (appID),
  /// storage_unavailable (503).
  HttpResponse installBundle(const QueryParams& query, const std::string& requestedBy);

  /// GET /api/v1/defenders/image-name: the sidecar image the embed flow writes, as a JSON
  /// string (vendor shape), e.g. "defender-console/fargate-defender:defender_34_01_132".
  HttpResponse imageName() const;

  /// GET /api/v1/registry?search=&compact=&offset=&limit=: the image records in the vendor's
  /// registry scan-result shape (docs/api.md). JSON array, header Total-Count.
  HttpResponse registryScanResults(const QueryParams& query);

  /// True when the App ID was issued by this Console (see embed::isIssued).
  bool isIssued(std::string_view appId) const;
  /// The App IDs of `appIds` issued by this Console, with one store lookup (embed::issuedAmong).
  std::unordered_set<std::string> issuedAmong(const std::vector<std::string>& appIds) const;

  /// The defender channel's port as bound (main calls it after listening, so `--defender-port
  /// 0` gives the real port in INSTALL_BUNDLE and WS_ADDRESS). Thread-safe.
  void setDefenderPort(int port);

 private:
  Result<EmbedOptions> parseOptions(const QueryParams& query) const;
  /// `consoleaddr`, else EmbedConfig::defaultConsoleHost, else missing_parameter.
  Result<std::string> consoleHostParam(const QueryParams& query) const;

  EmbedStore& store_;
  const Clock& clock_;
  EmbedConfig config_;
  UuidGenerator newUuid_;
  BundleIssuer installBundle_;
  std::atomic<int> defenderPort_;
};

}  // namespace dc::embed
