// Helpers for the data tests: a per-test temporary folder, file writing,
// gzip compression, and StatusOr unwrapping.
#ifndef MIA_TESTS_DATA_TEST_UTIL_H_
#define MIA_TESTS_DATA_TEST_UTIL_H_

#include <unistd.h>
#include <zlib.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <utility>

#include "absl/status/statusor.h"
#include "gtest/gtest.h"

namespace mia::data::testing_util {

// A folder of its own under MIA_TEST_TMPDIR (set by ctest) or gtest's
// TempDir, removed with everything in it when the test ends.
class TestDir {
 public:
  TestDir() {
    const char* env = std::getenv("MIA_TEST_TMPDIR");
    const std::filesystem::path root = env != nullptr && *env != '\0' ? env : ::testing::TempDir();
    const ::testing::TestInfo* info = ::testing::UnitTest::GetInstance()->current_test_info();
    root_ = root / ("data_test_" + std::string(info->test_suite_name()) + "_" +
                    std::string(info->name()) + "_" + std::to_string(getpid()));
    std::filesystem::remove_all(root_);
    std::filesystem::create_directories(root_);
  }
  ~TestDir() {
    std::error_code ignored;
    std::filesystem::remove_all(root_, ignored);
  }
  TestDir(const TestDir&) = delete;
  TestDir& operator=(const TestDir&) = delete;

  std::string path() const { return root_.string(); }
  std::string operator/(const std::string& name) const { return (root_ / name).string(); }

 private:
  std::filesystem::path root_;
};

inline void WriteFile(const std::string& path, const std::string& bytes) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good()) << "cannot write " << path;
}

// A gzip stream (RFC 1952) of `bytes`, as gzip(1) would write it.
inline std::string Gzip(const std::string& bytes) {
  z_stream zs;
  std::memset(&zs, 0, sizeof(zs));
  EXPECT_EQ(deflateInit2(&zs, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY), Z_OK);
  std::string out(deflateBound(&zs, bytes.size()) + 64, '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(bytes.data()));
  zs.avail_in = static_cast<uInt>(bytes.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  EXPECT_EQ(deflate(&zs, Z_FINISH), Z_STREAM_END);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

// The value of `result`, or a recorded failure and T() (dereferencing a failed
// StatusOr would abort the whole test binary).
template <typename T>
T Get(absl::StatusOr<T> result) {
  if (!result.ok()) {
    ADD_FAILURE() << result.status();
    return T();
  }
  return *std::move(result);
}

}  // namespace mia::data::testing_util

#endif  // MIA_TESTS_DATA_TEST_UTIL_H_
