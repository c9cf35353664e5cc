#include "auth/tls.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <set>

namespace dc::auth {

namespace {

struct Free {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
  void operator()(X509* p) const { X509_free(p); }
  void operator()(GENERAL_NAMES* p) const { GENERAL_NAMES_free(p); }
  void operator()(BIGNUM* p) const { BN_free(p); }
  void operator()(X509_EXTENSION* p) const { X509_EXTENSION_free(p); }
  void operator()(FILE* p) const { std::fclose(p); }
};
template <typename T>
using Owned = std::unique_ptr<T, Free>;

Error failure(const std::string& what) {
  return Error{ErrorKind::kUnavailable, "tls_generate",
               "cannot generate the TLS certificate: " + what, "tls"};
}

bool isIpLiteral(const std::string& host, unsigned char* buf, int* family) {
  if (inet_pton(AF_INET, host.c_str(), buf) == 1) {
    *family = AF_INET;
    return true;
  }
  if (inet_pton(AF_INET6, host.c_str(), buf) == 1) {
    *family = AF_INET6;
    return true;
  }
  return false;
}

bool addName(GENERAL_NAMES* names, const std::string& host) {
  unsigned char ip[16];
  int family = 0;
  GENERAL_NAME* name = GENERAL_NAME_new();
  if (!name) return false;
  if (isIpLiteral(host, ip, &family)) {
    ASN1_OCTET_STRING* octets = ASN1_OCTET_STRING_new();
    ASN1_OCTET_STRING_set(octets, ip, family == AF_INET ? 4 : 16);
    GENERAL_NAME_set0_value(name, GEN_IPADD, octets);
  } else {
    ASN1_IA5STRING* dns = ASN1_IA5STRING_new();
    ASN1_STRING_set(dns, host.data(), static_cast<int>(host.size()));
    GENERAL_NAME_set0_value(name, GEN_DNS, dns);
  }
  return sk_GENERAL_NAME_push(names, name) > 0;
}

bool addExtension(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  Owned<X509_EXTENSION> ext(X509V3_EXT_conf_nid(nullptr, &ctx, nid, value));
  return ext && X509_add_ext(cert, ext.get(), -1) == 1;
}

// Opens `path` for writing with `mode`, truncating.
Owned<FILE> openWithMode(const std::string& path, mode_t mode) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) return nullptr;
  ::fchmod(fd, mode);
  FILE* f = ::fdopen(fd, "w");
  if (!f) ::close(fd);
  return Owned<FILE>(f);
}

}  // namespace

Result<TlsFiles> ensureSelfSignedCertificate(const std::string& dir,
                                             const std::vector<std::string>& hosts) {
  namespace fs = std::filesystem;
  TlsFiles files{(fs::path(dir) / "console.crt").string(), (fs::path(dir) / "console.key").string(),
                 false};
  std::error_code ec;
  if (fs::exists(files.certFile, ec) && fs::exists(files.keyFile, ec)) return files;
  fs::create_directories(dir, ec);
  if (ec) return failure("cannot create " + dir + ": " + ec.message());
  fs::permissions(dir, fs::perms::owner_all, ec);

  Owned<EVP_PKEY> key(EVP_EC_gen("P-256"));
  if (!key) return failure("EC key generation");
  Owned<X509> cert(X509_new());
  if (!cert) return failure("X509_new");
  X509_set_version(cert.get(), 2);  // v3
  unsigned char serial[16];
  if (RAND_bytes(serial, sizeof serial) != 1) return failure("serial number");
  serial[0] &= 0x7f;  // positive
  Owned<BIGNUM> bn(BN_bin2bn(serial, sizeof serial, nullptr));
  if (!bn || !BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(cert.get())))
    return failure("serial number");
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -60 * 60);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 10L * 365 * 24 * 60 * 60);
  X509_set_pubkey(cert.get(), key.get());
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("Defender Console"), -1, -1, 0);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("defender-console"), -1, -1, 0);
  X509_set_issuer_name(cert.get(), name);

  std::set<std::string> names = {"localhost", "127.0.0.1", "::1"};
  char hostname[256] = {};
  if (::gethostname(hostname, sizeof hostname - 1) == 0 && hostname[0]) names.insert(hostname);
  for (const auto& h : hosts)
    if (!h.empty() && h != "0.0.0.0" && h != "::") names.insert(h);
  Owned<GENERAL_NAMES> sans(sk_GENERAL_NAME_new_null());
  for (const auto& n : names)
    if (!addName(sans.get(), n)) return failure("subjectAltName " + n);
  if (X509_add1_ext_i2d(cert.get(), NID_subject_alt_name, sans.get(), 0, X509V3_ADD_DEFAULT) != 1)
    return failure("subjectAltName");
  if (!addExtension(cert.get(), cert.get(), NID_basic_constraints, "critical,CA:FALSE") ||
      !addExtension(cert.get(), cert.get(), NID_key_usage, "critical,digitalSignature") ||
      !addExtension(cert.get(), cert.get(), NID_ext_key_usage, "serverAuth,clientAuth") ||
      !addExtension(cert.get(), cert.get(), NID_subject_key_identifier, "hash"))
    return failure("X.509 extensions");
  if (X509_sign(cert.get(), key.get(), EVP_sha256()) == 0) return failure("signing");

  {
    auto f = openWithMode(files.keyFile, 0600);
    if (!f || PEM_write_PrivateKey(f.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr) != 1)
      return failure("cannot write " + files.keyFile);
  }
  {
    auto f = openWithMode(files.certFile, 0644);
    if (!f || PEM_write_X509(f.get(), cert.get()) != 1)
      return failure("cannot write " + files.certFile);
  }
  files.generated = true;
  return files;
}

std::string certificateFingerprint(const std::string& certFile) {
  Owned<FILE> f(std::fopen(certFile.c_str(), "r"));
  if (!f) return {};
  Owned<X509> cert(PEM_read_X509(f.get(), nullptr, nullptr, nullptr));
  if (!cert) return {};
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  if (X509_digest(cert.get(), EVP_sha256(), md, &n) != 1) return {};
  static const char* const kHex = "0123456789ABCDEF";
  std::string out;
  for (unsigned i = 0; i < n; ++i) {
    if (i) out.push_back(':');
    out.push_back(kHex[md[i] >> 4]);
    out.push_back(kHex[md[i] & 15]);
  }
  return out;
}

}  // namespace dc::auth
