// Byte-level BPE, the tokenizer of GPT-2: read from GPT-2's files
// (vocab.json + merges.txt, or the same data named encoder.json + vocab.bpe)
// or trained on a corpus (core/text/bpe_trainer.h). One encoder for both.
//
// Encoding is exactly GPT-2's (openai/gpt-2 src/encoder.py): the text is
// split by the pre-tokenization regex
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// (PCRE2 with UTF and Unicode properties; see docs/datasets.md for the one
// Unicode-version caveat), each piece's UTF-8 bytes become byte tokens, and
// adjacent tokens are merged by rank (lowest first; all occurrences, left to
// right) until no ranked pair is left. No special token is ever produced by
// Encode; the end-of-text token is "<|endoftext|>".
//
// Token strings are held as raw bytes. In the files they are written in
// GPT-2's byte-to-unicode alphabet (GptByteToUnicode below).
//
// Thread-safety: immutable after construction; Encode, Decode and Save may be
// called from any thread concurrently.
#ifndef MIA_CORE_TEXT_GPT2_BPE_H_
#define MIA_CORE_TEXT_GPT2_BPE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "core/text/tokenizer.h"

namespace mia::text {

// The end-of-text token of GPT-2 and of trained tokenizers.
inline constexpr absl::string_view kEndOfText = "<|endoftext|>";

// GPT-2's bytes_to_unicode: the code point that stands for byte `b` in token
// strings (printable Latin-1 bytes stand for themselves, the other 68 bytes
// for U+0100..U+0143 in byte order).
char32_t GptByteToUnicode(uint8_t b);

class ByteBpeTokenizer final : public Tokenizer {
 public:
  // `tokens[i]`: the bytes of token i; `merges`: pairs of token ids, by rank
  // (first = applied first). Checks that tokens are distinct and non-empty,
  // that every single byte is a token, that each merge's result is a token,
  // that each merge's parts are single bytes or results of earlier merges
  // (as BPE training makes them; the encoder relies on it), and that
  // `tokens[eot_id]` is "<|endoftext|>". `where(rank)` names a merge in
  // messages (default "merge <rank>"; the file loader passes file and line).
  static absl::StatusOr<std::unique_ptr<ByteBpeTokenizer>> Create(
      std::vector<std::string> tokens, std::vector<std::pair<int32_t, int32_t>> merges,
      int32_t eot_id, const std::function<std::string(size_t)>& where = nullptr);

  ~ByteBpeTokenizer() override;

  std::vector<int32_t> Encode(absl::string_view text) const override;
  // The bytes of the tokens, concatenated. Not UTF-8 when the ids cut a
  // character (GPT-2's Python decoder would put U+FFFD there).
  absl::StatusOr<std::string> Decode(absl::Span<const int32_t> ids) const override;
  int32_t vocab_size() const override { return static_cast<int32_t>(tokens_.size()); }
  int32_t eot_id() const override { return eot_id_; }
  // SHA-256 hex of "mia-byte-bpe-v1", the tokens (length-prefixed bytes, by
  // id), the merges (id pairs, by rank) and the eot id: equal for equal data
  // whatever the files looked like.
  std::string Fingerprint() const override { return fingerprint_; }

  // The pieces of `text` after pre-tokenization (for tests and the trainer).
  // Invalid UTF-8 bytes, which GPT-2 cannot take, become one piece each (and
  // encode as their byte tokens), so that Decode(Encode(x)) == x for any x.
  static std::vector<absl::string_view> PreTokenize(absl::string_view text);

  const std::vector<std::string>& tokens() const { return tokens_; }
  const std::vector<std::pair<int32_t, int32_t>>& merges() const { return merges_; }

  // Writes `folder`/vocab.json and `folder`/merges.txt in GPT-2's format
  // (atomically each); LoadGpt2Bpe(folder) reads back an equal tokenizer.
  absl::Status Save(const std::string& folder) const;

 private:
  ByteBpeTokenizer() = default;
  void EncodeWord(absl::string_view word, std::vector<int32_t>* out) const;

  std::vector<std::string> tokens_;
  std::vector<std::pair<int32_t, int32_t>> merges_;
  int32_t eot_id_ = -1;
  int32_t byte_token_[256] = {};
  // (left id << 32 | right id) -> (rank, merged id).
  absl::flat_hash_map<uint64_t, std::pair<int32_t, int32_t>> ranks_;
  std::string fingerprint_;
};

// Loads GPT-2's files from `folder`: vocab.json + merges.txt, else
// encoder.json + vocab.bpe. NotFound when neither pair is there.
absl::StatusOr<std::unique_ptr<ByteBpeTokenizer>> LoadGpt2Bpe(const std::string& folder);

// Loads the vocabulary (a JSON object token -> id, ids 0..N-1, one of them
// "<|endoftext|>") and the merges (an optional "#version" first line, then
// one merge "left right" a line). Errors name the file and the line, or for
// the vocabulary the byte offset (syntax) or the member's 1-based position.
absl::StatusOr<std::unique_ptr<ByteBpeTokenizer>> LoadGpt2Bpe(const std::string& vocab_path,
                                                              const std::string& merges_path);

}  // namespace mia::text

#endif  // MIA_CORE_TEXT_GPT2_BPE_H_
