// ServerMetrics' own families beside the process metrics read from /proc, and
// the /proc/<pid>/stat parser on a hand-written line.
#include "server/metrics.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace mia::server {
namespace {

using ::testing::ContainsRegex;
using ::testing::HasSubstr;

TEST(ProcStatTest, FieldsAreCountedAfterTheLastParenthesis) {
  // A process name with spaces and ')' in it; utime 250 + stime 50 ticks,
  // started 5000 ticks after boot, 100 MiB virtual, 2560 resident pages.
  const std::string stat =
      "1234 (mia) srv x) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 8 0 5000 "
      "104857600 2560 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0\n";
  ProcessStats stats;
  ASSERT_TRUE(ParseProcStat(stat, /*ticks_per_second=*/100, /*boot_time=*/1700000000,
                            /*page_bytes=*/4096, &stats)
                  .ok());
  EXPECT_DOUBLE_EQ(stats.cpu_seconds, 3.0);
  EXPECT_DOUBLE_EQ(stats.start_time_seconds, 1700000050.0);
  EXPECT_DOUBLE_EQ(stats.virtual_bytes, 104857600.0);
  EXPECT_DOUBLE_EQ(stats.resident_bytes, 2560.0 * 4096);
}

TEST(ProcStatTest, ShortOrGarbledLinesNameTheField) {
  ProcessStats stats;
  absl::Status s = ParseProcStat("1234 (mia) S 1 2 3", 100, 0, 4096, &stats);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("field 14 (utime)"));
  s = ParseProcStat("no parenthesis here", 100, 0, 4096, &stats);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
}

TEST(ServerMetricsTest, ExposesProcessMetricsAndBuildInfo) {
  ServerMetrics metrics("1.2.3");
  metrics.OnRpcLatency("GetAudit", 0.002);
  const std::string text = metrics.Text();
  EXPECT_THAT(text, HasSubstr("mia_build_info{version=\"1.2.3\"} 1"));
  EXPECT_THAT(text, HasSubstr("mia_rpc_duration_seconds_count{method=\"GetAudit\"} 1"));
  EXPECT_THAT(text, ContainsRegex("\nprocess_cpu_seconds_total [0-9.e+-]+\n"));
  EXPECT_THAT(text, ContainsRegex("\nprocess_resident_memory_bytes [1-9][0-9.e+]*\n"));
  EXPECT_THAT(text, ContainsRegex("\nprocess_open_fds [1-9][0-9.e+]*\n"));
  // Started after 2020 and not in the future of the test.
  ProcessStats stats;
  ASSERT_TRUE(ReadProcessStats(&stats).ok());
  EXPECT_GT(stats.start_time_seconds, 1.6e9);
  EXPECT_GT(stats.open_fds, 2);  // stdin, stdout, stderr at least
  EXPECT_THAT(text, HasSubstr("# TYPE process_start_time_seconds gauge"));
  EXPECT_THAT(text, HasSubstr("# TYPE process_cpu_seconds_total counter"));
}

}  // namespace
}  // namespace mia::server
