// GPT-2's byte-level BPE on hand-made vocabularies with answers worked out by
// hand: pre-tokenization, the merge loop, Create's checks, the file formats
// and their errors. gpt2_reference_test.cc compares the real GPT-2.
#include "core/text/gpt2_bpe.h"

#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/text/text_test_util.h"

namespace mia::text {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing_util::ReadFileOrDie;
using testing_util::TempFolder;
using testing_util::WriteFileOrDie;

std::vector<std::string> Pieces(absl::string_view text) {
  std::vector<std::string> out;
  for (absl::string_view piece : ByteBpeTokenizer::PreTokenize(text)) out.emplace_back(piece);
  return out;
}

TEST(Gpt2BpeTest, ByteToUnicodeIsGpt2s) {
  EXPECT_EQ(GptByteToUnicode('!'), U'!');
  EXPECT_EQ(GptByteToUnicode('~'), U'~');
  EXPECT_EQ(GptByteToUnicode(0xE9), U'\u00E9');
  EXPECT_EQ(GptByteToUnicode(0), U'\u0100');
  EXPECT_EQ(GptByteToUnicode('\n'), U'\u010A');  // "Ċ"
  EXPECT_EQ(GptByteToUnicode(' '), U'\u0120');   // "Ġ"
  EXPECT_EQ(GptByteToUnicode(0x7F), U'\u0121');
  EXPECT_EQ(GptByteToUnicode(0xA0), U'\u0142');
  EXPECT_EQ(GptByteToUnicode(0xAD), U'\u0143');
  std::vector<bool> seen(0x144, false);
  for (int b = 0; b < 256; ++b) {
    const char32_t c = GptByteToUnicode(static_cast<uint8_t>(b));
    ASSERT_LT(c, 0x144u);
    ASSERT_FALSE(seen[c]) << b;
    seen[c] = true;
  }
}

TEST(Gpt2BpeTest, PreTokenizeSplitsAsGpt2) {
  EXPECT_THAT(Pieces("Hello world"), ElementsAre("Hello", " world"));
  EXPECT_THAT(Pieces("it's I'M we'll"), ElementsAre("it", "'s", " I", "'", "M", " we", "'ll"));
  // \s+(?!\S): a run of spaces leaves its last one to the next word.
  EXPECT_THAT(Pieces("a   b  "), ElementsAre("a", "  ", " b", "  "));
  EXPECT_THAT(Pieces("x\n\n y"), ElementsAre("x", "\n\n", " y"));
  EXPECT_THAT(Pieces("pi=3.14!!"), ElementsAre("pi", "=", "3", ".", "14", "!!"));
  EXPECT_THAT(Pieces("caf\xC3\xA9 \xE6\x97\xA5\xE6\x9C\xAC"),
              ElementsAre("caf\xC3\xA9", " \xE6\x97\xA5\xE6\x9C\xAC"));
  // U+180E is not white space for GPT-2 (Python's regex module), though it
  // is for PCRE2; U+0085 is. Pieces as Python's regex gives them.
  EXPECT_THAT(Pieces("x \xE1\xA0\x8Ey"), ElementsAre("x", " \xE1\xA0\x8E", "y"));
  EXPECT_THAT(Pieces("a\xE1\xA0\x8E\xE1\xA0\x8E  b"),
              ElementsAre("a", "\xE1\xA0\x8E\xE1\xA0\x8E", " ", " b"));
  EXPECT_THAT(Pieces("\xE1\xA0\x8E "), ElementsAre("\xE1\xA0\x8E", " "));
  EXPECT_THAT(Pieces("a \xC2\x85\xC2\x85"
                     "b"),
              ElementsAre("a", " \xC2\x85", "\xC2\x85", "b"));
  // Invalid UTF-8: each bad byte a piece of its own, the rest as usual.
  EXPECT_THAT(Pieces("ab\xFFgh i"), ElementsAre("ab", "\xFF", "gh", " i"));
}

// A vocabulary of the 256 bytes, a few merges and the end-of-text token.
std::unique_ptr<ByteBpeTokenizer> SmallTokenizer() {
  std::vector<std::string> tokens;
  for (int b = 0; b < 256; ++b) tokens.emplace_back(1, static_cast<char>(b));
  tokens.push_back("aa");                     // 256
  tokens.push_back("ab");                     // 257
  tokens.push_back("aab");                    // 258
  tokens.push_back(" a");                     // 259
  tokens.push_back(std::string(kEndOfText));  // 260
  // Ranks: (a,a) first, then (a,b), then (aa,b), then (space,a).
  std::vector<std::pair<int32_t, int32_t>> merges = {
      {'a', 'a'}, {'a', 'b'}, {256, 'b'}, {' ', 'a'}};
  return *ByteBpeTokenizer::Create(std::move(tokens), std::move(merges), 260);
}

TEST(Gpt2BpeTest, MergesByRankAllOccurrencesLeftToRight) {
  const auto tokenizer = SmallTokenizer();
  EXPECT_EQ(tokenizer->vocab_size(), 261);
  EXPECT_EQ(tokenizer->eot_id(), 260);
  // "aaa": (a,a) at 0 first, leaving "aa","a".
  EXPECT_THAT(tokenizer->Encode("aaa"), ElementsAre(256, 'a'));
  EXPECT_THAT(tokenizer->Encode("aaaa"), ElementsAre(256, 256));
  // "aab": (a,a) ranks before (a,b), so "aa"+"b" -> "aab".
  EXPECT_THAT(tokenizer->Encode("aab"), ElementsAre(258));
  // "aaab": aa, a, b -> (a,b) -> aa, ab.
  EXPECT_THAT(tokenizer->Encode("aaab"), ElementsAre(256, 257));
  // " a" is one piece; " ab": (a,b) ranks before (space,a).
  EXPECT_THAT(tokenizer->Encode("x a"), ElementsAre('x', 259));
  EXPECT_THAT(tokenizer->Encode("x ab"), ElementsAre('x', ' ', 257));
  EXPECT_THAT(tokenizer->Encode(""), ElementsAre());
  EXPECT_EQ(*tokenizer->Decode({256, 'a', 260}), "aaa<|endoftext|>");
  EXPECT_EQ(tokenizer->Decode({261}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(tokenizer->Decode({-1}).status().code(), absl::StatusCode::kInvalidArgument);
  // Any bytes, valid UTF-8 or not, come back.
  const std::string bytes("a\0\xFF\xC3 aab\xE2\x82", 10);
  EXPECT_EQ(*tokenizer->Decode(tokenizer->Encode(bytes)), bytes);
}

TEST(Gpt2BpeTest, CreateChecksTheData) {
  const auto make = [](std::vector<std::pair<int32_t, int32_t>> merges, int32_t eot = 258) {
    std::vector<std::string> tokens;
    for (int b = 0; b < 256; ++b) tokens.emplace_back(1, static_cast<char>(b));
    tokens.push_back("ab");
    tokens.push_back("abc");
    tokens.push_back(std::string(kEndOfText));
    return ByteBpeTokenizer::Create(std::move(tokens), std::move(merges), eot).status();
  };
  EXPECT_TRUE(make({{'a', 'b'}, {256, 'c'}}).ok());
  EXPECT_THAT(make({{256, 'c'}, {'a', 'b'}}).message(),
              HasSubstr("merge 0: the left token is neither a byte nor the result of an earlier"));
  EXPECT_THAT(make({{'a', 'c'}}).message(), HasSubstr("merged token is not in the vocabulary"));
  EXPECT_THAT(make({{'a', 'b'}, {'a', 'b'}}).message(),
              HasSubstr("merge 1: the same merge as merge 0"));
  EXPECT_THAT(make({}, 257).message(), HasSubstr("end-of-text token is 258, not 257"));
}

// ---- files -----------------------------------------------------------

TEST(Gpt2BpeTest, SaveAndLoadRoundTrip) {
  TempFolder dir;
  const auto tokenizer = SmallTokenizer();
  ASSERT_TRUE(tokenizer->Save(dir.path()).ok());
  const std::string merges = ReadFileOrDie(dir / "merges.txt");
  EXPECT_EQ(merges, "#version: 0.2\na a\na b\naa b\n\xC4\xA0 a\n");  // "Ġ a"
  auto loaded = LoadGpt2Bpe(dir.path());
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ((*loaded)->tokens(), tokenizer->tokens());
  EXPECT_EQ((*loaded)->merges(), tokenizer->merges());
  EXPECT_EQ((*loaded)->Fingerprint(), tokenizer->Fingerprint());
  EXPECT_EQ((*loaded)->eot_id(), 260);
}

TEST(Gpt2BpeTest, LoadErrorsNameFileAndPlace) {
  TempFolder dir;
  ASSERT_TRUE(SmallTokenizer()->Save(dir.path()).ok());
  const std::string vocab = ReadFileOrDie(dir / "vocab.json");
  const std::string merges = ReadFileOrDie(dir / "merges.txt");
  const auto load_error = [&](const std::string& v, const std::string& m) {
    WriteFileOrDie(dir / "vocab.json", v);
    WriteFileOrDie(dir / "merges.txt", m);
    return std::string(LoadGpt2Bpe(dir.path()).status().message());
  };
  const std::string vocab_path = dir / "vocab.json";
  const std::string merges_path = dir / "merges.txt";
  EXPECT_THAT(load_error("{\"a\": 1,, }", merges),
              HasSubstr(vocab_path + ": invalid JSON at offset 8"));
  EXPECT_THAT(load_error("[1]", merges), HasSubstr(vocab_path + ": not a JSON object"));
  EXPECT_THAT(load_error("{\"a\": 0, \"b\": \"x\"}", merges),
              HasSubstr(vocab_path + ": member 2: the id is not a non-negative integer"));
  EXPECT_THAT(load_error("{\"a\": 0, \"b\": 0}", merges),
              HasSubstr(vocab_path + ": member 2: id 0 was given to member 1 already"));
  EXPECT_THAT(load_error("{\"a\": 0, \"b\": 5}", merges),
              HasSubstr(vocab_path + ": member 2: id 5 is not below the token count 2"));
  EXPECT_THAT(load_error("{\"a\": 0, \"\\u4e00\": 1}", merges),
              HasSubstr(vocab_path + ": member 2: the token has a character outside"));
  EXPECT_THAT(load_error("{\"a\": 0, \"b\xFF\": 1}", merges),
              HasSubstr(vocab_path + ": invalid UTF-8 at offset 11"));
  EXPECT_THAT(load_error(vocab, "#version: 0.2\na a\na  b\n"),
              HasSubstr(merges_path + ": line 3: expected two tokens separated by one space"));
  EXPECT_THAT(load_error(vocab, "#version: 0.2\na a\n\na zz\n"),
              HasSubstr(merges_path + ": line 4: the right token is not in the vocabulary"));
  EXPECT_THAT(load_error(vocab, "#version: 0.2\naa b\na a\n"),
              HasSubstr(merges_path + ": line 2: the left token is neither a byte"));
  EXPECT_THAT(load_error(vocab, "a a\r\na b\r\nb b\r\n"),
              HasSubstr(merges_path + ": line 3: the merged token is not in the vocabulary"));
  EXPECT_EQ(LoadGpt2Bpe(dir / "nothing").status().code(), absl::StatusCode::kNotFound);
}

// A megabyte in one piece (one word, one white-space run) takes linear-ish
// time: the merge loop is a heap, not a rescan per merge.
TEST(Gpt2BpeTest, LongPiecesRoundTrip) {
  const auto tokenizer = SmallTokenizer();
  for (const std::string& text :
       {std::string(1 << 20, 'a'), std::string(1 << 20, ' ') + "ab", std::string(1 << 20, '\n'),
        std::string(1 << 18, '\xC3') + "x", [] {
          std::string s;
          for (int i = 0; i < (1 << 18); ++i) s += "\xF0\x9F\x98\x80";
          return s;
        }()}) {
    const std::vector<int32_t> ids = tokenizer->Encode(text);
    ASSERT_EQ(*tokenizer->Decode(ids), text);
  }
  EXPECT_EQ(tokenizer->Encode(std::string(1 << 20, 'a')).size(), size_t{1} << 19);
}

TEST(Gpt2BpeTest, ConcurrentEncodesAgree) {
  const auto tokenizer = SmallTokenizer();
  const std::string text = "aab aaab x a ab \xF0\x9F\x98\x80 aaaa";
  const std::vector<int32_t> expected = tokenizer->Encode(text);
  std::vector<std::thread> threads;
  std::vector<int> bad(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 2000; ++i) bad[t] += tokenizer->Encode(text) != expected;
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_THAT(bad, ElementsAre(0, 0, 0, 0));
}

}  // namespace
}  // namespace mia::text
