// Helpers shared by the audit tests.
#ifndef MIA_TESTS_AUDIT_TEST_UTIL_H_
#define MIA_TESTS_AUDIT_TEST_UTIL_H_

#include <cstdint>
#include <utility>
#include <vector>

#include "core/io/npy.h"

namespace mia::audit::testing_util {

// The header of an array of `shape` (data_bytes from the shape), for memory
// estimates worked out by hand.
inline io::NpyArrayInfo Info(io::DType dtype, size_t item_size, std::vector<int64_t> shape) {
  io::NpyArrayInfo info;
  info.dtype = dtype;
  info.item_size = item_size;
  info.shape = std::move(shape);
  uint64_t n = 1;
  for (int64_t d : info.shape) n *= static_cast<uint64_t>(d);
  info.data_bytes = n * item_size;
  return info;
}

}  // namespace mia::audit::testing_util

#endif  // MIA_TESTS_AUDIT_TEST_UTIL_H_
