// SHA-256 as FIPS 180-4 section 6.2 defines it: 512-bit blocks, a 64-word
// message schedule, 64 rounds over eight 32-bit working variables; the message
// is padded with 0x80, zeros, and its bit length as a 64-bit big-endian number.
//
// The block function has a portable version and, on x86-64 processors with
// the SHA extensions, a version using them, chosen once at run time. Both are
// checked against the same test vectors.
#include "core/common/sha256.h"

#include <algorithm>
#include <atomic>
#include <cstring>

#if defined(__x86_64__) && defined(__GNUC__)
#define MIA_SHA256_X86 1
#include <cpuid.h>
#include <immintrin.h>
#else
#define MIA_SHA256_X86 0
#endif

namespace mia {
namespace {

// FIPS 180-4 section 4.2.2: the first 32 bits of the fractional parts of the
// cube roots of the first 64 primes.
constexpr uint32_t kRoundConstants[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

// Section 5.3.3: the first 32 bits of the fractional parts of the square roots
// of the first 8 primes.
constexpr std::array<uint32_t, 8> kInitialState = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};

inline uint32_t Rotr(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

// The six logical functions of section 4.1.2.
inline uint32_t Ch(uint32_t x, uint32_t y, uint32_t z) { return (x & y) ^ (~x & z); }
inline uint32_t Maj(uint32_t x, uint32_t y, uint32_t z) { return (x & y) ^ (x & z) ^ (y & z); }
inline uint32_t BigSigma0(uint32_t x) { return Rotr(x, 2) ^ Rotr(x, 13) ^ Rotr(x, 22); }
inline uint32_t BigSigma1(uint32_t x) { return Rotr(x, 6) ^ Rotr(x, 11) ^ Rotr(x, 25); }
inline uint32_t SmallSigma0(uint32_t x) { return Rotr(x, 7) ^ Rotr(x, 18) ^ (x >> 3); }
inline uint32_t SmallSigma1(uint32_t x) { return Rotr(x, 17) ^ Rotr(x, 19) ^ (x >> 10); }

// Big-endian load, independent of the host byte order.
inline uint32_t LoadBigEndian32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

// FIPS 180-4 section 6.2.2 on `blocks` consecutive 64-byte blocks.
void CompressPortable(uint32_t* state, const uint8_t* data, size_t blocks) {
  for (; blocks > 0; --blocks, data += 64) {
    // Step 1: the message schedule.
    uint32_t w[64];
    for (int t = 0; t < 16; ++t) w[t] = LoadBigEndian32(data + 4 * t);
    for (int t = 16; t < 64; ++t) {
      w[t] = SmallSigma1(w[t - 2]) + w[t - 7] + SmallSigma0(w[t - 15]) + w[t - 16];
    }
    // Steps 2-4: 64 rounds on the working variables, then add into the state.
    uint32_t a = state[0], b = state[1], c = state[2], d = state[3];
    uint32_t e = state[4], f = state[5], g = state[6], h = state[7];
    for (int t = 0; t < 64; ++t) {
      const uint32_t t1 = h + BigSigma1(e) + Ch(e, f, g) + kRoundConstants[t] + w[t];
      const uint32_t t2 = BigSigma0(a) + Maj(a, b, c);
      h = g;
      g = f;
      f = e;
      e = d + t1;
      d = c;
      c = b;
      b = a;
      a = t1 + t2;
    }
    state[0] += a;
    state[1] += b;
    state[2] += c;
    state[3] += d;
    state[4] += e;
    state[5] += f;
    state[6] += g;
    state[7] += h;
  }
}

#if MIA_SHA256_X86
// The same computation with the x86 SHA extensions (Intel SDM, SHA256RNDS2,
// SHA256MSG1, SHA256MSG2), about 5-8x faster. The instructions keep the
// working variables as two vectors, ABEF and CDGH, and do two rounds per
// SHA256RNDS2; the message schedule advances four words per step.
__attribute__((target("sha,sse4.1,ssse3"))) void CompressSha(uint32_t* state, const uint8_t* data,
                                                             size_t blocks) {
  // Byte order: message words are big-endian.
  const __m128i byte_swap = _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
  // state words a..d and e..h -> ABEF and CDGH (lane 3 holds the first letter).
  __m128i dcba = _mm_loadu_si128(reinterpret_cast<const __m128i*>(state));
  __m128i hgfe = _mm_loadu_si128(reinterpret_cast<const __m128i*>(state + 4));
  const __m128i cdab = _mm_shuffle_epi32(dcba, 0xB1);
  const __m128i efgh = _mm_shuffle_epi32(hgfe, 0x1B);
  __m128i abef = _mm_alignr_epi8(cdab, efgh, 8);
  __m128i cdgh = _mm_blend_epi16(efgh, cdab, 0xF0);

  for (; blocks > 0; --blocks, data += 64) {
    const __m128i abef_in = abef;
    const __m128i cdgh_in = cdgh;
    __m128i w[4];  // the last four schedule groups of four words, ring-indexed
                   // Fully unrolled, the ring indices become register names.
#pragma GCC unroll 16
    for (int group = 0; group < 16; ++group) {
      __m128i words;
      if (group < 4) {
        words = _mm_shuffle_epi8(
            _mm_loadu_si128(reinterpret_cast<const __m128i*>(data + 16 * group)), byte_swap);
      } else {
        // W[t] = s1(W[t-2]) + W[t-7] + s0(W[t-15]) + W[t-16], four at a time.
        const __m128i w16 = w[group & 3];        // W[t-16 .. t-13]
        const __m128i w12 = w[(group + 1) & 3];  // W[t-12 .. t-9]
        const __m128i w8 = w[(group + 2) & 3];   // W[t-8 .. t-5]
        const __m128i w4 = w[(group + 3) & 3];   // W[t-4 .. t-1]
        words = _mm_sha256msg1_epu32(w16, w12);
        words = _mm_add_epi32(words, _mm_alignr_epi8(w4, w8, 4));  // W[t-7 .. t-4]
        words = _mm_sha256msg2_epu32(words, w4);
      }
      w[group & 3] = words;
      __m128i wk = _mm_add_epi32(
          words, _mm_loadu_si128(reinterpret_cast<const __m128i*>(kRoundConstants + 4 * group)));
      cdgh = _mm_sha256rnds2_epu32(cdgh, abef, wk);
      wk = _mm_shuffle_epi32(wk, 0x0E);  // the upper two words for the next two rounds
      abef = _mm_sha256rnds2_epu32(abef, cdgh, wk);
    }
    abef = _mm_add_epi32(abef, abef_in);
    cdgh = _mm_add_epi32(cdgh, cdgh_in);
  }

  // ABEF and CDGH back to a..d and e..h.
  const __m128i feba = _mm_shuffle_epi32(abef, 0x1B);
  const __m128i dchg = _mm_shuffle_epi32(cdgh, 0xB1);
  dcba = _mm_blend_epi16(feba, dchg, 0xF0);
  hgfe = _mm_alignr_epi8(dchg, feba, 8);
  _mm_storeu_si128(reinterpret_cast<__m128i*>(state), dcba);
  _mm_storeu_si128(reinterpret_cast<__m128i*>(state + 4), hgfe);
}

bool CpuHasShaExtensions() {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (__get_cpuid(1, &eax, &ebx, &ecx, &edx) == 0) return false;
  const bool ssse3 = (ecx & (1u << 9)) != 0;
  const bool sse41 = (ecx & (1u << 19)) != 0;
  if (__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx) == 0) return false;
  const bool sha = (ebx & (1u << 29)) != 0;
  return ssse3 && sse41 && sha;
}
#endif  // MIA_SHA256_X86

std::atomic<bool>& HardwareEnabled() {
  static std::atomic<bool> enabled{sha256_internal::HardwareAvailable()};
  return enabled;
}

void CompressBlocks(uint32_t* state, const uint8_t* data, size_t blocks) {
#if MIA_SHA256_X86
  if (HardwareEnabled().load(std::memory_order_relaxed)) {
    CompressSha(state, data, blocks);
    return;
  }
#endif
  CompressPortable(state, data, blocks);
}

}  // namespace

namespace sha256_internal {

bool HardwareAvailable() {
#if MIA_SHA256_X86
  static const bool available = CpuHasShaExtensions();
  return available;
#else
  return false;
#endif
}

void SetHardwareEnabled(bool enabled) {
  HardwareEnabled().store(enabled && HardwareAvailable(), std::memory_order_relaxed);
}

}  // namespace sha256_internal

Sha256::Sha256() : state_(kInitialState), buffer_{} {}

void Sha256::Update(absl::string_view bytes) { Update(bytes.data(), bytes.size()); }

void Sha256::Update(const void* data, size_t size) {
  const uint8_t* p = static_cast<const uint8_t*>(data);
  total_bytes_ += size;
  // Top up a partly filled block first.
  if (buffered_ > 0) {
    const size_t take = std::min(size, kBlockBytes - buffered_);
    std::memcpy(buffer_.data() + buffered_, p, take);
    buffered_ += take;
    p += take;
    size -= take;
    if (buffered_ < kBlockBytes) return;
    CompressBlocks(state_.data(), buffer_.data(), 1);
    buffered_ = 0;
  }
  // Whole blocks straight from the input, without copying.
  if (size >= kBlockBytes) {
    const size_t blocks = size / kBlockBytes;
    CompressBlocks(state_.data(), p, blocks);
    p += blocks * kBlockBytes;
    size -= blocks * kBlockBytes;
  }
  if (size > 0) {
    std::memcpy(buffer_.data(), p, size);
    buffered_ = size;
  }
}

std::array<uint8_t, Sha256::kDigestBytes> Sha256::Digest() const {
  // Section 5.1.1 padding, applied to a copy so the object can keep streaming.
  Sha256 copy = *this;
  const uint64_t bit_length = total_bytes_ * 8;
  uint8_t padding[kBlockBytes + 8] = {0x80};
  // One 0x80 byte, then zeros up to 56 mod 64, then the 8-byte length.
  const size_t pad_bytes = (buffered_ < 56 ? 56 : 120) - buffered_;
  for (int i = 0; i < 8; ++i) {
    padding[pad_bytes + i] = static_cast<uint8_t>(bit_length >> (56 - 8 * i));
  }
  copy.Update(padding, pad_bytes + 8);
  std::array<uint8_t, kDigestBytes> digest;
  for (int i = 0; i < 8; ++i) {
    digest[4 * i] = static_cast<uint8_t>(copy.state_[i] >> 24);
    digest[4 * i + 1] = static_cast<uint8_t>(copy.state_[i] >> 16);
    digest[4 * i + 2] = static_cast<uint8_t>(copy.state_[i] >> 8);
    digest[4 * i + 3] = static_cast<uint8_t>(copy.state_[i]);
  }
  return digest;
}

std::string Sha256::HexDigest() const {
  static constexpr char kHex[] = "0123456789abcdef";
  const std::array<uint8_t, kDigestBytes> digest = Digest();
  std::string hex(2 * kDigestBytes, '0');
  for (size_t i = 0; i < kDigestBytes; ++i) {
    hex[2 * i] = kHex[digest[i] >> 4];
    hex[2 * i + 1] = kHex[digest[i] & 0xF];
  }
  return hex;
}

std::string Sha256Hex(absl::string_view bytes) {
  Sha256 hasher;
  hasher.Update(bytes);
  return hasher.HexDigest();
}

}  // namespace mia
