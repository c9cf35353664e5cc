// AWS Signature Version 4 (request signing) and ECR GetAuthorizationToken, for registryType
// "aws" (docs/embed.md).
//
// The signer is a pure function of the request, the credentials and the time, tested against
// AWS's published "Signature Version 4 test suite" vectors
// (https://docs.aws.amazon.com/general/latest/gr/signature-v4-test-suite.html).
#pragma once

#include <chrono>
#include <string>
#include <utility>
#include <vector>

#include "common/clock.h"
#include "common/status.h"

namespace dc::registry {

struct AwsCredentials {
  std::string accessKeyId;
  std::string secretAccessKey;
  std::string sessionToken;  // optional (temporary credentials): sent as X-Amz-Security-Token
};

/// A request to sign. `path` is the absolute path as sent (already URI-encoded, not
/// re-normalized); `query` holds decoded name/value pairs; `headers` must include Host.
struct SigV4Request {
  std::string method;
  std::string path = "/";
  std::vector<std::pair<std::string, std::string>> query;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
};

struct SigV4Signature {
  std::string canonicalRequest;
  std::string stringToSign;
  std::string signature;      // lower-case hex
  std::string authorization;  // the Authorization header value
  std::string amzDate;        // X-Amz-Date value, "YYYYMMDDTHHMMSSZ" (UTC)
};

/// Signs `request` for `region`/`service` at time `at` (UTC). X-Amz-Date (and, with a session
/// token, X-Amz-Security-Token) are signed as if present; the caller sends them with the
/// returned values. Header names are lower-cased and sorted, values trimmed with inner runs of
/// spaces collapsed, repeated headers joined with ","; query pairs are RFC 3986-encoded and
/// sorted.
SigV4Signature signV4(const SigV4Request& request, const AwsCredentials& credentials,
                      const std::string& region, const std::string& service, TimePoint at);

/// The region of an ECR registry host "<account>.dkr.ecr.<region>.amazonaws.com[.cn]"; empty
/// when the host is not an ECR registry.
std::string ecrRegion(const std::string& registryHost);

/// Calls ECR GetAuthorizationToken (POST https://api.ecr.<region>.amazonaws.com/, JSON 1.1
/// protocol, SigV4 service "ecr") and returns the decoded password of "AWS:<password>".
/// `endpoint` overrides "https://api.ecr.<region>.amazonaws.com" (tests). Errors:
/// registry_unauthorized (AWS answered 400/403 with an auth error), registry_timeout,
/// registry_tls, registry_unreachable, registry_bad_response.
Result<std::string> ecrToken(const AwsCredentials& credentials, const std::string& region,
                             TimePoint now, std::chrono::milliseconds timeout,
                             const std::string& caFile = {}, const std::string& endpoint = {});

}  // namespace dc::registry
