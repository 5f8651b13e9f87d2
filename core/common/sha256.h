// SHA-256, streaming. mia uses it to fingerprint datasets (what a model was
// trained on) and to name content-addressed uploads.
//
// A thin wrapper over OpenSSL's EVP digest interface (OpenSSL is linked
// already through gRPC; it picks the processor's SHA extensions itself), so
// that no hand-written hash has to be trusted. OpenSSL stays out of this
// header.
//
// Thread-safety: a Sha256 object is not thread-safe; use one per thread.
// Sha256Hex is a free function with no shared state.
#ifndef MIA_CORE_COMMON_SHA256_H_
#define MIA_CORE_COMMON_SHA256_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

struct evp_md_ctx_st;  // OpenSSL's EVP_MD_CTX

namespace mia {

class Sha256 {
 public:
  static constexpr size_t kDigestBytes = 32;

  Sha256();
  ~Sha256();
  Sha256(const Sha256& other);
  Sha256& operator=(const Sha256& other);

  // Appends bytes to the message. Any split of a message into Update calls
  // gives the same digest as one call with the whole message.
  void Update(absl::string_view bytes);
  void Update(const void* data, size_t size);

  // The digest of everything appended so far. Does not change the state, so
  // more Update calls may follow (the digest then covers the longer message).
  std::array<uint8_t, kDigestBytes> Digest() const;
  // Digest() as 64 lowercase hex digits.
  std::string HexDigest() const;

 private:
  evp_md_ctx_st* ctx_;
};

// SHA-256 of `bytes` as 64 lowercase hex digits.
std::string Sha256Hex(absl::string_view bytes);

// SHA-256 of a file's bytes, streamed, as 64 lowercase hex digits. NotFound
// when it cannot be opened, InvalidArgument for a folder or other non-file,
// DataLoss when a read fails; messages name the path (callers that answer
// clients replace them).
absl::StatusOr<std::string> Sha256OfFile(const std::string& path);

// Whether `text` has the form Sha256Hex returns (64 lowercase hex digits):
// the check on digests and content-addressed ids (artifacts, uploads) that
// clients send.
bool IsSha256Hex(absl::string_view text);

}  // namespace mia

#endif  // MIA_CORE_COMMON_SHA256_H_
