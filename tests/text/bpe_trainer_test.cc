// The byte-level BPE trainer: a corpus worked out by hand, determinism, the
// encoder reproducing the trainer's segmentation, the vocab.json + merges.txt
// round trip through the GPT-2 loader, and speed on about 1 MB.
#include "core/text/bpe_trainer.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/data/text_corpus.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/text/text_test_util.h"

namespace mia::text {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing_util::TempFolder;

TEST(BpeTrainerTest, SmallCorpusByHand) {
  // Pieces: "ab" x1, " ab" x2, " cd" x2. Pair counts: (a,b) 3, (' ',a) 2,
  // (' ',c) 2, (c,d) 2.
  //   1. (a,b) 3                                  -> 256 "ab"
  //   2. ties at 2: (' ',ab) (' ',c) (c,d); smallest left id 32, then
  //      smallest right id 'c' = 99 < 256         -> 257 " c"
  //   3. (' ',ab) 2 and (" c",d) 2: left 32 < 257 -> 258 " ab"
  //   4. (" c",d) 2                               -> 259 " cd"
  const std::vector<std::string> texts = {"ab ab ab cd cd"};
  auto trained = TrainByteBpe(texts, 300);
  ASSERT_TRUE(trained.ok()) << trained.status();
  const ByteBpeTokenizer& t = **trained;
  EXPECT_THAT(t.merges(), ElementsAre(std::make_pair('a', 'b'), std::make_pair(' ', 'c'),
                                      std::make_pair(' ', 256), std::make_pair(257, 'd')));
  EXPECT_EQ(t.tokens()[259], " cd");
  EXPECT_EQ(t.vocab_size(), 261);  // the corpus ran out of pairs before 300
  EXPECT_EQ(t.eot_id(), 260);
  EXPECT_EQ(t.tokens()[260], "<|endoftext|>");
  EXPECT_THAT(t.Encode("ab ab ab cd cd"), ElementsAre(256, 258, 258, 259, 259));
  // vocab_size stops the merges: 256 bytes + 2 merges + end-of-text.
  auto small = TrainByteBpe(texts, 259);
  ASSERT_TRUE(small.ok());
  EXPECT_EQ((*small)->vocab_size(), 259);
  EXPECT_THAT((*small)->Encode(" cd"), ElementsAre(257, 'd'));
  // min_pair_count 4: nothing occurs 4 times.
  BpeTrainOptions options;
  options.min_pair_count = 4;
  EXPECT_EQ((*TrainByteBpe(texts, 300, options))->vocab_size(), 257);
}

TEST(BpeTrainerTest, RejectsBadArguments) {
  const std::vector<std::string> texts = {"some text"};
  EXPECT_THAT(TrainByteBpe(texts, 256).status().message(), HasSubstr("vocab_size 256"));
  EXPECT_EQ(TrainByteBpe(texts, kMaxTrainedVocab + 1).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(TrainByteBpe({}, 1000).status().message(), HasSubstr("no text"));
}

// Random words over a small alphabet with a skewed distribution, plus
// multibyte characters and invalid bytes.
std::vector<std::string> SyntheticCorpus(size_t bytes, uint32_t seed) {
  std::mt19937 rng(seed);
  const std::vector<std::string> letters = {
      "e", "t", "a", "o", "n", "\xC3\xA9", "\xE6\x97\xA5",
      "s", "h", "r", "1", "'", ".",        "\xF0\x9F\x98\x80"};
  std::geometric_distribution<int> pick(0.25);
  std::vector<std::string> texts;
  size_t total = 0;
  while (total < bytes) {
    std::string text;
    for (int w = 0; w < 20; ++w) {
      const int length = 1 + pick(rng) % 8;
      text += w == 0 ? "" : (rng() % 10 == 0 ? "\n " : " ");
      for (int i = 0; i < length; ++i) text += letters[pick(rng) % letters.size()];
    }
    if (rng() % 50 == 0) text += "\xFF";
    total += text.size();
    texts.push_back(std::move(text));
  }
  return texts;
}

// The definition, slowly: recount every pair of every word after each merge.
std::vector<std::pair<int32_t, int32_t>> PlainBpe(const std::vector<std::string>& texts,
                                                  int merges_wanted) {
  std::vector<std::vector<int32_t>> words;
  for (const std::string& text : texts) {
    for (absl::string_view piece : ByteBpeTokenizer::PreTokenize(text)) {
      words.emplace_back();
      for (char c : piece) words.back().push_back(static_cast<uint8_t>(c));
    }
  }
  std::vector<std::string> tokens;
  for (int b = 0; b < 256; ++b) tokens.emplace_back(1, static_cast<char>(b));
  std::vector<std::pair<int32_t, int32_t>> merges;
  std::set<std::pair<int32_t, int32_t>> banned;
  while (static_cast<int>(merges.size()) < merges_wanted) {
    std::map<std::pair<int32_t, int32_t>, int64_t> counts;
    for (const auto& w : words) {
      for (size_t i = 0; i + 1 < w.size(); ++i) ++counts[{w[i], w[i + 1]}];
    }
    std::pair<int32_t, int32_t> best;
    int64_t best_count = 0;
    for (const auto& [pair, count] : counts) {  // ascending pairs: the first max wins ties
      if (count > best_count && banned.count(pair) == 0) best = pair, best_count = count;
    }
    if (best_count < 2) break;
    const std::string bytes = tokens[best.first] + tokens[best.second];
    if (std::find(tokens.begin(), tokens.end(), bytes) != tokens.end()) {
      banned.insert(best);
      continue;
    }
    const int32_t z = static_cast<int32_t>(tokens.size());
    tokens.push_back(bytes);
    merges.push_back(best);
    for (auto& w : words) {
      std::vector<int32_t> merged;
      for (size_t i = 0; i < w.size();) {
        if (i + 1 < w.size() && w[i] == best.first && w[i + 1] == best.second) {
          merged.push_back(z), i += 2;
        } else {
          merged.push_back(w[i]), ++i;
        }
      }
      w = merged;
    }
  }
  return merges;
}

TEST(BpeTrainerTest, MatchesThePlainDefinition) {
  for (const uint32_t seed : {4u, 5u}) {
    const std::vector<std::string> texts = SyntheticCorpus(20'000, seed);
    auto trained = TrainByteBpe(texts, 257 + 300);
    ASSERT_TRUE(trained.ok()) << trained.status();
    EXPECT_EQ((*trained)->merges(), PlainBpe(texts, 300)) << seed;
  }
  const std::vector<std::string> runs = {"aaaaaaa aaaa aaa aa a abababab bababa"};
  EXPECT_EQ((*TrainByteBpe(runs, 300))->merges(), PlainBpe(runs, 43));
}

TEST(BpeTrainerTest, DeterministicWhateverTheOrder) {
  std::vector<std::string> texts = SyntheticCorpus(50'000, 1);
  const auto first = TrainByteBpe(texts, 600);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ((*first)->vocab_size(), 600);
  std::reverse(texts.begin(), texts.end());
  std::shuffle(texts.begin(), texts.end(), std::mt19937(7));
  EXPECT_EQ((*TrainByteBpe(texts, 600))->Fingerprint(), (*first)->Fingerprint());
}

// Trained merges, applied by the encoder, give each text fewer tokens than
// bytes, decode back to the text, and survive vocab.json + merges.txt.
TEST(BpeTrainerTest, SaveLoadRoundTripAndEncoding) {
  const std::vector<std::string> texts = SyntheticCorpus(100'000, 2);
  auto trained = TrainByteBpe(texts, 1000);
  ASSERT_TRUE(trained.ok()) << trained.status();
  const ByteBpeTokenizer& t = **trained;
  TempFolder dir;
  ASSERT_TRUE(t.Save(dir.path()).ok());
  auto loaded = LoadGpt2Bpe(dir / "vocab.json", dir / "merges.txt");
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ((*loaded)->tokens(), t.tokens());
  EXPECT_EQ((*loaded)->merges(), t.merges());
  EXPECT_EQ((*loaded)->eot_id(), t.eot_id());
  EXPECT_EQ((*loaded)->Fingerprint(), t.Fingerprint());
  size_t bytes = 0, ids = 0;
  for (const std::string& text : texts) {
    const std::vector<int32_t> encoded = t.Encode(text);
    ASSERT_EQ((*loaded)->Encode(text), encoded);
    ASSERT_EQ(*t.Decode(encoded), text);
    bytes += text.size();
    ids += encoded.size();
  }
  EXPECT_LT(ids * 2, bytes);  // at least 2 bytes a token on its own corpus
}

// About 1 MB: the fortunes corpus when installed, else synthetic text.
TEST(BpeTrainerTest, TrainsAMegabyteInSeconds) {
  std::vector<std::string> texts;
  data::TextSource source;
  source.format = "fortunes";
  source.path = "/usr/share/games/fortunes";
  absl::StatusOr<data::TextDataset> corpus = data::LoadTextDataset(source);
  size_t bytes = 0;
  if (corpus.ok()) {
    for (std::string& text : corpus->texts) {
      if (bytes >= 1'000'000) break;
      bytes += text.size();
      texts.push_back(std::move(text));
    }
  } else {
    texts = SyntheticCorpus(1'000'000, 3);
    for (const std::string& text : texts) bytes += text.size();
  }
  for (const int32_t vocab : {1000, 4000}) {
    const auto start = std::chrono::steady_clock::now();
    auto trained = TrainByteBpe(texts, vocab);
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    ASSERT_TRUE(trained.ok()) << trained.status();
    EXPECT_EQ((*trained)->vocab_size(), vocab);
    std::printf("trained vocab %d on %zu bytes (%s) in %.2f s\n", vocab, bytes,
                corpus.ok() ? "fortunes" : "synthetic", seconds);
    RecordProperty(absl::StrCat("seconds_vocab_", vocab), std::to_string(seconds));
    // Generous: a few seconds on one core is the aim; this only catches a
    // blow-up (e.g. recounting every pair after each merge).
    EXPECT_LT(seconds, 60.0);
  }
}

}  // namespace
}  // namespace mia::text
