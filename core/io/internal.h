// Helpers shared by npy.cc and npz.cc; not part of the public interface.
#ifndef MIA_CORE_IO_INTERNAL_H_
#define MIA_CORE_IO_INTERNAL_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/escaping.h"
#include "absl/strings/string_view.h"
#include "core/common/saturating.h"
#include "core/io/npy.h"

namespace mia::io::internal {

// The largest .npy header (preamble and dict) any reader accepts, and so the
// bytes a header may add to its array data. NumPy writes headers of a few
// hundred bytes (format 1.0 caps them at 64 KiB). One constant for every
// path: ParseNpy / ParseNpyHeader refuse a longer header from its preamble
// alone, with the same message whether ReadArrays or ReadArrayInfos reads
// it; readers bound what they accept on top of ReadLimits::max_array_bytes
// for one member or file by it.
inline constexpr uint64_t kMaxNpyHeaderBytes = uint64_t{1} << 20;

// Printable form of an untrusted name (member name, descr, dict key) for error
// messages: a hostile file could otherwise inject control characters or a
// megabyte of text into logs.
inline std::string SafeName(absl::string_view name) {
  constexpr size_t kMaxShown = 200;
  if (name.size() > kMaxShown) {
    return absl::CHexEscape(name.substr(0, kMaxShown)) + "...";
  }
  return absl::CHexEscape(name);
}

using ::mia::SaturatingAdd;
using ::mia::SaturatingMul;

// Checks that an array's fields agree (item size fits the dtype, data size
// fits shape * item size; arrays built by hand may not) and returns its element
// count. Errors name the array as `name`. Defined in npy.cc.
absl::StatusOr<int64_t> CheckArray(const NpyArray& array, absl::string_view name);

}  // namespace mia::io::internal

#endif  // MIA_CORE_IO_INTERNAL_H_
