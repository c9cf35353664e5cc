#include "embed/handler.h"

#include "common/error_json.h"
#include "common/http_status.h"

#include <uuid/uuid.h>

#include <algorithm>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>

#include "appid/app_id.h"
#include "auth/crypto.h"
#include "common/time_format.h"
#include "registry/client.h"

namespace dc::embed {

namespace {

using OJson = nlohmann::ordered_json;

constexpr size_t kDefaultLimit = 50;
constexpr size_t kMaxLimit = 250;

std::string dump(const OJson& j) {
  return j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

/// The single value of a query parameter; an error when it is repeated.
Result<std::optional<std::string>> single(const QueryParams& q, const std::string& name) {
  auto [lo, hi] = q.equal_range(name);
  if (lo == hi) return std::optional<std::string>();
  if (std::next(lo) != hi)
    return Error::invalid("invalid_parameter", name, name + ": give this parameter only once");
  return std::optional<std::string>(lo->second);
}

Result<std::optional<bool>> boolParam(const QueryParams& q, const std::string& name) {
  auto v = single(q, name);
  if (!v.ok()) return v.error();
  if (!v->has_value()) return std::optional<bool>();
  std::string s = **v;
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (s == "true") return std::optional<bool>(true);
  if (s == "false") return std::optional<bool>(false);
  return Error::invalid("invalid_parameter", name, name + ": expected true or false");
}

Result<size_t> sizeParam(const QueryParams& q, const std::string& name, size_t def, size_t min,
                         size_t max) {
  auto v = single(q, name);
  if (!v.ok()) return v.error();
  if (!v->has_value() || (*v)->empty()) return def;
  const std::string& s = **v;
  if (s.size() > 9 || !std::all_of(s.begin(), s.end(), ::isdigit))
    return Error::invalid("invalid_parameter", name, name + ": expected a non-negative integer");
  const size_t n = std::stoul(s);
  if (n < min || n > max)
    return Error::invalid(
        "invalid_parameter", name,
        name + ": must be between " + std::to_string(min) + " and " + std::to_string(max));
  return n;
}

/// The defender channel's WebSocket address, as the sidecar's WS_ADDRESS carries it.
std::string wsAddress(const std::string& host, int port, bool tls) {
  const bool ipv6 = host.find(':') != std::string::npos;
  return std::string(tls ? "wss://" : "ws://") + (ipv6 ? "[" + host + "]" : host) + ":" +
         std::to_string(port);
}

/// base64 of {"appID", "consoleHost", "defenderPort", "credential"}: what a Defender needs to
/// reach the defender channel. `credential` (scoped to `appId`, Console-wide when it is empty)
/// comes from `issuer` and is left out without one.
Result<std::string> installBundleText(
    const std::string& appId, const std::string& consoleHost, int defenderPort,
    const std::function<Result<std::string>(const std::string&, const std::string&)>& issuer,
    const std::string& description) {
  OJson j;
  j["appID"] = appId;
  j["consoleHost"] = consoleHost;
  j["defenderPort"] = defenderPort;
  if (issuer) {
    auto credential = issuer(appId, description);
    if (!credential.ok()) return credential.error();
    j["credential"] = *credential;
  }
  return auth::base64(j.dump());
}

/// `consoleaddr`: a host name, IPv4 or [IPv6] address, optionally with ":port" (the port of the
/// Console API, as in the vendor's Jenkins example; defenders use the defender channel port).
Result<std::string> parseConsoleHost(std::string_view addr) {
  const auto bad = [&](const std::string& why) {
    return Error::invalid("invalid_parameter", "consoleaddr",
                          "consoleaddr: " + why +
                              " (expected a host name or IP address, "
                              "optionally with :port, no scheme)");
  };
  if (addr.empty()) return bad("empty");
  if (addr.find("://") != std::string_view::npos) return bad("has a URL scheme");
  std::string_view host = addr;
  std::string_view port;
  if (addr[0] == '[') {
    const auto close = addr.find(']');
    if (close == std::string_view::npos) return bad("unterminated [IPv6] address");
    host = addr.substr(1, close - 1);
    const auto rest = addr.substr(close + 1);
    if (!rest.empty()) {
      if (rest[0] != ':') return bad("unexpected text after ]");
      port = rest.substr(1);
    }
    if (host.empty() || !std::all_of(host.begin(), host.end(), [](char c) {
          return std::isxdigit(static_cast<unsigned char>(c)) || c == ':' || c == '.';
        }))
      return bad("invalid IPv6 address");
  } else {
    const auto colon = addr.find(':');
    if (colon != std::string_view::npos) {
      host = addr.substr(0, colon);
      port = addr.substr(colon + 1);
    }
    if (host.empty() || host.size() > 253 || host.front() == '.' || host.front() == '-' ||
        !std::all_of(host.begin(), host.end(), [](char c) {
          return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-';
        }))
      return bad("invalid host name");
  }
  if (addr.find(':') != std::string_view::npos && addr[0] != '[' && port.empty())
    return bad("empty port");
  if (!port.empty()) {
    if (port.size() > 5 || !std::all_of(port.begin(), port.end(), ::isdigit) ||
        std::stoi(std::string(port)) == 0 || std::stoi(std::string(port)) > 65535)
      return bad("invalid port");
  }
  return std::string(host);
}

std::string formatLabel(InputKind kind, EndpointFormat format) {
  const bool cfn = kind != InputKind::kNative && kind != InputKind::kDescribeOutput;
  return std::string(cfn ? "cloudformation" : "native") +
         (format == EndpointFormat::kJson ? "-json" : "-yaml");
}

OJson issuedJson(const IssuedAppId& r) {
  OJson j;
  j["appID"] = r.appId;
  j["family"] = r.family;
  j["familyIsIntrinsic"] = r.familyIsIntrinsic;
  j["uuid"] = r.uuid;
  j["format"] = r.format;
  j["resource"] = r.resource;
  j["issuedAt"] = formatRfc3339(r.issuedAt);
  return j;
}

OJson imageJson(const ImageEntrypoint& e) {
  OJson j;
  j["image"] = e.image;
  j["entrypoint"] = e.entrypoint;
  j["cmd"] = e.cmd;
  j["source"] = e.source;
  j["updatedAt"] = formatRfc3339(e.updatedAt);
  return j;
}

std::string lowerAscii(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

/// An image record in the vendor's registry scan-result shape, as far as it applies: `_id`,
/// `repoTag` {registry, repo, tag, digest}, `scanTime` (when the record was written, RFC 3339
/// UTC), plus this Console's `entrypoint`, `cmd` and `source` ("api" or "registry").
OJson scanResultJson(const ImageEntrypoint& e) {
  OJson tag;
  std::string rest = e.image;
  std::string digest;
  if (const auto at = rest.find('@'); at != std::string::npos) {
    digest = rest.substr(at + 1);
    rest.resize(at);
  }
  const auto slash = rest.find('/');
  tag["registry"] = slash == std::string::npos ? "" : rest.substr(0, slash);
  std::string repo = slash == std::string::npos ? rest : rest.substr(slash + 1);
  std::string tagName;
  if (const auto colon = repo.rfind(':'); colon != std::string::npos) {
    tagName = repo.substr(colon + 1);
    repo.resize(colon);
  }
  tag["repo"] = repo;
  tag["tag"] = tagName;
  tag["digest"] = digest;
  OJson j;
  j["_id"] = e.image;
  j["type"] = "image";
  j["repoTag"] = tag;
  j["scanTime"] = formatRfc3339(e.updatedAt);
  j["entrypoint"] = e.entrypoint;
  j["cmd"] = e.cmd;
  j["source"] = e.source;
  return j;
}

Result<std::vector<std::string>> argvField(const Node& body, const char* key) {
  const Node* v = body.find(key);
  std::vector<std::string> out;
  if (!v || v->isNull()) return out;
  if (!v->isArray())
    return Error::invalid("invalid_type", key, std::string(key) + ": expected an array of strings");
  for (size_t i = 0; i < v->items.size(); ++i) {
    if (!v->items[i].isString())
      return Error::invalid("invalid_type", std::string(key) + "[" + std::to_string(i) + "]",
                            std::string(key) + "[" + std::to_string(i) + "]: expected a string");
    out.push_back(v->items[i].text);
  }
  if (out.size() > 256)
    return Error::invalid("invalid_type", key, std::string(key) + ": at most 256 arguments");
  return out;
}

/// The X-Defender-Embed-Report value: compact JSON, ASCII only (a header value).
std::string reportJson(const TransformResult& out) {
  OJson j;
  j["dropped"] = OJson::array();
  for (const auto& d : out.dropped)
    j["dropped"].push_back({{"field", d.field}, {"reason", d.reason}});
  j["skipped"] = OJson::array();
  for (const auto& sk : out.skipped)
    j["skipped"].push_back({{"resource", sk.path},
                            {"code", sk.reason.code},
                            {"message", sk.reason.message},
                            {"field", sk.reason.field}});
  return j.dump(-1, ' ', true, nlohmann::json::error_handler_t::replace);
}

}  // namespace

HttpResponse errorResponse(const Error& error, const std::vector<Error>& problems) {
  HttpResponse r;
  r.status = httpStatus(error.kind);
  r.body = errorJson(error, problems);
  r.error = error;
  r.problems = problems;
  return r;
}

std::string randomUuid() {
  uuid_t raw;
  uuid_generate_random(raw);
  char text[37];
  uuid_unparse_lower(raw, text);
  return text;
}

EmbedService::EmbedService(EmbedStore& store, const Clock& clock, EmbedConfig config,
                           UuidGenerator newUuid, BundleIssuer installBundle)
    : store_(store),
      clock_(clock),
      config_(std::move(config)),
      newUuid_(std::move(newUuid)),
      installBundle_(std::move(installBundle)),
      defenderPort_(config_.defenderPort) {}

void EmbedService::setDefenderPort(int port) {
  defenderPort_.store(port);
}

Result<std::string> EmbedService::consoleHostParam(const QueryParams& q) const {
  auto addr = single(q, "consoleaddr");
  if (!addr.ok()) return addr.error();
  if (addr->has_value()) return parseConsoleHost(**addr);
  if (!config_.defaultConsoleHost.empty()) return config_.defaultConsoleHost;
  return Error::invalid("missing_parameter", "consoleaddr",
                        "consoleaddr: required (the host name or IP address defenders use to "
                        "reach this Console)");
}

Result<EmbedOptions> EmbedService::parseOptions(const QueryParams& q) const {
  EmbedOptions o;
  o.sidecarImage = config_.sidecarImage;
  o.defenderPort = defenderPort_.load();
  o.defenderTls = config_.defenderTls;

  auto host = consoleHostParam(q);
  if (!host.ok()) return host.error();
  o.consoleHost = std::move(host).value();

  auto type = single(q, "defenderType");
  if (!type.ok()) return type.error();
  if (type->has_value() && **type != "appEmbedded" && **type != "fargate")
    return Error::invalid("invalid_parameter", "defenderType",
                          "defenderType: this endpoint embeds App-Embedded Defenders into Fargate "
                          "tasks; expected appEmbedded or fargate");

  auto cfn = boolParam(q, "cloudFormation");
  if (!cfn.ok()) return cfn.error();
  o.cloudFormation = *cfn;
  auto fs = boolParam(q, "filesystemMonitoring");
  if (!fs.ok()) return fs.error();
  o.filesystemMonitoring = fs->value_or(false);
  auto extract = boolParam(q, "extractEntrypoint");
  if (!extract.ok()) return extract.error();
  o.extractEntrypoint = extract->value_or(false);

  for (const char* name : {"interpreter", "registryType", "registryCredentialID"}) {
    auto v = single(q, name);
    if (!v.ok()) return v.error();
    if (v->has_value() && (*v)->size() > 256)
      return Error::invalid("invalid_parameter", name,
                            std::string(name) + ": at most 256 characters");
  }
  if (auto rt = single(q, "registryType"); rt.ok() && rt->has_value() && !(*rt)->empty()) {
    if (!registry::parseRegistryType(**rt))
      return Error::invalid("invalid_parameter", "registryType",
                            "registryType: \"" + **rt +
                                "\" is not supported (expected 2 for Docker Registry v2, jfrog "
                                "for JFrog Artifactory or aws for Amazon ECR)");
    o.registryType = **rt;
  }
  if (auto id = single(q, "registryCredentialID"); id.ok() && id->has_value())
    o.registryCredentialId = **id;
  return o;
}

HttpResponse EmbedService::embed(const EmbedRequest& request) {
  // Limits first: they are cheap and protect everything after them.
  if (request.body.size() > config_.limits.maxBytes)
    return errorResponse(Error{ErrorKind::kTooLarge, "too_large",
                               "request body is " + std::to_string(request.body.size()) +
                                   " bytes; the limit is " +
                                   std::to_string(config_.limits.maxBytes),
                               ""});
  auto options = parseOptions(request.query);
  if (!options.ok()) return errorResponse(options.error());

  // Duplicate keys do not stop the parse, so one answer can list them with every other problem.
  std::vector<Error> problems;
  auto doc = request.format == EndpointFormat::kJson
                 ? parseJson(request.body, config_.limits, &problems)
                 : parseYaml(request.body, config_.limits, &problems);
  if (!doc.ok()) return errorResponse(doc.error(), {doc.error()});

  TransformDeps deps;
  deps.newUuid = newUuid_;
  const auto registryDeadline = std::chrono::steady_clock::now() + config_.registryBudget;
  const EmbedOptions& opts = *options;
  deps.lookupImage = [this, registryDeadline, &opts](
                         std::string_view image,
                         std::string_view cpuArchitecture) -> Result<std::optional<ImageConfig>> {
    auto key = normalizeImage(image);
    if (!key.ok()) return std::optional<ImageConfig>();  // not a reference we could know
    auto found = store_.findImage(*key);
    if (!found.ok()) return found.error();
    if (found->has_value())
      return std::optional<ImageConfig>(ImageConfig{(*found)->entrypoint, (*found)->cmd});
    if (!config_.readFromRegistry) return std::optional<ImageConfig>();
    // Not known yet: ask the image's registry, then keep what it said for the next request.
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        registryDeadline - std::chrono::steady_clock::now());
    if (left.count() <= 0)
      return Error{ErrorKind::kUnavailable, "registry_timeout",
                   "image " + *key + ": the request's " +
                       std::to_string(config_.registryBudget.count()) +
                       " ms bound for registry reads is used up",
                   "image"};
    auto read = config_.readFromRegistry(RegistryLookup{
        *key, opts.registryType, opts.registryCredentialId, std::string(cpuArchitecture), left});
    if (!read.ok()) return read.error();
    ImageEntrypoint record{*key, read->entrypoint, read->cmd, "registry", clock_.now()};
    if (auto st = store_.putImage(record); !st.ok()) return st.error();
    return std::optional<ImageConfig>(std::move(read).value());
  };
  const std::string consoleHost = options->consoleHost;
  const int port = options->defenderPort;
  auto issuer = config_.issueCredential;
  auto issueError = std::make_shared<std::optional<Error>>();
  // Issued only once the whole document is known to be good: a refused request must not leave
  // credentials behind.
  const bool issueCredentials = problems.empty();
  deps.installBundle =
      installBundle_
          ? installBundle_
          : [consoleHost, port, issuer, issueError, issueCredentials](const IssuedDefinition& d) {
              nlohmann::ordered_json j;
              j["consoleHost"] = consoleHost;
              j["defenderPort"] = port;
              if (issuer && issueCredentials) {
                auto credential = issuer(d.appId, "install bundle of the embed flow");
                if (!credential.ok()) {
                  if (!*issueError) *issueError = credential.error();
                  return std::string("{}");
                }
                j["credential"] = *credential;
              }
              return j.dump();
            };

  std::vector<Error> transformProblems;
  auto out = embedDefender(std::move(doc).value(), *options, deps, &transformProblems);
  if (!out.ok() && out.error().kind == ErrorKind::kConflict)
    return errorResponse(out.error(), {out.error()});
  problems.insert(problems.end(), transformProblems.begin(), transformProblems.end());
  if (!problems.empty()) return errorResponse(problems.front(), problems);
  if (*issueError) return errorResponse(**issueError);

  HttpResponse response;
  if (request.format == EndpointFormat::kJson) {
    response.body = toJson(out->document);
  } else {
    response.body = toYaml(out->document);
    response.contentType = "application/yaml";
  }
  if (response.body.empty())
    return errorResponse(Error::internal("could not serialise the protected task definition"));

  const std::string format = formatLabel(out->kind, request.format);
  const TimePoint now = clock_.now();
  std::vector<IssuedAppId> records;
  std::string ids;
  for (const auto& d : out->issued) {
    records.push_back(
        IssuedAppId{d.appId, d.uuid, d.family, d.familyIsIntrinsic, format, d.path, now});
    if (!ids.empty()) ids += ",";
    ids += d.appId;
  }
  // Record before answering: an App ID the Console does not know must never reach a client.
  if (auto st = store_.recordIssued(records); !st.ok()) return errorResponse(st.error());
  response.headers.emplace_back("X-Defender-App-IDs", ids);
  response.headers.emplace_back(kReportHeader, reportJson(*out));
  return response;
}

HttpResponse EmbedService::listAppIds(const QueryParams& query) {
  auto family = single(query, "family");
  if (!family.ok()) return errorResponse(family.error());
  auto offset = sizeParam(query, "offset", 0, 0, 100000000);
  if (!offset.ok()) return errorResponse(offset.error());
  auto limit = sizeParam(query, "limit", kDefaultLimit, 1, kMaxLimit);
  if (!limit.ok()) return errorResponse(limit.error());
  auto page = store_.listIssued(family->value_or(""), *offset, *limit);
  if (!page.ok()) return errorResponse(page.error());
  OJson arr = OJson::array();
  for (const auto& r : page->items) arr.push_back(issuedJson(r));
  HttpResponse r;
  r.body = dump(arr);
  r.headers.emplace_back("Total-Count", std::to_string(page->total));
  return r;
}

HttpResponse EmbedService::listImageEntrypoints(const QueryParams& query) {
  auto image = single(query, "image");
  if (!image.ok()) return errorResponse(image.error());
  auto prefix = single(query, "prefix");
  if (!prefix.ok()) return errorResponse(prefix.error());
  auto offset = sizeParam(query, "offset", 0, 0, 100000000);
  if (!offset.ok()) return errorResponse(offset.error());
  auto limit = sizeParam(query, "limit", kDefaultLimit, 1, kMaxLimit);
  if (!limit.ok()) return errorResponse(limit.error());

  Page<ImageEntrypoint> page;
  if (image->has_value()) {
    auto key = normalizeImage(**image);
    if (!key.ok()) return errorResponse(key.error());
    auto found = store_.findImage(*key);
    if (!found.ok()) return errorResponse(found.error());
    if (found->has_value() && *offset == 0) page.items.push_back(**found);
    page.total = found->has_value() ? 1 : 0;
  } else {
    auto listed = store_.listImages(prefix->value_or(""), *offset, *limit);
    if (!listed.ok()) return errorResponse(listed.error());
    page = std::move(listed).value();
  }
  OJson arr = OJson::array();
  for (const auto& e : page.items) arr.push_back(imageJson(e));
  HttpResponse r;
  r.body = dump(arr);
  r.headers.emplace_back("Total-Count", std::to_string(page.total));
  return r;
}

HttpResponse EmbedService::deleteImageEntrypoint(const QueryParams& query) {
  for (const auto& [name, value] : query)
    if (name != "image" && name != "project")
      return errorResponse(
          Error::invalid("invalid_parameter", name, name + ": unknown parameter (expected image)"));
  auto image = single(query, "image");
  if (!image.ok()) return errorResponse(image.error());
  if (!image->has_value() || (*image)->empty())
    return errorResponse(Error::invalid("missing_parameter", "image",
                                        "image: required, the image reference to forget"));
  auto key = normalizeImage(**image);
  if (!key.ok()) return errorResponse(key.error());
  auto deleted = store_.deleteImage(*key);
  if (!deleted.ok()) return errorResponse(deleted.error());
  if (!*deleted)
    return errorResponse(
        Error::notFound("unknown_image", "no entrypoint is stored for " + *key, "image"));
  OJson out = OJson::object();
  out["image"] = *key;
  out["deleted"] = true;
  HttpResponse r;
  r.body = dump(out);
  return r;
}

HttpResponse EmbedService::putImageEntrypoint(std::string_view body) {
  ParseLimits limits;
  limits.maxBytes = 256 * 1024;
  auto doc = parseJson(body, limits);
  if (!doc.ok()) return errorResponse(doc.error());
  if (!doc->isObject())
    return errorResponse(Error::invalid("invalid_type", "", "expected a JSON object"));
  for (const auto& m : doc->members)
    if (m.key != "image" && m.key != "entrypoint" && m.key != "cmd")
      return errorResponse(Error::invalid("invalid_type", m.key,
                                          m.key + ": unknown field (expected image, entrypoint, "
                                                  "cmd)"));
  const Node* image = doc->find("image");
  if (!image || !image->isString())
    return errorResponse(
        Error::invalid("invalid_type", "image", "image: required, a string image reference"));
  auto key = normalizeImage(image->text);
  if (!key.ok()) return errorResponse(key.error());
  auto entrypoint = argvField(*doc, "entrypoint");
  if (!entrypoint.ok()) return errorResponse(entrypoint.error());
  auto cmd = argvField(*doc, "cmd");
  if (!cmd.ok()) return errorResponse(cmd.error());
  if (entrypoint->empty() && cmd->empty())
    return errorResponse(Error::invalid("missing_field", "entrypoint",
                                        "entrypoint: give the image's entrypoint, cmd or both"));
  ImageEntrypoint e{*key, std::move(entrypoint).value(), std::move(cmd).value(), "api",
                    clock_.now()};
  if (auto st = store_.putImage(e); !st.ok()) return errorResponse(st.error());
  HttpResponse r;
  r.body = dump(imageJson(e));
  return r;
}

HttpResponse EmbedService::installBundle(const QueryParams& query, const std::string& requestedBy) {
  auto host = consoleHostParam(query);
  if (!host.ok()) return errorResponse(host.error());
  auto appIdParam = single(query, "appID");
  if (!appIdParam.ok()) return errorResponse(appIdParam.error());
  std::string appId;
  if (appIdParam->has_value() && !(*appIdParam)->empty()) {
    auto parsed = appid::parse(**appIdParam, "appID");
    if (!parsed.ok()) return errorResponse(parsed.error());
    appId = **appIdParam;
  }
  const std::string description =
      "install bundle (GET /api/v1/defenders/install-bundle) for " + requestedBy;
  auto bundle =
      installBundleText(appId, *host, config_.defenderPort, config_.issueCredential, description);
  if (!bundle.ok()) return errorResponse(bundle.error());
  OJson out;
  out["installBundle"] = std::move(bundle).value();
  out["wsAddress"] = wsAddress(*host, config_.defenderPort, config_.defenderTls);
  HttpResponse r;
  r.body = dump(out);
  r.headers.emplace_back("Cache-Control", "no-store");  // it carries a secret
  return r;
}

HttpResponse EmbedService::imageName() const {
  HttpResponse r;
  r.body = nlohmann::json(config_.sidecarImage).dump();
  return r;
}

HttpResponse EmbedService::registryScanResults(const QueryParams& query) {
  auto search = single(query, "search");
  if (!search.ok()) return errorResponse(search.error());
  auto compact = boolParam(query, "compact");  // every answer is compact: no vulnerability data
  if (!compact.ok()) return errorResponse(compact.error());
  auto offset = sizeParam(query, "offset", 0, 0, 100000000);
  if (!offset.ok()) return errorResponse(offset.error());
  auto limit = sizeParam(query, "limit", kDefaultLimit, 1, kMaxLimit);
  if (!limit.ok()) return errorResponse(limit.error());
  const std::string needle = lowerAscii(search->value_or(""));
  if (needle.size() > 1024)
    return errorResponse(
        Error::invalid("invalid_parameter", "search", "search: at most 1024 characters"));

  // Case-insensitive substring of the normalized reference, over every record in image order.
  std::vector<ImageEntrypoint> page;
  size_t total = 0;
  for (size_t from = 0;; from += kMaxLimit) {
    auto listed = store_.listImages("", from, kMaxLimit);
    if (!listed.ok()) return errorResponse(listed.error());
    for (auto& e : listed->items) {
      if (!needle.empty() && lowerAscii(e.image).find(needle) == std::string::npos) continue;
      if (total >= *offset && page.size() < *limit) page.push_back(std::move(e));
      ++total;
    }
    if (listed->items.size() < kMaxLimit) break;
  }
  OJson arr = OJson::array();
  for (const auto& e : page) arr.push_back(scanResultJson(e));
  HttpResponse r;
  r.body = dump(arr);
  r.headers.emplace_back("Total-Count", std::to_string(total));
  return r;
}

bool EmbedService::isIssued(std::string_view appId) const {
  return embed::isIssued(store_, appId);
}

std::unordered_set<std::string> EmbedService::issuedAmong(
    const std::vector<std::string>& appIds) const {
  return embed::issuedAmong(store_, appIds);
}

}  // namespace dc::embed
