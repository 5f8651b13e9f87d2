// Deterministic pseudo-random numbers: the same seed gives the same stream on
// every machine and standard library (std:: distributions are
// implementation-defined, so mia does not use them where results must repeat).
//
// Rng is xoshiro256** seeded through SplitMix64. Not thread-safe: give each
// thread or each logical stream its own Rng, derived with DeriveSeed.
#ifndef MIA_CORE_COMMON_RANDOM_H_
#define MIA_CORE_COMMON_RANDOM_H_

#include <cmath>
#include <cstdint>

namespace mia {

// SplitMix64 step: a good 64-bit mixer for seeding and for deriving streams.
inline uint64_t SplitMix64(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

// Seed of sub-stream `stream` of `seed` (e.g. bootstrap replicate r, model m).
inline uint64_t DeriveSeed(uint64_t seed, uint64_t stream) {
  uint64_t s = seed ^ (0xD1B54A32D192ED03ULL * (stream + 1));
  SplitMix64(s);
  return SplitMix64(s);
}

class Rng {
 public:
  explicit Rng(uint64_t seed) {
    uint64_t s = seed;
    for (auto& word : state_) word = SplitMix64(s);
  }

  uint64_t Next() {
    const uint64_t result = Rotl(state_[1] * 5, 7) * 9;
    const uint64_t t = state_[1] << 17;
    state_[2] ^= state_[0];
    state_[3] ^= state_[1];
    state_[1] ^= state_[2];
    state_[0] ^= state_[3];
    state_[2] ^= t;
    state_[3] = Rotl(state_[3], 45);
    return result;
  }

  // Uniform integer in [0, n), n > 0 (multiply-shift; bias below 2^-64 * n).
  uint64_t UniformInt(uint64_t n) {
    return static_cast<uint64_t>((static_cast<unsigned __int128>(Next()) * n) >> 64);
  }

  // Uniform double in [0, 1) with 53 random bits.
  double Uniform01() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }

  // Standard normal (Box-Muller; one value per call, the pair's twin discarded
  // so the stream position does not depend on call history).
  double Normal() {
    double u1 = Uniform01();
    while (u1 <= 0.0) u1 = Uniform01();
    const double u2 = Uniform01();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }

 private:
  static uint64_t Rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t state_[4];
};

}  // namespace mia

#endif  // MIA_CORE_COMMON_RANDOM_H_
