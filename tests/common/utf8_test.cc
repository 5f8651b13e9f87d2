// The fast validator against a plain definition of UTF-8 (decode the code
// point, then check its range and shortest form), exhaustively over every
// string of 1 to 3 bytes, plus hand-picked cases.
#include "core/common/utf8.h"

#include <cstdint>
#include <string>

#include "gtest/gtest.h"

namespace mia {
namespace {

// Definition (RFC 3629): one code point, shortest form, not a surrogate, at
// most U+10FFFF, consuming exactly `s`.
bool IsOneCodePoint(const std::string& s) {
  const auto b = [&](size_t i) { return static_cast<uint32_t>(static_cast<uint8_t>(s[i])); };
  size_t n;
  uint32_t cp;
  if (b(0) < 0x80) {
    n = 1, cp = b(0);
  } else if ((b(0) & 0xE0) == 0xC0) {
    n = 2, cp = b(0) & 0x1F;
  } else if ((b(0) & 0xF0) == 0xE0) {
    n = 3, cp = b(0) & 0x0F;
  } else if ((b(0) & 0xF8) == 0xF0) {
    n = 4, cp = b(0) & 0x07;
  } else {
    return false;
  }
  if (s.size() != n) return false;
  for (size_t i = 1; i < n; ++i) {
    if ((b(i) & 0xC0) != 0x80) return false;
    cp = (cp << 6) | (b(i) & 0x3F);
  }
  const uint32_t min[] = {0, 0, 0x80, 0x800, 0x10000};
  return cp >= min[n] && cp <= 0x10FFFF && !(cp >= 0xD800 && cp <= 0xDFFF);
}

// Definition of a valid string: splits into code points, trying each length.
bool IsValidByDefinition(const std::string& s) {
  if (s.empty()) return true;
  for (size_t n = 1; n <= 4 && n <= s.size(); ++n) {
    if (IsOneCodePoint(s.substr(0, n))) return IsValidByDefinition(s.substr(n));
  }
  return false;
}

TEST(Utf8Test, MatchesTheDefinitionOnEveryShortString) {
  std::string s;
  for (int length = 1; length <= 3; ++length) {
    s.assign(length, '\0');
    const uint32_t count = 1u << (8 * length);
    for (uint32_t v = 0; v < count; ++v) {
      for (int i = 0; i < length; ++i) s[i] = static_cast<char>(v >> (8 * i));
      ASSERT_EQ(IsValidUtf8(s), IsValidByDefinition(s)) << length << " bytes, value " << v;
    }
  }
}

TEST(Utf8Test, FourByteBoundaries) {
  EXPECT_TRUE(IsValidUtf8("\xF0\x90\x80\x80"));   // U+10000
  EXPECT_TRUE(IsValidUtf8("\xF4\x8F\xBF\xBF"));   // U+10FFFF
  EXPECT_FALSE(IsValidUtf8("\xF4\x90\x80\x80"));  // U+110000
  EXPECT_FALSE(IsValidUtf8("\xF0\x8F\xBF\xBF"));  // overlong U+FFFF
  EXPECT_FALSE(IsValidUtf8("\xF5\x80\x80\x80"));
  EXPECT_FALSE(IsValidUtf8("\xF0\x9F\x98"));     // cut short
  EXPECT_TRUE(IsValidUtf8("\xF0\x9F\x98\x80"));  // U+1F600
}

TEST(Utf8Test, ReportsTheOffsetOfTheFirstBadSequence) {
  EXPECT_EQ(FindInvalidUtf8("plain ascii text, longer than eight bytes"), absl::string_view::npos);
  EXPECT_EQ(FindInvalidUtf8("caf\xC3\xA9 ok"), absl::string_view::npos);
  EXPECT_EQ(FindInvalidUtf8("abcdefghij\xC0\x80"), 10u);  // overlong NUL
  EXPECT_EQ(FindInvalidUtf8("abc\xED\xA0\x80xyz"), 3u);   // surrogate U+D800
  EXPECT_EQ(FindInvalidUtf8("ab\xC3\xA9\xE2\x82"), 4u);   // truncated at the end
  EXPECT_EQ(FindInvalidUtf8("\x80"), 0u);                 // stray continuation
  EXPECT_EQ(FindInvalidUtf8(absl::string_view("a\0b\xFF", 4)), 3u);
  EXPECT_EQ(Utf8SequenceLength("\xE2\x82\xAC", 0), 3u);
  EXPECT_EQ(Utf8SequenceLength("x", 1), 0u);
}

}  // namespace
}  // namespace mia
