// UTF-8 validation (RFC 3629): the one check every text input goes through
// (text loaders, tokenizers). Rejects overlong forms, UTF-16 surrogates
// (U+D800..U+DFFF), code points above U+10FFFF, stray continuation bytes and
// sequences cut short.
//
// Thread-safety: free functions without state.
#ifndef MIA_CORE_COMMON_UTF8_H_
#define MIA_CORE_COMMON_UTF8_H_

#include <cstddef>

#include "absl/strings/string_view.h"

namespace mia {

// Length in bytes (1..4) of the valid UTF-8 sequence starting at text[pos],
// or 0 when the bytes there do not start a valid sequence (or pos is at the end).
size_t Utf8SequenceLength(absl::string_view text, size_t pos);

// Byte offset (0-based) of the first byte of the first invalid sequence, or
// absl::string_view::npos when `text` is all valid UTF-8.
size_t FindInvalidUtf8(absl::string_view text);

inline bool IsValidUtf8(absl::string_view text) {
  return FindInvalidUtf8(text) == absl::string_view::npos;
}

}  // namespace mia

#endif  // MIA_CORE_COMMON_UTF8_H_
