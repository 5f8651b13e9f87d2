// The npy format, the format registry, LoadLimits and Fingerprint.
#include <sys/stat.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/data/loaders.h"
#include "core/io/npy.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/data/test_util.h"

namespace mia::data {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing_util::Get;
using testing_util::TestDir;
using testing_util::WriteFile;

DataSource Npy(const std::string& path) {
  DataSource source;
  source.format = "npy";
  source.path = path;
  return source;
}

io::NpyArray Uint8Array(std::vector<int64_t> shape, const std::vector<uint8_t>& values) {
  io::NpyArray array;
  array.dtype = io::DType::kUInt8;
  array.item_size = 1;
  array.shape = std::move(shape);
  array.data = values;
  return array;
}

TEST(NpyLoaderTest, LoadsNpzAndFolder) {
  TestDir dir;
  std::vector<double> values(4 * 6);
  for (size_t i = 0; i < values.size(); ++i) values[i] = 0.5 * static_cast<double>(i) - 3;
  io::NpyMap arrays;
  arrays["features"] = io::NpyArray::FromDouble({4, 2, 3}, values);
  arrays["labels"] = io::NpyArray::FromInt64({4}, {2, 0, 1, 2});
  arrays["ignored"] = io::NpyArray::FromString("extra arrays are ignored");
  ASSERT_TRUE(io::WriteNpz(dir / "d.npz", arrays, /*compress=*/true).ok());
  const Dataset npz = Get(LoadDataset(Npy(dir / "d.npz")));
  EXPECT_THAT(npz.sample_shape, ElementsAre(2, 3));
  EXPECT_THAT(npz.labels, ElementsAre(2, 0, 1, 2));
  EXPECT_EQ(npz.num_classes, 3);
  ASSERT_EQ(npz.features.size(), 24u);
  for (size_t i = 0; i < values.size(); ++i)
    EXPECT_EQ(npz.features[i], static_cast<float>(values[i]));

  std::filesystem::create_directories(dir / "folder");
  ASSERT_TRUE(
      io::WriteNpy(dir / "folder/features.npy", Uint8Array({3, 2}, {0, 1, 2, 3, 4, 255})).ok());
  ASSERT_TRUE(
      io::WriteNpy(dir / "folder/labels.npy", io::NpyArray::FromInt64({3}, {0, 0, 4})).ok());
  const Dataset folder = Get(LoadDataset(Npy(dir / "folder")));
  EXPECT_THAT(folder.sample_shape, ElementsAre(2));
  EXPECT_THAT(folder.features, ElementsAre(0, 1, 2, 3, 4, 255));
  EXPECT_EQ(folder.num_classes, 5);
}

absl::Status NpzError(const TestDir& dir, const io::NpyMap& arrays) {
  EXPECT_TRUE(io::WriteNpz(dir / "bad.npz", arrays, false).ok());
  return LoadDataset(Npy(dir / "bad.npz")).status();
}

TEST(NpyLoaderTest, Validation) {
  TestDir dir;
  io::NpyMap arrays;
  arrays["features"] = io::NpyArray::FromFloat({2, 2}, {1, 2, 3, 4});
  absl::Status status = NpzError(dir, arrays);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), AllOf(HasSubstr("bad.npz"), HasSubstr("needs arrays")));

  arrays["labels"] = io::NpyArray::FromInt64({3}, {0, 1, 1});
  EXPECT_THAT(NpzError(dir, arrays).message(),
              HasSubstr("'features' has 2 rows but 'labels' has 3"));
  arrays["labels"] = io::NpyArray::FromInt64({2}, {0, -1});
  EXPECT_THAT(NpzError(dir, arrays).message(), HasSubstr("labels element 1 is out of range"));
  arrays["labels"] = io::NpyArray::FromDouble({2}, {0, 1});
  status = NpzError(dir, arrays);
  EXPECT_THAT(status.message(), AllOf(HasSubstr("bad.npz"), HasSubstr("labels")));
  arrays["labels"] = io::NpyArray::FromInt64({2, 1}, {0, 1});
  EXPECT_THAT(NpzError(dir, arrays).message(), HasSubstr("expected [N]"));
  arrays["labels"] = io::NpyArray::FromInt64({2}, {0, 1});
  arrays["features"] = io::NpyArray::FromFloat({2, 2}, {1, 2, std::nanf(""), 4});
  EXPECT_THAT(NpzError(dir, arrays).message(),
              HasSubstr("features element 2 is not a finite float32 number"));
  arrays["features"] = io::NpyArray::FromDouble({2, 1}, {1, 1e300});
  EXPECT_THAT(NpzError(dir, arrays).message(), HasSubstr("features element 1 is not a finite"));
  arrays["features"] = io::NpyArray::FromFloat({2}, {5, 6});
  EXPECT_TRUE(NpzError(dir, arrays).ok());
  EXPECT_THAT(Get(LoadDataset(Npy(dir / "bad.npz"))).sample_shape, ElementsAre(1));

  const absl::Status missing = LoadDataset(Npy(dir / "none.npz")).status();
  EXPECT_EQ(missing.code(), absl::StatusCode::kNotFound);
  // A FIFO is refused at once by every loader, never waited on.
  ASSERT_EQ(mkfifo((dir / "fifo").c_str(), 0600), 0);
  for (const char* format : {"npy", "csv", "purchase100"}) {
    DataSource source = Npy(dir / "fifo");
    source.format = format;
    const absl::Status fifo = LoadDataset(source).status();
    EXPECT_EQ(fifo.code(), absl::StatusCode::kInvalidArgument) << format << ": " << fifo;
  }
  WriteFile(dir / "junk.npz", "not a zip archive at all");
  EXPECT_EQ(LoadDataset(Npy(dir / "junk.npz")).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(RegistryTest, FormatsAndUnknownFormat) {
  std::vector<std::string> names;
  for (const auto& [name, description] : DatasetFormats()) {
    names.push_back(name);
    EXPECT_FALSE(description.empty()) << name;
  }
  EXPECT_THAT(names,
              ElementsAre("idx", "cifar10", "cifar100", "purchase100", "texas100", "csv", "npy"));
  DataSource source;
  source.format = "parquet";
  source.path = "/tmp/x";
  const absl::Status status = LoadDataset(source).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), AllOf(HasSubstr("unknown dataset format 'parquet'"),
                                      HasSubstr("idx, cifar10, cifar100")));
  source.format = "csv";
  source.path = "";
  EXPECT_THAT(LoadDataset(source).status().message(), HasSubstr("no path given"));
}

TEST(LimitsTest, RowsAndBytesAreCheckedBeforeAllocating) {
  TestDir dir;
  WriteFile(dir / "t.csv", "0,1,2\n1,3,4\n0,5,6\n");
  DataSource source;
  source.format = "csv";
  source.path = dir / "t.csv";
  LoadLimits limits;
  limits.max_rows = 2;
  absl::Status status = LoadDataset(source, limits).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(status.message(), HasSubstr("max_rows of 2"));
  limits.max_rows = 3;
  limits.max_bytes = 23;  // the file fits, 3 x 2 floats (24 bytes) do not
  status = LoadDataset(source, limits).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(status.message(), HasSubstr("max_bytes of 23"));
  limits.max_bytes = 10;  // not even the file
  status = LoadDataset(source, limits).status();
  EXPECT_THAT(status.message(), HasSubstr("above the LoadLimits max_bytes of 10"));
  limits.max_bytes = 24;
  EXPECT_TRUE(LoadDataset(source, limits).ok());

  // A small gzip file that inflates beyond the limit.
  WriteFile(dir / "big.csv.gz", testing_util::Gzip(std::string(100000, '0')));
  source.path = dir / "big.csv.gz";
  limits.max_bytes = 50000;
  status = LoadDataset(source, limits).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(status.message(), HasSubstr("decompresses to more than"));
}

Dataset Tiny() {
  Dataset dataset;
  dataset.name = "tiny";
  dataset.sample_shape = {2};
  dataset.num_classes = 3;
  dataset.labels = {0, 2};
  dataset.features = {0.5f, -1.0f, 0.25f, 2.0f};
  return dataset;
}

TEST(FingerprintTest, MatchesTheDocumentedEncoding) {
  // Computed independently (Python hashlib + struct) from the encoding in
  // docs/datasets.md; a change here means every stored fingerprint changes.
  EXPECT_EQ(Fingerprint(Tiny()),
            "4f26f2d3ceef04dba070f717d4227f1b6fb1e4a1ff8534e66ca68bf417c9b59d");
}

TEST(FingerprintTest, DeterministicAndSensitive) {
  const std::string base = Fingerprint(Tiny());
  EXPECT_EQ(Fingerprint(Tiny()), base);
  Dataset renamed = Tiny();
  renamed.name = "other";
  EXPECT_EQ(Fingerprint(renamed), base);  // the name is not content

  Dataset label = Tiny();
  label.labels[1] = 1;
  EXPECT_NE(Fingerprint(label), base);
  Dataset feature = Tiny();
  feature.features[3] = std::nextafter(2.0f, 3.0f);
  EXPECT_NE(Fingerprint(feature), base);
  Dataset shape = Tiny();
  shape.sample_shape = {1, 2};
  EXPECT_NE(Fingerprint(shape), base);
  Dataset classes = Tiny();
  classes.num_classes = 4;
  EXPECT_NE(Fingerprint(classes), base);
  Dataset swapped = Tiny();
  std::swap(swapped.labels[0], swapped.labels[1]);
  EXPECT_NE(Fingerprint(swapped), base);

  Dataset zero = Tiny();
  zero.features[0] = 0.0f;
  Dataset negative_zero = Tiny();
  negative_zero.features[0] = -0.0f;
  EXPECT_EQ(Fingerprint(zero), Fingerprint(negative_zero));
}

}  // namespace
}  // namespace mia::data
