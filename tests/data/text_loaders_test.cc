// purchase100, texas100 and csv: small files in the exact real formats, then
// corrupted copies.
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "core/data/loaders.h"
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

// Binary feature j of row r.
int Bit(int r, int j) { return ((r * 31 + j * 17) % 7) < 2 ? 1 : 0; }

std::string BinaryRow(int r, int width) {
  std::string line;
  for (int j = 0; j < width; ++j) absl::StrAppend(&line, j == 0 ? "" : ",", Bit(r, j));
  return line;
}

// dataset_purchase: `label,f1,...,f600`, labels 1..100.
std::string PurchaseText(const std::vector<int>& labels) {
  std::string text;
  for (size_t r = 0; r < labels.size(); ++r) {
    absl::StrAppend(&text, labels[r], ",", BinaryRow(static_cast<int>(r), 600), "\n");
  }
  return text;
}

DataSource Source(const std::string& format, const std::string& path) {
  DataSource source;
  source.format = format;
  source.path = path;
  return source;
}

void ExpectPurchaseRows(const Dataset& dataset, const std::vector<int64_t>& labels) {
  EXPECT_EQ(dataset.labels, labels);
  EXPECT_THAT(dataset.sample_shape, ElementsAre(600));
  EXPECT_EQ(dataset.num_classes, 100);
  ASSERT_EQ(dataset.features.size(), labels.size() * 600);
  for (size_t r = 0; r < labels.size(); ++r) {
    for (int j = 0; j < 600; ++j) {
      ASSERT_EQ(dataset.features[r * 600 + j], static_cast<float>(Bit(static_cast<int>(r), j)))
          << r << " " << j;
    }
  }
}

TEST(PurchaseLoaderTest, LoadsPlainAndGzipped) {
  TestDir dir;
  const std::string text = PurchaseText({1, 100, 50, 7, 1});
  WriteFile(dir / "dataset_purchase", text);
  // gzip is recognised by its magic bytes, whatever the file is called.
  WriteFile(dir / "purchase.bin", Gzip(text));
  const Dataset plain = Get(LoadDataset(Source("purchase100", dir / "dataset_purchase")));
  ExpectPurchaseRows(plain, {0, 99, 49, 6, 0});
  EXPECT_EQ(plain.name, "purchase100:" + (dir / "dataset_purchase"));
  const Dataset gz = Get(LoadDataset(Source("purchase100", dir / "purchase.bin")));
  ExpectPurchaseRows(gz, {0, 99, 49, 6, 0});
  EXPECT_EQ(Fingerprint(plain), Fingerprint(gz));
}

TEST(PurchaseLoaderTest, AcceptsAFolderCrlfAndNoFinalNewline) {
  TestDir dir;
  std::string text = PurchaseText({3, 4});
  WriteFile(dir / "a/dataset_purchase.gz", Gzip(text));
  ExpectPurchaseRows(Get(LoadDataset(Source("purchase100", dir / "a"))), {2, 3});
  std::string crlf;
  for (char c : text) {
    if (c == '\n') crlf += '\r';
    crlf += c;
  }
  crlf.pop_back();  // no final line break
  WriteFile(dir / "crlf", crlf);
  ExpectPurchaseRows(Get(LoadDataset(Source("purchase100", dir / "crlf"))), {2, 3});
}

// Replaces line `line` (1-based) of `text`.
std::string WithLine(const std::string& text, int line, const std::string& replacement) {
  std::vector<std::string> lines = absl::StrSplit(text, '\n');
  lines[static_cast<size_t>(line - 1)] = replacement;
  return absl::StrJoin(lines, "\n");
}

absl::Status PurchaseError(const TestDir& dir, const std::string& text, bool gzip = false) {
  WriteFile(dir / "dataset_purchase", gzip ? Gzip(text) : text);
  return LoadDataset(Source("purchase100", dir / "dataset_purchase")).status();
}

TEST(PurchaseLoaderTest, RowOfTheWrongWidthNamesLineAndWidth) {
  TestDir dir;
  const std::string text = PurchaseText({1, 2, 3, 4});
  absl::Status status = PurchaseError(dir, WithLine(text, 3, "3," + BinaryRow(2, 599)));
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), AllOf(HasSubstr("dataset_purchase"),
                                      HasSubstr("line 3 has 599 features, expected 600")));
  status = PurchaseError(dir, WithLine(text, 4, "4," + BinaryRow(2, 601)), true);
  EXPECT_THAT(status.message(), HasSubstr("line 4 has 601 features, expected 600"));
  // The first row decides nothing for purchase100: 600 is required.
  status = PurchaseError(dir, WithLine(text, 1, "1," + BinaryRow(0, 500)));
  EXPECT_THAT(status.message(), HasSubstr("line 1 has 500 features, expected 600"));
}

TEST(PurchaseLoaderTest, LabelOutOfRangeAndBadFields) {
  TestDir dir;
  const std::string text = PurchaseText({1, 2, 3, 4});
  absl::Status status = PurchaseError(dir, WithLine(text, 2, "0," + BinaryRow(1, 600)));
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("line 2, column 1: label out of range 1..100"));
  status = PurchaseError(dir, WithLine(text, 2, "101," + BinaryRow(1, 600)));
  EXPECT_THAT(status.message(), HasSubstr("line 2, column 1: label out of range 1..100"));
  status = PurchaseError(dir, WithLine(text, 3, "x7," + BinaryRow(1, 600)));
  EXPECT_THAT(status.message(), HasSubstr("line 3, column 1: label is not an integer"));

  std::string row = "4," + BinaryRow(3, 600);
  row[2 * 9] = 'x';  // feature 9 is column 10
  status = PurchaseError(dir, WithLine(text, 4, row));
  EXPECT_THAT(status.message(), HasSubstr("line 4, column 10: not a number"));
  row[2 * 9] = '2';
  status = PurchaseError(dir, WithLine(text, 4, row), true);
  EXPECT_THAT(status.message(), HasSubstr("line 4, column 10: feature is not 0 or 1"));
  row = "4," + BinaryRow(3, 600);
  row.replace(2 * 9, 1, "");  // an empty field
  status = PurchaseError(dir, WithLine(text, 4, row));
  EXPECT_THAT(status.message(), HasSubstr("line 4, column 10: empty field"));
  status = PurchaseError(dir, WithLine(text, 2, ""));
  EXPECT_THAT(status.message(), HasSubstr("line 2: empty line"));
  status = PurchaseError(dir, "");
  EXPECT_THAT(status.message(), HasSubstr("no data rows"));
}

TEST(PurchaseLoaderTest, CorruptAndTruncatedGzip) {
  TestDir dir;
  const std::string gz = Gzip(PurchaseText({1, 2, 3, 4, 5, 6}));
  for (size_t cut : {size_t{2}, size_t{10}, gz.size() / 3, gz.size() - 5}) {
    const absl::Status status = PurchaseError(dir, gz.substr(0, cut));
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << cut;
    EXPECT_THAT(status.message(),
                AllOf(HasSubstr("dataset_purchase"), HasSubstr("gzip stream truncated")))
        << cut;
  }
  std::string corrupt = gz;
  corrupt[3] = static_cast<char>(0xE0);  // reserved gzip header flag bits
  EXPECT_THAT(PurchaseError(dir, corrupt).message(), HasSubstr("corrupt gzip stream"));
}

TEST(PurchaseLoaderTest, MissingFileAndSplits) {
  TestDir dir;
  const absl::Status missing = LoadDataset(Source("purchase100", dir / "nope")).status();
  EXPECT_EQ(missing.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(missing.message(), HasSubstr("nope"));
  EXPECT_EQ(LoadDataset(Source("purchase100", dir.path())).status().code(),
            absl::StatusCode::kNotFound);  // folder without dataset_purchase

  WriteFile(dir / "dataset_purchase", PurchaseText({1}));
  DataSource source = Source("purchase100", dir / "dataset_purchase");
  source.split = "all";
  EXPECT_TRUE(LoadDataset(source).ok());
  source.split = "test";
  const absl::Status status = LoadDataset(source).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("without a test split"));
}

// Texas-100: `feats` (6169 binary features a line) and `labels` (1..100).
void WriteTexas(const TestDir& dir, int feat_rows, const std::vector<int>& labels, bool gzip) {
  std::string feats;
  for (int r = 0; r < feat_rows; ++r) absl::StrAppend(&feats, BinaryRow(r, 6169), "\n");
  std::string label_text;
  for (int label : labels) absl::StrAppend(&label_text, label, "\n");
  if (gzip) {
    WriteFile(dir / "feats.gz", Gzip(feats));
    WriteFile(dir / "labels.gz", Gzip(label_text));
  } else {
    WriteFile(dir / "feats", feats);
    WriteFile(dir / "labels", label_text);
  }
}

TEST(TexasLoaderTest, LoadsPlainAndGzipped) {
  TestDir plain_dir;
  WriteTexas(plain_dir, 4, {100, 1, 2, 55}, false);
  TestDir gz_dir;
  WriteTexas(gz_dir, 4, {100, 1, 2, 55}, true);
  const Dataset plain = Get(LoadDataset(Source("texas100", plain_dir.path())));
  EXPECT_THAT(plain.labels, ElementsAre(99, 0, 1, 54));
  EXPECT_THAT(plain.sample_shape, ElementsAre(6169));
  EXPECT_EQ(plain.num_classes, 100);
  ASSERT_EQ(plain.features.size(), 4u * 6169);
  for (int j : {0, 1, 2, 3, 4, 5, 6, 6168}) {
    EXPECT_EQ(plain.features[3 * 6169 + j], static_cast<float>(Bit(3, j)));
  }
  const Dataset gz = Get(LoadDataset(Source("texas100", gz_dir.path())));
  EXPECT_EQ(gz.features, plain.features);
  EXPECT_EQ(Fingerprint(gz), Fingerprint(plain));
}

// Privacy Meter's data_dir holds the extracted dataset_texas folder; files
// right in the folder given are read first.
TEST(TexasLoaderTest, PrivacyMeterDataDirHoldsDatasetTexas) {
  TestDir dir;
  std::string feats;
  for (int r = 0; r < 2; ++r) absl::StrAppend(&feats, BinaryRow(r, 6169), "\n");
  WriteFile(dir / "dataset_texas/feats", feats);
  WriteFile(dir / "dataset_texas/labels", "7\n8\n");
  const Dataset nested = Get(LoadDataset(Source("texas100", dir.path())));
  EXPECT_THAT(nested.labels, ElementsAre(6, 7));
  WriteFile(dir / "feats", BinaryRow(0, 6169) + "\n");
  WriteFile(dir / "labels", "3\n");
  EXPECT_THAT(Get(LoadDataset(Source("texas100", dir.path()))).labels, ElementsAre(2));
  TestDir empty;
  const absl::Status status = LoadDataset(Source("texas100", empty.path())).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(status.message(), HasSubstr("feats"));
}

TEST(TexasLoaderTest, Validation) {
  TestDir dir;
  WriteTexas(dir, 4, {1, 2, 3}, false);
  absl::Status status = LoadDataset(Source("texas100", dir.path())).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), AllOf(HasSubstr("feats has 4 rows"), HasSubstr("labels has 3")));

  WriteTexas(dir, 3, {1, 2, 0}, false);
  status = LoadDataset(Source("texas100", dir.path())).status();
  EXPECT_THAT(status.message(),
              AllOf(HasSubstr("labels"), HasSubstr("line 3, column 1: label out of range 1..100")));

  WriteTexas(dir, 3, {1, 2, 3}, false);
  WriteFile(dir / "feats",
            BinaryRow(0, 6169) + "\n" + BinaryRow(1, 6168) + "\n" + BinaryRow(2, 6169) + "\n");
  status = LoadDataset(Source("texas100", dir.path())).status();
  EXPECT_THAT(status.message(), HasSubstr("line 2 has 6168 features, expected 6169"));

  WriteTexas(dir, 3, {1, 2, 3}, false);
  WriteFile(dir / "labels", "1,2\n2\n3\n");
  status = LoadDataset(Source("texas100", dir.path())).status();
  EXPECT_THAT(status.message(), HasSubstr("line 1 has 1 features, expected 0"));

  std::filesystem::remove(dir / "labels");
  status = LoadDataset(Source("texas100", dir.path())).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(status.message(), HasSubstr("labels"));
}

// Generic CSV.
TEST(CsvLoaderTest, HeaderLabelColumnAndNumbers) {
  TestDir dir;
  const std::string text =
      "a,b,label,c\n"
      "0.5,-1.25,3,1e-3\n"
      " 2 ,\t7,0,-0\r\n"
      "1.5e2,.25,1,3.4028235e38\n";
  WriteFile(dir / "t.csv", text);
  WriteFile(dir / "t.csv.gz", Gzip(text));
  DataSource source = Source("csv", dir / "t.csv");
  source.header = true;
  source.label_column = 2;
  const Dataset dataset = Get(LoadDataset(source));
  EXPECT_THAT(dataset.labels, ElementsAre(3, 0, 1));
  EXPECT_EQ(dataset.num_classes, 4);
  EXPECT_THAT(dataset.sample_shape, ElementsAre(3));
  EXPECT_THAT(dataset.features,
              ElementsAre(0.5f, -1.25f, 1e-3f, 2.0f, 7.0f, -0.0f, 150.0f, 0.25f, 3.4028235e38f));
  source.path = dir / "t.csv.gz";
  const Dataset gz = Get(LoadDataset(source));
  EXPECT_EQ(gz.features, dataset.features);
  EXPECT_EQ(Fingerprint(gz), Fingerprint(dataset));
  EXPECT_EQ(gz.name, "csv:" + (dir / "t.csv.gz"));
}

absl::Status CsvError(const TestDir& dir, const std::string& text, bool header = false,
                      int label_column = 0) {
  WriteFile(dir / "bad.csv", text);
  DataSource source = Source("csv", dir / "bad.csv");
  source.header = header;
  source.label_column = label_column;
  return LoadDataset(source).status();
}

TEST(CsvLoaderTest, ErrorsNameLineAndColumnButNotValues) {
  TestDir dir;
  absl::Status status = CsvError(dir, "h1,h2,h3\n0,1,2\n1,12345abc,3\n", true);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(),
              AllOf(HasSubstr("bad.csv"), HasSubstr("line 3, column 2: not a number")));
  EXPECT_THAT(status.message(), Not(HasSubstr("12345")));

  status = CsvError(dir, "0,1\n-1,2\n");
  EXPECT_THAT(status.message(), HasSubstr("line 2, column 1: label out of range 0..1048575"));
  status = CsvError(dir, "0,1\n1.5,2\n");
  EXPECT_THAT(status.message(), HasSubstr("line 2, column 1: label is not an integer"));
  status = CsvError(dir, "0,1,2\n1,2\n");
  EXPECT_THAT(status.message(), HasSubstr("line 2 has 1 features, expected 2"));
  status = CsvError(dir, "0,1\n1,1e999\n");
  EXPECT_THAT(status.message(), HasSubstr("line 2, column 2: number out of the float32 range"));
  status = CsvError(dir, "0,1\n1,nan\n");
  EXPECT_THAT(status.message(), HasSubstr("line 2, column 2: not a finite number"));
  status = CsvError(dir, "0,1\n1,\"2\"\n");
  EXPECT_THAT(status.message(), HasSubstr("line 2, column 2: not a number"));
  status = CsvError(dir, "0,1\n1,2\n", false, 2);
  EXPECT_THAT(status.message(), HasSubstr("label column 2 (0-based) is beyond them"));
  status = CsvError(dir, "0\n1\n");
  EXPECT_THAT(status.message(), HasSubstr("no feature columns"));
  status = CsvError(dir, "label,x\n", true);
  EXPECT_THAT(status.message(), HasSubstr("no data rows"));
  status = CsvError(dir, "0,1\n", false, -1);
  EXPECT_THAT(status.message(), HasSubstr("label_column must be 0 or more"));
}

TEST(CsvLoaderTest, LabelColumnInTheMiddleAndMissingFile) {
  TestDir dir;
  WriteFile(dir / "m.csv", "1,5,2\n3,0,4\n");
  DataSource source = Source("csv", dir / "m.csv");
  source.label_column = 1;
  const Dataset dataset = Get(LoadDataset(source));
  EXPECT_THAT(dataset.labels, ElementsAre(5, 0));
  EXPECT_EQ(dataset.num_classes, 6);
  EXPECT_THAT(dataset.features, ElementsAre(1.0f, 2.0f, 3.0f, 4.0f));
  source.path = dir / "missing.csv";
  EXPECT_EQ(LoadDataset(source).status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace mia::data
