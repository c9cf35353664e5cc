#include "registry/http.h"

#include <openssl/ssl.h>
#include <openssl/x509.h>

namespace dc::registry {

Result<std::unique_ptr<httplib::Client>> makeHttpClient(const std::string& base,
                                                        const std::string& caFile,
                                                        std::chrono::milliseconds timeout) {
  auto client = std::make_unique<httplib::Client>(base);
  if (!client->is_valid())
    return Error{ErrorKind::kUnavailable, "registry_bad_response", "cannot use the URL " + base,
                 "image"};
  client->enable_server_certificate_verification(true);
  // Added to the store that httplib fills with the system's default paths on first use (a
  // ca_cert_path would replace them instead).
  if (SSL_CTX* ctx = client->ssl_context(); ctx && !caFile.empty()) {
    if (X509_STORE_load_file(SSL_CTX_get_cert_store(ctx), caFile.c_str()) != 1)
      return Error{ErrorKind::kUnavailable, "registry_tls",
                   "cannot load the registry CA bundle " + caFile, "image"};
  }
  const auto sec = std::chrono::duration_cast<std::chrono::seconds>(timeout);
  const auto usec = std::chrono::duration_cast<std::chrono::microseconds>(timeout - sec);
  client->set_connection_timeout(sec.count(), usec.count());
  client->set_read_timeout(sec.count(), usec.count());
  client->set_write_timeout(sec.count(), usec.count());
  client->set_keep_alive(false);
  return client;
}

}  // namespace dc::registry
