// NumPy .npy arrays and .npz archives (zip, stored or deflated): reading with
// full validation, and writing (used by the example-bundle generator and tests).
//
// Everything read from a file is untrusted: every error names the file, the
// array (member) and, where it applies, the byte offset of the problem. Sizes are
// checked against limits before any allocation, so a hostile header cannot make
// the reader allocate more than the limits allow.
//
// Thread-safety: free functions, no shared state; safe from any thread.
#ifndef MIA_CORE_IO_NPY_H_
#define MIA_CORE_IO_NPY_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace mia::io {

// Element types mia understands (NumPy descr in parentheses).
enum class DType {
  kBool,     // |b1
  kInt8,     // i1
  kInt16,    // i2
  kInt32,    // i4
  kInt64,    // i8
  kUInt8,    // u1
  kUInt16,   // u2
  kUInt32,   // u4
  kUInt64,   // u8
  kFloat16,  // f2
  kFloat32,  // f4
  kFloat64,  // f8
  kUnicode,  // <U{n} (UCS-4); item_size = 4 * n
};

// Returns "float32", "int64", "bool", "unicode", ...
std::string DTypeName(DType dtype);

// One array. `data` holds the elements in C (row-major) order and in this
// machine's byte order: the reader converts big-endian and Fortran-ordered input.
struct NpyArray {
  DType dtype = DType::kFloat64;
  size_t item_size = 8;          // bytes per element
  std::vector<int64_t> shape;    // empty for a 0-d (scalar) array
  std::vector<uint8_t> data;     // num_elements() * item_size bytes

  int64_t num_elements() const;

  // Element conversions. ToDouble accepts every numeric type and bool;
  // ToInt64 accepts bool and integer types (uint64 above INT64_MAX is an error);
  // ToBool accepts bool and integer types holding only 0 or 1. Errors name
  // `name` (the array's name for messages) and the first bad element's index.
  absl::StatusOr<std::vector<double>> ToDouble(absl::string_view name) const;
  absl::StatusOr<std::vector<float>> ToFloat(absl::string_view name) const;
  absl::StatusOr<std::vector<int64_t>> ToInt64(absl::string_view name) const;
  absl::StatusOr<std::vector<uint8_t>> ToBool(absl::string_view name) const;
  // A 0-d or 1-element unicode array as UTF-8 (ASCII is enough for mia's use).
  absl::StatusOr<std::string> ToString(absl::string_view name) const;
  // Every element of a unicode array of any shape, in C order, as UTF-8 (the
  // NUL padding NumPy adds to shorter strings removed). A code unit that is
  // not a Unicode scalar value (a surrogate, above U+10FFFF) is an error
  // naming the element and character.
  absl::StatusOr<std::vector<std::string>> ToStrings(absl::string_view name) const;

  // Builders for writers and tests.
  static NpyArray FromDouble(std::vector<int64_t> shape, const std::vector<double>& values);
  static NpyArray FromFloat(std::vector<int64_t> shape, const std::vector<float>& values);
  static NpyArray FromInt64(std::vector<int64_t> shape, const std::vector<int64_t>& values);
  static NpyArray FromBool(std::vector<int64_t> shape, const std::vector<uint8_t>& values);
  static NpyArray FromString(const std::string& value);  // 0-d <U{n}
  // A 1-d <U{n} array, n the longest string's length in code points (at
  // least 1, as NumPy); malformed UTF-8 becomes U+FFFD.
  static NpyArray FromStrings(const std::vector<std::string>& values);
};

struct ReadLimits {
  // Largest decoded size of one array, in bytes.
  uint64_t max_array_bytes = uint64_t{8} << 30;
  // Largest total decoded size of all arrays of one archive or folder.
  uint64_t max_total_bytes = uint64_t{16} << 30;
  // Most members an archive may have.
  int max_members = 4096;
};

// Parses one .npy image (format versions 1.0, 2.0 and 3.0). `source` names the
// bytes in error messages ("signals.npz:logits.npy").
absl::StatusOr<NpyArray> ParseNpy(absl::string_view bytes, absl::string_view source,
                                  const ReadLimits& limits = {});

// What a .npy header declares about its array, read without its data.
struct NpyArrayInfo {
  DType dtype = DType::kFloat64;
  size_t item_size = 8;
  std::vector<int64_t> shape;
  uint64_t data_bytes = 0;   // elements * item_size: what decoding allocates
  uint64_t data_offset = 0;  // where the data starts in the .npy image
};

// Parses only the preamble and header of a .npy image; `prefix` needs to hold
// no more than the header. Checks the declared size against `limits`
// (ResourceExhausted naming the array), so a caller can refuse an array
// before decoding or allocating anything for it.
absl::StatusOr<NpyArrayInfo> ParseNpyHeader(absl::string_view prefix, absl::string_view source,
                                            const ReadLimits& limits = {});

// ParseNpy of the image in `bytes`, whose buffer becomes the array's data
// instead of being copied (a member just inflated from an archive): a large
// array is then held once, not twice, while it is read. `bytes` is consumed.
absl::StatusOr<NpyArray> ParseNpyBuffer(std::vector<uint8_t>&& bytes, absl::string_view source,
                                        const ReadLimits& limits = {});

// Serializes as .npy format 1.0 (2.0 if the header needs it), little-endian, C order.
std::string SerializeNpy(const NpyArray& array);

// Archive contents by array name: the member name without its ".npy" suffix.
using NpyMap = std::map<std::string, NpyArray>;

// Reads a .npz archive: zip with stored or deflated members (ZIP64 included),
// as written by numpy.savez / savez_compressed. Validates the central directory,
// local headers, sizes and CRC-32 of every member. Offsets in messages are
// archive offsets, except for errors inside a member's .npy image (header,
// descr, shape), whose offsets count from the start of that member's data.
//
// `threads` > 1 decodes members on that many threads (each member on one; the
// largest first). The arrays, and the first error in member order, are the
// same for any count. The file is mapped, not read into a buffer, and each
// member's compressed pages are handed back as it is inflated, so the archive
// is never held whole; like ReadArrayInfos, it expects a file nobody
// truncates while it is read (uploads are immutable once stored).
absl::StatusOr<NpyMap> ReadNpz(const std::string& path, const ReadLimits& limits = {},
                               int threads = 1);

// ReadNpz on an archive already in memory; `source` names it in error messages.
absl::StatusOr<NpyMap> ParseNpz(absl::string_view bytes, absl::string_view source,
                                const ReadLimits& limits = {});

// Reads every *.npy file of a folder (not recursive).
absl::StatusOr<NpyMap> ReadNpyDir(const std::string& path, const ReadLimits& limits = {});

// Reads `path` as an .npz archive, or as a folder of .npy files when it is a folder.
// `threads`: as for ReadNpz (a folder is read on the calling thread).
absl::StatusOr<NpyMap> ReadArrays(const std::string& path, const ReadLimits& limits = {},
                                  int threads = 1);

// Array headers by name, as ReadArrays would name the arrays.
using NpyInfoMap = std::map<std::string, NpyArrayInfo>;

// The declared sizes pass: reads an .npz archive's zip directory and each
// member's .npy header (inflating only the header of a deflated member), or
// the header of each .npy file of a folder, and checks every limit that
// ReadArrays checks on sizes (members, bytes per array, bytes in total), with
// the same messages. Nothing is decoded: the cost is the directory and the
// headers, whatever the arrays declare, so a server can refuse a bundle that
// would not fit before it allocates for it. A member's declared size must
// agree with its header (InvalidArgument otherwise); CRCs and data are not
// checked (ReadArrays does that).
absl::StatusOr<NpyInfoMap> ReadArrayInfos(const std::string& path, const ReadLimits& limits = {});

// Writes an .npz archive (deflated when `compress`, stored otherwise) that NumPy
// reads; written to a temporary file in the same folder and renamed into place.
absl::Status WriteNpz(const std::string& path, const NpyMap& arrays, bool compress);

// Writes `array` as one .npy file, atomically.
absl::Status WriteNpy(const std::string& path, const NpyArray& array);

}  // namespace mia::io

#endif  // MIA_CORE_IO_NPY_H_
