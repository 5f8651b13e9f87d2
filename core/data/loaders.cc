// The format registry behind LoadDataset, and the dataset fingerprint.
#include "core/data/loaders.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/common/sha256.h"
#include "core/common/status_macros.h"
#include "core/data/internal.h"

namespace mia::data {
namespace {

using Loader = absl::StatusOr<Dataset> (*)(const DataSource&, const LoadLimits&);

struct FormatEntry {
  const char* name;
  const char* description;
  Loader load;
};

// The one place a format is registered: name, help text and loader.
constexpr FormatEntry kFormats[] = {
    {"idx",
     "MNIST-style IDX files (train-/t10k-images-idx3-ubyte, -labels-idx1-ubyte, "
     "optionally .gz) in a folder, e.g. Fashion-MNIST",
     internal::LoadIdx},
    {"cifar10", "CIFAR-10 binary version: data_batch_1..5.bin and test_batch.bin in a folder",
     internal::LoadCifar10},
    {"cifar100",
     "CIFAR-100 binary version: train.bin and test.bin in a folder (fine or coarse labels)",
     internal::LoadCifar100},
    {"purchase100",
     "Purchase-100 dataset_purchase: CSV label (1..100) + 600 binary features, "
     "optionally gzipped",
     internal::LoadPurchase100},
    {"texas100",
     "Texas-100 folder: feats (6169 binary features per line) and labels (1..100), "
     "optionally gzipped",
     internal::LoadTexas100},
    {"csv",
     "numeric CSV: a label column (0-based integers) and feature columns, optional "
     "header, optionally gzipped",
     internal::LoadCsv},
    {"npy",
     "NumPy .npz archive or folder of .npy files with 'features' [N, ...] and "
     "'labels' [N]",
     internal::LoadNpy},
};

// Fingerprint encoding version; change it whenever the encoding changes.
constexpr char kFingerprintTag[] = "mia-dataset-v1";

constexpr bool kHostLittleEndian = __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__;

// Feeds 64-bit integers to the hasher as little-endian bytes, whatever the
// host byte order.
void HashU64(Sha256* hasher, uint64_t value) {
  uint8_t bytes[8];
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<uint8_t>(value >> (8 * i));
  hasher->Update(bytes, sizeof(bytes));
}

// Hashes the labels as int64 little-endian, in chunks (not one Update per value).
void HashLabels(Sha256* hasher, const std::vector<int64_t>& labels) {
  constexpr size_t kChunk = 8192;
  uint64_t buffer[kChunk];
  for (size_t start = 0; start < labels.size(); start += kChunk) {
    const size_t n = std::min(kChunk, labels.size() - start);
    std::memcpy(buffer, labels.data() + start, n * sizeof(uint64_t));
    if (!kHostLittleEndian) {
      for (size_t i = 0; i < n; ++i) buffer[i] = __builtin_bswap64(buffer[i]);
    }
    hasher->Update(buffer, n * sizeof(uint64_t));
  }
}

// Hashes the features as float32 little-endian, -0.0 written as 0.0 (they
// train identically), in chunks.
void HashFeatures(Sha256* hasher, const std::vector<float>& features) {
  constexpr size_t kChunk = 16384;
  constexpr uint32_t kNegativeZero = 0x80000000u;
  uint32_t buffer[kChunk];
  for (size_t start = 0; start < features.size(); start += kChunk) {
    const size_t n = std::min(kChunk, features.size() - start);
    std::memcpy(buffer, features.data() + start, n * sizeof(uint32_t));
    for (size_t i = 0; i < n; ++i) {
      if (buffer[i] == kNegativeZero) buffer[i] = 0;
      if (!kHostLittleEndian) buffer[i] = __builtin_bswap32(buffer[i]);
    }
    hasher->Update(buffer, n * sizeof(uint32_t));
  }
}

}  // namespace

absl::StatusOr<Dataset> LoadDataset(const DataSource& source, const LoadLimits& limits) {
  for (const FormatEntry& entry : kFormats) {
    if (source.format != entry.name) continue;
    if (source.path.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("dataset format ", entry.name, ": no path given"));
    }
    MIA_ASSIGN_OR_RETURN(Dataset dataset, entry.load(source, limits));
    // Every loader guarantees these; checked once more here because every later
    // stage relies on them.
    if (dataset.size() == 0 ||
        static_cast<int64_t>(dataset.features.size()) != dataset.size() * dataset.sample_numel() ||
        dataset.sample_numel() <= 0 || dataset.num_classes <= 0) {
      return absl::InternalError(
          absl::StrCat(dataset.name, ": loader returned an inconsistent dataset"));
    }
    return dataset;
  }
  std::vector<std::string> names;
  for (const FormatEntry& entry : kFormats) names.push_back(entry.name);
  return absl::InvalidArgumentError(absl::StrCat("unknown dataset format '",
                                                 absl::CHexEscape(source.format),
                                                 "' (known: ", absl::StrJoin(names, ", "), ")"));
}

const std::vector<std::pair<std::string, std::string>>& DatasetFormats() {
  static const auto* const kList = [] {
    auto* list = new std::vector<std::pair<std::string, std::string>>();
    for (const FormatEntry& entry : kFormats) list->emplace_back(entry.name, entry.description);
    return list;
  }();
  return *kList;
}

std::string Fingerprint(const Dataset& dataset) {
  Sha256 hasher;
  hasher.Update(kFingerprintTag, sizeof(kFingerprintTag));  // with its NUL terminator
  HashU64(&hasher, dataset.sample_shape.size());
  for (int64_t d : dataset.sample_shape) HashU64(&hasher, static_cast<uint64_t>(d));
  HashU64(&hasher, static_cast<uint64_t>(static_cast<int64_t>(dataset.num_classes)));
  HashU64(&hasher, dataset.labels.size());
  HashLabels(&hasher, dataset.labels);
  HashU64(&hasher, dataset.features.size());
  HashFeatures(&hasher, dataset.features);
  return hasher.HexDigest();
}

}  // namespace mia::data
