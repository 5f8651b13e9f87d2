#include "core/audit/bundle.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>

#include "core/audit/synthetic.h"
#include "core/metrics/bootstrap.h"
#include "core/metrics/roc.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/audit/test_util.h"

namespace mia::audit {
namespace {

using ::testing::HasSubstr;

std::string TempDir() {
  const char* env = std::getenv("MIA_TEST_TMPDIR");
  std::string base = env != nullptr ? env : ::testing::TempDir();
  std::filesystem::create_directories(base);
  return base;
}

io::NpyMap SmallArrays() {
  SyntheticOptions o;
  o.models = 4;
  o.points = 20;
  o.population = 10;
  o.classes = 3;
  return *MakeSyntheticBundle(o);
}

TEST(BundleTest, AcceptsTheSyntheticBundle) {
  auto b = BundleFromArrays(SmallArrays(), "mem");
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(b->models(), 4);
  EXPECT_EQ(b->points(), 20);
  EXPECT_EQ(b->queries(), 1);
  EXPECT_TRUE(b->audit.has_logits);
  ASSERT_TRUE(b->population.has_value());
  EXPECT_EQ(b->population->points(), 10);
  EXPECT_EQ(b->row_ids[3], 10003);
  EXPECT_EQ(b->targets, std::vector<int>{0});
}

TEST(BundleTest, DefaultsForOptionalArrays) {
  io::NpyMap a = SmallArrays();
  a.erase("row_ids");
  a.erase("targets");
  a.erase("population_logits");
  a.erase("population_labels");
  auto b = BundleFromArrays(a, "mem");
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(b->row_ids[5], 5);
  EXPECT_EQ(b->targets, std::vector<int>{0});
  EXPECT_FALSE(b->population.has_value());
}

TEST(BundleTest, SignalsWithType) {
  io::NpyMap a;
  a["signals"] = io::NpyArray::FromDouble({2, 3}, {0.5, 1.5, 2.0, 0.1, 0.2, 0.3});
  a["signal_type"] = io::NpyArray::FromString("loss");
  a["keep"] = io::NpyArray::FromBool({2, 3}, {1, 0, 1, 0, 1, 0});
  auto b = BundleFromArrays(a, "mem");
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(b->audit.kind, attacks::SignalKind::kLoss);
  attacks::SignalSet audit, pop;
  ASSERT_TRUE(ComputeSignals(*b, {attacks::SignalKind::kProb}, 1.0, &audit, &pop).ok());
  EXPECT_NEAR(audit.prob.values[0], std::exp(-0.5), 1e-12);
  // A temperature needs logits.
  attacks::SignalSet audit2;
  EXPECT_FALSE(ComputeSignals(*b, {attacks::SignalKind::kProb}, 2.0, &audit2, &pop).ok());
}

using testing_util::BadCase;
using testing_util::ExpectEachRefused;

TEST(BundleTest, EachProblemIsNamed) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  std::vector<BadCase> cases = {
      {"no keep", [](io::NpyMap& a) { a.erase("keep"); }, "'keep' is missing"},
      {"no logits",
       [](io::NpyMap& a) {
         a.erase("logits");
         a.erase("labels");
       },
       "neither 'logits'"},
      {"no labels", [](io::NpyMap& a) { a.erase("labels"); }, "'labels' is missing"},
      {"labels without logits",
       [](io::NpyMap& a) {
         a.erase("logits");
         a["signals"] = io::NpyArray::FromDouble({4, 20}, std::vector<double>(80, 0.5));
       },
       "'labels' given without 'logits'"},
      {"unknown array", [](io::NpyMap& a) { a["extra"] = io::NpyArray::FromInt64({1}, {1}); },
       "unknown array 'extra'"},
      {"keep shape",
       [](io::NpyMap& a) {
         a["keep"] = io::NpyArray::FromBool({4, 19}, std::vector<uint8_t>(76, 1));
       },
       "array 'keep': shape (4, 19), expected (4, 20)"},
      {"keep dtype float",
       [](io::NpyMap& a) {
         a["keep"] = io::NpyArray::FromDouble({4, 20}, std::vector<double>(80, 0.5));
       },
       "keep"},
      {"keep value 2",
       [](io::NpyMap& a) {
         std::vector<int64_t> v(80, 1);
         v[7] = 2;
         a["keep"] = io::NpyArray::FromInt64({4, 20}, v);
       },
       "keep"},
      {"logits rank",
       [](io::NpyMap& a) {
         a["logits"] = io::NpyArray::FromFloat({80}, std::vector<float>(80, 0));
       },
       "array 'logits': shape (80)"},
      {"logits NaN",
       [nan](io::NpyMap& a) {
         io::NpyArray& l = a["logits"];
         reinterpret_cast<float*>(l.data.data())[17] = nan;
       },
       "array 'logits': non-finite value (NaN or inf) at flat index 17"},
      {"logits dtype", [](io::NpyMap& a) { a["logits"] = io::NpyArray::FromString("abc"); },
       "logits"},
      {"label range",
       [](io::NpyMap& a) {
         std::vector<int64_t> l(20, 0);
         l[4] = 3;
         a["labels"] = io::NpyArray::FromInt64({20}, l);
       },
       "array 'labels': entry 4 is outside [0, 3)"},
      {"labels float",
       [](io::NpyMap& a) {
         a["labels"] = io::NpyArray::FromDouble({20}, std::vector<double>(20, 1.0));
       },
       "labels"},
      {"population models",
       [](io::NpyMap& a) {
         a["population_logits"] = io::NpyArray::FromFloat({3, 10, 3}, std::vector<float>(90, 0));
       },
       "'population_logits' has 3 models"},
      {"row ids repeated",
       [](io::NpyMap& a) {
         a["row_ids"] = io::NpyArray::FromInt64({20}, std::vector<int64_t>(20, 1));
       },
       "not unique"},
      {"targets range", [](io::NpyMap& a) { a["targets"] = io::NpyArray::FromInt64({1}, {4}); },
       "array 'targets': entry 0"},
      {"signal type", [](io::NpyMap& a) { a["signal_type"] = io::NpyArray::FromString("odds"); },
       "signal_type"},
      {"prob out of range",
       [](io::NpyMap& a) {
         a.erase("logits");
         a.erase("labels");
         std::vector<double> v(80, 0.5);
         v[9] = 1.5;
         a["signals"] = io::NpyArray::FromDouble({4, 20}, v);
       },
       "array 'signals': probability outside [0, 1] at flat index 9"},
      {"signals inf",
       [](io::NpyMap& a) {
         a.erase("logits");
         a.erase("labels");
         std::vector<double> v(80, 0.5);
         v[11] = std::numeric_limits<double>::infinity();
         a["signals"] = io::NpyArray::FromDouble({4, 20}, v);
       },
       "array 'signals': non-finite value (NaN or inf) at flat index 11"},
  };
  ExpectEachRefused(SmallArrays, cases);
}

TEST(BundleTest, FilesTruncatedOrCorruptAreErrorsNamingTheFile) {
  const std::string path = TempDir() + "/bundle_test.npz";
  ASSERT_TRUE(io::WriteNpz(path, SmallArrays(), /*compress=*/true).ok());
  ASSERT_TRUE(LoadBundle(path).ok());
  std::string bytes;
  {
    std::ifstream in(path, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  const std::string cut = TempDir() + "/bundle_test_cut.npz";
  for (size_t len : {size_t{0}, size_t{10}, bytes.size() / 2, bytes.size() - 1}) {
    std::ofstream(cut, std::ios::binary | std::ios::trunc).write(bytes.data(), len);
    auto b = LoadBundle(cut);
    ASSERT_FALSE(b.ok()) << len;
    EXPECT_THAT(b.status().message(), HasSubstr("bundle_test_cut.npz")) << len;
  }
  std::string flipped = bytes;
  flipped[bytes.size() / 3] ^= 0x5A;  // inside some member's deflated data
  std::ofstream(cut, std::ios::binary | std::ios::trunc).write(flipped.data(), flipped.size());
  EXPECT_FALSE(LoadBundle(cut).ok());
  EXPECT_EQ(LoadBundle(TempDir() + "/no_such_bundle.npz").status().code(),
            absl::StatusCode::kNotFound);
}

TEST(BundleTest, FolderOfNpyFiles) {
  const std::string dir = TempDir() + "/bundle_test_dir";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  for (const auto& [name, array] : SmallArrays()) {
    ASSERT_TRUE(io::WriteNpy(dir + "/" + name + ".npy", array).ok());
  }
  auto b = LoadBundle(dir);
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(b->points(), 20);
}

using testing_util::Info;

// Sizes worked out by hand: decoded arrays + converted copies + 3 signal
// kinds of doubles on every model, point and query.
TEST(BundleMemory, SignalsBundle) {
  io::NpyInfoMap arrays;
  arrays["keep"] = Info(io::DType::kBool, 1, {4, 100});
  arrays["signals"] = Info(io::DType::kFloat64, 8, {4, 100});
  metrics::BootstrapOptions none;
  none.resamples = 0;
  const BundleMemoryEstimate e = EstimateBundleMemory(arrays, none);
  // Without bootstrap, the metrics add their copies of the scores only.
  EXPECT_EQ(e.bytes, (400 + 3200) + (400 + 3200) + 4 * 100 * 24 + 100 * 10);
  EXPECT_EQ(e.what,
            "scoring a bundle of 4 models x 100 points x 1 query (2 arrays, 3.60 kB decoded)");
}

TEST(BundleMemory, LogitsBundleWithQueriesAndPopulation) {
  io::NpyInfoMap arrays;
  arrays["keep"] = Info(io::DType::kBool, 1, {4, 100});
  arrays["logits"] = Info(io::DType::kFloat32, 4, {4, 100, 2, 10});
  arrays["labels"] = Info(io::DType::kInt32, 4, {100});
  arrays["population_logits"] = Info(io::DType::kFloat64, 8, {4, 50, 2, 10});
  arrays["population_labels"] = Info(io::DType::kInt64, 8, {50});
  // keep, logits (8000 floats), labels (int32), population logits (4000
  // doubles) and labels.
  const uint64_t decoded = 400 + 8000 * 4 + 100 * 4 + 4000 * 8 + 50 * 8;
  // keep, logits as float, labels as int64, population logits as float.
  const uint64_t converted = 400 + 8000 * 4 + 100 * 8 + 4000 * 4 + 50 * 8;
  metrics::BootstrapOptions none;
  none.resamples = 0;
  EXPECT_EQ(EstimateBundleMemory(arrays, none).bytes,
            decoded + converted + 4 * 150 * 2 * 24 + 100 * 10);
  EXPECT_THAT(EstimateBundleMemory(arrays).what,
              HasSubstr("4 models x 100 points x 2 queries and 50 population points"));
}

// The bootstrap's buffers are part of the estimate: 17 bytes a point of
// tables, 4 a point per thread, and per replicate 17 + 16 per FPR bytes. A
// million resamples on a small bundle cost far more than its arrays.
TEST(BundleMemory, IncludesTheBootstrapBuffers) {
  EXPECT_EQ(metrics::BootstrapPeakBytes(1000, 100, 3, 2), 1000 * 17 + 2 * 1000 * 4 + 100 * 65);
  // One thread per 16 replicates at most; none without resamples.
  EXPECT_EQ(metrics::BootstrapPeakBytes(1000, 16, 3, 8), 1000 * 21 + 16 * 65);
  EXPECT_EQ(metrics::BootstrapPeakBytes(1000, 0, 3, 8), 0u);
  io::NpyInfoMap arrays;
  arrays["keep"] = Info(io::DType::kBool, 1, {4, 100});
  arrays["signals"] = Info(io::DType::kFloat64, 8, {4, 100});
  metrics::BootstrapOptions none;
  none.resamples = 0;
  const uint64_t without = EstimateBundleMemory(arrays, none).bytes;
  metrics::BootstrapOptions many;
  many.resamples = 1'000'000;
  many.threads = 2;
  EXPECT_EQ(EstimateBundleMemory(arrays, many, 5).bytes,
            without + metrics::BootstrapPeakBytes(100, 1'000'000, 5, 2));
  EXPECT_GT(EstimateBundleMemory(arrays, many, 5).bytes, uint64_t{97'000'000});
  // The default options (1,000 resamples, the default FPRs) count too.
  EXPECT_EQ(EstimateBundleMemory(arrays).bytes,
            without + metrics::BootstrapPeakBytes(100, 1000, metrics::DefaultFprs().size(), 1));
}

// The estimate of a real bundle's headers covers at least its decoded arrays.
TEST(BundleMemory, CoversTheDecodedArrays) {
  SyntheticOptions options;
  options.models = 4;
  options.points = 300;
  options.population = 50;
  const io::NpyMap arrays = *MakeSyntheticBundle(options);
  const std::string path = ::testing::TempDir() + "/bundle_memory.npz";
  ASSERT_TRUE(io::WriteNpz(path, arrays, /*compress=*/true).ok());
  const absl::StatusOr<io::NpyInfoMap> infos = io::ReadArrayInfos(path);
  ASSERT_TRUE(infos.ok()) << infos.status();
  uint64_t decoded = 0;
  for (const auto& [name, array] : arrays) decoded += array.data.size();
  EXPECT_GT(EstimateBundleMemory(*infos).bytes, decoded);
  EXPECT_THAT(EstimateBundleMemory(*infos).what, HasSubstr("4 models x 300 points"));
}

}  // namespace
}  // namespace mia::audit
