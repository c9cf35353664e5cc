#include "registry/aws.h"

#include <httplib.h>

#include <algorithm>
#include <cctype>
#include <ctime>
#include <map>
#include <nlohmann/json.hpp>

#include "auth/crypto.h"
#include "registry/http.h"

namespace dc::registry {

namespace {

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

/// Trims and collapses runs of spaces (SigV4 canonical header values).
std::string canonicalValue(const std::string& v) {
  std::string out;
  bool space = false;
  for (char c : v) {
    if (c == ' ' || c == '\t') {
      space = !out.empty();
      continue;
    }
    if (space) out += ' ';
    space = false;
    out += c;
  }
  return out;
}

/// RFC 3986 percent-encoding of everything but the unreserved characters.
std::string uriEncode(const std::string& s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

std::string amzDate(TimePoint at) {
  const std::time_t t =
      std::chrono::system_clock::to_time_t(std::chrono::time_point_cast<std::chrono::seconds>(at));
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[17];
  std::strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &tm);
  return buf;
}

}  // namespace

SigV4Signature signV4(const SigV4Request& request, const AwsCredentials& credentials,
                      const std::string& region, const std::string& service, TimePoint at) {
  SigV4Signature out;
  out.amzDate = amzDate(at);
  const std::string date = out.amzDate.substr(0, 8);

  std::map<std::string, std::string> headers;  // sorted by lower-case name
  for (const auto& [name, value] : request.headers) {
    auto& slot = headers[lower(name)];
    slot += (slot.empty() ? "" : ",") + canonicalValue(value);
  }
  headers.emplace("x-amz-date", out.amzDate);
  if (!credentials.sessionToken.empty())
    headers.emplace("x-amz-security-token", credentials.sessionToken);

  std::vector<std::pair<std::string, std::string>> query;
  for (const auto& [k, v] : request.query) query.emplace_back(uriEncode(k), uriEncode(v));
  std::sort(query.begin(), query.end());

  std::string canonical = request.method + "\n" + request.path + "\n";
  for (size_t i = 0; i < query.size(); ++i)
    canonical += (i ? "&" : "") + query[i].first + "=" + query[i].second;
  canonical += "\n";
  std::string signedHeaders;
  for (const auto& [name, value] : headers) {
    canonical += name + ":" + value + "\n";
    signedHeaders += (signedHeaders.empty() ? "" : ";") + name;
  }
  canonical += "\n" + signedHeaders + "\n" + auth::toHex(auth::sha256(request.body));
  out.canonicalRequest = canonical;

  const std::string scope = date + "/" + region + "/" + service + "/aws4_request";
  out.stringToSign = "AWS4-HMAC-SHA256\n" + out.amzDate + "\n" + scope + "\n" +
                     auth::toHex(auth::sha256(canonical));
  std::string key = auth::hmacSha256("AWS4" + credentials.secretAccessKey, date);
  key = auth::hmacSha256(key, region);
  key = auth::hmacSha256(key, service);
  key = auth::hmacSha256(key, "aws4_request");
  out.signature = auth::toHex(auth::hmacSha256(key, out.stringToSign));
  out.authorization = "AWS4-HMAC-SHA256 Credential=" + credentials.accessKeyId + "/" + scope +
                      ", SignedHeaders=" + signedHeaders + ", Signature=" + out.signature;
  return out;
}

std::string ecrRegion(const std::string& host) {
  // <account>.dkr.ecr.<region>.amazonaws.com or .amazonaws.com.cn
  const std::string marker = ".dkr.ecr.";
  const auto at = host.find(marker);
  if (at == std::string::npos || at == 0) return "";
  const auto start = at + marker.size();
  const auto end = host.find(".amazonaws.com", start);
  if (end == std::string::npos || end == start) return "";
  return host.substr(start, end - start);
}

Result<std::string> ecrToken(const AwsCredentials& credentials, const std::string& region,
                             TimePoint now, std::chrono::milliseconds timeout,
                             const std::string& caFile, const std::string& endpoint) {
  const auto fail = [&](ErrorKind kind, const char* code, const std::string& why) {
    return Error{kind, code, "ECR GetAuthorizationToken in " + region + ": " + why, "image"};
  };
  const std::string base =
      endpoint.empty() ? "https://api.ecr." + region + ".amazonaws.com" : endpoint;
  const std::string host = base.substr(base.find("//") + 2);
  SigV4Request request;
  request.method = "POST";
  request.body = "{}";
  request.headers = {
      {"Host", host},
      {"Content-Type", "application/x-amz-json-1.1"},
      {"X-Amz-Target", "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken"}};
  const SigV4Signature sig = signV4(request, credentials, region, "ecr", now);

  auto made = makeHttpClient(base, caFile, timeout);
  if (!made.ok()) return fail(made.error().kind, made.error().code.c_str(), made.error().message);
  httplib::Client& client = **made;
  httplib::Headers headers{{"X-Amz-Target", request.headers[2].second},
                           {"X-Amz-Date", sig.amzDate},
                           {"Authorization", sig.authorization}};
  if (!credentials.sessionToken.empty())
    headers.emplace("X-Amz-Security-Token", credentials.sessionToken);
  auto res = client.Post("/", headers, request.body, "application/x-amz-json-1.1");
  if (!res) {
    const auto e = res.error();
    if (e == httplib::Error::Read || e == httplib::Error::ConnectionTimeout)
      return fail(ErrorKind::kUnavailable, "registry_timeout",
                  "no answer within " + std::to_string(timeout.count()) + " ms");
    if (e == httplib::Error::SSLConnection || e == httplib::Error::SSLServerVerification)
      return fail(ErrorKind::kUnavailable, "registry_tls", httplib::to_string(e));
    return fail(ErrorKind::kUnavailable, "registry_unreachable", httplib::to_string(e));
  }
  nlohmann::json j = nlohmann::json::parse(res->body, nullptr, false);
  if (res->status != 200) {
    std::string type = j.is_object() ? j.value("__type", std::string()) : "";
    if (res->status == 400 || res->status == 403)
      return fail(ErrorKind::kInvalidArgument, "registry_unauthorized",
                  "AWS refused the credential (HTTP " + std::to_string(res->status) +
                      (type.empty() ? "" : ", " + type) + ")");
    return fail(ErrorKind::kUnavailable, "registry_bad_response",
                "HTTP " + std::to_string(res->status));
  }
  if (!j.is_object() || !j.contains("authorizationData") || !j["authorizationData"].is_array() ||
      j["authorizationData"].empty() || !j["authorizationData"][0].is_object() ||
      !j["authorizationData"][0].contains("authorizationToken") ||
      !j["authorizationData"][0]["authorizationToken"].is_string())
    return fail(ErrorKind::kUnavailable, "registry_bad_response", "no authorizationToken");
  auto decoded =
      auth::base64Decode(j["authorizationData"][0]["authorizationToken"].get<std::string>());
  if (!decoded || decoded->rfind("AWS:", 0) != 0)
    return fail(ErrorKind::kUnavailable, "registry_bad_response",
                "the authorizationToken is not base64 of AWS:<password>");
  return decoded->substr(4);
}

}  // namespace dc::registry
