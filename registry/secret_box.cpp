#include "registry/secret_box.h"

#include <openssl/evp.h>

#include <cassert>
#include <memory>

#include "auth/crypto.h"

namespace dc::registry {

namespace {

constexpr size_t kNonce = 12;
constexpr size_t kTag = 16;

using CipherCtx = std::unique_ptr<EVP_CIPHER_CTX, decltype(&EVP_CIPHER_CTX_free)>;

unsigned char* bytes(std::string& s) {
  return reinterpret_cast<unsigned char*>(s.data());
}
const unsigned char* bytes(std::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

}  // namespace

SecretBox::SecretBox(std::string key) : key_(std::move(key)) {
  assert(key_.size() == 32);
}

std::string SecretBox::seal(std::string_view plaintext, std::string_view ad) const {
  std::string nonce = auth::randomBytes(kNonce);
  CipherCtx ctx(EVP_CIPHER_CTX_new(), &EVP_CIPHER_CTX_free);
  std::string out = nonce;
  out.resize(kNonce + plaintext.size() + kTag);
  int len = 0;
  bool ok = ctx && EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, bytes(key_),
                                      bytes(std::string_view(nonce))) == 1;
  ok = ok &&
       EVP_EncryptUpdate(ctx.get(), nullptr, &len, bytes(ad), static_cast<int>(ad.size())) == 1;
  ok = ok && EVP_EncryptUpdate(ctx.get(), bytes(out) + kNonce, &len, bytes(plaintext),
                               static_cast<int>(plaintext.size())) == 1;
  int tail = 0;
  ok = ok && EVP_EncryptFinal_ex(ctx.get(), bytes(out) + kNonce + len, &tail) == 1;
  ok = ok && EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, kTag,
                                 bytes(out) + kNonce + plaintext.size()) == 1;
  assert(ok && "AES-256-GCM encryption failed");
  (void)ok;
  return out;
}

std::optional<std::string> SecretBox::open(std::string_view sealed, std::string_view ad) const {
  if (sealed.size() < kNonce + kTag) return std::nullopt;
  const size_t n = sealed.size() - kNonce - kTag;
  CipherCtx ctx(EVP_CIPHER_CTX_new(), &EVP_CIPHER_CTX_free);
  std::string out(n, '\0');
  std::string tag(sealed.substr(kNonce + n));
  int len = 0;
  int tail = 0;
  const bool ok =
      ctx &&
      EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, bytes(key_), bytes(sealed)) == 1 &&
      EVP_DecryptUpdate(ctx.get(), nullptr, &len, bytes(ad), static_cast<int>(ad.size())) == 1 &&
      EVP_DecryptUpdate(ctx.get(), bytes(out), &len, bytes(sealed) + kNonce, static_cast<int>(n)) ==
          1 &&
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, kTag, bytes(tag)) == 1 &&
      EVP_DecryptFinal_ex(ctx.get(), bytes(out) + len, &tail) == 1;
  if (!ok) return std::nullopt;
  return out;
}

}  // namespace dc::registry
