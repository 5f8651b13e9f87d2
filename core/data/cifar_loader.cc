// CIFAR-10 and CIFAR-100 "binary version" files: fixed-size records of label
// byte(s) followed by 3072 pixel bytes, the 32x32 red, green and blue planes in
// that order, which is already the [3, 32, 32] channel-major layout.
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "core/common/status_macros.h"
#include "core/data/internal.h"

namespace mia::data::internal {
namespace {

constexpr uint64_t kPixels = 3 * 32 * 32;

// What distinguishes the two variants.
struct CifarLayout {
  const char* format;                    // for names and messages
  int label_bytes;                       // 1 (cifar10) or 2 (coarse, fine)
  std::vector<int> label_limits;         // exclusive upper bound of each label byte
  std::vector<const char*> label_names;  // for messages
  std::vector<std::string> train_files;
  std::vector<std::string> test_files;
  // Where the archives extract to, and where Privacy Meter's data_dir keeps
  // them (torchvision's root `<data_dir>/<dataset>`).
  const char* bin_folder;      // cifar-10-batches-bin | cifar-100-binary
  const char* python_folder;   // cifar-10-batches-py | cifar-100-python
  CifarPythonLayout python_layout;
};

struct CifarFolder {
  std::string path;
  bool python = false;  // the python version's pickled batches
};

// data_dir may be the binary version's folder itself, or a folder holding it
// (`cifar-10-batches-bin`, or `cifar10/cifar-10-batches-bin`), or the same
// for the python version (`cifar-10-batches-py`, as torchvision extracts it
// under Privacy Meter's `<data_dir>/cifar10`). The binary version wins when
// both are there.
absl::StatusOr<CifarFolder> FindCifarFolder(const std::string& path, const CifarLayout& layout) {
  const std::string nested = absl::StrCat(path, "/", layout.format);
  for (const std::string& folder : {path, absl::StrCat(path, "/", layout.bin_folder),
                                    absl::StrCat(nested, "/", layout.bin_folder)}) {
    if (FindFile(folder, layout.train_files.front()).ok()) return CifarFolder{folder, false};
  }
  for (const std::string& folder : {path, absl::StrCat(path, "/", layout.python_folder),
                                    absl::StrCat(nested, "/", layout.python_folder)}) {
    if (FindFile(folder, layout.python_layout.train_files.front()).ok()) {
      return CifarFolder{folder, true};
    }
  }
  return absl::NotFoundError(absl::StrCat(
      path, ": no ", layout.format, " files: looked for ", layout.train_files.front(),
      " (the binary version) in it, in ", layout.bin_folder, "/ and in ", layout.format, "/",
      layout.bin_folder, "/, and for ", layout.python_layout.train_files.front(),
      " (the python version) in it, in ", layout.python_folder, "/ and in ", layout.format, "/",
      layout.python_folder, "/"));
}

absl::StatusOr<Dataset> LoadCifar(const DataSource& given, const LoadLimits& limits,
                                  const CifarLayout& layout, int label_index, int num_classes) {
  MIA_ASSIGN_OR_RETURN(const std::vector<std::string> splits, SplitParts(given));
  MIA_ASSIGN_OR_RETURN(const CifarFolder folder, FindCifarFolder(given.path, layout));
  if (folder.python) {
    return LoadCifarPython(given, folder.path, limits, layout.python_layout, label_index,
                           num_classes);
  }
  DataSource source = given;
  source.path = folder.path;
  const uint64_t record = static_cast<uint64_t>(layout.label_bytes) + kPixels;

  // Read and validate every file before allocating the (4x larger) features.
  std::vector<InputFile> files;
  uint64_t rows = 0;
  for (const std::string& split : splits) {
    for (const std::string& name : split == "train" ? layout.train_files : layout.test_files) {
      MIA_ASSIGN_OR_RETURN(const std::string path, FindFile(source.path, name));
      MIA_ASSIGN_OR_RETURN(InputFile file, ReadInput(path, limits.max_bytes));
      const uint64_t size = file.bytes.size();
      if (size == 0) {
        return absl::InvalidArgumentError(absl::StrCat(path, ": empty file"));
      }
      if (size % record != 0) {
        return absl::InvalidArgumentError(absl::StrCat(
            path, ": size ", size, " is not a multiple of the ", record,
            "-byte record (truncated or trailing bytes", At(file, size - size % record), ")"));
      }
      const auto* bytes = reinterpret_cast<const uint8_t*>(file.bytes.data());
      for (uint64_t offset = 0; offset < size; offset += record) {
        for (int b = 0; b < layout.label_bytes; ++b) {
          if (bytes[offset + b] >= layout.label_limits[b]) {
            return absl::InvalidArgumentError(absl::StrCat(
                path, ": ", layout.label_names[b], " out of range 0..", layout.label_limits[b] - 1,
                At(file, offset + b), " (record ", offset / record, ")"));
          }
        }
      }
      rows += size / record;
      MIA_RETURN_IF_ERROR(
          CheckSize(absl::StrCat(layout.format, ":", source.path), rows, kPixels, limits));
      files.push_back(std::move(file));
    }
  }

  Dataset dataset;
  dataset.name = absl::StrCat(layout.format, ":", source.path, ":", source.split);
  dataset.sample_shape = {3, 32, 32};
  dataset.num_classes = num_classes;
  dataset.features.resize(static_cast<size_t>(rows * kPixels));
  dataset.labels.resize(static_cast<size_t>(rows));
  const float* to_unit = ByteToUnitTable();
  float* out = dataset.features.data();
  int64_t* label_out = dataset.labels.data();
  for (InputFile& file : files) {
    const auto* bytes = reinterpret_cast<const uint8_t*>(file.bytes.data());
    for (uint64_t offset = 0; offset < file.bytes.size(); offset += record) {
      *label_out++ = bytes[offset + label_index];
      const uint8_t* pixels = bytes + offset + layout.label_bytes;
      for (uint64_t i = 0; i < kPixels; ++i) out[i] = to_unit[pixels[i]];
      out += kPixels;
    }
    file.bytes = std::string();
  }
  return dataset;
}

}  // namespace

absl::StatusOr<Dataset> LoadCifar10(const DataSource& source, const LoadLimits& limits) {
  static const CifarLayout* const kLayout =
      new CifarLayout{"cifar10",
                      1,
                      {10},
                      {"label"},
                      {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin",
                       "data_batch_4.bin", "data_batch_5.bin"},
                      {"test_batch.bin"},
                      "cifar-10-batches-bin",
                      "cifar-10-batches-py",
                      {"cifar10",
                       {"data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4",
                        "data_batch_5"},
                       {"test_batch"},
                       {"labels"},
                       {10}}};
  return LoadCifar(source, limits, *kLayout, 0, 10);
}

absl::StatusOr<Dataset> LoadCifar100(const DataSource& source, const LoadLimits& limits) {
  static const CifarLayout* const kLayout = new CifarLayout{
      "cifar100",         2,
      {20, 100},          {"coarse label", "fine label"},
      {"train.bin"},      {"test.bin"},
      "cifar-100-binary", "cifar-100-python",
      {"cifar100", {"train"}, {"test"}, {"coarse_labels", "fine_labels"}, {20, 100}}};
  if (source.cifar100_labels == "fine") return LoadCifar(source, limits, *kLayout, 1, 100);
  if (source.cifar100_labels == "coarse") return LoadCifar(source, limits, *kLayout, 0, 20);
  return absl::InvalidArgumentError(absl::StrCat("cifar100: unknown cifar100_labels '",
                                                 absl::CHexEscape(source.cifar100_labels),
                                                 "' (expected fine or coarse)"));
}

}  // namespace mia::data::internal
