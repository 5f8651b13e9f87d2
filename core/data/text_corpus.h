// Text corpus loaders: read a language-model corpus (optionally labelled)
// from local files into a TextDataset. No loader downloads anything.
//
// Formats (docs/datasets.md describes each):
//   lines       one text per line
//   jsonl       JSON Lines: an object per line with a string text field and,
//               optionally, a label field (integers or strings)
//   agnews      AG News CSV: "class index","title","description" (1..4)
//   fortunes    Debian fortune files: records separated by lines "%"
//   txt-folder  every .txt file of a folder, one text per file
//
// Every file is untrusted input and holds someone's private text: errors name
// the file and the 1-based line (and, for invalid UTF-8, the 0-based byte
// offset), never the text. Invalid UTF-8 is an error in every format. A file
// that starts with the gzip magic bytes is decompressed first (line numbers
// and offsets then count in the decompressed data). A UTF-8 byte order mark at
// the start of a file is dropped. Texts that are empty or only ASCII
// whitespace are skipped in every format. Errors are InvalidArgument,
// NotFound for a missing file or folder, ResourceExhausted past LoadLimits.
//
// Thread-safety: free functions without shared state; safe from any thread.
#ifndef MIA_CORE_DATA_TEXT_CORPUS_H_
#define MIA_CORE_DATA_TEXT_CORPUS_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "core/data/loaders.h"
#include "core/data/text_dataset.h"

namespace mia::data {

struct TextSource {
  std::string format;               // a name from TextFormats()
  std::string path;                 // a file, or a folder (agnews, fortunes, txt-folder)
  std::string text_field = "text";  // jsonl: the member holding the text
  std::string label_field;          // jsonl: the member holding the label; "" = unlabelled
};

// Loads `source`: at least one text, each valid UTF-8 and not blank. Labels,
// when the format has them, are in [0, num_classes) and class_names has
// num_classes entries. LoadLimits: max_rows bounds the number of texts,
// max_bytes each file (compressed and decompressed) and all texts together.
absl::StatusOr<TextDataset> LoadTextDataset(const TextSource& source,
                                            const LoadLimits& limits = {});

// The text formats by name, with a one-line description each, in a stable
// order (for --help texts and validation messages).
const std::vector<std::pair<std::string, std::string>>& TextFormats();

}  // namespace mia::data

#endif  // MIA_CORE_DATA_TEXT_CORPUS_H_
