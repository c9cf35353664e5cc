// Thin wrappers over OpenSSL 3 for the few primitives access control needs: random bytes,
// SHA-256, HMAC-SHA256, PBKDF2-HMAC-SHA256, base64/base64url and constant-time comparison.
// Byte strings travel as std::string (raw bytes, not text).
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace dc::auth {

/// `n` bytes from OpenSSL's CSPRNG (RAND_bytes). Aborts if the generator fails (no entropy is
/// not a recoverable condition for a security service).
std::string randomBytes(size_t n);

/// SHA-256 digest (32 raw bytes).
std::string sha256(std::string_view data);
/// HMAC-SHA256 (RFC 2104) of `data` under `key` (32 raw bytes).
std::string hmacSha256(std::string_view key, std::string_view data);
/// PBKDF2-HMAC-SHA256 (RFC 8018 §5.2) of `password` with `salt`, `iterations` rounds, `length`
/// raw bytes (OpenSSL PKCS5_PBKDF2_HMAC).
std::string pbkdf2Sha256(std::string_view password, std::string_view salt, int iterations,
                         size_t length = 32);

/// Lower-case hex of raw bytes.
std::string toHex(std::string_view bytes);
/// Standard base64 with padding (RFC 4648 §4).
std::string base64(std::string_view bytes);
/// Decodes standard base64 (padding required when the length is not a multiple of 4 is
/// tolerated). nullopt on any character outside the alphabet.
std::optional<std::string> base64Decode(std::string_view text);
/// base64url without padding (RFC 4648 §5), for tokens.
std::string base64Url(std::string_view bytes);
std::optional<std::string> base64UrlDecode(std::string_view text);

/// Compares in time independent of where the inputs differ (CRYPTO_memcmp); false when the
/// lengths differ.
bool constantTimeEqual(std::string_view a, std::string_view b);

}  // namespace dc::auth
