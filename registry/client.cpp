#include "registry/client.h"

#include <httplib.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <nlohmann/json.hpp>
#include <regex>

#include "auth/crypto.h"
#include "registry/http.h"

namespace dc::registry {

namespace {

using Json = nlohmann::json;
using SteadyClock = std::chrono::steady_clock;

// Media types (distribution-spec / image-spec v1.1 and Docker Image Manifest V2, Schema 2).
constexpr const char* kOciIndex = "application/vnd.oci.image.index.v1+json";
constexpr const char* kOciManifest = "application/vnd.oci.image.manifest.v1+json";
constexpr const char* kDockerList = "application/vnd.docker.distribution.manifest.list.v2+json";
constexpr const char* kDockerManifest = "application/vnd.docker.distribution.manifest.v2+json";

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

Error fail(ErrorKind kind, const char* code, std::string message) {
  return Error{kind, code, std::move(message), "image"};
}

/// One fetch: the image, its options, the deadline and the authorization that worked so far.
class Fetch {
 public:
  Fetch(const ImageReference& image, const std::optional<RegistryLogin>& login,
        const RegistryOptions& options)
      : image_(image),
        login_(login),
        options_(options),
        deadline_(SteadyClock::now() + options.deadline),
        label_("image " + image.registry + "/" + image.repository + " (" + image.reference +
               ") at registry " + image.registry) {}

  Result<ImageConfigResult> run() {
    auto path = apiPath(options_.type, image_.repository);
    if (!path.ok()) return path.error();
    apiPath_ = *path;

    auto top = getManifest(image_.reference);
    if (!top.ok()) return top.error();
    ImageConfigResult result;
    Json manifest = std::move(top).value();
    std::string digest = lastDigest_;
    if (isIndex(manifest)) {
      auto chosen = choosePlatform(manifest);
      if (!chosen.ok()) return chosen.error();
      result.platform = chosen->second;
      auto inner = getManifest(chosen->first);
      if (!inner.ok()) return inner.error();
      manifest = std::move(inner).value();
      digest = chosen->first;
      if (isIndex(manifest))
        return bad(
            "the platform entry of the index is itself an index (nested indexes are not "
            "followed)");
    }
    result.manifestDigest = digest;
    if (!manifest.is_object() || !manifest.contains("config") || !manifest["config"].is_object() ||
        !manifest["config"].contains("digest") || !manifest["config"]["digest"].is_string())
      return bad("the manifest has no config descriptor (schema 1 manifests are not supported)");
    const std::string configDigest = manifest["config"]["digest"].get<std::string>();
    auto blob = get(apiPath_ + "/blobs/" + configDigest, "*/*", "config blob " + configDigest);
    if (!blob.ok()) return blob.error();
    if (auto st = checkDigest(*blob, configDigest); !st.ok()) return st.error();
    Json config = Json::parse(*blob, nullptr, false);
    if (config.is_discarded() || !config.is_object())
      return bad("the config blob " + configDigest + " is not a JSON object");
    const Json* c =
        config.contains("config") && config["config"].is_object() ? &config["config"] : nullptr;
    if (c) {
      auto ep = argv(*c, "Entrypoint");
      if (!ep.ok()) return ep.error();
      auto cmd = argv(*c, "Cmd");
      if (!cmd.ok()) return cmd.error();
      result.entrypoint = std::move(ep).value();
      result.cmd = std::move(cmd).value();
    }
    return result;
  }

 private:
  Error bad(const std::string& why) const {
    return fail(ErrorKind::kUnavailable, "registry_bad_response", label_ + ": " + why);
  }

  Result<std::vector<std::string>> argv(const Json& c, const char* key) const {
    std::vector<std::string> out;
    if (!c.contains(key) || c[key].is_null()) return out;
    if (!c[key].is_array()) return bad(std::string("config.") + key + " is not an array");
    for (const auto& v : c[key]) {
      if (!v.is_string()) return bad(std::string("config.") + key + " holds a non-string");
      out.push_back(v.get<std::string>());
    }
    return out;
  }

  static bool isIndex(const Json& m) {
    if (!m.is_object()) return false;
    const std::string mt = m.value("mediaType", std::string());
    if (mt == kOciIndex || mt == kDockerList) return true;
    return mt.empty() && m.contains("manifests") && m["manifests"].is_array();
  }

  /// The digest and "os/arch[/variant]" of the index entry for the requested platform.
  Result<std::pair<std::string, std::string>> choosePlatform(const Json& index) const {
    std::vector<std::string> seen;
    for (const auto& m : index["manifests"]) {
      if (!m.is_object() || !m.contains("platform") || !m["platform"].is_object()) continue;
      const Json& p = m["platform"];
      const std::string os = p.value("os", std::string());
      const std::string arch = p.value("architecture", std::string());
      const std::string variant = p.value("variant", std::string());
      std::string name = os + "/" + arch + (variant.empty() ? "" : "/" + variant);
      if (os == options_.os && arch == options_.architecture &&
          (options_.variant.empty() || variant == options_.variant) && m.contains("digest") &&
          m["digest"].is_string())
        return std::make_pair(m["digest"].get<std::string>(), name);
      seen.push_back(std::move(name));
    }
    std::string list;
    for (const auto& s : seen) list += (list.empty() ? "" : ", ") + s;
    const std::string wanted = options_.os + "/" + options_.architecture +
                               (options_.variant.empty() ? "" : "/" + options_.variant);
    return fail(ErrorKind::kInvalidArgument, "registry_no_platform",
                label_ + ": the image index has no " + wanted +
                    " manifest (it has: " + (list.empty() ? "none" : list) + ")");
  }

  Status checkDigest(const std::string& body, const std::string& digest) const {
    if (digest.rfind("sha256:", 0) != 0) return Status::success();  // other algorithms: trust
    if (auth::toHex(auth::sha256(body)) != digest.substr(7))
      return bad("the body of " + digest + " does not match its digest");
    return Status::success();
  }

  Result<Json> getManifest(const std::string& reference) {
    const std::string accept =
        std::string(kOciIndex) + ", " + kDockerList + ", " + kOciManifest + ", " + kDockerManifest;
    auto body = get(apiPath_ + "/manifests/" + reference, accept, "manifest " + reference);
    if (!body.ok()) return body.error();
    if (reference.rfind("sha256:", 0) == 0) {
      if (auto st = checkDigest(*body, reference); !st.ok()) return st.error();
    }
    lastDigest_ = reference.rfind("sha256:", 0) == 0 ? reference
                                                     : "sha256:" + auth::toHex(auth::sha256(*body));
    Json j = Json::parse(*body, nullptr, false);
    if (j.is_discarded() || !j.is_object()) return bad("manifest " + reference + " is not JSON");
    return j;
  }

  /// Remaining time, or an error when the deadline has passed.
  Result<std::chrono::milliseconds> remaining() const {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline_ - SteadyClock::now());
    if (left.count() <= 0)
      return fail(ErrorKind::kUnavailable, "registry_timeout",
                  label_ + ": no answer within the " + std::to_string(options_.deadline.count()) +
                      " ms bound of a registry fetch");
    return left;
  }

  std::string baseUrl() const {
    return options_.baseUrlOverride.empty() ? "https://" + image_.registry
                                            : options_.baseUrlOverride;
  }

  /// One GET with redirects (to blob storage) followed, at most 3.
  Result<httplib::Result> exchange(const std::string& base, const std::string& path,
                                   const httplib::Headers& headers) {
    auto left = remaining();
    if (!left.ok()) return left.error();
    const auto timeout = std::min(*left, options_.requestTimeout);
    auto made = makeHttpClient(base, options_.caFile, timeout);
    if (!made.ok()) {
      Error e = made.error();
      e.message = label_ + ": " + e.message;
      return e;
    }
    httplib::Client& client = **made;
    bool tooLarge = false;
    bool late = false;
    const auto started = SteadyClock::now();
    auto res = client.Get(path, headers, [&](uint64_t current, uint64_t) {
      if (current > options_.maxBodyBytes) tooLarge = true;
      if (SteadyClock::now() > deadline_) late = true;
      return !tooLarge && !late;
    });
    if (tooLarge)
      return bad("a response body is larger than " + std::to_string(options_.maxBodyBytes) +
                 " bytes");
    // A TLS handshake that times out is reported as an SSLConnection error: tell it by the time.
    const bool timedOut = SteadyClock::now() - started >= timeout - timeout / 10;
    if (late || res.error() == httplib::Error::Read || res.error() == httplib::Error::Write ||
        res.error() == httplib::Error::ConnectionTimeout ||
        (res.error() == httplib::Error::SSLConnection && timedOut)) {
      auto again = remaining();
      return fail(ErrorKind::kUnavailable, "registry_timeout",
                  label_ + ": no answer from " + base + " within " +
                      std::to_string(std::min(timeout, options_.deadline).count()) + " ms" +
                      (again.ok() ? "" : " (the fetch's bound)"));
    }
    if (res.error() == httplib::Error::SSLConnection ||
        res.error() == httplib::Error::SSLServerVerification ||
        res.error() == httplib::Error::SSLLoadingCerts)
      return fail(
          ErrorKind::kUnavailable, "registry_tls",
          label_ + ": TLS with " + base + " failed (" + httplib::to_string(res.error()) +
              (options_.caFile.empty() ? "; the system CAs were used"
                                       : "; the system CAs and " + options_.caFile + " were used") +
              ")");
    if (!res)
      return fail(ErrorKind::kUnavailable, "registry_unreachable",
                  label_ + ": cannot reach " + base + " (" + httplib::to_string(res.error()) + ")");
    return res;
  }

  /// GET `path` with the authorization that works; returns the body of a 200.
  Result<std::string> get(const std::string& path, const std::string& accept,
                          const std::string& what) {
    // Credentials go to the registry's own origin only: a redirect elsewhere (blob storage),
    // and anything that redirects on from there, is asked without them.
    const std::string registryBase = baseUrl();
    std::string base = registryBase;
    std::string target = path;
    bool sameHost = true;
    for (int hop = 0; hop < 4; ++hop) {
      httplib::Headers headers{{"Accept", accept}};
      if (sameHost && !authorization_.empty()) headers.emplace("Authorization", authorization_);
      auto res = exchange(base, target, headers);
      if (!res.ok()) return res.error();
      const int status = (*res)->status;
      if (status == 401 && sameHost && !triedAuth_) {
        triedAuth_ = true;
        if (auto st = authenticate((*res)->get_header_value("WWW-Authenticate")); !st.ok())
          return st.error();
        --hop;
        continue;
      }
      if (status >= 300 && status < 400 && (*res)->has_header("Location")) {
        const std::string location = (*res)->get_header_value("Location");
        if (location.rfind("http://", 0) == 0 && registryBase.rfind("https://", 0) == 0)
          return bad("the registry redirected " + what + " to plain HTTP; only HTTPS is followed");
        if (location.rfind("http://", 0) == 0 || location.rfind("https://", 0) == 0) {
          const auto slash = location.find('/', location.find("//") + 2);
          const std::string newBase =
              slash == std::string::npos ? location : location.substr(0, slash);
          target = slash == std::string::npos ? "/" : location.substr(slash);
          sameHost = newBase == registryBase;
          base = newBase;
        } else {
          target = location;
        }
        continue;
      }
      if (status == 200) return std::move((*res)->body);
      if (status == 401 || status == 403)
        return fail(ErrorKind::kInvalidArgument, "registry_unauthorized",
                    label_ + ": the registry refused the credentials for " + what + " (HTTP " +
                        std::to_string(status) + (login_ ? "" : "; no credential was given") + ")");
      if (status == 404)
        return fail(ErrorKind::kInvalidArgument, "registry_not_found",
                    label_ + ": the registry has no " + what + " (HTTP 404" +
                        errorDetail((*res)->body) + ")");
      return bad("HTTP " + std::to_string(status) + " for " + what + errorDetail((*res)->body));
    }
    return bad("too many redirects for " + what);
  }

  /// " — MANIFEST_UNKNOWN: manifest unknown" from a distribution error body, or "".
  static std::string errorDetail(const std::string& body) {
    Json j = Json::parse(body, nullptr, false);
    if (j.is_discarded() || !j.is_object() || !j.contains("errors") || !j["errors"].is_array() ||
        j["errors"].empty() || !j["errors"][0].is_object())
      return "";
    const Json& e = j["errors"][0];
    std::string out = ": " + e.value("code", std::string());
    const std::string msg = e.value("message", std::string());
    if (!msg.empty()) out += " " + msg.substr(0, 200);
    return out;
  }

  std::string basicHeader() const {
    return "Basic " + auth::base64(login_->username + ":" + login_->password);
  }

  /// Answers a 401's challenge: sets authorization_ for the following requests.
  Status authenticate(const std::string& header) {
    auto challenge = parseChallenge(header);
    if (!challenge)
      return fail(ErrorKind::kInvalidArgument, "registry_unauthorized",
                  label_ +
                      ": the registry answered 401 without a usable WWW-Authenticate "
                      "challenge");
    if (challenge->scheme == "basic") {
      if (!login_)
        return fail(ErrorKind::kInvalidArgument, "registry_unauthorized",
                    label_ +
                        ": the registry requires credentials (HTTP 401, Basic) and no "
                        "registryCredentialID was given");
      authorization_ = basicHeader();
      return Status::success();
    }
    if (challenge->scheme != "bearer" || challenge->realm.empty())
      return fail(ErrorKind::kInvalidArgument, "registry_unauthorized",
                  label_ + ": unsupported authentication scheme \"" + challenge->scheme + "\"");
    const std::string& realm = challenge->realm;
    if (realm.rfind("https://", 0) != 0 &&
        !(options_.baseUrlOverride.rfind("http://", 0) == 0 && realm.rfind("http://", 0) == 0))
      return bad("the token realm " + realm + " is not an https URL");
    const auto slash = realm.find('/', realm.find("//") + 2);
    const std::string base = slash == std::string::npos ? realm : realm.substr(0, slash);
    std::string path = slash == std::string::npos ? "/" : realm.substr(slash);
    httplib::Params params;
    if (!challenge->service.empty()) params.emplace("service", challenge->service);
    const std::string scope =
        challenge->scope.empty() ? "repository:" + image_.repository + ":pull" : challenge->scope;
    params.emplace("scope", scope);
    path = httplib::append_query_params(path, params);
    httplib::Headers headers{{"Accept", "application/json"}};
    if (login_) headers.emplace("Authorization", basicHeader());
    auto res = exchange(base, path, headers);
    if (!res.ok()) return res.error();
    const int status = (*res)->status;
    if (status == 401 || status == 403)
      return fail(ErrorKind::kInvalidArgument, "registry_unauthorized",
                  label_ + ": the token service " + base + " refused the credentials (HTTP " +
                      std::to_string(status) + (login_ ? "" : "; no credential was given") + ")");
    if (status != 200) return bad("the token service answered HTTP " + std::to_string(status));
    Json j = Json::parse((*res)->body, nullptr, false);
    std::string token;
    if (j.is_object()) {
      if (j.contains("token") && j["token"].is_string()) token = j["token"].get<std::string>();
      if (token.empty() && j.contains("access_token") && j["access_token"].is_string())
        token = j["access_token"].get<std::string>();
    }
    if (token.empty()) return bad("the token service's answer has no token");
    authorization_ = "Bearer " + token;
    return Status::success();
  }

  const ImageReference& image_;
  const std::optional<RegistryLogin>& login_;
  const RegistryOptions& options_;
  const SteadyClock::time_point deadline_;
  const std::string label_;
  std::string apiPath_;
  std::string authorization_;
  std::string lastDigest_;
  bool triedAuth_ = false;
};

}  // namespace

std::optional<RegistryType> parseRegistryType(std::string_view text) {
  const std::string t = lower(text);
  if (t == "2" || t == "docker" || t == "dockerv2") return RegistryType::kDockerV2;
  if (t == "jfrog" || t == "artifactory") return RegistryType::kArtifactory;
  if (t == "aws" || t == "ecr") return RegistryType::kEcr;
  // Registries that serve the same distribution API (token or Basic auth): spoken as v2.
  for (const char* v2 : {"acr", "azure", "gcr", "gar", "gitlab", "harbor", "nexus", "sonatype",
                         "openshift", "redhat", "coreos", "quay", "dtr", "bluemix"})
    if (t == v2) return RegistryType::kDockerV2;
  return std::nullopt;
}

std::string_view toString(RegistryType type) {
  switch (type) {
    case RegistryType::kDockerV2:
      return "2";
    case RegistryType::kArtifactory:
      return "jfrog";
    case RegistryType::kEcr:
      return "aws";
  }
  return "2";
}

Result<ImageReference> parseImageReference(std::string_view normalized) {
  const auto invalid = [&](const std::string& why) {
    return Error::invalid("invalid_image", "image",
                          "image \"" + std::string(normalized) + "\": " + why);
  };
  std::string rest(normalized);
  ImageReference ref;
  if (const auto at = rest.find('@'); at != std::string::npos) {
    ref.reference = rest.substr(at + 1);
    rest.resize(at);
    if (ref.reference.find(':') == std::string::npos) return invalid("malformed digest");
  }
  const auto slash = rest.find('/');
  if (slash == std::string::npos || slash == 0) return invalid("no registry host");
  ref.registry = rest.substr(0, slash);
  rest = rest.substr(slash + 1);
  const auto colon = rest.rfind(':');
  if (colon != std::string::npos && rest.find('/', colon) == std::string::npos) {
    if (ref.reference.empty()) ref.reference = rest.substr(colon + 1);
    rest.resize(colon);
  }
  if (ref.reference.empty()) ref.reference = "latest";
  if (rest.empty()) return invalid("no repository");
  ref.repository = rest;
  // The distribution reference grammar (distribution/reference, "Grammar"): these parts go into
  // request paths sent with the registry's credentials, so anything else ("..", "?", "#",
  // "user:pw@") is refused rather than sent.
  static const std::regex kHost(
      R"((?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?)");
  static const std::regex kPath(
      R"([a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*)");
  static const std::regex kTag(R"([A-Za-z0-9_][A-Za-z0-9_.-]{0,127})");
  static const std::regex kDigest(
      R"([A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9A-Fa-f]{32,})");
  if (!std::regex_match(ref.registry, kHost)) return invalid("malformed registry host");
  if (ref.repository.size() > 255 || !std::regex_match(ref.repository, kPath))
    return invalid("malformed repository name (lowercase path components, e.g. team/app)");
  const bool digest = ref.reference.find(':') != std::string::npos;
  if (!std::regex_match(ref.reference, digest ? kDigest : kTag))
    return invalid(digest ? "malformed digest" : "malformed tag");
  if (ref.registry == "docker.io") ref.registry = "registry-1.docker.io";
  return ref;
}

Result<std::string> apiPath(RegistryType type, const std::string& repository) {
  if (type != RegistryType::kArtifactory) return "/v2/" + repository;
  const auto slash = repository.find('/');
  if (slash == std::string::npos || slash == 0 || slash + 1 == repository.size())
    return Error::invalid("invalid_image", "image",
                          "image repository \"" + repository +
                              "\": an Artifactory image is <host>/<repository key>/<image>");
  return "/artifactory/api/docker/" + repository.substr(0, slash) + "/v2/" +
         repository.substr(slash + 1);
}

std::optional<AuthChallenge> parseChallenge(std::string_view header) {
  size_t i = 0;
  while (i < header.size() && header[i] == ' ') ++i;
  const size_t start = i;
  while (i < header.size() && header[i] != ' ') ++i;
  if (i == start) return std::nullopt;
  AuthChallenge c;
  c.scheme = lower(header.substr(start, i - start));
  // auth-params: name=value or name="quoted", separated by commas.
  while (i < header.size()) {
    while (i < header.size() && (header[i] == ' ' || header[i] == ',')) ++i;
    const size_t nameStart = i;
    while (i < header.size() && header[i] != '=' && header[i] != ',') ++i;
    if (i >= header.size() || header[i] != '=') break;
    const std::string name = lower(header.substr(nameStart, i - nameStart));
    ++i;
    std::string value;
    if (i < header.size() && header[i] == '"') {
      ++i;
      while (i < header.size() && header[i] != '"') {
        if (header[i] == '\\' && i + 1 < header.size()) ++i;
        value += header[i++];
      }
      ++i;
    } else {
      while (i < header.size() && header[i] != ',') value += header[i++];
    }
    if (name == "realm") c.realm = value;
    if (name == "service") c.service = value;
    if (name == "scope") c.scope = value;
  }
  return c;
}

Result<ImageConfigResult> RegistryClient::fetch(const ImageReference& image,
                                                const std::optional<RegistryLogin>& login,
                                                const RegistryOptions& options) {
  return Fetch(image, login, options).run();
}

}  // namespace dc::registry
