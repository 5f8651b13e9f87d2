// Helpers for the tokenizer tests: a temporary folder and whole-file I/O.
#ifndef MIA_TESTS_TEXT_TEXT_TEST_UTIL_H_
#define MIA_TESTS_TEXT_TEXT_TEST_UTIL_H_

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "gtest/gtest.h"

namespace mia::text::testing_util {

// A folder of its own under MIA_TEST_TMPDIR (set by ctest) or gtest's
// TempDir, removed with everything in it at the end of the scope.
class TempFolder {
 public:
  TempFolder() {
    const char* env = std::getenv("MIA_TEST_TMPDIR");
    const std::filesystem::path root = env != nullptr && *env != '\0' ? env : ::testing::TempDir();
    const ::testing::TestInfo* info = ::testing::UnitTest::GetInstance()->current_test_info();
    root_ = root / ("text_test_" + std::string(info->test_suite_name()) + "_" +
                    std::string(info->name()) + "_" + std::to_string(getpid()));
    std::filesystem::remove_all(root_);
    std::filesystem::create_directories(root_);
  }
  ~TempFolder() {
    std::error_code ignored;
    std::filesystem::remove_all(root_, ignored);
  }
  TempFolder(const TempFolder&) = delete;
  TempFolder& operator=(const TempFolder&) = delete;

  std::string path() const { return root_.string(); }
  std::string operator/(const std::string& name) const { return (root_ / name).string(); }

 private:
  std::filesystem::path root_;
};

inline void WriteFileOrDie(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good()) << "cannot write " << path;
}

inline std::string ReadFileOrDie(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << "cannot read " << path;
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

}  // namespace mia::text::testing_util

#endif  // MIA_TESTS_TEXT_TEXT_TEST_UTIL_H_
