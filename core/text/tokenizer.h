// Tokenizers for language models: GPT-2's byte-level BPE read from its
// standard files, and a byte-level BPE trained on a corpus. Torch-free.
//
// Thread-safety: a Tokenizer is immutable after construction; Encode and
// Decode may be called concurrently.
#ifndef MIA_CORE_TEXT_TOKENIZER_H_
#define MIA_CORE_TEXT_TOKENIZER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace mia::text {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  // Token ids of `text` (valid UTF-8), without any special token.
  virtual std::vector<int32_t> Encode(absl::string_view text) const = 0;
  // The text of `ids` (ids out of range are an error).
  virtual absl::StatusOr<std::string> Decode(absl::Span<const int32_t> ids) const = 0;
  // Ids are in [0, vocab_size()).
  virtual int32_t vocab_size() const = 0;
  // The end-of-text token, also used as the beginning-of-text token that
  // predicts a text's first token (GPT-2: 50256 "<|endoftext|>").
  virtual int32_t eot_id() const = 0;
  // SHA-256 hex of the vocabulary and merges: identifies the tokenizer in
  // model artifact keys.
  virtual std::string Fingerprint() const = 0;
};

}  // namespace mia::text

#endif  // MIA_CORE_TEXT_TOKENIZER_H_
