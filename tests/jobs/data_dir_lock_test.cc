// DataDirLock on real files: one holder at a time, the refusal names the
// holder, and the lock goes with its holder.
#include "core/jobs/data_dir_lock.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace mia::jobs {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

std::string TempDir() {
  const char* env = std::getenv("MIA_TEST_TMPDIR");
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  const std::filesystem::path dir =
      std::filesystem::path(env != nullptr ? env : ::testing::TempDir()) / "data_dir_lock_test" /
      info->name();
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir.string();
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

TEST(DataDirLockTest, SecondHolderIsRefusedAndToldWhoHoldsIt) {
  const std::string dir = TempDir();
  absl::StatusOr<std::unique_ptr<DataDirLock>> first = DataDirLock::Acquire(dir);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ((*first)->path(), dir + "/LOCK");
  const std::string pid = absl::StrCat("pid ", getpid(), " on host ");
  EXPECT_THAT((*first)->holder(), StartsWith(pid));
  EXPECT_THAT(ReadAll(dir + "/LOCK"), StartsWith(pid));

  // flock excludes a second open file even in the same process.
  absl::StatusOr<std::unique_ptr<DataDirLock>> second = DataDirLock::Acquire(dir);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(second.status().message(), HasSubstr(dir + "/LOCK"));
  EXPECT_THAT(second.status().message(), HasSubstr((*first)->holder()));
  // The refused attempt did not disturb the holder's record.
  EXPECT_THAT(ReadAll(dir + "/LOCK"), StartsWith(pid));

  // Released with its holder; the file stays and is taken over.
  first->reset();
  absl::StatusOr<std::unique_ptr<DataDirLock>> third = DataDirLock::Acquire(dir);
  ASSERT_TRUE(third.ok()) << third.status();
  EXPECT_TRUE(std::filesystem::exists(dir + "/LOCK"));
}

TEST(DataDirLockTest, HolderWithoutARecordIsStillExclusive) {
  const std::string dir = TempDir();
  absl::StatusOr<std::unique_ptr<DataDirLock>> first = DataDirLock::Acquire(dir);
  ASSERT_TRUE(first.ok()) << first.status();
  std::ofstream(dir + "/LOCK", std::ios::trunc).close();  // the record lost, the lock not
  absl::StatusOr<std::unique_ptr<DataDirLock>> second = DataDirLock::Acquire(dir);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(second.status().message(), HasSubstr("has not recorded itself"));
}

TEST(DataDirLockTest, MissingFolderIsNamed) {
  const std::string dir = TempDir() + "/missing";
  absl::StatusOr<std::unique_ptr<DataDirLock>> lock = DataDirLock::Acquire(dir);
  ASSERT_FALSE(lock.ok());
  EXPECT_EQ(lock.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(lock.status().message(), HasSubstr(dir + "/LOCK"));
}

}  // namespace
}  // namespace mia::jobs
