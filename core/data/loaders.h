// Dataset loaders: read a labelled dataset from local files in one of the
// formats below into a Dataset. No loader ever downloads anything.
//
// Every file is untrusted input. Errors are InvalidArgument (NotFound for a
// missing file, ResourceExhausted when LoadLimits are exceeded) and name the
// file and the byte offset or the line and column of the problem (1-based),
// never a data value: the values may be someone's training records. Sizes and
// row counts are checked against LoadLimits before anything is allocated.
//
// docs/datasets.md describes each format, the file layout and the checks.
//
// Thread-safety: free functions without shared state; safe from any thread.
#ifndef MIA_CORE_DATA_LOADERS_H_
#define MIA_CORE_DATA_LOADERS_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "core/data/dataset.h"

namespace mia::data {

struct DataSource {
  std::string format;           // a name from DatasetFormats()
  std::string path;             // file or folder, per format
  std::string split = "train";  // idx, cifar10, cifar100: train | test | all (train then test);
                                // the single-file formats take train or all (the whole file)
  int label_column = 0;         // csv: 0-based column of the label
  bool header = false;          // csv: first line is a header
  std::string cifar100_labels = "fine";  // cifar100: fine | coarse
};

struct LoadLimits {
  // Most examples a dataset may have (all splits together).
  int64_t max_rows = 10'000'000;
  // Most bytes of any one file (compressed and decompressed), and of the
  // loaded features (4 bytes per value).
  uint64_t max_bytes = uint64_t{16} << 30;
};

// Loads `source`. The returned Dataset has at least one example, at least one
// feature per example, finite features and labels in [0, num_classes).
absl::StatusOr<Dataset> LoadDataset(const DataSource& source, const LoadLimits& limits = {});

// The formats by name, with a one-line description each, in a stable order
// (for --help texts and validation messages).
const std::vector<std::pair<std::string, std::string>>& DatasetFormats();

// Largest number of classes a csv or npy dataset may declare through its labels;
// a larger label is an error (per-class arrays downstream are sized by it).
inline constexpr int64_t kMaxClasses = int64_t{1} << 20;

// SHA-256 hex of a canonical encoding of the dataset: identifies exactly what a
// model was trained on, independent of file format, compression and name.
// The encoding (version "mia-dataset-v1") is described in docs/datasets.md.
std::string Fingerprint(const Dataset& dataset);

}  // namespace mia::data

#endif  // MIA_CORE_DATA_LOADERS_H_
