// Unsigned arithmetic that sticks at UINT64_MAX instead of wrapping: for
// sizes and memory estimates computed from untrusted shapes, where an
// overflow must read as "too much", never as a small number.
#ifndef MIA_CORE_COMMON_SATURATING_H_
#define MIA_CORE_COMMON_SATURATING_H_

#include <cstdint>

namespace mia {

inline uint64_t SaturatingAdd(uint64_t a, uint64_t b) {
  uint64_t sum;
  return __builtin_add_overflow(a, b, &sum) ? UINT64_MAX : sum;
}

inline uint64_t SaturatingMul(uint64_t a, uint64_t b) {
  uint64_t product;
  return __builtin_mul_overflow(a, b, &product) ? UINT64_MAX : product;
}

}  // namespace mia

#endif  // MIA_CORE_COMMON_SATURATING_H_
