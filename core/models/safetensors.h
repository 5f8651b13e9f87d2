// Reading Hugging Face checkpoints without LibTorch: the header of a
// .safetensors file (which tensor lies where, in which type and shape) and a
// GPT-2 config.json. Only the index is parsed here; the tensor bytes are read
// by whoever builds the model (core/models/gpt.cc), one tensor at a time, so a
// large checkpoint is never held twice in memory.
//
// The safetensors layout: 8 bytes little-endian N, then N bytes of JSON
// {name: {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]}, ...,
// "__metadata__": {...}}, then the data; offsets count from the data's start.
//
// Pure functions; safe from any thread. Errors are InvalidArgument naming the
// file, the tensor and the byte offset; never tensor contents.
#ifndef MIA_CORE_MODELS_SAFETENSORS_H_
#define MIA_CORE_MODELS_SAFETENSORS_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace mia::models {

enum class StoredType { kF32, kF16, kBF16, kOther };

struct StoredTensor {
  std::string dtype;  // as written ("F32", "F16", "BF16", or another, e.g. "U8")
  StoredType type = StoredType::kOther;
  std::vector<int64_t> shape;  // row-major
  int64_t begin = 0;           // absolute byte offset of the data in the file
  int64_t bytes = 0;           // end - begin
};

struct SafetensorsIndex {
  int64_t file_size = 0;
  std::map<std::string, StoredTensor> tensors;  // by name, "__metadata__" left out
};

// Bytes per element of F32/F16/BF16; 0 for others.
int64_t StoredTypeBytes(StoredType type);

// Parses and checks the index of a safetensors file of `file_size` bytes from
// its first bytes `prefix` (at least 8 + N bytes; more is fine). Checks: a
// header length within the file and at most 100 MB, valid JSON, every entry
// with a string dtype, a shape of non-negative integers and offsets with
// begin <= end within the data; for F32/F16/BF16 (other types are indexed,
// not sized: a caller that reads one rejects it) end - begin equals the
// shape's element count times the type's size. `path` only names the file in
// errors.
absl::StatusOr<SafetensorsIndex> ParseSafetensorsIndex(const std::string& prefix, int64_t file_size,
                                                       const std::string& path);

// Reads `path`'s header and parses it (NotFound for a missing file).
absl::StatusOr<SafetensorsIndex> ReadSafetensorsIndex(const std::string& path);

// What mia reads from a GPT-2 config.json.
struct Gpt2FileConfig {
  int64_t n_layer = 0;
  int64_t n_head = 0;
  int64_t n_embd = 0;
  int64_t n_positions = 0;  // n_positions, else n_ctx
  int64_t vocab_size = 0;
  double layer_norm_epsilon = 1e-5;
};

// Parses a config.json (InvalidArgument naming the missing or bad key; every
// size must be a positive integer and n_embd divisible by n_head).
absl::StatusOr<Gpt2FileConfig> ParseGpt2Config(const std::string& json, const std::string& path);
absl::StatusOr<Gpt2FileConfig> ReadGpt2Config(const std::string& path);

}  // namespace mia::models

#endif  // MIA_CORE_MODELS_SAFETENSORS_H_
