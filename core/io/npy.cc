// .npy parsing and serialization, and NpyArray element conversions.
//
// The header is a Python dict literal. Rather than a general literal parser,
// ParseNpy accepts exactly the grammar NumPy writes (three known keys in any
// order, string / bool / int-tuple values, optional trailing comma, spaces),
// which keeps the attack surface of untrusted headers small.
#include "core/io/npy.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <new>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/common/status_macros.h"
#include "core/io/internal.h"

namespace mia::io {
namespace {

using internal::SafeName;

constexpr bool kHostLittleEndian = __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__;
constexpr absl::string_view kMagic("\x93NUMPY", 6);
// NumPy 1.x allows 32 dimensions and 2.x 64; more is a hostile header.
constexpr size_t kMaxDims = 64;
// Unicode item counts above this would overflow item_size computations.
constexpr uint64_t kMaxUnicodeChars = uint64_t{1} << 40;
// NumPy aligns the start of array data to this many bytes.
constexpr size_t kArrayAlign = 64;

absl::Status ErrorAt(absl::string_view source, absl::string_view what, uint64_t offset) {
  return absl::InvalidArgumentError(absl::StrCat(source, ": ", what, " at offset ", offset));
}

template <typename T>
T Load(const uint8_t* p) {
  T value;
  std::memcpy(&value, p, sizeof(T));
  return value;
}

// Size in bytes of one element of a fixed-size dtype; 0 for unicode (variable).
size_t FixedItemSize(DType dtype) {
  switch (dtype) {
    case DType::kBool:
    case DType::kInt8:
    case DType::kUInt8:
      return 1;
    case DType::kInt16:
    case DType::kUInt16:
    case DType::kFloat16:
      return 2;
    case DType::kInt32:
    case DType::kUInt32:
    case DType::kFloat32:
      return 4;
    case DType::kInt64:
    case DType::kUInt64:
    case DType::kFloat64:
      return 8;
    case DType::kUnicode:
      return 0;
  }
  return 0;
}

// Number of elements of `shape` the way NumPy counts it: zero-length axes make
// the array empty, but the product of the other axes times `item_size` must
// still fit in int64 (NumPy's "array is too big"). Returns false on a negative
// axis or an overflow.
bool CountElements(const std::vector<int64_t>& shape, uint64_t item_size, int64_t* elements) {
  uint64_t bytes = item_size == 0 ? 1 : item_size;
  uint64_t product = 1;
  bool empty = false;
  for (int64_t dim : shape) {
    if (dim < 0) return false;
    if (dim == 0) {
      empty = true;
      continue;
    }
    if (__builtin_mul_overflow(product, static_cast<uint64_t>(dim), &product)) return false;
    if (__builtin_mul_overflow(bytes, static_cast<uint64_t>(dim), &bytes)) return false;
    if (bytes > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return false;
  }
  *elements = empty ? 0 : static_cast<int64_t>(product);
  return true;
}

std::string ShapeString(const std::vector<int64_t>& shape) {
  if (shape.size() == 1) return absl::StrCat("(", shape[0], ",)");
  return absl::StrCat("(", absl::StrJoin(shape, ", "), ")");
}

// Half precision to double, by hand: exact, since every float16 is a double.
double HalfToDouble(uint16_t half) {
  const bool negative = (half & 0x8000) != 0;
  const int exponent = (half >> 10) & 0x1f;
  const int mantissa = half & 0x3ff;
  double value;
  if (exponent == 0) {
    value = std::ldexp(static_cast<double>(mantissa), -24);  // zero or subnormal
  } else if (exponent == 31) {
    value = mantissa == 0 ? std::numeric_limits<double>::infinity()
                          : std::numeric_limits<double>::quiet_NaN();
  } else {
    value = std::ldexp(static_cast<double>(mantissa | 0x400), exponent - 25);
  }
  return negative ? -value : value;
}

void ByteSwapUnits(std::vector<uint8_t>* data, size_t unit) {
  if (unit <= 1) return;
  for (size_t i = 0; i + unit <= data->size(); i += unit) {
    uint8_t* p = data->data() + i;
    for (size_t a = 0, b = unit - 1; a < b; ++a, --b) std::swap(p[a], p[b]);
  }
}

// Reorders Fortran-ordered (column-major) elements into C order. `elements`
// is the product of `shape` (> 0, so every axis is >= 1).
std::vector<uint8_t> FortranToC(const std::vector<uint8_t>& in, const std::vector<int64_t>& shape,
                                uint64_t elements, size_t item_size) {
  std::vector<uint8_t> out(in.size());
  const size_t ndim = shape.size();
  std::vector<uint64_t> f_stride(ndim);
  uint64_t stride = 1;
  for (size_t k = 0; k < ndim; ++k) {
    f_stride[k] = stride;
    stride *= static_cast<uint64_t>(shape[k]);
  }
  std::vector<int64_t> index(ndim, 0);
  uint64_t f_offset = 0;  // Fortran position of the C-order element `c`
  for (uint64_t c = 0; c < elements; ++c) {
    if (item_size > 0) {
      std::memcpy(out.data() + c * item_size, in.data() + f_offset * item_size, item_size);
    }
    for (size_t k = ndim; k-- > 0;) {
      ++index[k];
      f_offset += f_stride[k];
      if (index[k] < shape[k]) break;
      f_offset -= f_stride[k] * static_cast<uint64_t>(shape[k]);
      index[k] = 0;
    }
  }
  return out;
}

struct Descr {
  DType dtype;
  size_t item_size;
  bool swap;  // stored in the other byte order than this machine's
};

absl::StatusOr<Descr> ParseDescr(absl::string_view descr, absl::string_view source,
                                 uint64_t offset) {
  const std::string shown = absl::StrCat("'", SafeName(descr), "'");
  absl::string_view rest = descr;
  char order = '=';
  if (!rest.empty() && (rest[0] == '<' || rest[0] == '>' || rest[0] == '|' || rest[0] == '=')) {
    order = rest[0];
    rest.remove_prefix(1);
  }
  if (!rest.empty() && rest[0] == 'O') {
    return ErrorAt(source,
                   absl::StrCat("object arrays (descr ", shown,
                                ") are refused: they are Python pickles, which mia never loads"),
                   offset);
  }
  const absl::Status unsupported =
      ErrorAt(source,
              absl::StrCat("unsupported descr ", shown,
                           " (mia reads bool, int8-64, uint8-64, float16/32/64 and unicode '<U')"),
              offset);
  if (rest.size() < 2 || rest.size() > 14) return unsupported;
  const char kind = rest[0];
  uint64_t count = 0;
  for (char ch : rest.substr(1)) {
    if (ch < '0' || ch > '9') return unsupported;
    count = count * 10 + static_cast<uint64_t>(ch - '0');
  }
  Descr result{DType::kBool, 1, false};
  switch (kind) {
    case 'b':
      if (count != 1) return unsupported;
      result.dtype = DType::kBool;
      break;
    case 'i':
    case 'u': {
      const bool is_signed = kind == 'i';
      if (count == 1) {
        result.dtype = is_signed ? DType::kInt8 : DType::kUInt8;
      } else if (count == 2) {
        result.dtype = is_signed ? DType::kInt16 : DType::kUInt16;
      } else if (count == 4) {
        result.dtype = is_signed ? DType::kInt32 : DType::kUInt32;
      } else if (count == 8) {
        result.dtype = is_signed ? DType::kInt64 : DType::kUInt64;
      } else {
        return unsupported;
      }
      break;
    }
    case 'f':
      if (count == 2) {
        result.dtype = DType::kFloat16;
      } else if (count == 4) {
        result.dtype = DType::kFloat32;
      } else if (count == 8) {
        result.dtype = DType::kFloat64;
      } else {
        return unsupported;
      }
      break;
    case 'U':
      if (count > kMaxUnicodeChars) return unsupported;
      result.dtype = DType::kUnicode;
      result.item_size = static_cast<size_t>(4 * count);
      break;
    default:
      return unsupported;
  }
  if (result.dtype != DType::kUnicode) result.item_size = FixedItemSize(result.dtype);
  const size_t unit = result.dtype == DType::kUnicode ? 4 : result.item_size;
  if (unit > 1) {
    // '|' means "byte order does not apply", which is false for multi-byte units.
    if (order == '|') return unsupported;
    result.swap = (order == '<' && !kHostLittleEndian) || (order == '>' && kHostLittleEndian);
  }
  return result;
}

// The parsed header dict.
struct Header {
  std::string descr;
  uint64_t descr_offset = 0;
  bool fortran_order = false;
  std::vector<int64_t> shape;
};

// Recursive-descent parser for the header dict; offsets in errors are byte
// offsets into the .npy image.
class HeaderParser {
 public:
  HeaderParser(absl::string_view text, uint64_t base_offset, absl::string_view source)
      : text_(text), base_(base_offset), source_(source) {}

  absl::StatusOr<Header> Parse() {
    Header header;
    bool seen_descr = false, seen_fortran = false, seen_shape = false;
    SkipSpace();
    MIA_RETURN_IF_ERROR(Expect('{', "header dict must start with '{'"));
    SkipSpace();
    while (!AtEnd() && Peek() != '}') {
      const uint64_t key_offset = Offset();
      std::string key;
      MIA_RETURN_IF_ERROR(ParseString(&key, "expected a quoted key in the header dict"));
      SkipSpace();
      MIA_RETURN_IF_ERROR(Expect(':', "expected ':' after a header key"));
      SkipSpace();
      bool* seen = nullptr;
      if (key == "descr") {
        seen = &seen_descr;
        header.descr_offset = Offset();
        if (!AtEnd() && Peek() == '[') {
          return Error(
              "structured dtypes (descr is a list of fields) are not supported; "
              "save one plain array per name");
        }
        MIA_RETURN_IF_ERROR(ParseString(&header.descr, "'descr' must be a quoted string"));
      } else if (key == "fortran_order") {
        seen = &seen_fortran;
        MIA_RETURN_IF_ERROR(ParseBool(&header.fortran_order));
      } else if (key == "shape") {
        seen = &seen_shape;
        MIA_RETURN_IF_ERROR(ParseShape(&header.shape));
      } else {
        return ErrorAt(source_, absl::StrCat("unexpected key '", SafeName(key), "' in the header"),
                       key_offset);
      }
      if (*seen) {
        return ErrorAt(source_, absl::StrCat("duplicate key '", key, "' in the header"),
                       key_offset);
      }
      *seen = true;
      SkipSpace();
      if (!AtEnd() && Peek() == ',') {
        ++pos_;
        SkipSpace();
      } else if (AtEnd() || Peek() != '}') {
        return Error("expected ',' or '}' in the header dict");
      }
    }
    MIA_RETURN_IF_ERROR(Expect('}', "header dict is not closed with '}'"));
    SkipSpace();
    if (!AtEnd()) return Error("unexpected text after the header dict");
    if (!seen_descr) return Error("header has no 'descr' key");
    if (!seen_fortran) return Error("header has no 'fortran_order' key");
    if (!seen_shape) return Error("header has no 'shape' key");
    return header;
  }

 private:
  bool AtEnd() const { return pos_ >= text_.size(); }
  char Peek() const { return text_[pos_]; }
  uint64_t Offset() const { return base_ + pos_; }
  absl::Status Error(absl::string_view what) const { return ErrorAt(source_, what, Offset()); }

  void SkipSpace() {
    while (!AtEnd() && (Peek() == ' ' || Peek() == '\t' || Peek() == '\n' || Peek() == '\r')) {
      ++pos_;
    }
  }

  absl::Status Expect(char ch, absl::string_view what) {
    if (AtEnd() || Peek() != ch) return Error(what);
    ++pos_;
    return absl::OkStatus();
  }

  absl::Status ParseString(std::string* out, absl::string_view what) {
    if (AtEnd() || (Peek() != '\'' && Peek() != '"')) return Error(what);
    const char quote = Peek();
    const size_t start = ++pos_;
    while (!AtEnd() && Peek() != quote) {
      if (Peek() == '\\') return Error("escape sequences are not supported in header strings");
      if (Peek() == '\n') break;
      ++pos_;
    }
    if (AtEnd() || Peek() != quote) return Error("unterminated string in the header");
    out->assign(text_.data() + start, pos_ - start);
    ++pos_;
    return absl::OkStatus();
  }

  bool ConsumeWord(absl::string_view word) {
    if (text_.substr(pos_, word.size()) != word) return false;
    const size_t end = pos_ + word.size();
    if (end < text_.size()) {
      const char next = text_[end];
      if ((next >= 'a' && next <= 'z') || (next >= 'A' && next <= 'Z') ||
          (next >= '0' && next <= '9') || next == '_') {
        return false;
      }
    }
    pos_ = end;
    return true;
  }

  absl::Status ParseBool(bool* out) {
    if (ConsumeWord("True")) {
      *out = true;
    } else if (ConsumeWord("False")) {
      *out = false;
    } else {
      return Error("'fortran_order' must be True or False");
    }
    return absl::OkStatus();
  }

  absl::Status ParseShape(std::vector<int64_t>* shape) {
    MIA_RETURN_IF_ERROR(Expect('(', "'shape' must be a tuple"));
    SkipSpace();
    bool trailing_comma = false;
    while (!AtEnd() && Peek() != ')') {
      if (shape->size() >= kMaxDims) {
        return Error(absl::StrCat("'shape' has more than ", kMaxDims, " dimensions"));
      }
      int64_t dim = 0;
      MIA_RETURN_IF_ERROR(ParseDim(&dim));
      shape->push_back(dim);
      SkipSpace();
      trailing_comma = false;
      if (!AtEnd() && Peek() == ',') {
        ++pos_;
        trailing_comma = true;
        SkipSpace();
      } else if (AtEnd() || Peek() != ')') {
        return Error("expected ',' or ')' in 'shape'");
      }
    }
    MIA_RETURN_IF_ERROR(Expect(')', "'shape' tuple is not closed"));
    // "(3)" is the integer 3 in Python, not a tuple: NumPy would refuse it.
    if (shape->size() == 1 && !trailing_comma) {
      return Error("'shape' of one dimension needs a trailing comma, e.g. (3,)");
    }
    return absl::OkStatus();
  }

  absl::Status ParseDim(int64_t* dim) {
    if (!AtEnd() && Peek() == '-') return Error("negative dimension in 'shape'");
    if (AtEnd() || Peek() < '0' || Peek() > '9') return Error("expected an integer in 'shape'");
    uint64_t value = 0;
    while (!AtEnd() && Peek() >= '0' && Peek() <= '9') {
      const uint64_t digit = static_cast<uint64_t>(Peek() - '0');
      if (value > (static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) - digit) / 10) {
        return Error("dimension in 'shape' does not fit in int64");
      }
      value = value * 10 + digit;
      ++pos_;
    }
    // Python 2 era files write longs as "3L".
    if (!AtEnd() && (Peek() == 'L' || Peek() == 'l')) ++pos_;
    *dim = static_cast<int64_t>(value);
    return absl::OkStatus();
  }

  absl::string_view text_;
  uint64_t base_;
  absl::string_view source_;
  size_t pos_ = 0;
};

// What a .npy header declares, and where its data starts.
struct ParsedHeader {
  Header header;
  Descr descr{DType::kFloat64, 8, false};
  int64_t elements = 0;
  uint64_t data_bytes = 0;
  uint64_t data_start = 0;
};

// Parses the preamble and header dict of a .npy image and checks the declared
// size against the limits. `bytes` need only hold the header (a prefix of the
// image): nothing after it is read, so callers can learn an array's shape
// without decoding its data.
absl::StatusOr<ParsedHeader> ParseNpyHeaderImpl(absl::string_view bytes, absl::string_view source,
                                                const ReadLimits& limits) {
  if (bytes.size() < kMagic.size() || bytes.substr(0, kMagic.size()) != kMagic) {
    return ErrorAt(source, "not a .npy image (bad magic; expected \\x93NUMPY)", 0);
  }
  if (bytes.size() < 8) return ErrorAt(source, "truncated .npy preamble (no version)", 6);
  const int major = static_cast<uint8_t>(bytes[6]);
  const int minor = static_cast<uint8_t>(bytes[7]);
  if (minor != 0 || major < 1 || major > 3) {
    return ErrorAt(source,
                   absl::StrCat("unsupported .npy format version ", major, ".", minor,
                                " (mia reads 1.0, 2.0 and 3.0)"),
                   6);
  }
  const size_t length_bytes = major == 1 ? 2 : 4;
  const size_t header_start = 8 + length_bytes;
  if (bytes.size() < header_start) {
    return ErrorAt(source, "truncated .npy preamble (no header length)", 8);
  }
  const uint8_t* raw = reinterpret_cast<const uint8_t*>(bytes.data());
  uint64_t header_len = raw[8] | (uint64_t{raw[9]} << 8);
  if (length_bytes == 4) header_len |= (uint64_t{raw[10]} << 16) | (uint64_t{raw[11]} << 24);
  // Before anything else about the header: a reader that holds only a prefix
  // (ReadArrayInfos) then refuses it with the same message as one that holds
  // the whole image.
  if (header_start + header_len > internal::kMaxNpyHeaderBytes) {
    return ErrorAt(
        source,
        absl::StrCat("header of ", header_start + header_len, " bytes is above the limit of ",
                     internal::kMaxNpyHeaderBytes, " bytes"),
        8);
  }
  if (header_len > bytes.size() - header_start) {
    return ErrorAt(source,
                   absl::StrCat("header length ", header_len, " runs past the end of the data (",
                                bytes.size(), " bytes)"),
                   8);
  }
  const absl::string_view header_text = bytes.substr(header_start, header_len);
  MIA_ASSIGN_OR_RETURN(Header header, HeaderParser(header_text, header_start, source).Parse());
  MIA_ASSIGN_OR_RETURN(Descr descr, ParseDescr(header.descr, source, header.descr_offset));

  int64_t elements = 0;
  if (!CountElements(header.shape, descr.item_size, &elements)) {
    return ErrorAt(source,
                   absl::StrCat("shape ", ShapeString(header.shape), " of ", descr.item_size,
                                "-byte elements overflows"),
                   header_start);
  }
  // No overflow: CountElements bounded elements * item_size by INT64_MAX.
  const uint64_t data_bytes = static_cast<uint64_t>(elements) * descr.item_size;
  if (data_bytes > limits.max_array_bytes) {
    return absl::ResourceExhaustedError(
        absl::StrCat(source, ": array of shape ", ShapeString(header.shape), " needs ", data_bytes,
                     " bytes, above the limit of ", limits.max_array_bytes,
                     " bytes (ReadLimits::max_array_bytes) at offset ", header_start));
  }
  ParsedHeader parsed;
  parsed.header = std::move(header);
  parsed.descr = std::move(descr);
  parsed.elements = elements;
  parsed.data_bytes = data_bytes;
  parsed.data_start = header_start + header_len;
  return parsed;
}

// `owned`, when given, holds `bytes`: its buffer becomes the array's data.
absl::StatusOr<NpyArray> ParseNpyImpl(absl::string_view bytes, absl::string_view source,
                                      const ReadLimits& limits,
                                      std::vector<uint8_t>* owned = nullptr) {
  MIA_ASSIGN_OR_RETURN(ParsedHeader parsed, ParseNpyHeaderImpl(bytes, source, limits));
  Header& header = parsed.header;
  const Descr& descr = parsed.descr;
  const int64_t elements = parsed.elements;
  const uint64_t data_bytes = parsed.data_bytes;
  const uint64_t data_start = parsed.data_start;
  const uint8_t* raw = reinterpret_cast<const uint8_t*>(bytes.data());
  const uint64_t present = bytes.size() - data_start;
  if (present < data_bytes) {
    return ErrorAt(source,
                   absl::StrCat("array data is truncated: shape ", ShapeString(header.shape),
                                " needs ", data_bytes, " bytes but ", present, " are present"),
                   data_start);
  }
  if (present > data_bytes) {
    return ErrorAt(source,
                   absl::StrCat(present - data_bytes, " unexpected bytes after the array data"),
                   data_start + data_bytes);
  }

  NpyArray array;
  array.dtype = descr.dtype;
  array.item_size = descr.item_size;
  array.shape = std::move(header.shape);
  if (owned != nullptr) {
    // Drop the preamble in place: one buffer of a large array, not two.
    owned->erase(owned->begin(), owned->begin() + static_cast<std::ptrdiff_t>(data_start));
    owned->resize(data_bytes);
    array.data = std::move(*owned);
  } else {
    array.data.assign(raw + data_start, raw + data_start + data_bytes);
  }
  if (descr.swap) ByteSwapUnits(&array.data, descr.dtype == DType::kUnicode ? 4 : descr.item_size);
  if (header.fortran_order && array.shape.size() >= 2 && elements > 1) {
    array.data =
        FortranToC(array.data, array.shape, static_cast<uint64_t>(elements), descr.item_size);
  }
  return array;
}

std::string DescrOf(const NpyArray& array) {
  const char native = kHostLittleEndian ? '<' : '>';
  switch (array.dtype) {
    case DType::kBool:
      return "|b1";
    case DType::kInt8:
      return "|i1";
    case DType::kUInt8:
      return "|u1";
    case DType::kInt16:
      return absl::StrCat(std::string(1, native), "i2");
    case DType::kInt32:
      return absl::StrCat(std::string(1, native), "i4");
    case DType::kInt64:
      return absl::StrCat(std::string(1, native), "i8");
    case DType::kUInt16:
      return absl::StrCat(std::string(1, native), "u2");
    case DType::kUInt32:
      return absl::StrCat(std::string(1, native), "u4");
    case DType::kUInt64:
      return absl::StrCat(std::string(1, native), "u8");
    case DType::kFloat16:
      return absl::StrCat(std::string(1, native), "f2");
    case DType::kFloat32:
      return absl::StrCat(std::string(1, native), "f4");
    case DType::kFloat64:
      return absl::StrCat(std::string(1, native), "f8");
    case DType::kUnicode:
      return absl::StrCat(std::string(1, native), "U", array.item_size / 4);
  }
  return "|V1";
}

// Conversion plumbing -------------------------------------------------------

absl::Status ConversionError(absl::string_view name, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("array '", name, "': ", what));
}

absl::StatusOr<int64_t> CheckConsistent(const NpyArray& array, absl::string_view name) {
  return internal::CheckArray(array, name);
}

absl::Status BadBoolElement(absl::string_view name, int64_t index) {
  return ConversionError(name, absl::StrCat("element ", index, " of the bool array is not 0 or 1"));
}

template <typename T, typename Out>
void ConvertAll(const NpyArray& array, int64_t n, std::vector<Out>* out) {
  const uint8_t* p = array.data.data();
  for (int64_t i = 0; i < n; ++i) {
    (*out)[static_cast<size_t>(i)] = static_cast<Out>(Load<T>(p + i * sizeof(T)));
  }
}

// Shared body of ToDouble and ToFloat.
template <typename Out>
absl::StatusOr<std::vector<Out>> ToFloating(const NpyArray& array, absl::string_view name) {
  MIA_ASSIGN_OR_RETURN(const int64_t n, CheckConsistent(array, name));
  std::vector<Out> out(static_cast<size_t>(n));
  switch (array.dtype) {
    case DType::kBool:
      for (int64_t i = 0; i < n; ++i) {
        const uint8_t v = array.data[static_cast<size_t>(i)];
        if (v > 1) return BadBoolElement(name, i);
        out[static_cast<size_t>(i)] = static_cast<Out>(v);
      }
      break;
    case DType::kInt8:
      ConvertAll<int8_t>(array, n, &out);
      break;
    case DType::kInt16:
      ConvertAll<int16_t>(array, n, &out);
      break;
    case DType::kInt32:
      ConvertAll<int32_t>(array, n, &out);
      break;
    case DType::kInt64:
      ConvertAll<int64_t>(array, n, &out);
      break;
    case DType::kUInt8:
      ConvertAll<uint8_t>(array, n, &out);
      break;
    case DType::kUInt16:
      ConvertAll<uint16_t>(array, n, &out);
      break;
    case DType::kUInt32:
      ConvertAll<uint32_t>(array, n, &out);
      break;
    case DType::kUInt64:
      ConvertAll<uint64_t>(array, n, &out);
      break;
    case DType::kFloat32:
      ConvertAll<float>(array, n, &out);
      break;
    case DType::kFloat64:
      ConvertAll<double>(array, n, &out);
      break;
    case DType::kFloat16:
      for (int64_t i = 0; i < n; ++i) {
        out[static_cast<size_t>(i)] =
            static_cast<Out>(HalfToDouble(Load<uint16_t>(array.data.data() + 2 * i)));
      }
      break;
    case DType::kUnicode:
      return ConversionError(name, "is a unicode (string) array; expected numbers");
  }
  return out;
}

// Appends `code_point` as UTF-8; false if it is not a Unicode scalar value.
bool AppendUtf8(uint32_t code_point, std::string* out) {
  if (code_point >= 0xD800 && code_point <= 0xDFFF) return false;
  if (code_point < 0x80) {
    out->push_back(static_cast<char>(code_point));
  } else if (code_point < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (code_point >> 6)));
    out->push_back(static_cast<char>(0x80 | (code_point & 0x3F)));
  } else if (code_point < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (code_point >> 12)));
    out->push_back(static_cast<char>(0x80 | ((code_point >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (code_point & 0x3F)));
  } else if (code_point <= 0x10FFFF) {
    out->push_back(static_cast<char>(0xF0 | (code_point >> 18)));
    out->push_back(static_cast<char>(0x80 | ((code_point >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((code_point >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (code_point & 0x3F)));
  } else {
    return false;
  }
  return true;
}

// Decodes UTF-8; malformed sequences become U+FFFD (FromString cannot fail).
std::vector<uint32_t> DecodeUtf8(absl::string_view text) {
  constexpr uint32_t kReplacement = 0xFFFD;
  std::vector<uint32_t> out;
  size_t i = 0;
  while (i < text.size()) {
    const uint8_t lead = static_cast<uint8_t>(text[i]);
    int extra = 0;
    uint32_t cp = 0;
    uint32_t min_cp = 0;
    if (lead < 0x80) {
      cp = lead;
    } else if ((lead & 0xE0) == 0xC0) {
      extra = 1;
      cp = lead & 0x1F;
      min_cp = 0x80;
    } else if ((lead & 0xF0) == 0xE0) {
      extra = 2;
      cp = lead & 0x0F;
      min_cp = 0x800;
    } else if ((lead & 0xF8) == 0xF0) {
      extra = 3;
      cp = lead & 0x07;
      min_cp = 0x10000;
    } else {
      out.push_back(kReplacement);
      ++i;
      continue;
    }
    bool ok = i + static_cast<size_t>(extra) < text.size();
    for (int k = 1; ok && k <= extra; ++k) {
      const uint8_t cont = static_cast<uint8_t>(text[i + static_cast<size_t>(k)]);
      if ((cont & 0xC0) != 0x80) {
        ok = false;
      } else {
        cp = (cp << 6) | (cont & 0x3F);
      }
    }
    if (!ok || cp < min_cp || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
      out.push_back(kReplacement);
      ++i;
      continue;
    }
    out.push_back(cp);
    i += static_cast<size_t>(extra) + 1;
  }
  return out;
}

template <typename T>
NpyArray FromValues(DType dtype, std::vector<int64_t> shape, const std::vector<T>& values) {
  NpyArray array;
  array.dtype = dtype;
  array.item_size = sizeof(T);
  array.shape = std::move(shape);
  array.data.resize(values.size() * sizeof(T));
  if (!values.empty()) std::memcpy(array.data.data(), values.data(), array.data.size());
  return array;
}

}  // namespace

namespace internal {

absl::StatusOr<int64_t> CheckArray(const NpyArray& array, absl::string_view name) {
  const size_t fixed = FixedItemSize(array.dtype);
  if (array.dtype == DType::kUnicode ? array.item_size % 4 != 0 : array.item_size != fixed) {
    return ConversionError(name, absl::StrCat("item size ", array.item_size, " does not match ",
                                              DTypeName(array.dtype)));
  }
  int64_t elements = 0;
  if (!CountElements(array.shape, array.item_size, &elements) ||
      array.data.size() != static_cast<uint64_t>(elements) * array.item_size) {
    return ConversionError(name, absl::StrCat("data size ", array.data.size(),
                                              " does not match shape ", ShapeString(array.shape)));
  }
  return elements;
}

}  // namespace internal

std::string DTypeName(DType dtype) {
  switch (dtype) {
    case DType::kBool:
      return "bool";
    case DType::kInt8:
      return "int8";
    case DType::kInt16:
      return "int16";
    case DType::kInt32:
      return "int32";
    case DType::kInt64:
      return "int64";
    case DType::kUInt8:
      return "uint8";
    case DType::kUInt16:
      return "uint16";
    case DType::kUInt32:
      return "uint32";
    case DType::kUInt64:
      return "uint64";
    case DType::kFloat16:
      return "float16";
    case DType::kFloat32:
      return "float32";
    case DType::kFloat64:
      return "float64";
    case DType::kUnicode:
      return "unicode";
  }
  return "unknown";
}

int64_t NpyArray::num_elements() const {
  int64_t elements = 0;
  // An impossible shape counts as no elements; CheckConsistent reports it.
  if (!CountElements(shape, item_size, &elements)) return 0;
  return elements;
}

absl::StatusOr<std::vector<double>> NpyArray::ToDouble(absl::string_view name) const {
  return ToFloating<double>(*this, name);
}

absl::StatusOr<std::vector<float>> NpyArray::ToFloat(absl::string_view name) const {
  return ToFloating<float>(*this, name);
}

absl::StatusOr<std::vector<int64_t>> NpyArray::ToInt64(absl::string_view name) const {
  MIA_ASSIGN_OR_RETURN(const int64_t n, CheckConsistent(*this, name));
  std::vector<int64_t> out(static_cast<size_t>(n));
  switch (dtype) {
    case DType::kBool:
      for (int64_t i = 0; i < n; ++i) {
        const uint8_t v = data[static_cast<size_t>(i)];
        if (v > 1) return BadBoolElement(name, i);
        out[static_cast<size_t>(i)] = v;
      }
      break;
    case DType::kInt8:
      ConvertAll<int8_t>(*this, n, &out);
      break;
    case DType::kInt16:
      ConvertAll<int16_t>(*this, n, &out);
      break;
    case DType::kInt32:
      ConvertAll<int32_t>(*this, n, &out);
      break;
    case DType::kInt64:
      ConvertAll<int64_t>(*this, n, &out);
      break;
    case DType::kUInt8:
      ConvertAll<uint8_t>(*this, n, &out);
      break;
    case DType::kUInt16:
      ConvertAll<uint16_t>(*this, n, &out);
      break;
    case DType::kUInt32:
      ConvertAll<uint32_t>(*this, n, &out);
      break;
    case DType::kUInt64:
      for (int64_t i = 0; i < n; ++i) {
        const uint64_t v = Load<uint64_t>(data.data() + 8 * i);
        if (v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
          return ConversionError(
              name, absl::StrCat("element ", i, " of the uint64 array exceeds INT64_MAX"));
        }
        out[static_cast<size_t>(i)] = static_cast<int64_t>(v);
      }
      break;
    case DType::kFloat16:
    case DType::kFloat32:
    case DType::kFloat64:
    case DType::kUnicode:
      return ConversionError(name, absl::StrCat("is a ", DTypeName(dtype),
                                                " array; expected an integer or bool array"));
  }
  return out;
}

absl::StatusOr<std::vector<uint8_t>> NpyArray::ToBool(absl::string_view name) const {
  if (dtype == DType::kBool) {
    MIA_ASSIGN_OR_RETURN(const int64_t n, CheckConsistent(*this, name));
    for (int64_t i = 0; i < n; ++i) {
      if (data[static_cast<size_t>(i)] > 1) return BadBoolElement(name, i);
    }
    return data;
  }
  if (dtype == DType::kFloat16 || dtype == DType::kFloat32 || dtype == DType::kFloat64 ||
      dtype == DType::kUnicode) {
    return ConversionError(name, absl::StrCat("is a ", DTypeName(dtype),
                                              " array; expected a bool or integer 0/1 array"));
  }
  MIA_ASSIGN_OR_RETURN(std::vector<int64_t> values, ToInt64(name));
  std::vector<uint8_t> out(values.size());
  for (size_t i = 0; i < values.size(); ++i) {
    if (values[i] != 0 && values[i] != 1) {
      return ConversionError(
          name, absl::StrCat("element ", i, " of the ", DTypeName(dtype), " array is not 0 or 1"));
    }
    out[i] = static_cast<uint8_t>(values[i]);
  }
  return out;
}

absl::StatusOr<std::string> NpyArray::ToString(absl::string_view name) const {
  if (dtype != DType::kUnicode) {
    return ConversionError(name,
                           absl::StrCat("is a ", DTypeName(dtype), " array; expected a string"));
  }
  MIA_ASSIGN_OR_RETURN(const int64_t n, CheckConsistent(*this, name));
  if (n != 1) {
    return ConversionError(name, absl::StrCat("holds ", n, " strings; expected exactly one"));
  }
  const size_t chars = item_size / 4;
  size_t used = chars;
  // NumPy pads short strings with NUL code units; they are not part of the value.
  while (used > 0 && Load<uint32_t>(data.data() + 4 * (used - 1)) == 0) --used;
  std::string out;
  out.reserve(used);
  for (size_t i = 0; i < used; ++i) {
    if (!AppendUtf8(Load<uint32_t>(data.data() + 4 * i), &out)) {
      return ConversionError(name,
                             absl::StrCat("character ", i, " is not a valid Unicode code point"));
    }
  }
  return out;
}

absl::StatusOr<std::vector<std::string>> NpyArray::ToStrings(absl::string_view name) const {
  if (dtype != DType::kUnicode) {
    return ConversionError(name,
                           absl::StrCat("is a ", DTypeName(dtype), " array; expected strings"));
  }
  MIA_ASSIGN_OR_RETURN(const int64_t n, CheckConsistent(*this, name));
  const size_t chars = item_size / 4;
  std::vector<std::string> out(static_cast<size_t>(n));
  for (int64_t e = 0; e < n; ++e) {
    const uint8_t* base = data.data() + static_cast<size_t>(e) * item_size;
    size_t used = chars;
    while (used > 0 && Load<uint32_t>(base + 4 * (used - 1)) == 0) --used;
    std::string& text = out[static_cast<size_t>(e)];
    text.reserve(used);
    for (size_t i = 0; i < used; ++i) {
      if (!AppendUtf8(Load<uint32_t>(base + 4 * i), &text)) {
        return ConversionError(name, absl::StrCat("element ", e, ": character ", i,
                                                  " is not a valid Unicode code point"));
      }
    }
  }
  return out;
}

NpyArray NpyArray::FromDouble(std::vector<int64_t> shape, const std::vector<double>& values) {
  return FromValues(DType::kFloat64, std::move(shape), values);
}

NpyArray NpyArray::FromFloat(std::vector<int64_t> shape, const std::vector<float>& values) {
  return FromValues(DType::kFloat32, std::move(shape), values);
}

NpyArray NpyArray::FromInt64(std::vector<int64_t> shape, const std::vector<int64_t>& values) {
  return FromValues(DType::kInt64, std::move(shape), values);
}

NpyArray NpyArray::FromBool(std::vector<int64_t> shape, const std::vector<uint8_t>& values) {
  NpyArray array = FromValues(DType::kBool, std::move(shape), values);
  for (uint8_t& v : array.data) v = v != 0 ? 1 : 0;
  return array;
}

NpyArray NpyArray::FromString(const std::string& value) {
  std::vector<uint32_t> code_points = DecodeUtf8(value);
  // NumPy gives the empty string dtype '<U1'.
  if (code_points.empty()) code_points.push_back(0);
  NpyArray array = FromValues(DType::kUnicode, {}, code_points);
  array.item_size = 4 * code_points.size();
  return array;
}

NpyArray NpyArray::FromStrings(const std::vector<std::string>& values) {
  std::vector<std::vector<uint32_t>> decoded;
  size_t width = 1;
  for (const std::string& v : values) {
    decoded.push_back(DecodeUtf8(v));
    width = std::max(width, decoded.back().size());
  }
  std::vector<uint32_t> code_points(values.size() * width, 0);
  for (size_t e = 0; e < decoded.size(); ++e) {
    std::copy(decoded[e].begin(), decoded[e].end(), code_points.begin() + e * width);
  }
  NpyArray array = FromValues(DType::kUnicode, {static_cast<int64_t>(values.size())}, code_points);
  array.item_size = 4 * width;
  return array;
}

absl::StatusOr<NpyArray> ParseNpy(absl::string_view bytes, absl::string_view source,
                                  const ReadLimits& limits) {
  // The only exceptions reachable here are allocation failures within limits.
  try {
    return ParseNpyImpl(bytes, source, limits);
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError(absl::StrCat(source, ": out of memory"));
  }
}

absl::StatusOr<NpyArray> ParseNpyBuffer(std::vector<uint8_t>&& bytes, absl::string_view source,
                                        const ReadLimits& limits) {
  try {
    std::vector<uint8_t> owned = std::move(bytes);
    const absl::string_view view(reinterpret_cast<const char*>(owned.data()), owned.size());
    return ParseNpyImpl(view, source, limits, &owned);
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError(absl::StrCat(source, ": out of memory"));
  }
}

absl::StatusOr<NpyArrayInfo> ParseNpyHeader(absl::string_view prefix, absl::string_view source,
                                            const ReadLimits& limits) {
  MIA_ASSIGN_OR_RETURN(ParsedHeader parsed, ParseNpyHeaderImpl(prefix, source, limits));
  NpyArrayInfo info;
  info.dtype = parsed.descr.dtype;
  info.item_size = parsed.descr.item_size;
  info.shape = std::move(parsed.header.shape);
  info.data_bytes = parsed.data_bytes;
  info.data_offset = parsed.data_start;
  return info;
}

std::string SerializeNpy(const NpyArray& array) {
  std::string shape = ShapeString(array.shape);
  const std::string dict = absl::StrCat("{'descr': '", DescrOf(array),
                                        "', 'fortran_order': False, 'shape': ", shape, ", }");
  // Format 1.0 stores the header length in 2 bytes; 2.0 in 4.
  size_t preamble = 10;
  if (dict.size() + 1 + kArrayAlign > 0xFFFF) preamble = 12;
  const size_t unpadded = preamble + dict.size() + 1;  // + '\n'
  const size_t padding = (kArrayAlign - unpadded % kArrayAlign) % kArrayAlign;
  const size_t header_len = dict.size() + padding + 1;

  std::string out;
  out.reserve(preamble + header_len + array.data.size());
  out.append(kMagic.data(), kMagic.size());
  out.push_back(static_cast<char>(preamble == 10 ? 1 : 2));
  out.push_back(0);
  for (size_t k = 0; k < preamble - 8; ++k) {
    out.push_back(static_cast<char>((header_len >> (8 * k)) & 0xFF));
  }
  out.append(dict);
  out.append(padding, ' ');
  out.push_back('\n');
  out.append(reinterpret_cast<const char*>(array.data.data()), array.data.size());
  return out;
}

}  // namespace mia::io
