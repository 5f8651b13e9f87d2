#include "core/common/utf8.h"

#include <cstdint>
#include <cstring>

namespace mia {

size_t Utf8SequenceLength(absl::string_view text, size_t pos) {
  if (pos >= text.size()) return 0;
  const auto byte = [&](size_t i) { return static_cast<uint8_t>(text[i]); };
  const uint8_t b0 = byte(pos);
  if (b0 < 0x80) return 1;
  size_t length;
  // The allowed range of the second byte excludes overlongs (E0, F0),
  // surrogates (ED) and code points above U+10FFFF (F4) (RFC 3629, section 4).
  uint8_t low = 0x80, high = 0xBF;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    length = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    length = 3;
    if (b0 == 0xE0) low = 0xA0;
    if (b0 == 0xED) high = 0x9F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    length = 4;
    if (b0 == 0xF0) low = 0x90;
    if (b0 == 0xF4) high = 0x8F;
  } else {
    return 0;  // a continuation byte, C0/C1 (overlong) or F5..FF
  }
  if (text.size() - pos < length) return 0;
  const uint8_t b1 = byte(pos + 1);
  if (b1 < low || b1 > high) return 0;
  for (size_t i = 2; i < length; ++i) {
    if ((byte(pos + i) & 0xC0) != 0x80) return 0;
  }
  return length;
}

size_t FindInvalidUtf8(absl::string_view text) {
  size_t pos = 0;
  const size_t size = text.size();
  while (pos < size) {
    // ASCII fast path, 8 bytes at a time.
    while (pos + 8 <= size) {
      uint64_t word;
      std::memcpy(&word, text.data() + pos, 8);
      if ((word & 0x8080808080808080ull) != 0) break;
      pos += 8;
    }
    if (pos >= size) break;
    const size_t length = Utf8SequenceLength(text, pos);
    if (length == 0) return pos;
    pos += length;
  }
  return absl::string_view::npos;
}

}  // namespace mia
