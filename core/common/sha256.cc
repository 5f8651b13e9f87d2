#include "core/common/sha256.h"

#include <openssl/evp.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>
#include <vector>

#include "absl/strings/str_cat.h"
#include <cstdio>
#include <cstdlib>

namespace mia {
namespace {

// The EVP calls fail only when OpenSSL cannot allocate or is broken; neither
// is a condition a caller could handle, and a wrong digest would be worse.
void Check(int ok, const char* what) {
  if (ok == 1) return;
  std::fprintf(stderr, "mia: OpenSSL %s failed\n", what);
  std::abort();
}

EVP_MD_CTX* NewContext() {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  if (ctx == nullptr) Check(0, "EVP_MD_CTX_new");
  return ctx;
}

}  // namespace

Sha256::Sha256() : ctx_(NewContext()) {
  Check(EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr), "EVP_DigestInit_ex");
}

Sha256::~Sha256() { EVP_MD_CTX_free(ctx_); }

Sha256::Sha256(const Sha256& other) : ctx_(NewContext()) {
  Check(EVP_MD_CTX_copy_ex(ctx_, other.ctx_), "EVP_MD_CTX_copy_ex");
}

Sha256& Sha256::operator=(const Sha256& other) {
  if (this != &other) Check(EVP_MD_CTX_copy_ex(ctx_, other.ctx_), "EVP_MD_CTX_copy_ex");
  return *this;
}

void Sha256::Update(absl::string_view bytes) { Update(bytes.data(), bytes.size()); }

void Sha256::Update(const void* data, size_t size) {
  if (size == 0) return;
  Check(EVP_DigestUpdate(ctx_, data, size), "EVP_DigestUpdate");
}

std::array<uint8_t, Sha256::kDigestBytes> Sha256::Digest() const {
  // Finish a copy, so that this stream can go on.
  Sha256 copy(*this);
  std::array<uint8_t, kDigestBytes> digest{};
  unsigned int length = 0;
  Check(EVP_DigestFinal_ex(copy.ctx_, digest.data(), &length), "EVP_DigestFinal_ex");
  if (length != kDigestBytes) Check(0, "EVP_DigestFinal_ex (length)");
  return digest;
}

std::string Sha256::HexDigest() const {
  static constexpr char kHex[] = "0123456789abcdef";
  const std::array<uint8_t, kDigestBytes> digest = Digest();
  std::string hex(2 * kDigestBytes, '0');
  for (size_t i = 0; i < kDigestBytes; ++i) {
    hex[2 * i] = kHex[digest[i] >> 4];
    hex[2 * i + 1] = kHex[digest[i] & 15];
  }
  return hex;
}

std::string Sha256Hex(absl::string_view bytes) {
  Sha256 hasher;
  hasher.Update(bytes);
  return hasher.HexDigest();
}

bool IsSha256Hex(absl::string_view text) {
  return text.size() == 2 * Sha256::kDigestBytes &&
         std::all_of(text.begin(), text.end(),
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

absl::StatusOr<std::string> Sha256OfFile(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::exists(path, ec) && !std::filesystem::is_regular_file(path, ec)) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": not a regular file"));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  Sha256 hash;
  std::vector<char> chunk(1 << 20);
  while (in) {
    in.read(chunk.data(), static_cast<std::streamsize>(chunk.size()));
    hash.Update(chunk.data(), static_cast<size_t>(in.gcount()));
  }
  if (in.bad()) return absl::DataLossError(absl::StrCat(path, ": read failed"));
  return hash.HexDigest();
}

}  // namespace mia
