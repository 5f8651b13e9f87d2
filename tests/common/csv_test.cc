#include "core/common/csv.h"

#include <sstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace mia {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// Every record of `text`, or the first error.
absl::StatusOr<std::vector<std::vector<std::string>>> ReadAll(const std::string& text) {
  std::istringstream in(text);
  CsvReader reader(&in, "t.csv");
  std::vector<std::vector<std::string>> records;
  std::vector<std::string> fields;
  while (true) {
    absl::StatusOr<bool> more = reader.Next(&fields);
    if (!more.ok()) return more.status();
    if (!*more) return records;
    records.push_back(fields);
  }
}

TEST(CsvTest, FieldsQuotedOnlyWhenNeeded) {
  EXPECT_EQ(CsvField("rmia"), "rmia");
  EXPECT_EQ(CsvField(""), "");
  EXPECT_EQ(CsvField("a,b"), "\"a,b\"");
  EXPECT_EQ(CsvField("say \"hi\""), "\"say \"\"hi\"\"\"");
  EXPECT_EQ(CsvField("two\nlines"), "\"two\nlines\"");
}

TEST(CsvTest, WriterThenReaderGivesTheFieldsBack) {
  const std::vector<std::vector<std::string>> records = {
      {"row_id", "rmia:gamma=2,offline", "q\"uote", "line\r\nbreak", ""},
      {"1", "", "\"", ",", "\n"},
      {"x"},
  };
  std::string text;
  for (const auto& r : records) AppendCsvRecord(r, &text);
  absl::StatusOr<std::vector<std::vector<std::string>>> back = ReadAll(text);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, records);
}

TEST(CsvTest, LineEndsAndEmptyLines) {
  absl::StatusOr<std::vector<std::vector<std::string>>> back = ReadAll("a,b\r\n\r\n\n1,2");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_THAT(*back, ElementsAre(ElementsAre("a", "b"), ElementsAre("1", "2")));
}

TEST(CsvTest, PositionsOfRecords) {
  std::istringstream in("h\n\"a\nb\",c\nd\n");
  CsvReader reader(&in, "t.csv", 5);
  std::vector<std::string> fields;
  ASSERT_TRUE(*reader.Next(&fields));
  EXPECT_EQ(reader.record_line(), 5);
  EXPECT_EQ(reader.offset(), 2);
  ASSERT_TRUE(*reader.Next(&fields));
  EXPECT_EQ(reader.record_line(), 6);
  EXPECT_EQ(reader.record_offset(), 2);
  ASSERT_TRUE(*reader.Next(&fields));
  EXPECT_EQ(reader.record_line(), 8);
  EXPECT_EQ(reader.record_offset(), 10);
  EXPECT_THAT(reader.FieldError(0, "bad").message(), HasSubstr("t.csv: line 8, field 1: bad"));
  EXPECT_FALSE(*reader.Next(&fields));
}

TEST(CsvTest, MalformedInputNamesLineAndColumn) {
  const struct {
    const char* text;
    const char* message;
  } cases[] = {
      {"a,b\n1,\"2\n", "t.csv: line 2, column 3: a quoted field is not closed"},
      {"a,b\n1,x\"y\n", "t.csv: line 2, column 4: a quote inside an unquoted field"},
      {"a\n\"x\ny\"z\n", "t.csv: line 3, column 3: expected a comma or a line end"},
  };
  for (const auto& c : cases) {
    absl::StatusOr<std::vector<std::vector<std::string>>> back = ReadAll(c.text);
    ASSERT_FALSE(back.ok()) << c.text;
    EXPECT_EQ(back.status().code(), absl::StatusCode::kDataLoss);
    EXPECT_THAT(std::string(back.status().message()), HasSubstr(c.message));
  }
}

}  // namespace
}  // namespace mia
