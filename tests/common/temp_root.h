// A fresh, empty folder for one test: under $MIA_TEST_TMPDIR when set (CI
// points it at a scratch disk), else GoogleTest's temporary folder.
#ifndef MIA_TESTS_COMMON_TEMP_ROOT_H_
#define MIA_TESTS_COMMON_TEMP_ROOT_H_

#include <cstdlib>
#include <filesystem>
#include <string>

#include "gtest/gtest.h"

namespace mia::testing_util {

inline std::string FreshTempRoot(const std::string& name) {
  const char* env = std::getenv("MIA_TEST_TMPDIR");
  const std::string root = std::string(env != nullptr ? env : ::testing::TempDir()) + "/" + name;
  std::filesystem::remove_all(root);
  std::filesystem::create_directories(root);
  return root;
}

}  // namespace mia::testing_util

#endif  // MIA_TESTS_COMMON_TEMP_ROOT_H_
