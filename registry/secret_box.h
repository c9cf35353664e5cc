// AES-256-GCM sealing of secrets stored at rest (registry credentials), OpenSSL EVP.
//
// Sealed form: 12-byte random nonce || ciphertext || 16-byte tag. The associated data binds a
// sealed value to its row (e.g. the credential ID), so a value copied to another row does not
// open. The 32-byte key lives in <dataDir>/registry.key (mode 0600, see docs/security.md).
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace dc::registry {

class SecretBox {
 public:
  /// `key` must be 32 raw bytes (asserted).
  explicit SecretBox(std::string key);
  std::string seal(std::string_view plaintext, std::string_view associatedData) const;
  /// nullopt when the value was not sealed under this key and associated data (or is damaged).
  std::optional<std::string> open(std::string_view sealed, std::string_view associatedData) const;

 private:
  std::string key_;
};

}  // namespace dc::registry
