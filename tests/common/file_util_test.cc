// Atomic writes under write failures, and the sweep of stale temporaries.
#include "core/common/file_util.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/common/write_failures.h"

namespace mia {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

std::string TempDir() {
  const char* env = std::getenv("MIA_TEST_TMPDIR");
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  const fs::path dir = fs::path(env != nullptr ? env : ::testing::TempDir()) / "file_util_test" /
                       absl::StrCat(info->test_suite_name(), ".", info->name());
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir.string();
}

void WriteBytes(const fs::path& path, size_t size) {
  fs::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary) << std::string(size, 'x');
}

int CountFiles(const std::string& dir) {
  int n = 0;
  for (const auto& entry : fs::recursive_directory_iterator(dir)) n += entry.is_regular_file();
  return n;
}

TEST(WriteFileAtomicallyTest, AFailedWriteIsResourceExhaustedNamingTheFileAndLeavesNothing) {
  const std::string dir = TempDir();
  const std::string path = dir + "/result.json";
  absl::Status status;
  {
    testutil::ScopedFileSizeLimit limit(4096);
    ASSERT_TRUE(limit.ok());
    status = WriteFileAtomically(path, std::string(64 << 10, 'x'));
  }
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted) << status;
  EXPECT_THAT(status.message(), HasSubstr(path));
  EXPECT_EQ(CountFiles(dir), 0);  // neither the file nor its temporary
}

// The real thing where the test may mount a tmpfs (skipped elsewhere; the
// test above injects the same failure everywhere).
TEST(WriteFileAtomicallyTest, AFullTmpfsIsResourceExhaustedNamingTheFile) {
  const std::string dir = TempDir();
  testutil::ScopedTmpfs tmpfs(dir, 64 << 10);
  if (!tmpfs.ok()) GTEST_SKIP() << "cannot mount a tmpfs here";
  const std::string path = dir + "/model.pt";
  const absl::Status status = WriteFileAtomically(path, std::string(1 << 20, 'x'));
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted) << status;
  EXPECT_THAT(status.message(), HasSubstr(path));
  EXPECT_THAT(status.message(), HasSubstr("No space left on device"));
  EXPECT_EQ(CountFiles(dir), 0);
}

TEST(WriteFilesAtomicallyTest, WritesEveryFileAndReplacesOldOnes) {
  const std::string dir = TempDir();
  WriteBytes(fs::path(dir) / "b.txt", 10);
  ASSERT_TRUE(WriteFilesAtomically(dir, {{"a.txt", "alpha"}, {"b.txt", ""}, {"c.txt", "gamma"}})
                  .ok());
  auto read = [&dir](const char* name) {
    std::ifstream in(fs::path(dir) / name, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  EXPECT_EQ(read("a.txt"), "alpha");
  EXPECT_EQ(read("b.txt"), "");
  EXPECT_EQ(read("c.txt"), "gamma");
  EXPECT_EQ(CountFiles(dir), 3);  // no temporaries left
  EXPECT_TRUE(WriteFilesAtomically(dir, {}).ok());
}

TEST(WriteFilesAtomicallyTest, AFailedWriteNamesTheFileAndLeavesNoTemporaries) {
  const std::string dir = TempDir();
  absl::Status status;
  {
    testutil::ScopedFileSizeLimit limit(4096);
    ASSERT_TRUE(limit.ok());
    status = WriteFilesAtomically(
        dir, {{"small.txt", "ok"}, {"big.csv", std::string(64 << 10, 'x')}, {"late.txt", "z"}});
  }
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted) << status;
  EXPECT_THAT(status.message(), HasSubstr(dir + "/big.csv"));
  EXPECT_EQ(CountFiles(dir), 0);  // nothing was renamed: the failure came first
}

TEST(FileErrnoStatusTest, FullDiskQuotaAndSizeLimitAreResourceExhausted) {
  for (int err : {ENOSPC, EDQUOT, EFBIG}) {
    const absl::Status status = FileErrnoStatus(err, "cache/models/k.pt", "write");
    EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted) << err;
    EXPECT_THAT(status.message(), HasSubstr("cache/models/k.pt: cannot write"));
  }
  EXPECT_EQ(FileErrnoStatus(EROFS, "f", "write").code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(FileErrnoStatus(EIO, "f", "write").code(), absl::StatusCode::kUnknown);
}

TEST(IsTempFileNameTest, MatchesWhatUniqueTempPathMakes) {
  EXPECT_TRUE(IsTempFileName(fs::path(UniqueTempPath("/a/b/model.pt")).filename().string()));
  EXPECT_TRUE(IsTempFileName("0123abcd.tmp.77.0"));
  EXPECT_TRUE(IsTempFileName("result.json.tmp.1.12"));
  EXPECT_FALSE(IsTempFileName("result.json"));
  EXPECT_FALSE(IsTempFileName("notes.tmp"));
  EXPECT_FALSE(IsTempFileName("x.tmp.12"));
  EXPECT_FALSE(IsTempFileName("x.tmp.12.3a"));
  EXPECT_FALSE(IsTempFileName("x.tmp..3"));
  EXPECT_FALSE(IsTempFileName(".tmp.1.2"));
}

TEST(RemoveTempFilesTest, RemovesOnlyTemporariesAndCountsTheirBytes) {
  const fs::path dir = TempDir();
  WriteBytes(dir / "artifacts" / "abc.tmp.4242.0", 1000);
  WriteBytes(dir / "cache" / "models" / "k.pt.tmp.1.17", 234);
  WriteBytes(dir / "artifacts" / "abc", 10);
  WriteBytes(dir / "cache" / "models" / "k.pt", 20);
  WriteBytes(dir / "cache" / "models" / "k.tmp", 30);
  absl::StatusOr<TempSweep> sweep = RemoveTempFiles(dir.string());
  ASSERT_TRUE(sweep.ok()) << sweep.status();
  EXPECT_EQ(sweep->files, 2);
  EXPECT_EQ(sweep->bytes, 1234);
  EXPECT_FALSE(fs::exists(dir / "artifacts" / "abc.tmp.4242.0"));
  EXPECT_FALSE(fs::exists(dir / "cache" / "models" / "k.pt.tmp.1.17"));
  EXPECT_TRUE(fs::exists(dir / "artifacts" / "abc"));
  EXPECT_TRUE(fs::exists(dir / "cache" / "models" / "k.pt"));
  EXPECT_TRUE(fs::exists(dir / "cache" / "models" / "k.tmp"));
}

TEST(RemoveTempFilesTest, LeavesTargetsOfLinksAlone) {
  const fs::path dir = TempDir();
  WriteBytes(dir / "outside" / "keep.tmp.1.2", 5);
  fs::create_directories(dir / "data");
  fs::create_directory_symlink(dir / "outside", dir / "data" / "link");
  fs::create_symlink(dir / "outside" / "keep.tmp.1.2", dir / "data" / "l.tmp.3.4");
  absl::StatusOr<TempSweep> sweep = RemoveTempFiles((dir / "data").string());
  ASSERT_TRUE(sweep.ok()) << sweep.status();
  EXPECT_EQ(sweep->files, 0);
  EXPECT_TRUE(fs::exists(dir / "outside" / "keep.tmp.1.2"));
}

TEST(RemoveTempFilesTest, AMissingFolderIsAnEmptySweep) {
  absl::StatusOr<TempSweep> sweep = RemoveTempFiles(TempDir() + "/none");
  ASSERT_TRUE(sweep.ok()) << sweep.status();
  EXPECT_EQ(sweep->files, 0);
}

}  // namespace
}  // namespace mia
