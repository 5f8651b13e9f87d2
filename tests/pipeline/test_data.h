// Small synthetic tabular data for the pipeline tests: trains in seconds.
#ifndef MIA_TESTS_PIPELINE_TEST_DATA_H_
#define MIA_TESTS_PIPELINE_TEST_DATA_H_

#include <cstdint>
#include <fstream>
#include <string>
#include <vector>

#include "core/common/random.h"

namespace mia::testing_util {

// A CSV of `rows` rows (label first, then 10 features) at root/data.csv:
// 4 classes around random centres (seeded), each feature the centre plus
// `spread` times a standard normal; a share `label_noise` of the rows gets a
// random label instead of its class. With the defaults (1,200 rows, spread
// 1.2, 10% noisy labels) a small MLP memorizes its training rows, so
// membership leaks. `labels`, when given, receives each row's label.
inline std::string WriteClusteredCsv(const std::string& root, int rows = 1200,
                                     uint64_t seed = 42, double spread = 1.2,
                                     double label_noise = 0.1,
                                     std::vector<int64_t>* labels = nullptr) {
  const std::string path = root + "/data.csv";
  std::ofstream out(path);
  Rng rng(seed);
  std::vector<std::vector<double>> centers(4, std::vector<double>(10));
  for (auto& c : centers)
    for (double& v : c) v = rng.Normal();
  for (int row = 0; row < rows; ++row) {
    int label = static_cast<int>(rng.UniformInt(4));
    const int cls = label;
    if (label_noise > 0 && rng.Uniform01() < label_noise) {
      label = static_cast<int>(rng.UniformInt(4));
    }
    if (labels != nullptr) labels->push_back(label);
    out << label;
    for (int f = 0; f < 10; ++f) out << "," << centers[cls][f] + spread * rng.Normal();
    out << "\n";
  }
  return path;
}

}  // namespace mia::testing_util

#endif  // MIA_TESTS_PIPELINE_TEST_DATA_H_
