#include "core/common/memory_budget.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace mia {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

// A fresh folder standing in for /sys/fs/cgroup.
std::string FakeCgroupRoot() {
  const char* env = std::getenv("MIA_TEST_TMPDIR");
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  const fs::path dir =
      fs::path(env != nullptr ? env : ::testing::TempDir()) / "memory_budget_test" / info->name();
  fs::remove_all(dir);
  fs::create_directories(dir / "memory");
  return dir.string();
}

void Write(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

TEST(MemoryBudget, FormatsDecimalUnits) {
  EXPECT_EQ(FormatBytes(512), "512 bytes");
  EXPECT_EQ(FormatBytes(1'500'000), "1.50 MB");
  EXPECT_EQ(FormatBytes(17'200'000'000), "17.2 GB");
  EXPECT_EQ(FormatBytes(19'200'000'000), "19.2 GB");
  EXPECT_EQ(FormatBytes(103'000'000'000), "103 GB");
  EXPECT_EQ(FormatBytes(999'999), "1.00 MB");
}

TEST(MemoryBudget, CgroupV2Limit) {
  const std::string root = FakeCgroupRoot();
  EXPECT_EQ(CgroupMemoryLimitBytes(root), std::nullopt);
  Write(root + "/memory.max", "max\n");
  EXPECT_EQ(CgroupMemoryLimitBytes(root), std::nullopt);
  Write(root + "/memory.max", "1073741824\n");
  EXPECT_EQ(CgroupMemoryLimitBytes(root), uint64_t{1} << 30);
}

TEST(MemoryBudget, CgroupV1Limit) {
  const std::string root = FakeCgroupRoot();
  // What v1 reports for "no limit".
  Write(root + "/memory/memory.limit_in_bytes", "9223372036854771712\n");
  EXPECT_EQ(CgroupMemoryLimitBytes(root), std::nullopt);
  Write(root + "/memory/memory.limit_in_bytes", "2147483648\n");
  EXPECT_EQ(CgroupMemoryLimitBytes(root), uint64_t{2} << 30);
}

TEST(MemoryBudget, DefaultIsAFractionOfTheSmallerLimit) {
  ASSERT_GT(PhysicalMemoryBytes(), uint64_t{1} << 30) << "the test assumes more than 1 GiB";
  const std::string root = FakeCgroupRoot();
  EXPECT_EQ(DefaultMemoryBudgetBytes(0.5, root), PhysicalMemoryBytes() / 2);
  Write(root + "/memory.max", "1073741824");
  EXPECT_EQ(DefaultMemoryBudgetBytes(0.5, root), uint64_t{1} << 29);
  EXPECT_EQ(DefaultMemoryBudgetBytes(0.8, root),
            static_cast<uint64_t>(0.8 * static_cast<double>(uint64_t{1} << 30)));
}

TEST(MemoryBudget, CheckNamesTheEstimateAndTheBudget) {
  EXPECT_TRUE(CheckMemoryBudget(100, "x", 100, "the server's", "").ok());
  EXPECT_TRUE(CheckMemoryBudget(uint64_t{1} << 60, "x", 0, "the server's", "").ok());
  const absl::Status s = CheckMemoryBudget(17'200'000'000, "training 'mlp'", 1'000'000'000,
                                           "the server's", "see --memory_budget_bytes");
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(s.message(),
            "estimated 17.2 GB for training 'mlp' exceeds the server's memory budget 1.00 GB; "
            "see --memory_budget_bytes");
}

}  // namespace
}  // namespace mia
