// idx, cifar10 and cifar100: small file sets in the exact real formats, then
// corrupted copies.
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/data/loaders.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/data/test_util.h"

namespace mia::data {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing_util::Get;
using testing_util::Gzip;
using testing_util::TestDir;
using testing_util::WriteFile;

void PutBigEndian32(std::string* out, uint32_t value) {
  for (int shift = 24; shift >= 0; shift -= 8) out->push_back(static_cast<char>(value >> shift));
}

// IDX images: magic 0x00000803, count, rows, columns, then the pixel bytes.
std::string IdxImages(uint32_t count, uint32_t height, uint32_t width, uint8_t seed) {
  std::string out;
  PutBigEndian32(&out, 0x00000803);
  PutBigEndian32(&out, count);
  PutBigEndian32(&out, height);
  PutBigEndian32(&out, width);
  for (uint32_t i = 0; i < count * height * width; ++i) {
    out.push_back(static_cast<char>(static_cast<uint8_t>(seed + 37 * i)));
  }
  return out;
}

std::string IdxLabels(const std::vector<uint8_t>& labels) {
  std::string out;
  PutBigEndian32(&out, 0x00000801);
  PutBigEndian32(&out, static_cast<uint32_t>(labels.size()));
  for (uint8_t label : labels) out.push_back(static_cast<char>(label));
  return out;
}

// A 2x3-pixel IDX set: 3 train and 2 test examples.
void WriteIdxSet(const TestDir& dir, bool gzipped) {
  auto write = [&](const std::string& name, const std::string& bytes) {
    if (gzipped) {
      WriteFile(dir / (name + ".gz"), Gzip(bytes));
    } else {
      WriteFile(dir / name, bytes);
    }
  };
  write("train-images-idx3-ubyte", IdxImages(3, 2, 3, 1));
  write("train-labels-idx1-ubyte", IdxLabels({0, 9, 4}));
  write("t10k-images-idx3-ubyte", IdxImages(2, 2, 3, 200));
  write("t10k-labels-idx1-ubyte", IdxLabels({7, 7}));
}

DataSource Idx(const TestDir& dir, const std::string& split = "train") {
  DataSource source;
  source.format = "idx";
  source.path = dir.path();
  source.split = split;
  return source;
}

TEST(IdxLoaderTest, LoadsPlainFiles) {
  TestDir dir;
  WriteIdxSet(dir, false);
  const Dataset train = Get(LoadDataset(Idx(dir)));
  ASSERT_EQ(train.size(), 3);
  EXPECT_THAT(train.sample_shape, ElementsAre(1, 2, 3));
  EXPECT_THAT(train.labels, ElementsAre(0, 9, 4));
  EXPECT_EQ(train.num_classes, 10);
  ASSERT_EQ(train.features.size(), 18u);
  for (uint32_t i = 0; i < 18; ++i) {
    EXPECT_EQ(train.features[i], static_cast<float>(static_cast<uint8_t>(1 + 37 * i)) / 255.0f);
  }
  EXPECT_THAT(train.name, HasSubstr("idx:"));
  EXPECT_THAT(train.name, HasSubstr(":train"));
}

TEST(IdxLoaderTest, GzippedEqualsPlain) {
  TestDir plain_dir;
  WriteIdxSet(plain_dir, false);
  TestDir gz_dir;
  WriteIdxSet(gz_dir, true);
  for (const std::string split : {"train", "test", "all"}) {
    const Dataset plain = Get(LoadDataset(Idx(plain_dir, split)));
    const Dataset gz = Get(LoadDataset(Idx(gz_dir, split)));
    EXPECT_EQ(plain.features, gz.features) << split;
    EXPECT_EQ(plain.labels, gz.labels) << split;
    EXPECT_EQ(Fingerprint(plain), Fingerprint(gz)) << split;
  }
}

TEST(IdxLoaderTest, SplitsTestAndAll) {
  TestDir dir;
  WriteIdxSet(dir, true);
  const Dataset test = Get(LoadDataset(Idx(dir, "test")));
  EXPECT_THAT(test.labels, ElementsAre(7, 7));
  ASSERT_EQ(test.features.size(), 12u);
  EXPECT_EQ(test.features[0], 200.0f / 255.0f);
  const Dataset all = Get(LoadDataset(Idx(dir, "all")));
  EXPECT_THAT(all.labels, ElementsAre(0, 9, 4, 7, 7));
  ASSERT_EQ(all.features.size(), 30u);
  EXPECT_EQ(all.features[18], 200.0f / 255.0f);  // test follows train

  const absl::Status bad = LoadDataset(Idx(dir, "validation")).status();
  EXPECT_EQ(bad.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.message(), HasSubstr("unknown split"));
}

TEST(IdxLoaderTest, NumClassesIsMaxLabelPlusOneButAtLeastTen) {
  TestDir dir;
  WriteIdxSet(dir, false);
  EXPECT_EQ(Get(LoadDataset(Idx(dir, "test"))).num_classes, 10);  // labels {7, 7}
  WriteFile(dir / "train-labels-idx1-ubyte", IdxLabels({0, 12, 1}));
  EXPECT_EQ(Get(LoadDataset(Idx(dir))).num_classes, 13);
}

TEST(IdxLoaderTest, TruncatedFilesNameTheOffset) {
  TestDir dir;
  WriteIdxSet(dir, false);
  const std::string images = IdxImages(3, 2, 3, 1);
  for (size_t cut :
       {size_t{0}, size_t{3}, size_t{7}, size_t{15}, size_t{16}, size_t{20}, images.size() - 1}) {
    WriteFile(dir / "train-images-idx3-ubyte", images.substr(0, cut));
    const absl::Status status = LoadDataset(Idx(dir)).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << cut;
    EXPECT_THAT(status.message(),
                AllOf(HasSubstr("train-images-idx3-ubyte"), HasSubstr("truncated"),
                      HasSubstr(absl::StrCat("at offset ", cut))))
        << cut;
  }
  // Labels truncated inside a gzip stream: the offset is of the decompressed data.
  WriteFile(dir / "train-images-idx3-ubyte", images);
  std::filesystem::remove(dir / "train-labels-idx1-ubyte");
  WriteFile(dir / "train-labels-idx1-ubyte.gz", Gzip(IdxLabels({0, 9, 4}).substr(0, 10)));
  const absl::Status status = LoadDataset(Idx(dir)).status();
  EXPECT_THAT(status.message(),
              AllOf(HasSubstr("train-labels-idx1-ubyte.gz"), HasSubstr("truncated"),
                    HasSubstr("at offset 10 of the decompressed data")));
}

TEST(IdxLoaderTest, TrailingBytesAreAnError) {
  TestDir dir;
  WriteIdxSet(dir, false);
  WriteFile(dir / "train-labels-idx1-ubyte", IdxLabels({0, 9, 4}) + "x");
  const absl::Status status = LoadDataset(Idx(dir)).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), AllOf(HasSubstr("train-labels-idx1-ubyte"),
                                      HasSubstr("trailing bytes at offset 11")));
}

TEST(IdxLoaderTest, WrongMagicNumbers) {
  TestDir dir;
  WriteIdxSet(dir, false);
  // Labels where images belong, and images where labels belong.
  WriteFile(dir / "train-images-idx3-ubyte", IdxLabels({0, 9, 4}));
  absl::Status status = LoadDataset(Idx(dir)).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), AllOf(HasSubstr("train-images-idx3-ubyte"),
                                      HasSubstr("wrong IDX magic number 0x00000801 at offset 0"),
                                      HasSubstr("expected 0x00000803")));
  WriteIdxSet(dir, false);
  WriteFile(dir / "t10k-labels-idx1-ubyte", IdxImages(2, 2, 3, 0));
  status = LoadDataset(Idx(dir, "test")).status();
  EXPECT_THAT(status.message(),
              AllOf(HasSubstr("t10k-labels-idx1-ubyte"), HasSubstr("wrong IDX magic number"),
                    HasSubstr("expected 0x00000801")));
}

TEST(IdxLoaderTest, CountMismatchAndZeroDimension) {
  TestDir dir;
  WriteIdxSet(dir, false);
  WriteFile(dir / "train-labels-idx1-ubyte", IdxLabels({0, 9}));
  absl::Status status = LoadDataset(Idx(dir)).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), AllOf(HasSubstr("has 3 images"), HasSubstr("has 2 labels")));

  WriteIdxSet(dir, false);
  WriteFile(dir / "train-images-idx3-ubyte", IdxImages(3, 0, 3, 1));
  status = LoadDataset(Idx(dir)).status();
  EXPECT_THAT(status.message(), HasSubstr("dimension 1 is 0 at offset 8"));

  // A hostile header claiming 2^32 x 2^16 x 2^16 bytes in a 16-byte file.
  std::string huge;
  PutBigEndian32(&huge, 0x00000803);
  PutBigEndian32(&huge, 0xFFFFFFFF);
  PutBigEndian32(&huge, 0xFFFF);
  PutBigEndian32(&huge, 0xFFFF);
  WriteFile(dir / "train-images-idx3-ubyte", huge);
  status = LoadDataset(Idx(dir)).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("impossible file size"));
}

TEST(IdxLoaderTest, LoadLimits) {
  TestDir dir;
  WriteIdxSet(dir, true);
  LoadLimits limits;
  limits.max_rows = 4;
  EXPECT_TRUE(LoadDataset(Idx(dir, "train"), limits).ok());
  absl::Status status = LoadDataset(Idx(dir, "all"), limits).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(status.message(), HasSubstr("5 examples, above the LoadLimits max_rows of 4"));
  limits.max_rows = 5;
  limits.max_bytes = 5 * 6 * 4 - 1;  // every file fits, the float features do not
  status = LoadDataset(Idx(dir, "all"), limits).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(status.message(), HasSubstr("max_bytes of 119"));
}

TEST(IdxLoaderTest, TrainAndTestMustHaveTheSameImageSize) {
  TestDir dir;
  WriteIdxSet(dir, false);
  WriteFile(dir / "t10k-images-idx3-ubyte", IdxImages(2, 3, 2, 0));
  const absl::Status status = LoadDataset(Idx(dir, "all")).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("images are 3x2"));
}

TEST(IdxLoaderTest, MissingFileIsNotFound) {
  TestDir dir;
  WriteIdxSet(dir, false);
  std::filesystem::remove(dir / "t10k-labels-idx1-ubyte");
  EXPECT_TRUE(LoadDataset(Idx(dir)).ok());  // train does not need it
  const absl::Status status = LoadDataset(Idx(dir, "test")).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(status.message(), HasSubstr("t10k-labels-idx1-ubyte"));
  DataSource nowhere = Idx(dir);
  nowhere.path = dir / "no-such-folder";
  EXPECT_EQ(LoadDataset(nowhere).status().code(), absl::StatusCode::kNotFound);
}

TEST(IdxLoaderTest, CorruptGzipStream) {
  TestDir dir;
  WriteIdxSet(dir, true);
  std::string gz = Gzip(IdxImages(3, 2, 3, 1));
  // Flip bits in the deflate data (after the 10-byte header): the stream
  // decodes to garbage or fails its CRC-32, either way a corrupt stream.
  for (size_t i = 10; i + 8 < gz.size(); ++i) gz[i] = static_cast<char>(gz[i] ^ 0x55);
  WriteFile(dir / "train-images-idx3-ubyte.gz", gz);
  absl::Status status = LoadDataset(Idx(dir)).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), AllOf(HasSubstr("train-images-idx3-ubyte.gz"),
                                      HasSubstr("corrupt gzip stream near compressed offset")));

  // Only the CRC-32 in the trailer is wrong.
  gz = Gzip(IdxImages(3, 2, 3, 1));
  gz[gz.size() - 8] = static_cast<char>(gz[gz.size() - 8] ^ 1);
  WriteFile(dir / "train-images-idx3-ubyte.gz", gz);
  status = LoadDataset(Idx(dir)).status();
  EXPECT_THAT(status.message(),
              AllOf(HasSubstr("corrupt gzip stream"), HasSubstr("incorrect data check")));

  // Truncated gzip streams, at several lengths.
  gz = Gzip(IdxImages(3, 2, 3, 1));
  for (size_t cut : {size_t{2}, size_t{9}, gz.size() / 2, gz.size() - 1}) {
    WriteFile(dir / "train-images-idx3-ubyte.gz", gz.substr(0, cut));
    status = LoadDataset(Idx(dir)).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << cut;
    EXPECT_THAT(status.message(), HasSubstr("gzip stream truncated at compressed offset")) << cut;
  }

  // Garbage after the stream.
  WriteFile(dir / "train-images-idx3-ubyte.gz", gz + "junk");
  status = LoadDataset(Idx(dir)).status();
  EXPECT_THAT(status.message(),
              HasSubstr(absl::StrCat("trailing bytes after the gzip stream at compressed offset ",
                                     gz.size())));
}

TEST(IdxLoaderTest, ConcatenatedGzipMembersAreOneStream) {
  TestDir dir;
  WriteIdxSet(dir, true);
  const std::string images = IdxImages(3, 2, 3, 1);
  WriteFile(dir / "train-images-idx3-ubyte.gz",
            Gzip(images.substr(0, 11)) + Gzip(images.substr(11)));
  const Dataset train = Get(LoadDataset(Idx(dir)));
  EXPECT_EQ(train.size(), 3);
}

// CIFAR-10: a record is 1 label byte and 3072 pixel bytes (R, G, B planes).
std::string CifarRecords(const std::vector<uint8_t>& labels, int label_bytes,
                         const std::vector<uint8_t>& extra_labels = {}) {
  std::string out;
  for (size_t r = 0; r < labels.size(); ++r) {
    if (label_bytes == 2) out.push_back(static_cast<char>(extra_labels[r]));
    out.push_back(static_cast<char>(labels[r]));
    for (int i = 0; i < 3072; ++i)
      out.push_back(static_cast<char>(static_cast<uint8_t>(r * 7 + i)));
  }
  return out;
}

void WriteCifar10Set(const TestDir& dir) {
  for (int b = 1; b <= 5; ++b) {
    WriteFile(dir / absl::StrCat("data_batch_", b, ".bin"),
              CifarRecords({static_cast<uint8_t>(b), static_cast<uint8_t>(9 - b)}, 1));
  }
  WriteFile(dir / "test_batch.bin", CifarRecords({0}, 1));
}

DataSource Cifar(const std::string& format, const TestDir& dir, const std::string& split) {
  DataSource source;
  source.format = format;
  source.path = dir.path();
  source.split = split;
  return source;
}

TEST(Cifar10LoaderTest, LoadsBatchesInOrder) {
  TestDir dir;
  WriteCifar10Set(dir);
  const Dataset train = Get(LoadDataset(Cifar("cifar10", dir, "train")));
  EXPECT_THAT(train.sample_shape, ElementsAre(3, 32, 32));
  EXPECT_EQ(train.num_classes, 10);
  EXPECT_THAT(train.labels, ElementsAre(1, 8, 2, 7, 3, 6, 4, 5, 5, 4));
  ASSERT_EQ(train.features.size(), 10u * 3072);
  // Record 1 of each batch: pixel i is (7 + i) mod 256; channel c, row y,
  // column x sits at c * 1024 + y * 32 + x, as in the file.
  for (int i : {0, 1, 1023, 1024, 2048 + 32 * 5 + 3, 3071}) {
    EXPECT_EQ(train.features[3072 + i], static_cast<float>(static_cast<uint8_t>(7 + i)) / 255.0f);
  }
  const Dataset test = Get(LoadDataset(Cifar("cifar10", dir, "test")));
  EXPECT_THAT(test.labels, ElementsAre(0));
  const Dataset all = Get(LoadDataset(Cifar("cifar10", dir, "all")));
  EXPECT_EQ(all.size(), 11);
  EXPECT_EQ(all.labels.back(), 0);
}

TEST(Cifar10LoaderTest, SizeNotAMultipleOfTheRecord) {
  TestDir dir;
  WriteCifar10Set(dir);
  const std::string batch = CifarRecords({3, 4}, 1);
  for (size_t cut : {size_t{1}, size_t{3072}, size_t{3074}, batch.size() - 1}) {
    WriteFile(dir / "data_batch_3.bin", batch.substr(0, cut));
    const absl::Status status = LoadDataset(Cifar("cifar10", dir, "train")).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(status.message(),
                AllOf(HasSubstr("data_batch_3.bin"), HasSubstr("not a multiple of the 3073"),
                      HasSubstr(absl::StrCat("at offset ", cut - cut % 3073))))
        << cut;
  }
  WriteFile(dir / "data_batch_3.bin", "");
  EXPECT_THAT(LoadDataset(Cifar("cifar10", dir, "train")).status().message(),
              HasSubstr("empty file"));
}

TEST(Cifar10LoaderTest, LabelOutOfRangeNamesFileAndOffset) {
  TestDir dir;
  WriteCifar10Set(dir);
  WriteFile(dir / "data_batch_2.bin", CifarRecords({3, 10}, 1));
  const absl::Status status = LoadDataset(Cifar("cifar10", dir, "all")).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), AllOf(HasSubstr("data_batch_2.bin"),
                                      HasSubstr("label out of range 0..9 at offset 3073")));
  // The value itself is not shown.
  EXPECT_THAT(status.message(), ::testing::Not(HasSubstr("10 ")));
}

TEST(Cifar10LoaderTest, MissingBatchIsNotFoundAndGzipIsAccepted) {
  TestDir dir;
  WriteCifar10Set(dir);
  WriteFile(dir / "test_batch.bin.gz", Gzip(CifarRecords({6}, 1)));
  std::filesystem::remove(dir / "test_batch.bin");
  EXPECT_THAT(Get(LoadDataset(Cifar("cifar10", dir, "test"))).labels, ElementsAre(6));
  std::filesystem::remove(dir / "data_batch_4.bin");
  const absl::Status status = LoadDataset(Cifar("cifar10", dir, "train")).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(status.message(), HasSubstr("data_batch_4.bin"));
}

TEST(Cifar10LoaderTest, RowLimit) {
  TestDir dir;
  WriteCifar10Set(dir);
  LoadLimits limits;
  limits.max_rows = 9;
  const absl::Status status = LoadDataset(Cifar("cifar10", dir, "train"), limits).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(status.message(), HasSubstr("10 examples, above the LoadLimits max_rows of 9"));
}

TEST(Cifar100LoaderTest, FineAndCoarseLabels) {
  TestDir dir;
  WriteFile(dir / "train.bin", CifarRecords({99, 0, 42}, 2, {19, 0, 7}));
  WriteFile(dir / "test.bin", CifarRecords({5, 6}, 2, {1, 2}));
  DataSource source = Cifar("cifar100", dir, "train");
  const Dataset fine = Get(LoadDataset(source));
  EXPECT_THAT(fine.labels, ElementsAre(99, 0, 42));
  EXPECT_EQ(fine.num_classes, 100);
  EXPECT_THAT(fine.sample_shape, ElementsAre(3, 32, 32));
  EXPECT_EQ(fine.features[3072 + 5], static_cast<float>(7 + 5) / 255.0f);
  source.cifar100_labels = "coarse";
  const Dataset coarse = Get(LoadDataset(source));
  EXPECT_THAT(coarse.labels, ElementsAre(19, 0, 7));
  EXPECT_EQ(coarse.num_classes, 20);
  EXPECT_EQ(coarse.features, fine.features);
  source.split = "all";
  EXPECT_THAT(Get(LoadDataset(source)).labels, ElementsAre(19, 0, 7, 1, 2));
  source.cifar100_labels = "medium";
  EXPECT_THAT(LoadDataset(source).status().message(), HasSubstr("unknown cifar100_labels"));
}

TEST(Cifar100LoaderTest, Validation) {
  TestDir dir;
  WriteFile(dir / "test.bin", CifarRecords({5, 6}, 2, {1, 2}));
  WriteFile(dir / "train.bin", CifarRecords({99, 0}, 2, {19, 20}));
  absl::Status status = LoadDataset(Cifar("cifar100", dir, "train")).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), AllOf(HasSubstr("train.bin"),
                                      HasSubstr("coarse label out of range 0..19 at offset 3074")));
  WriteFile(dir / "train.bin", CifarRecords({99, 100}, 2, {19, 0}));
  status = LoadDataset(Cifar("cifar100", dir, "train")).status();
  EXPECT_THAT(status.message(), HasSubstr("fine label out of range 0..99 at offset 3075"));
  WriteFile(dir / "train.bin", CifarRecords({1}, 2, {1}) + "xx");
  status = LoadDataset(Cifar("cifar100", dir, "train")).status();
  EXPECT_THAT(status.message(),
              AllOf(HasSubstr("not a multiple of the 3074"), HasSubstr("at offset 3074")));
  std::filesystem::remove(dir / "train.bin");
  EXPECT_EQ(LoadDataset(Cifar("cifar100", dir, "all")).status().code(),
            absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace mia::data
