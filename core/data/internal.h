// Helpers shared by the per-format loaders; not part of the public interface.
#ifndef MIA_CORE_DATA_INTERNAL_H_
#define MIA_CORE_DATA_INTERNAL_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/data/dataset.h"
#include "core/data/loaders.h"

namespace mia::data::internal {

// One input file, read whole and, when it starts with the gzip magic bytes
// 1f 8b, decompressed.
struct InputFile {
  std::string path;
  std::string bytes;  // the (decompressed) contents
  bool gzipped = false;
};

// Calls fn(line_number, line) for every line of `text` (1-based, without the
// LF or CRLF ending); stops at the first error.
template <typename Fn>
absl::Status ForEachLine(absl::string_view text, Fn fn) {
  int64_t line_no = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t eol = text.find('\n', pos);
    if (eol == absl::string_view::npos) eol = text.size();
    absl::string_view line = text.substr(pos, eol - pos);
    pos = eol + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    absl::Status status = fn(line_no, line);
    if (!status.ok()) return status;
  }
  return absl::OkStatus();
}

// Reads `path` whole. NotFound when it does not exist; ResourceExhausted when
// the file or its decompressed contents exceed `max_bytes`; InvalidArgument for
// a folder, a special file, or a corrupt or truncated gzip stream (with the
// compressed offset).
absl::StatusOr<InputFile> ReadInput(const std::string& path, uint64_t max_bytes);

// Decompresses a gzip stream (one or more members); `path` names it in errors.
absl::StatusOr<std::string> Gunzip(absl::string_view compressed, const std::string& path,
                                   uint64_t max_bytes);

// `folder`/`name` when it exists, else `folder`/`name`.gz when that exists,
// else NotFound naming both.
absl::StatusOr<std::string> FindFile(const std::string& folder, const std::string& name);

// " at offset N" for plain files, " at offset N of the decompressed data" for
// gzipped ones, so offsets are never ambiguous.
std::string At(const InputFile& file, uint64_t offset);

// ResourceExhausted unless `rows` examples of `numel` float features each fit
// in `limits`. `what` names the source in the message.
absl::Status CheckSize(absl::string_view what, uint64_t rows, uint64_t numel,
                       const LoadLimits& limits);

// The splits to read for a format with train and test files, in order:
// {"train"}, {"test"} or {"train", "test"}.
absl::StatusOr<std::vector<std::string>> SplitParts(const DataSource& source);

// For formats with one file: OK for split "train" (the default) and "all".
absl::Status CheckNoSplit(const DataSource& source);

// b / 255 for every byte value, the image scaling of idx and cifar.
const float* ByteToUnitTable();

// The per-format loaders behind LoadDataset's registry.
absl::StatusOr<Dataset> LoadIdx(const DataSource& source, const LoadLimits& limits);
// CIFAR's python version (cifar_python.cc): pickled batches in `folder`.
struct CifarPythonLayout {
  std::string format;                    // cifar10 | cifar100, for names and messages
  std::vector<std::string> train_files;  // data_batch_1 ... | train
  std::vector<std::string> test_files;   // test_batch | test
  std::vector<std::string> label_keys;   // labels | coarse_labels, fine_labels
  std::vector<int> label_limits;         // exclusive bound of each label list
};
absl::StatusOr<Dataset> LoadCifarPython(const DataSource& source, const std::string& folder,
                                        const LoadLimits& limits, const CifarPythonLayout& layout,
                                        int label_index, int num_classes);

absl::StatusOr<Dataset> LoadCifar10(const DataSource& source, const LoadLimits& limits);
absl::StatusOr<Dataset> LoadCifar100(const DataSource& source, const LoadLimits& limits);
absl::StatusOr<Dataset> LoadPurchase100(const DataSource& source, const LoadLimits& limits);
absl::StatusOr<Dataset> LoadTexas100(const DataSource& source, const LoadLimits& limits);
absl::StatusOr<Dataset> LoadCsv(const DataSource& source, const LoadLimits& limits);
absl::StatusOr<Dataset> LoadNpy(const DataSource& source, const LoadLimits& limits);

}  // namespace mia::data::internal

#endif  // MIA_CORE_DATA_INTERNAL_H_
