// The text corpus formats: small files in each format written here, corrupt
// copies of them, and the real Debian fortunes folder when it is installed.
#include "core/data/text_corpus.h"

#include <filesystem>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/data/test_util.h"

namespace mia::data {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using testing_util::Get;
using testing_util::Gzip;
using testing_util::TestDir;
using testing_util::WriteFile;

TextSource Source(const std::string& format, const std::string& path) {
  TextSource source;
  source.format = format;
  source.path = path;
  return source;
}

absl::Status LoadError(const TextSource& source, const LoadLimits& limits = {}) {
  return LoadTextDataset(source, limits).status();
}

// A private word that must never appear in a message.
constexpr char kSecret[] = "SECRETWORD";

TEST(TextCorpusTest, LinesSkipsBlankLinesAndKeepsTheRest) {
  TestDir dir;
  WriteFile(dir / "a.txt",
            "\xEF\xBB\xBF first line\r\n\n  \nsecond\tline \ncaf\xC3\xA9 \xF0\x9F\x98\x80");
  const TextDataset data = Get(LoadTextDataset(Source("lines", dir / "a.txt")));
  EXPECT_THAT(data.texts,
              ElementsAre(" first line", "second\tline ", "caf\xC3\xA9 \xF0\x9F\x98\x80"));
  EXPECT_TRUE(data.labels.empty());
  EXPECT_EQ(data.num_classes, 0);
  EXPECT_EQ(data.name, "lines:" + (dir / "a.txt"));
  // gzip is undone by its magic bytes.
  WriteFile(dir / "a.gz", Gzip("x\ny\n"));
  EXPECT_THAT(Get(LoadTextDataset(Source("lines", dir / "a.gz"))).texts, ElementsAre("x", "y"));
}

TEST(TextCorpusTest, InvalidUtf8NamesLineAndOffsetButNotTheText) {
  TestDir dir;
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"overlong", "\xC0\xAF"},       {"surrogate", "\xED\xA0\x80"},
      {"truncated", "\xE2\x82"},      {"above U+10FFFF", "\xF4\x90\x80\x80"},
      {"stray continuation", "\x80"}, {"FF", "\xFF"}};
  for (const auto& [what, bytes] : bad) {
    // Offset 24: "ok line\n" (8) + "SECRETWORD and " (15) + "x" (1).
    WriteFile(dir / "bad.txt", absl::StrCat("ok line\n", kSecret, " and x", bytes, "\nlast\n"));
    const absl::Status status = LoadError(Source("lines", dir / "bad.txt"));
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << what;
    EXPECT_THAT(status.message(),
                AllOf(HasSubstr(dir / "bad.txt"), HasSubstr("line 2"),
                      HasSubstr("invalid UTF-8 at offset 24"), Not(HasSubstr(kSecret))))
        << what;
  }
}

TEST(TextCorpusTest, JsonlTextAndIntegerLabelsInSortedOrder) {
  TestDir dir;
  WriteFile(dir / "d.jsonl",
            "{\"body\": \"b\\u00e9b\\ud83d\\ude00\", \"y\": 7, \"other\": [1]}\n"
            "\n"
            "{\"y\": -2, \"body\": \"a\"}\r\n"
            "{\"body\": \"  \", \"y\": 100}\n"  // blank: skipped with its label
            "{\"body\": \"c\", \"y\": 7}\n");
  TextSource source = Source("jsonl", dir / "d.jsonl");
  source.text_field = "body";
  source.label_field = "y";
  const TextDataset data = Get(LoadTextDataset(source));
  EXPECT_THAT(data.texts, ElementsAre("b\xC3\xA9"
                                      "b\xF0\x9F\x98\x80",
                                      "a", "c"));
  EXPECT_THAT(data.labels, ElementsAre(1, 0, 1));
  EXPECT_EQ(data.num_classes, 2);
  EXPECT_THAT(data.class_names, ElementsAre("-2", "7"));
  // Unlabelled: the label field is not read at all.
  source.label_field = "";
  EXPECT_TRUE(Get(LoadTextDataset(source)).labels.empty());
}

TEST(TextCorpusTest, JsonlStringLabelsInBytewiseOrder) {
  TestDir dir;
  WriteFile(
      dir / "d.jsonl",
      "{\"text\": \"one\", \"label\": \"neg\"}\n{\"text\": \"two\", \"label\": \"pos\"}\n"
      "{\"text\": \"three\", \"label\": \"Neutral\"}\n{\"text\": \"four\", \"label\": \"neg\"}\n");
  TextSource source = Source("jsonl", dir / "d.jsonl");
  source.label_field = "label";
  const TextDataset data = Get(LoadTextDataset(source));
  EXPECT_THAT(data.labels, ElementsAre(1, 2, 0, 1));
  EXPECT_THAT(data.class_names, ElementsAre("Neutral", "neg", "pos"));
  EXPECT_EQ(data.num_classes, 3);
}

TEST(TextCorpusTest, JsonlErrorsNameLineAndMember) {
  TestDir dir;
  TextSource source = Source("jsonl", dir / "d.jsonl");
  source.label_field = "label";
  const std::string good = absl::StrCat("{\"text\": \"", kSecret, "\", \"label\": 1}\n");
  const std::vector<std::pair<std::string, std::string>> cases = {
      {absl::StrCat("{\"text\": \"", kSecret, "\", \"label\": 1"), "invalid JSON at column"},
      {absl::StrCat("[\"", kSecret, "\"]"), "not a JSON object"},
      {"{\"label\": 1}", "no member \"text\""},
      {"{\"text\": 5, \"label\": 1}", "member \"text\" is not a string"},
      {absl::StrCat("{\"text\": \"", kSecret, "\"}"), "no member \"label\""},
      {absl::StrCat("{\"text\": \"", kSecret, "\", \"label\": 1.5}"),
       "neither an integer nor a string"},
      {absl::StrCat("{\"text\": \"", kSecret, "\", \"label\": \"x\"}"),
       "is a string, earlier labels are integers"},
      {absl::StrCat("{\"text\": \"", kSecret, "\\ud800\", \"label\": 1}"), "invalid JSON"},
      {absl::StrCat("{\"text\": \"", kSecret, "\", \"label\": 18446744073709551615}"),
       "out of the int64 range"},
  };
  for (const auto& [line, what] : cases) {
    WriteFile(dir / "d.jsonl", good + good + line + "\n" + good);
    const absl::Status status = LoadError(source);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << what;
    EXPECT_THAT(status.message(), AllOf(HasSubstr(absl::StrCat(dir / "d.jsonl", ": line 3: ")),
                                        HasSubstr(what), Not(HasSubstr(kSecret))));
  }
}

// AG News as released: quoted fields, "" inside quotes, class index 1..4.
constexpr char kAgNews[] =
    "\"3\",\"Wall St. Bears Claw Back\",\"Reuters - Short-sellers, \"\"the\"\" ultra-cynics.\"\n"
    "\"4\",\"Title, with comma\",\"Line one\nline two\"\r\n"
    "\"1\",\"World\",\"news\"\n"
    "\"2\",\"Sports\",\"scores\"\n";

TEST(TextCorpusTest, AgNewsFileAndFolder) {
  TestDir dir;
  WriteFile(dir / "ag/train.csv", kAgNews);
  for (const std::string& path : {dir / "ag/train.csv", dir / "ag"}) {
    const TextDataset data = Get(LoadTextDataset(Source("agnews", path)));
    EXPECT_THAT(
        data.texts,
        ElementsAre("Wall St. Bears Claw Back Reuters - Short-sellers, \"the\" ultra-cynics.",
                    "Title, with comma Line one\nline two", "World news", "Sports scores"));
    EXPECT_THAT(data.labels, ElementsAre(2, 3, 0, 1));
    EXPECT_EQ(data.num_classes, 4);
    EXPECT_THAT(data.class_names, ElementsAre("World", "Sports", "Business", "Sci/Tech"));
  }
  // With the header of the Kaggle copies.
  WriteFile(dir / "kaggle.csv", std::string("Class Index,Title,Description\r\n") + kAgNews);
  EXPECT_EQ(Get(LoadTextDataset(Source("agnews", dir / "kaggle.csv"))).size(), 4);
  EXPECT_EQ(LoadError(Source("agnews", dir / "missing")).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(LoadError(Source("agnews", dir.path())).code(), absl::StatusCode::kNotFound);
}

TEST(TextCorpusTest, AgNewsErrorsNameTheLine) {
  TestDir dir;
  const std::string ok = absl::StrCat("\"1\",\"", kSecret, "\",\"x\"\n");
  const std::vector<std::pair<std::string, std::string>> cases = {
      {absl::StrCat("\"5\",\"", kSecret, "\",\"x\"\n"),
       "line 3: the class index is not 1, 2, 3 or 4"},
      {absl::StrCat("\"0\",\"", kSecret, "\",\"x\"\n"), "line 3: the class index"},
      {absl::StrCat("\"1\",\"", kSecret, "\"\n"), "line 3: 2 fields, expected 3"},
      {absl::StrCat("\"1\",\"", kSecret, "\",\"x\n"),
       "line 3, column 18: a quoted field is not closed"},
      {absl::StrCat("\"1\",\"", kSecret, "\"x,\"x\"\n"), "line 3, column 17: expected a comma"},
  };
  for (const auto& [row, what] : cases) {
    WriteFile(dir / "train.csv", ok + ok + row);
    const absl::Status status = LoadError(Source("agnews", dir / "train.csv"));
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << what;
    EXPECT_THAT(status.message(),
                AllOf(HasSubstr(dir / "train.csv"), HasSubstr(what), Not(HasSubstr(kSecret))))
        << status.message();
  }
}

TEST(TextCorpusTest, FortunesFileAndFolderLikeDebians) {
  TestDir dir;
  WriteFile(dir / "f/b", "Second file.\n\n\n%\n");
  WriteFile(dir / "f/a", "First fortune,\n  two lines.\n%\nSecond.\n%\n%\n\n%\nLast, no percent\n");
  WriteFile(dir / "f/a.dat", std::string("\x00\x00\x00\x02\xFF\xFF", 6));  // strfile index
  std::filesystem::create_symlink("a", dir / "f/a.u8");
  std::filesystem::create_symlink("b", dir / "f/c");  // another link: skipped too
  WriteFile(dir / "f/.hidden", "\xFF");
  std::filesystem::create_directories(dir / "f/off");
  const TextDataset folder = Get(LoadTextDataset(Source("fortunes", dir / "f")));
  EXPECT_THAT(folder.texts, ElementsAre("First fortune,\n  two lines.", "Second.",
                                        "Last, no percent", "Second file."));
  EXPECT_EQ(folder.name, "fortunes:" + (dir / "f"));
  const TextDataset file = Get(LoadTextDataset(Source("fortunes", dir / "f/b")));
  EXPECT_THAT(file.texts, ElementsAre("Second file."));
  WriteFile(dir / "f/b", "ok\n%\nbad \xC3\x28\n");
  EXPECT_THAT(LoadError(Source("fortunes", dir / "f")).message(),
              AllOf(HasSubstr(dir / "f/b"), HasSubstr("line 3: invalid UTF-8 at offset 9")));
}

TEST(TextCorpusTest, TxtFolderReadsEveryTxtFileSorted) {
  TestDir dir;
  WriteFile(dir / "t/b.txt", "bee\n");
  WriteFile(dir / "t/a.txt",
            "\xEF\xBB\xBF"
            "ay\r\nsecond line");
  WriteFile(dir / "t/c.txt", " \n");  // blank: skipped
  WriteFile(dir / "t/notes.md", "ignored");
  std::filesystem::create_directories(dir / "t/sub.txt");
  const TextDataset data = Get(LoadTextDataset(Source("txt-folder", dir / "t")));
  EXPECT_THAT(data.texts, ElementsAre("ay\r\nsecond line", "bee\n"));
  EXPECT_EQ(LoadError(Source("txt-folder", dir / "t/a.txt")).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(LoadError(Source("txt-folder", dir / "none")).code(), absl::StatusCode::kNotFound);
  WriteFile(dir / "u/only.md", "x");
  EXPECT_THAT(LoadError(Source("txt-folder", dir / "u")).message(), HasSubstr("no .txt files"));
}

TEST(TextCorpusTest, LimitsAndEmptyInputs) {
  TestDir dir;
  WriteFile(dir / "l.txt", "a\nbb\nccc\n");
  LoadLimits limits;
  limits.max_rows = 2;
  absl::Status status = LoadError(Source("lines", dir / "l.txt"), limits);
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(status.message(), HasSubstr("line 3"));
  limits.max_rows = 3;
  limits.max_bytes = 5;  // the file (9 bytes) is too big
  EXPECT_EQ(LoadError(Source("lines", dir / "l.txt"), limits).code(),
            absl::StatusCode::kResourceExhausted);
  WriteFile(dir / "m.txt", "abc\n");
  limits.max_bytes = 4;
  WriteFile(dir / "t/1.txt", "abc\n");
  WriteFile(dir / "t/2.txt", "abc\n");  // each file fits, both together do not
  status = LoadError(Source("txt-folder", dir / "t"), limits);
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(status.message(), HasSubstr("2.txt"));
  WriteFile(dir / "e.txt", "\n \n\t\n");
  EXPECT_THAT(LoadError(Source("lines", dir / "e.txt")).message(), HasSubstr("no texts"));
  EXPECT_EQ(LoadError(Source("lines", dir / "nope.txt")).code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(LoadError(Source("parquet", dir / "l.txt")).message(),
              HasSubstr("lines, jsonl, agnews, fortunes, txt-folder"));
}

// The real folder of Debian's `fortunes` package (scripts/install-deps.sh
// installs it): every record loads, none blank, none holding the separator.
TEST(TextCorpusTest, RealDebianFortunes) {
  const std::string folder = "/usr/share/games/fortunes";
  if (!std::filesystem::exists(folder + "/fortunes")) {
    GTEST_SKIP() << folder << " is not installed (Debian package fortunes)";
  }
  const TextDataset data = Get(LoadTextDataset(Source("fortunes", folder)));
  EXPECT_GT(data.size(), 400);  // fortunes-min alone has 431 records in "fortunes"
  for (const std::string& text : data.texts) {
    ASSERT_FALSE(text.empty());
    ASSERT_EQ(text.find("\n%\n"), std::string::npos);
    ASSERT_NE(text.back(), '\n');
  }
  const TextDataset one = Get(LoadTextDataset(Source("fortunes", folder + "/fortunes")));
  EXPECT_EQ(one.size(), 431);
}

}  // namespace
}  // namespace mia::data
