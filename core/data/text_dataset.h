// An in-memory text corpus, as every text loader (core/data/text_corpus.h) returns it and the
// language-model stages (tokenizer training, splits, training, signals) read
// it. Torch-free plain data; immutable once loaded, shareable across threads.
//
// The texts are someone's training records: never log or echo them (messages
// name files, lines and byte offsets only).
#ifndef MIA_CORE_DATA_TEXT_DATASET_H_
#define MIA_CORE_DATA_TEXT_DATASET_H_

#include <cstdint>
#include <string>
#include <vector>

namespace mia::data {

struct TextDataset {
  std::string name;                // "<format>:<path>", e.g. "fortunes:/usr/share/games/fortunes"
  std::vector<std::string> texts;  // valid UTF-8, each non-empty
  std::vector<int64_t> labels;     // empty, or [size()] 0-based class indices (agnews, jsonl)
  int num_classes = 0;             // 0 when unlabelled
  std::vector<std::string> class_names;  // empty, or [num_classes]: what each label stands for

  int64_t size() const { return static_cast<int64_t>(texts.size()); }
};

}  // namespace mia::data

#endif  // MIA_CORE_DATA_TEXT_DATASET_H_
