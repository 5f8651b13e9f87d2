// Trains a byte-level BPE tokenizer on a corpus, for language models trained
// from scratch: the same pre-tokenization as GPT-2, 256 byte tokens, the
// learned merges, then "<|endoftext|>". The result is a ByteBpeTokenizer, the
// class GPT-2's files load into, so one encoder serves both; Save writes
// vocab.json + merges.txt that LoadGpt2Bpe reads back identically.
//
// The algorithm is the classic one (Sennrich et al. 2016, as GPT-2 trained):
// count the pre-tokenized words once, weight each distinct word by its count,
// repeatedly merge the most frequent adjacent pair everywhere (left to right,
// as the encoder applies it) and update the pair counts of only the words
// that held it.
//
// Deterministic: the same texts, in any order, give the same tokenizer. Ties
// between pairs of equal count go to the pair with the smaller left token id,
// then the smaller right token id (ids: bytes 0..255 by byte value, then
// merges in the order learned).
//
// Thread-safety: a free function without shared state.
#ifndef MIA_CORE_TEXT_BPE_TRAINER_H_
#define MIA_CORE_TEXT_BPE_TRAINER_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "core/text/gpt2_bpe.h"

namespace mia::text {

struct BpeTrainOptions {
  // A pair must occur at least this often (counting word repeats) to be
  // merged; training stops earlier than vocab_size when no pair does.
  int64_t min_pair_count = 2;
};

// Largest vocabulary TrainByteBpe accepts.
inline constexpr int32_t kMaxTrainedVocab = 1 << 20;

// Learns up to vocab_size - 257 merges from `texts` (UTF-8; invalid bytes are
// taken as single-byte pieces, as the encoder takes them). vocab_size counts
// the 256 byte tokens and the end-of-text token, so it is at least 257; the
// tokenizer has exactly vocab_size tokens unless the corpus ran out of pairs
// (see BpeTrainOptions). InvalidArgument for a vocab_size out of
// [257, kMaxTrainedVocab] or a corpus with no text.
absl::StatusOr<std::unique_ptr<ByteBpeTokenizer>> TrainByteBpe(absl::Span<const std::string> texts,
                                                               int32_t vocab_size,
                                                               const BpeTrainOptions& options = {});

}  // namespace mia::text

#endif  // MIA_CORE_TEXT_BPE_TRAINER_H_
