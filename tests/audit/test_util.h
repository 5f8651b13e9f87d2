// Helpers shared by the audit tests.
#ifndef MIA_TESTS_AUDIT_TEST_UTIL_H_
#define MIA_TESTS_AUDIT_TEST_UTIL_H_

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "core/audit/bundle.h"
#include "core/io/npy.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

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

// One bad bundle: `edit` spoils a good one's arrays, and loading must fail
// with InvalidArgument whose message holds `message`.
struct BadCase {
  std::string what;
  std::function<void(io::NpyMap&)> edit;
  std::string message;
};

// Checks every case against a fresh copy of `good()`'s arrays.
inline void ExpectEachRefused(const std::function<io::NpyMap()>& good,
                              const std::vector<BadCase>& cases) {
  for (const BadCase& c : cases) {
    io::NpyMap a = good();
    c.edit(a);
    auto b = BundleFromArrays(a, "mem");
    ASSERT_FALSE(b.ok()) << c.what;
    EXPECT_EQ(b.status().code(), absl::StatusCode::kInvalidArgument) << c.what;
    EXPECT_THAT(b.status().message(), ::testing::HasSubstr(c.message)) << c.what;
  }
}

}  // namespace mia::audit::testing_util

#endif  // MIA_TESTS_AUDIT_TEST_UTIL_H_
