#include "core/text/bpe_trainer.h"

#include <algorithm>
#include <queue>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace mia::text {
namespace {

uint64_t PairKey(int32_t left, int32_t right) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
}
int32_t Left(uint64_t key) { return static_cast<int32_t>(key >> 32); }
int32_t Right(uint64_t key) { return static_cast<int32_t>(key & 0xFFFFFFFFu); }

struct Word {
  std::vector<int32_t> symbols;
  int64_t count = 0;
  int64_t stamp = -1;  // the last merge that visited the word
};

// A heap entry; stale when `count` is no longer the pair's count.
struct Candidate {
  int64_t count;
  uint64_t pair;
  // Priority: larger count, then smaller left id, then smaller right id
  // (the key orders by left id, then right id).
  bool operator<(const Candidate& other) const {
    return count != other.count ? count < other.count : pair > other.pair;
  }
};

}  // namespace

absl::StatusOr<std::unique_ptr<ByteBpeTokenizer>> TrainByteBpe(absl::Span<const std::string> texts,
                                                               int32_t vocab_size,
                                                               const BpeTrainOptions& options) {
  if (vocab_size < 257 || vocab_size > kMaxTrainedVocab) {
    return absl::InvalidArgumentError(absl::StrCat("BPE training: vocab_size ", vocab_size,
                                                   " is outside 257..", kMaxTrainedVocab,
                                                   " (256 bytes + merges + end-of-text)"));
  }

  // Distinct words with their counts, in a canonical order (bytewise) so that
  // the word indices, hence nothing else either, depend on the text order.
  absl::flat_hash_map<absl::string_view, int64_t> word_counts;
  for (const std::string& text : texts) {
    for (absl::string_view piece : ByteBpeTokenizer::PreTokenize(text)) ++word_counts[piece];
  }
  if (word_counts.empty()) {
    return absl::InvalidArgumentError("BPE training: the corpus has no text");
  }
  std::vector<std::pair<absl::string_view, int64_t>> sorted(word_counts.begin(), word_counts.end());
  std::sort(sorted.begin(), sorted.end());
  word_counts.clear();
  std::vector<Word> words(sorted.size());
  for (size_t w = 0; w < sorted.size(); ++w) {
    words[w].count = sorted[w].second;
    words[w].symbols.reserve(sorted[w].first.size());
    for (char c : sorted[w].first) words[w].symbols.push_back(static_cast<uint8_t>(c));
  }

  std::vector<std::string> tokens;
  tokens.reserve(vocab_size);
  for (int b = 0; b < 256; ++b) tokens.emplace_back(1, static_cast<char>(b));
  absl::flat_hash_set<std::string> known(tokens.begin(), tokens.end());

  // Pair counts over all words, and the words each pair occurs in (a word
  // may be listed twice, or no longer hold the pair: checked when used).
  absl::flat_hash_map<uint64_t, int64_t> pair_count;
  absl::flat_hash_map<uint64_t, std::vector<int32_t>> pair_words;
  for (size_t w = 0; w < words.size(); ++w) {
    const std::vector<int32_t>& s = words[w].symbols;
    for (size_t i = 0; i + 1 < s.size(); ++i) {
      const uint64_t key = PairKey(s[i], s[i + 1]);
      pair_count[key] += words[w].count;
      std::vector<int32_t>& list = pair_words[key];
      if (list.empty() || list.back() != static_cast<int32_t>(w)) {
        list.push_back(static_cast<int32_t>(w));
      }
    }
  }
  std::priority_queue<Candidate> heap;
  for (const auto& [key, count] : pair_count) heap.push({count, key});

  std::vector<std::pair<int32_t, int32_t>> merges;
  const int32_t max_merges = vocab_size - 257;
  std::vector<int32_t> merged;
  absl::flat_hash_set<uint64_t> changed;
  while (static_cast<int32_t>(merges.size()) < max_merges && !heap.empty()) {
    const Candidate best = heap.top();
    heap.pop();
    const auto current = pair_count.find(best.pair);
    if (current == pair_count.end() || current->second != best.count) continue;  // stale
    if (best.count < options.min_pair_count || best.count <= 0) break;
    const int32_t a = Left(best.pair);
    const int32_t b = Right(best.pair);
    std::string bytes = tokens[a] + tokens[b];
    if (!known.insert(bytes).second) {
      // Another merge made these bytes already: leave the pair unmerged
      // (the vocabulary holds each byte string once).
      pair_count.erase(current);
      continue;
    }
    const int32_t z = static_cast<int32_t>(tokens.size());
    tokens.push_back(std::move(bytes));
    merges.emplace_back(a, b);

    // Rewrite every word holding (a, b): merge left to right, and move the
    // word's weight from its old pairs to its new ones.
    const int64_t stamp = static_cast<int64_t>(merges.size());
    std::vector<int32_t> holders = std::move(pair_words[best.pair]);
    pair_words.erase(best.pair);
    changed.clear();
    for (const int32_t w : holders) {
      Word& word = words[w];
      if (word.stamp == stamp) continue;
      word.stamp = stamp;
      const std::vector<int32_t>& s = word.symbols;
      merged.clear();
      bool found = false;
      for (size_t i = 0; i < s.size();) {
        if (i + 1 < s.size() && s[i] == a && s[i + 1] == b) {
          merged.push_back(z);
          i += 2;
          found = true;
        } else {
          merged.push_back(s[i]);
          ++i;
        }
      }
      if (!found) continue;
      for (size_t i = 0; i + 1 < s.size(); ++i) {
        const uint64_t key = PairKey(s[i], s[i + 1]);
        pair_count[key] -= word.count;
        changed.insert(key);
      }
      for (size_t i = 0; i + 1 < merged.size(); ++i) {
        const uint64_t key = PairKey(merged[i], merged[i + 1]);
        pair_count[key] += word.count;
        changed.insert(key);
        if (merged[i] == z || merged[i + 1] == z) {
          std::vector<int32_t>& list = pair_words[key];
          if (list.empty() || list.back() != w) list.push_back(w);
        }
      }
      word.symbols.swap(merged);
    }
    for (const uint64_t key : changed) {
      const auto it = pair_count.find(key);
      if (it == pair_count.end()) continue;
      if (it->second <= 0) {
        pair_count.erase(it);
      } else {
        heap.push({it->second, key});
      }
    }
  }

  const int32_t eot_id = static_cast<int32_t>(tokens.size());
  tokens.emplace_back(kEndOfText);
  return ByteBpeTokenizer::Create(std::move(tokens), std::move(merges), eot_id);
}

}  // namespace mia::text
