// MNIST-style IDX files (as distributed for MNIST and Fashion-MNIST): a
// big-endian header of a magic number (0x00000803 for 3-d unsigned-byte
// images, 0x00000801 for 1-d unsigned-byte labels) and one uint32 per
// dimension, then the bytes. Each file may be gzipped.
#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/common/status_macros.h"
#include "core/data/internal.h"

namespace mia::data::internal {
namespace {

constexpr uint32_t kImagesMagic = 0x00000803;
constexpr uint32_t kLabelsMagic = 0x00000801;
// IDX labels are one byte each; idx datasets have at least MNIST's 10 classes
// so that a subset missing the top digits keeps the usual class count.
constexpr int kMinIdxClasses = 10;

uint32_t LoadBigEndian32(const std::string& bytes, size_t offset) {
  const auto* p = reinterpret_cast<const uint8_t*>(bytes.data() + offset);
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

// One split's validated pair of files.
struct IdxPart {
  InputFile images;
  InputFile labels;
  uint64_t count = 0;
  uint32_t height = 0;
  uint32_t width = 0;
};

// Checks magic, header length and exact file length; returns the dimensions.
absl::Status CheckHeader(const InputFile& file, uint32_t magic, int dims,
                         std::vector<uint64_t>* shape) {
  const uint64_t header = 4 + 4 * static_cast<uint64_t>(dims);
  if (file.bytes.size() < 4) {
    return absl::InvalidArgumentError(absl::StrCat(file.path, ": truncated IDX header",
                                                   At(file, file.bytes.size()), " (needs ", header,
                                                   " bytes)"));
  }
  const uint32_t found = LoadBigEndian32(file.bytes, 0);
  if (found != magic) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: wrong IDX magic number 0x%08x%s (expected 0x%08x, unsigned bytes in %d dimension%s)",
        file.path, found, At(file, 0), magic, dims, dims == 1 ? "" : "s"));
  }
  if (file.bytes.size() < header) {
    return absl::InvalidArgumentError(absl::StrCat(file.path, ": truncated IDX header",
                                                   At(file, file.bytes.size()), " (needs ", header,
                                                   " bytes)"));
  }
  shape->clear();
  // The product of up to three uint32 dimensions fits in 128 bits.
  unsigned __int128 payload = 1;
  for (int d = 0; d < dims; ++d) {
    const uint64_t n = LoadBigEndian32(file.bytes, 4 + 4 * d);
    if (n == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(file.path, ": IDX dimension ", d, " is 0", At(file, 4 + 4 * d)));
    }
    shape->push_back(n);
    payload *= n;
  }
  if (payload > (static_cast<unsigned __int128>(1) << 62)) {
    return absl::InvalidArgumentError(absl::StrCat(file.path, ": IDX dimensions", At(file, 4),
                                                   " describe an impossible file size"));
  }
  const uint64_t expected = header + static_cast<uint64_t>(payload);
  if (file.bytes.size() < expected) {
    return absl::InvalidArgumentError(absl::StrCat(file.path, ": truncated",
                                                   At(file, file.bytes.size()),
                                                   " (the header needs ", expected, " bytes)"));
  }
  if (file.bytes.size() > expected) {
    return absl::InvalidArgumentError(
        absl::StrCat(file.path, ": trailing bytes", At(file, expected), " (the header describes ",
                     expected, " bytes, the file has ", file.bytes.size(), ")"));
  }
  return absl::OkStatus();
}

absl::StatusOr<IdxPart> ReadPart(const std::string& folder, const std::string& split,
                                 const LoadLimits& limits) {
  const std::string prefix = split == "train" ? "train" : "t10k";
  IdxPart part;
  MIA_ASSIGN_OR_RETURN(const std::string images_path,
                       FindFile(folder, prefix + "-images-idx3-ubyte"));
  MIA_ASSIGN_OR_RETURN(const std::string labels_path,
                       FindFile(folder, prefix + "-labels-idx1-ubyte"));
  MIA_ASSIGN_OR_RETURN(part.images, ReadInput(images_path, limits.max_bytes));
  MIA_ASSIGN_OR_RETURN(part.labels, ReadInput(labels_path, limits.max_bytes));
  std::vector<uint64_t> image_shape, label_shape;
  MIA_RETURN_IF_ERROR(CheckHeader(part.images, kImagesMagic, 3, &image_shape));
  MIA_RETURN_IF_ERROR(CheckHeader(part.labels, kLabelsMagic, 1, &label_shape));
  if (image_shape[0] != label_shape[0]) {
    return absl::InvalidArgumentError(absl::StrCat(images_path, " has ", image_shape[0],
                                                   " images but ", labels_path, " has ",
                                                   label_shape[0], " labels"));
  }
  part.count = image_shape[0];
  part.height = static_cast<uint32_t>(image_shape[1]);
  part.width = static_cast<uint32_t>(image_shape[2]);
  return part;
}

}  // namespace

absl::StatusOr<Dataset> LoadIdx(const DataSource& source, const LoadLimits& limits) {
  MIA_ASSIGN_OR_RETURN(const std::vector<std::string> splits, SplitParts(source));
  std::vector<IdxPart> parts;
  uint64_t rows = 0;
  for (const std::string& split : splits) {
    MIA_ASSIGN_OR_RETURN(IdxPart part, ReadPart(source.path, split, limits));
    if (!parts.empty() && (part.height != parts[0].height || part.width != parts[0].width)) {
      return absl::InvalidArgumentError(
          absl::StrCat(part.images.path, ": images are ", part.height, "x", part.width, " but ",
                       parts[0].images.path, " has ", parts[0].height, "x", parts[0].width));
    }
    rows += part.count;
    parts.push_back(std::move(part));
  }
  const uint64_t numel = uint64_t{parts[0].height} * parts[0].width;
  MIA_RETURN_IF_ERROR(CheckSize(absl::StrCat("idx:", source.path), rows, numel, limits));

  Dataset dataset;
  dataset.name = absl::StrCat("idx:", source.path, ":", source.split);
  dataset.sample_shape = {1, parts[0].height, parts[0].width};
  dataset.features.resize(static_cast<size_t>(rows * numel));
  dataset.labels.resize(static_cast<size_t>(rows));
  const float* to_unit = ByteToUnitTable();
  float* out = dataset.features.data();
  int64_t* label_out = dataset.labels.data();
  int max_label = -1;
  for (IdxPart& part : parts) {
    const auto* pixels = reinterpret_cast<const uint8_t*>(part.images.bytes.data()) + 16;
    const size_t n = static_cast<size_t>(part.count * numel);
    for (size_t i = 0; i < n; ++i) out[i] = to_unit[pixels[i]];
    out += n;
    part.images.bytes = std::string();  // release early: the float copy is 4x larger
    const auto* labels = reinterpret_cast<const uint8_t*>(part.labels.bytes.data()) + 8;
    for (uint64_t i = 0; i < part.count; ++i) {
      label_out[i] = labels[i];
      max_label = std::max<int>(max_label, labels[i]);
    }
    label_out += part.count;
  }
  dataset.num_classes = std::max(kMinIdxClasses, max_label + 1);
  return dataset;
}

}  // namespace mia::data::internal
