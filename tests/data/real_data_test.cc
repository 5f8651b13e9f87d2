// Real data: Debian's Fashion-MNIST (installed by scripts/install-deps.sh) and
// the project's purchase_synth file in the original Purchase-100 format.
#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/data/loaders.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/data/test_util.h"

#ifndef MIA_PURCHASE_SYNTH_PATH
#error "MIA_PURCHASE_SYNTH_PATH must be defined by tests/data/CMakeLists.txt"
#endif

namespace mia::data {
namespace {

using ::testing::ElementsAre;
using testing_util::Get;

constexpr char kFashionMnist[] = "/usr/share/datasets/fashion-mnist";

std::vector<int64_t> ClassCounts(const Dataset& dataset) {
  std::vector<int64_t> counts(static_cast<size_t>(dataset.num_classes), 0);
  for (int64_t label : dataset.labels) ++counts[static_cast<size_t>(label)];
  return counts;
}

TEST(RealDataTest, FashionMnist) {
  ASSERT_TRUE(std::filesystem::exists(std::string(kFashionMnist) + "/train-images-idx3-ubyte.gz"))
      << kFashionMnist << " is missing: run scripts/install-deps.sh (Debian package "
      << "dataset-fashion-mnist)";
  DataSource source;
  source.format = "idx";
  source.path = kFashionMnist;
  const Dataset train = Get(LoadDataset(source));
  EXPECT_EQ(train.size(), 60000);
  EXPECT_THAT(train.sample_shape, ElementsAre(1, 28, 28));
  EXPECT_EQ(train.num_classes, 10);
  EXPECT_THAT(ClassCounts(train), ::testing::Each(6000));
  const auto [lo, hi] = std::minmax_element(train.features.begin(), train.features.end());
  EXPECT_EQ(*lo, 0.0f);
  EXPECT_EQ(*hi, 1.0f);
  // Reference computed independently (Python: gzip + struct + hashlib) from
  // the encoding in docs/datasets.md.
  EXPECT_EQ(Fingerprint(train), "4a4ba816dc6ebb0eab5bf8ec599c65a38f8d81fb6c52b470255ecff73061118d");

  source.split = "test";
  const Dataset test = Get(LoadDataset(source));
  EXPECT_EQ(test.size(), 10000);
  EXPECT_THAT(test.sample_shape, ElementsAre(1, 28, 28));
  EXPECT_EQ(test.num_classes, 10);
  EXPECT_THAT(ClassCounts(test), ::testing::Each(1000));
  EXPECT_EQ(Fingerprint(test), "efb1da145b50a9af2b675087007bbfb06379e4bf9d8783e21372abb2a4b24244");
}

TEST(RealDataTest, PurchaseSynth) {
  const std::string path = MIA_PURCHASE_SYNTH_PATH;
  testing_util::TestDir dir;  // only used when the shared file is absent
  const bool present = std::filesystem::exists(path);
  DataSource source;
  source.format = "purchase100";
  source.path = path;
  int64_t expected_rows = 40000;
  if (!present) {
    // A clone without the shared folder: check a small file of the same format.
    std::cout << "[   NOTE   ] " << path
              << " is absent; testing a small written Purchase-100 file instead\n";
    std::string text;
    for (int r = 0; r < 200; ++r) {
      absl::StrAppend(&text, r % 100 + 1);
      for (int j = 0; j < 600; ++j) absl::StrAppend(&text, ",", (r + j) % 5 == 0 ? 1 : 0);
      text += "\n";
    }
    source.path = dir / "dataset_purchase.gz";
    testing_util::WriteFile(source.path, testing_util::Gzip(text));
    expected_rows = 200;
  }
  const Dataset dataset = Get(LoadDataset(source));
  EXPECT_EQ(dataset.size(), expected_rows);
  EXPECT_THAT(dataset.sample_shape, ElementsAre(600));
  EXPECT_EQ(dataset.num_classes, 100);
  for (int64_t label : dataset.labels) {
    ASSERT_GE(label, 0);
    ASSERT_LT(label, 100);
  }
  EXPECT_THAT(ClassCounts(dataset), ::testing::Each(::testing::Gt(0)));
  for (float value : dataset.features) ASSERT_TRUE(value == 0.0f || value == 1.0f);
  if (present) {
    // Reference computed independently (Python) from the encoding in docs/datasets.md.
    EXPECT_EQ(Fingerprint(dataset),
              "e61931842aecd6156811d1f9190c4666f029665269a0fd2c8d15c1fd5315da68");
  }
}

}  // namespace
}  // namespace mia::data
