// JWTs made with OpenSSL, independently of libjwt (which the server verifies
// with), for tests/server/auth_test.cc and bench/auth_bench.cc: base64url,
// HS256 MACs, and an RSA-2048 key that signs RS256 and gives its PEM and JWK.
#ifndef MIA_TESTS_SERVER_JWT_UTIL_H_
#define MIA_TESTS_SERVER_JWT_UTIL_H_

#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include <string>
#include <utility>

#include "absl/strings/escaping.h"

namespace mia::testing {

// Unpadded base64url.
inline std::string B64(const std::string& bytes) {
  std::string out;
  absl::WebSafeBase64Escape(bytes, &out);
  return out;
}

inline std::string Hs256(const std::string& secret, const std::string& input) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac, &n);
  return std::string(reinterpret_cast<char*>(mac), n);
}

struct RsaKey {
  EVP_PKEY* key = nullptr;
  RsaKey() { key = EVP_RSA_gen(2048); }
  ~RsaKey() { EVP_PKEY_free(key); }
  RsaKey(const RsaKey&) = delete;
  RsaKey& operator=(const RsaKey&) = delete;
  std::string PublicPem() const {
    BIO* bio = BIO_new(BIO_s_mem());
    PEM_write_bio_PUBKEY(bio, key);
    char* data = nullptr;
    const long n = BIO_get_mem_data(bio, &data);
    std::string pem(data, static_cast<size_t>(n));
    BIO_free(bio);
    return pem;
  }
  // The RS256 signature of `input`.
  std::string Sign(const std::string& input) const {
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    size_t n = 0;
    EVP_DigestSignInit(ctx, nullptr, EVP_sha256(), nullptr, key);
    EVP_DigestSign(ctx, nullptr, &n, reinterpret_cast<const unsigned char*>(input.data()),
                   input.size());
    std::string sig(n, '\0');
    EVP_DigestSign(ctx, reinterpret_cast<unsigned char*>(sig.data()), &n,
                   reinterpret_cast<const unsigned char*>(input.data()), input.size());
    sig.resize(n);
    EVP_MD_CTX_free(ctx);
    return sig;
  }
  // The JWK members n and e, base64url.
  std::pair<std::string, std::string> Jwk() const {
    BIGNUM* n = nullptr;
    BIGNUM* e = nullptr;
    EVP_PKEY_get_bn_param(key, "n", &n);
    EVP_PKEY_get_bn_param(key, "e", &e);
    std::string nb(static_cast<size_t>(BN_num_bytes(n)), '\0');
    std::string eb(static_cast<size_t>(BN_num_bytes(e)), '\0');
    BN_bn2bin(n, reinterpret_cast<unsigned char*>(nb.data()));
    BN_bn2bin(e, reinterpret_cast<unsigned char*>(eb.data()));
    BN_free(n);
    BN_free(e);
    return {B64(nb), B64(eb)};
  }
};

}  // namespace mia::testing

#endif  // MIA_TESTS_SERVER_JWT_UTIL_H_
