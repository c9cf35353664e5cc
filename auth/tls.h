// TLS material for the Console's listeners: a self-signed certificate generated on first start
// (OpenSSL EVP/X509 API) and kept in the data directory, reused on later starts.
#pragma once

#include <string>
#include <vector>

#include "common/status.h"

namespace dc::auth {

struct TlsFiles {
  std::string certFile;  // PEM certificate
  std::string keyFile;   // PEM private key (mode 0600)
  bool generated = false;
};

/// Returns `<dir>/console.crt` and `<dir>/console.key`, generating them when either is missing:
/// an ECDSA P-256 key and a self-signed X.509 v3 certificate (CN "defender-console", valid 10
/// years from now, SHA-256) whose subjectAltName lists localhost, 127.0.0.1, ::1, this machine's
/// hostname and each of `hosts` (an IP literal becomes an IP SAN, anything else a DNS SAN;
/// "0.0.0.0" and "::" are skipped). `dir` is created with mode 0700. Errors: kUnavailable
/// "tls_generate" naming the failing step or path.
Result<TlsFiles> ensureSelfSignedCertificate(const std::string& dir,
                                             const std::vector<std::string>& hosts);

/// Hex SHA-256 fingerprint of the certificate in `certFile` ("AB:CD:…"), for the start-up log
/// so that operators can pin it. Empty when the file cannot be read.
std::string certificateFingerprint(const std::string& certFile);

}  // namespace dc::auth
