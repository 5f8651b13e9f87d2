// SHA-256 (FIPS 180-4), streaming. mia uses it to fingerprint datasets (what a
// model was trained on) and to name content-addressed uploads.
//
// Written from the FIPS 180-4 definition. Portable C++ (150-250 MB/s on one
// x86-64 core), or the x86 SHA extensions where the processor has them
// (about 1 GB/s), chosen at run time.
//
// Thread-safety: a Sha256 object is not thread-safe; use one per thread.
// Sha256Hex is a free function with no shared state.
#ifndef MIA_CORE_COMMON_SHA256_H_
#define MIA_CORE_COMMON_SHA256_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"

namespace mia {

class Sha256 {
 public:
  static constexpr size_t kDigestBytes = 32;
  static constexpr size_t kBlockBytes = 64;

  Sha256();

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
  std::array<uint32_t, 8> state_;
  std::array<uint8_t, kBlockBytes> buffer_;
  size_t buffered_ = 0;       // bytes waiting in buffer_
  uint64_t total_bytes_ = 0;  // message length so far
};

// SHA-256 of `bytes` as 64 lowercase hex digits.
std::string Sha256Hex(absl::string_view bytes);

// For tests and benchmarks: whether the SHA-extension block function exists
// on this processor, and switching it off (on) to exercise the portable one.
// SetHardwareEnabled is process-wide; do not call it while hashing elsewhere.
namespace sha256_internal {
bool HardwareAvailable();
void SetHardwareEnabled(bool enabled);
}  // namespace sha256_internal

}  // namespace mia

#endif  // MIA_CORE_COMMON_SHA256_H_
