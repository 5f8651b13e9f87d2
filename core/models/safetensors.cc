#include "core/models/safetensors.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/common/file_util.h"
#include "core/common/sha256.h"
#include "nlohmann/json.hpp"

namespace mia::models {
namespace {

constexpr int64_t kMaxHeaderBytes = 100'000'000;  // the format's own limit

using Json = nlohmann::json;

absl::Status Bad(const std::string& path, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat("safetensors ", path, ": ", what));
}

StoredType TypeOf(const std::string& dtype) {
  if (dtype == "F32") return StoredType::kF32;
  if (dtype == "F16") return StoredType::kF16;
  if (dtype == "BF16") return StoredType::kBF16;
  return StoredType::kOther;
}

// A non-negative integer that fits int64, or nullopt-like false.
bool AsCount(const Json& v, int64_t* out) {
  if (v.is_number_unsigned()) {
    const uint64_t u = v.get<uint64_t>();
    if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return false;
    *out = static_cast<int64_t>(u);
    return true;
  }
  if (v.is_number_integer()) {
    const int64_t i = v.get<int64_t>();
    if (i < 0) return false;
    *out = i;
    return true;
  }
  return false;
}

absl::StatusOr<std::string> ReadWholeFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return FileErrnoStatus(errno, path, "open");
  std::ostringstream buffer;
  buffer << in.rdbuf();
  if (in.bad()) return FileErrnoStatus(errno, path, "read");
  return buffer.str();
}

}  // namespace

int64_t StoredTypeBytes(StoredType type) {
  switch (type) {
    case StoredType::kF32:
      return 4;
    case StoredType::kF16:
    case StoredType::kBF16:
      return 2;
    case StoredType::kOther:
      return 0;
  }
  return 0;
}

absl::StatusOr<SafetensorsIndex> ParseSafetensorsIndex(const std::string& prefix, int64_t file_size,
                                                       const std::string& path) {
  if (file_size < 8 || prefix.size() < 8) return Bad(path, "shorter than the 8-byte header length");
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<uint8_t>(prefix[i]);
  if (n > static_cast<uint64_t>(kMaxHeaderBytes) || static_cast<int64_t>(n) > file_size - 8) {
    return Bad(path, absl::StrCat("header length ", n, " at byte offset 0 exceeds the file (",
                                  file_size, " bytes) or the 100 MB limit"));
  }
  if (prefix.size() < 8 + n) return Bad(path, "header truncated");
  Json header;
  try {
    header = Json::parse(prefix.begin() + 8, prefix.begin() + 8 + static_cast<int64_t>(n));
  } catch (const Json::exception& e) {
    // The parser's byte position only; never the header's text.
    return Bad(path, absl::StrCat("header is not valid JSON (parse error id ", e.id, ")"));
  }
  if (!header.is_object()) return Bad(path, "header is not a JSON object");
  SafetensorsIndex index;
  index.file_size = file_size;
  const int64_t data_start = 8 + static_cast<int64_t>(n);
  const int64_t data_size = file_size - data_start;
  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    if (name == "__metadata__") continue;
    const Json& entry = it.value();
    const std::string where = absl::StrCat("tensor '", name, "'");
    if (!entry.is_object()) return Bad(path, absl::StrCat(where, " is not an object"));
    StoredTensor t;
    auto dtype = entry.find("dtype");
    if (dtype == entry.end() || !dtype->is_string()) {
      return Bad(path, absl::StrCat(where, " has no string dtype"));
    }
    t.dtype = dtype->get<std::string>();
    t.type = TypeOf(t.dtype);
    auto shape = entry.find("shape");
    if (shape == entry.end() || !shape->is_array()) {
      return Bad(path, absl::StrCat(where, " has no shape array"));
    }
    int64_t numel = 1;
    for (const Json& d : *shape) {
      int64_t size = 0;
      if (!AsCount(d, &size)) return Bad(path, absl::StrCat(where, " has a bad shape entry"));
      t.shape.push_back(size);
      if (size != 0 && numel > std::numeric_limits<int64_t>::max() / 8 / size) {
        return Bad(path, absl::StrCat(where, " has an impossibly large shape"));
      }
      numel *= size;
    }
    auto offsets = entry.find("data_offsets");
    int64_t begin = 0, end = 0;
    if (offsets == entry.end() || !offsets->is_array() || offsets->size() != 2 ||
        !AsCount((*offsets)[0], &begin) || !AsCount((*offsets)[1], &end)) {
      return Bad(path, absl::StrCat(where, " has no data_offsets [begin, end]"));
    }
    if (begin > end || end > data_size) {
      return Bad(
          path, absl::StrCat(where, " data_offsets [", begin, ", ", end, "] are outside the data (",
                             data_size, " bytes from byte offset ", data_start, ")"));
    }
    const int64_t item = StoredTypeBytes(t.type);
    if (item > 0 && end - begin != numel * item) {
      return Bad(path,
                 absl::StrCat(where, " at byte offset ", data_start + begin, " has ", end - begin,
                              " bytes, its shape and ", t.dtype, " need ", numel * item));
    }
    t.begin = data_start + begin;
    t.bytes = end - begin;
    index.tensors.emplace(name, std::move(t));
  }
  return index;
}

absl::StatusOr<SafetensorsIndex> ReadSafetensorsIndex(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) return FileErrnoStatus(errno, path, "open");
  const int64_t size = static_cast<int64_t>(in.tellg());
  in.seekg(0);
  std::string prefix(8, '\0');
  if (size < 8 || !in.read(prefix.data(), 8)) {
    return Bad(path, "shorter than the 8-byte header length");
  }
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<uint8_t>(prefix[i]);
  if (n <= static_cast<uint64_t>(kMaxHeaderBytes) && static_cast<int64_t>(n) <= size - 8) {
    prefix.resize(8 + n);
    if (!in.read(prefix.data() + 8, static_cast<std::streamsize>(n))) {
      return Bad(path, "header truncated");
    }
  }
  return ParseSafetensorsIndex(prefix, size, path);
}

absl::StatusOr<Gpt2FileConfig> ParseGpt2Config(const std::string& json, const std::string& path) {
  Json c;
  try {
    c = Json::parse(json);
  } catch (const Json::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": not valid JSON (parse error id ", e.id, ")"));
  }
  if (!c.is_object()) return absl::InvalidArgumentError(absl::StrCat(path, ": not a JSON object"));
  Gpt2FileConfig out;
  auto size = [&](const char* key, int64_t* v) -> absl::Status {
    auto it = c.find(key);
    if (it == c.end()) return absl::InvalidArgumentError(absl::StrCat(path, ": no ", key));
    if (!AsCount(*it, v) || *v <= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": ", key, " must be a positive integer"));
    }
    return absl::OkStatus();
  };
  for (auto [key, v] : {std::pair<const char*, int64_t*>{"n_layer", &out.n_layer},
                        {"n_head", &out.n_head},
                        {"n_embd", &out.n_embd},
                        {"vocab_size", &out.vocab_size}}) {
    absl::Status s = size(key, v);
    if (!s.ok()) return s;
  }
  absl::Status s = size(c.contains("n_positions") ? "n_positions" : "n_ctx", &out.n_positions);
  if (!s.ok()) return s;
  if (auto it = c.find("layer_norm_epsilon"); it != c.end()) {
    if (!it->is_number() || it->get<double>() <= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": layer_norm_epsilon must be a positive number"));
    }
    out.layer_norm_epsilon = it->get<double>();
  }
  if (out.n_embd % out.n_head != 0) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": n_embd must be divisible by n_head"));
  }
  return out;
}

absl::StatusOr<Gpt2FileConfig> ReadGpt2Config(const std::string& path) {
  absl::StatusOr<std::string> text = ReadWholeFile(path);
  if (!text.ok()) return text.status();
  return ParseGpt2Config(*text, path);
}

}  // namespace mia::models
