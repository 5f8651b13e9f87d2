#include "core/common/sha256.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace mia {
namespace {

// The digest comes from OpenSSL; these known answers and streaming
// properties check the wrapper (copies, splits, Digest not ending the stream).
// FIPS 180-4 examples (NIST CSRC "SHA256.pdf" and the classic test vectors).
TEST(Sha256Test, EmptyMessage) {
  EXPECT_EQ(Sha256Hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST(Sha256Test, Abc) {
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(Sha256Test, TwoBlockMessage448Bits) {
  EXPECT_EQ(Sha256Hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

TEST(Sha256Test, Message896Bits) {
  EXPECT_EQ(
      Sha256Hex("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmno"
                "pqklmnopqrlmnopqrsmnopqrstnopqrstu"),
      "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
}

TEST(Sha256Test, OneMillionA) {
  const std::string expected = "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0";
  EXPECT_EQ(Sha256Hex(std::string(1000000, 'a')), expected);
  Sha256 streamed;
  const std::string chunk(1000, 'a');
  for (int i = 0; i < 1000; ++i) streamed.Update(chunk);
  EXPECT_EQ(streamed.HexDigest(), expected);
}

// Lengths around the padding boundaries (55/56 bytes: the length field fits in
// the last block or not; 64: exactly one block). Reference values from an
// independent implementation (Python hashlib).
TEST(Sha256Test, PaddingBoundaries) {
  const std::vector<std::pair<int, std::string>> cases = {
      {55, "d5e285683cd4efc02d021a5c62014694958901005d6f71e89e0989fac77e4072"},
      {56, "04c26261370ee7541549d16dee320c723e3fd14671e66a099afe0a377c16888e"},
      {63, "75220b47218278e656f2013bb8f0c455a25eaf01e86c64924e9d48d89776d6f2"},
      {64, "7ce100971f64e7001e8fe5a51973ecdfe1ced42befe7ee8d5fd6219506b5393c"},
      {65, "9537c5fdf120482f7d58d25e9ed583f52c02b4e304ea814db1633ad565aed7e9"},
      {119, "000b48d4edf0fa7bee3c6236ecd2785baa5db4eeb8bb54341b029e0d9fa5fb0c"},
      {120, "13f05a0b594787f5ecd315edc96141bd3243203d1b7d4f0836f37308b276ba98"},
      {128, "24da1b81d0b16df6428eee73c69fcb2a93c76bc6df706f0c6670fe6bfe800464"},
  };
  for (const auto& [length, hex] : cases) {
    EXPECT_EQ(Sha256Hex(std::string(static_cast<size_t>(length), 'x')), hex) << length;
  }
}

TEST(Sha256Test, StreamingAtOddBoundariesEqualsOneShot) {
  std::string message;
  for (int r = 0; r < 3; ++r) {
    for (int b = 0; b < 256; ++b) message.push_back(static_cast<char>(b));
  }
  const std::string expected = "f3a25aa93aa2fbba28d79260535bbd6a5eb0fc1c24a8b0f04e12b484c1dfe363";
  ASSERT_EQ(Sha256Hex(message), expected);
  const std::vector<std::vector<size_t>> splits = {
      {1, 3, 7, 13, 61, 64, 65, 127, 200, 511, 767},
      {63, 64, 65, 128, 129},
      {0, 0, 5, 5, 700},
  };
  for (const auto& cuts : splits) {
    Sha256 hasher;
    size_t previous = 0;
    for (size_t cut : cuts) {
      hasher.Update(absl::string_view(message).substr(previous, cut - previous));
      previous = cut;
    }
    hasher.Update(absl::string_view(message).substr(previous));
    EXPECT_EQ(hasher.HexDigest(), expected);
  }
  // Byte by byte.
  Sha256 bytewise;
  for (char c : message) bytewise.Update(&c, 1);
  EXPECT_EQ(bytewise.HexDigest(), expected);
}

TEST(Sha256Test, CopiesHashOnIndependently) {
  Sha256 a;
  a.Update("ab");
  Sha256 b = a;
  b.Update("c");
  a.Update("x");
  EXPECT_EQ(b.HexDigest(), Sha256Hex("abc"));
  EXPECT_EQ(a.HexDigest(), Sha256Hex("abx"));
  a = b;
  EXPECT_EQ(a.HexDigest(), Sha256Hex("abc"));
}

TEST(Sha256Test, DigestDoesNotEndTheStream) {
  Sha256 hasher;
  hasher.Update("ab");
  EXPECT_EQ(hasher.HexDigest(), Sha256Hex("ab"));
  EXPECT_EQ(hasher.HexDigest(), Sha256Hex("ab"));
  hasher.Update("c");
  EXPECT_EQ(hasher.HexDigest(), Sha256Hex("abc"));
  const auto digest = hasher.Digest();
  EXPECT_EQ(digest[0], 0xba);
  EXPECT_EQ(digest[31], 0xad);
}

TEST(Sha256Test, HexFormIsRecognized) {
  EXPECT_TRUE(IsSha256Hex(Sha256Hex("abc")));
  EXPECT_TRUE(IsSha256Hex(std::string(64, '0')));
  EXPECT_FALSE(IsSha256Hex(std::string(63, 'a')));
  EXPECT_FALSE(IsSha256Hex(std::string(65, 'a')));
  EXPECT_FALSE(IsSha256Hex(std::string(64, 'A')));  // lowercase only
  EXPECT_FALSE(IsSha256Hex(std::string(64, 'g')));
  EXPECT_FALSE(IsSha256Hex(""));
}

}  // namespace
}  // namespace mia
