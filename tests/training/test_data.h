// Small synthetic datasets and helpers for the training tests (torch-free).
#ifndef MIA_TESTS_TRAINING_TEST_DATA_H_
#define MIA_TESTS_TRAINING_TEST_DATA_H_

#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <numeric>
#include <string>
#include <vector>

#include "core/common/random.h"
#include "core/data/dataset.h"
#include "core/models/model_spec.h"
#include "gtest/gtest.h"

namespace mia::training::testing {

// `rows` tabular rows: class centers N(0, 1) per feature, each row its
// center plus N(0, noise^2); a `label_noise` fraction of labels replaced by
// uniform ones. Separable-ish, with an irreducible error.
inline data::Dataset Tabular(int64_t rows, int64_t features, int classes, double noise,
                             double label_noise, uint64_t seed) {
  Rng rng(seed);
  std::vector<float> centers(classes * features);
  for (float& c : centers) c = static_cast<float>(rng.Normal());
  data::Dataset d;
  d.name = "synthetic-tabular";
  d.sample_shape = {features};
  d.num_classes = classes;
  for (int64_t i = 0; i < rows; ++i) {
    const int64_t y = static_cast<int64_t>(rng.UniformInt(classes));
    for (int64_t j = 0; j < features; ++j) {
      d.features.push_back(centers[y * features + j] + static_cast<float>(noise * rng.Normal()));
    }
    d.labels.push_back(rng.Uniform01() < label_noise ? static_cast<int64_t>(rng.UniformInt(classes))
                                                     : y);
  }
  return d;
}

// `rows` binary tabular rows in the manner of Purchase-100: each class has a
// prototype of per-feature probabilities uniform in [0, 2 * density), each row
// draws its bits from its class's prototype; a `label_noise` fraction of
// labels replaced by uniform ones.
inline data::Dataset BinaryTabular(int64_t rows, int64_t features, int classes, double density,
                                   double label_noise, uint64_t seed) {
  Rng rng(seed);
  std::vector<double> protos(classes * features);
  for (double& p : protos) p = 2.0 * density * rng.Uniform01();
  data::Dataset d;
  d.name = "synthetic-binary";
  d.sample_shape = {features};
  d.num_classes = classes;
  for (int64_t i = 0; i < rows; ++i) {
    const int64_t y = static_cast<int64_t>(rng.UniformInt(classes));
    for (int64_t j = 0; j < features; ++j) {
      d.features.push_back(rng.Uniform01() < protos[y * features + j] ? 1.0f : 0.0f);
    }
    d.labels.push_back(rng.Uniform01() < label_noise ? static_cast<int64_t>(rng.UniformInt(classes))
                                                     : y);
  }
  return d;
}

// `rows` images C x H x W in [0, 1]: class y (4 classes) lights up the
// y-th horizontal band, plus uniform noise. Horizontal flips keep the class.
inline data::Dataset Images(int64_t rows, int64_t channels, int64_t size, uint64_t seed) {
  Rng rng(seed);
  data::Dataset d;
  d.name = "synthetic-images";
  d.sample_shape = {channels, size, size};
  d.num_classes = 4;
  for (int64_t i = 0; i < rows; ++i) {
    const int64_t y = static_cast<int64_t>(rng.UniformInt(4));
    for (int64_t c = 0; c < channels; ++c) {
      for (int64_t r = 0; r < size; ++r) {
        const double base = r * 4 / size == y ? 0.6 : 0.1;
        for (int64_t col = 0; col < size; ++col) {
          d.features.push_back(static_cast<float>(base + 0.4 * rng.Uniform01()));
        }
      }
    }
    d.labels.push_back(y);
  }
  return d;
}

// A wide ResNet of depth 10 (one block per group; depth 28 is checked in
// models_test) and width 1, with `dropout`: small enough for one test.
inline models::ModelSpec SmallWrn(double dropout = 0.0) {
  models::ModelSpec spec;
  spec.architecture = "wrn";
  spec.depth = 10;
  spec.width = 1;
  spec.dropout = dropout;
  return spec;
}

// The cnn architecture at width 1.
inline models::ModelSpec SmallCnn() {
  models::ModelSpec spec;
  spec.architecture = "cnn";
  spec.width = 1;
  return spec;
}

inline std::vector<int64_t> Range(int64_t begin, int64_t end) {
  std::vector<int64_t> v(end - begin);
  std::iota(v.begin(), v.end(), begin);
  return v;
}

// The folder of this test (the same on every call within a test) under MIA_TEST_TMPDIR (set by
// ctest) or gtest's temp dir: ctest runs tests as parallel processes.
inline std::string TestDir() {
  const char* env = std::getenv("MIA_TEST_TMPDIR");
  const ::testing::TestInfo* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::filesystem::path dir = std::filesystem::path(env != nullptr ? env : ::testing::TempDir()) /
                              "training" /
                              (std::string(info->test_suite_name()) + "." + info->name() + "." +
                               std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  return dir.string();
}

}  // namespace mia::training::testing

#endif  // MIA_TESTS_TRAINING_TEST_DATA_H_
