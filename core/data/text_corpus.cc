// The text corpus formats behind LoadTextDataset. Each file is read whole
// (through internal::ReadInput, which also undoes gzip), checked for valid
// UTF-8 once, then split into texts by the format's rule.
#include "core/data/text_corpus.h"

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <map>
#include <sstream>
#include <string>
#include <system_error>
#include <utility>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "core/common/csv.h"
#include "core/common/status_macros.h"
#include "core/common/utf8.h"
#include "core/data/internal.h"
#include "nlohmann/json.hpp"

namespace mia::data {
namespace {

namespace fs = std::filesystem;
using internal::InputFile;
using internal::ForEachLine;

constexpr absl::string_view kBom = "\xEF\xBB\xBF";

bool IsBlank(absl::string_view text) {
  return std::all_of(text.begin(), text.end(), [](char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
  });
}

// 1-based line of byte `offset`.
int64_t LineOf(absl::string_view bytes, size_t offset) {
  return 1 + std::count(bytes.begin(), bytes.begin() + static_cast<ptrdiff_t>(offset), '\n');
}

// Reads `path` whole, checks that it is UTF-8 and drops a byte order mark.
absl::StatusOr<InputFile> ReadTextFile(const std::string& path, const LoadLimits& limits) {
  MIA_ASSIGN_OR_RETURN(InputFile file, internal::ReadInput(path, limits.max_bytes));
  const size_t bad = FindInvalidUtf8(file.bytes);
  if (bad != absl::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": line ", LineOf(file.bytes, bad),
                                                   ": invalid UTF-8", internal::At(file, bad)));
  }
  if (absl::StartsWith(file.bytes, kBom)) file.bytes.erase(0, kBom.size());
  return file;
}


// Collects texts and enforces LoadLimits on their number and total size.
class Collector {
 public:
  Collector(std::string name, const LoadLimits& limits) : limits_(limits) {
    dataset_.name = std::move(name);
  }

  // Adds `text` unless it is blank (then returns false). `path` and `line`
  // locate it for the limit messages.
  absl::StatusOr<bool> Add(absl::string_view text, const std::string& path, int64_t line) {
    if (IsBlank(text)) return false;
    if (dataset_.size() >= limits_.max_rows) {
      return absl::ResourceExhaustedError(
          absl::StrCat(path, ": line ", line, ": more texts than the LoadLimits max_rows of ",
                       limits_.max_rows));
    }
    bytes_ += text.size();
    if (bytes_ > limits_.max_bytes) {
      return absl::ResourceExhaustedError(
          absl::StrCat(path, ": line ", line, ": the texts exceed the LoadLimits max_bytes of ",
                       limits_.max_bytes));
    }
    dataset_.texts.emplace_back(text);
    return true;
  }

  TextDataset& dataset() { return dataset_; }

  absl::StatusOr<TextDataset> Finish(const std::string& path) && {
    if (dataset_.texts.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": no texts (all empty or blank)"));
    }
    return std::move(dataset_);
  }

 private:
  const LoadLimits& limits_;
  TextDataset dataset_;
  uint64_t bytes_ = 0;
};

bool IsFolder(const std::string& path) {
  std::error_code error;
  return fs::is_directory(path, error);
}

// The names of the entries of `folder` that `keep` accepts, sorted bytewise.
template <typename Keep>
absl::StatusOr<std::vector<std::string>> ListFolder(const std::string& folder, Keep keep) {
  std::error_code error;
  fs::directory_iterator it(folder, error);
  if (error) {
    return absl::NotFoundError(absl::StrCat(folder, ": cannot list the folder: ", error.message()));
  }
  std::vector<std::string> names;
  for (const fs::directory_entry& entry : it) {
    if (keep(entry)) names.push_back(entry.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

// ---- lines -------------------------------------------------------------

absl::StatusOr<TextDataset> LoadLines(const TextSource& source, const LoadLimits& limits) {
  MIA_ASSIGN_OR_RETURN(const InputFile file, ReadTextFile(source.path, limits));
  Collector out("lines:" + source.path, limits);
  MIA_RETURN_IF_ERROR(ForEachLine(file.bytes, [&](int64_t line_no, absl::string_view line) {
    return out.Add(line, source.path, line_no).status();
  }));
  return std::move(out).Finish(source.path);
}

// ---- jsonl -------------------------------------------------------------

using RawLabel = std::variant<int64_t, std::string>;

// Labels as written (integers or strings) mapped to 0-based indices in sorted
// order: integers numerically, strings bytewise. Sorted rather than
// first-seen, so that the mapping does not depend on the order of the rows.
absl::Status MapLabels(const std::vector<RawLabel>& raw, const std::string& path,
                       TextDataset* dataset) {
  std::map<RawLabel, int64_t> index;
  for (const RawLabel& label : raw) index.emplace(label, 0);
  if (static_cast<int64_t>(index.size()) > kMaxClasses) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": ", index.size(), " distinct labels, above the limit of ", kMaxClasses));
  }
  int64_t next = 0;
  for (auto& [label, i] : index) {
    i = next++;
    dataset->class_names.push_back(std::holds_alternative<int64_t>(label)
                                       ? std::to_string(std::get<int64_t>(label))
                                       : std::get<std::string>(label));
  }
  dataset->num_classes = static_cast<int>(index.size());
  dataset->labels.reserve(raw.size());
  for (const RawLabel& label : raw) dataset->labels.push_back(index[label]);
  return absl::OkStatus();
}

absl::StatusOr<TextDataset> LoadJsonl(const TextSource& source, const LoadLimits& limits) {
  using nlohmann::json;
  if (source.text_field.empty()) {
    return absl::InvalidArgumentError("jsonl: the text field name is empty");
  }
  MIA_ASSIGN_OR_RETURN(const InputFile file, ReadTextFile(source.path, limits));
  Collector out("jsonl:" + source.path, limits);
  const bool labelled = !source.label_field.empty();
  std::vector<RawLabel> raw_labels;
  const std::string& path = source.path;
  MIA_RETURN_IF_ERROR(
      ForEachLine(file.bytes, [&](int64_t line_no, absl::string_view line) -> absl::Status {
        if (IsBlank(line)) return absl::OkStatus();
        const auto error = [&](absl::string_view what) {
          return absl::InvalidArgumentError(absl::StrCat(path, ": line ", line_no, ": ", what));
        };
        json row;
        try {
          row = json::parse(line.begin(), line.end());
        } catch (const json::exception& e) {
          // Not e.what(): nlohmann quotes the text it read last.
          const auto* parse = dynamic_cast<const json::parse_error*>(&e);
          return error(parse != nullptr ? absl::StrCat("invalid JSON at column ", parse->byte)
                                        : std::string("invalid JSON"));
        }
        if (!row.is_object()) return error("not a JSON object");
        const auto text = row.find(source.text_field);
        if (text == row.end()) return error(absl::StrCat("no member \"", source.text_field, "\""));
        if (!text->is_string()) {
          return error(absl::StrCat("member \"", source.text_field, "\" is not a string"));
        }
        RawLabel label;
        if (labelled) {
          const auto value = row.find(source.label_field);
          if (value == row.end())
            return error(absl::StrCat("no member \"", source.label_field, "\""));
          if (value->is_number_integer()) {
            if (value->is_number_unsigned() &&
                value->get<uint64_t>() >
                    static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
              return error(
                  absl::StrCat("label \"", source.label_field, "\" is out of the int64 range"));
            }
            label = value->get<int64_t>();
          } else if (value->is_string()) {
            label = value->get<std::string>();
          } else {
            return error(absl::StrCat("label \"", source.label_field,
                                      "\" is neither an integer nor a string"));
          }
          if (!raw_labels.empty() && raw_labels.front().index() != label.index()) {
            return error(absl::StrCat("label \"", source.label_field, "\" is ",
                                      label.index() == 0 ? "an integer" : "a string",
                                      ", earlier labels are ",
                                      label.index() == 0 ? "strings" : "integers"));
          }
        }
        MIA_ASSIGN_OR_RETURN(const bool added,
                             out.Add(text->get_ref<const std::string&>(), path, line_no));
        if (added && labelled) raw_labels.push_back(std::move(label));
        return absl::OkStatus();
      }));
  if (labelled) MIA_RETURN_IF_ERROR(MapLabels(raw_labels, path, &out.dataset()));
  return std::move(out).Finish(path);
}

// ---- agnews ------------------------------------------------------------

absl::StatusOr<TextDataset> LoadAgNews(const TextSource& source, const LoadLimits& limits) {
  std::string path = source.path;
  if (IsFolder(path)) {
    MIA_ASSIGN_OR_RETURN(path, internal::FindFile(path, "train.csv"));
  }
  MIA_ASSIGN_OR_RETURN(const InputFile file, ReadTextFile(path, limits));
  Collector out("agnews:" + path, limits);
  std::istringstream in(file.bytes);
  CsvReader reader(&in, path);
  std::vector<std::string> fields;
  std::vector<int64_t> labels;
  while (true) {
    absl::StatusOr<bool> next = reader.Next(&fields);
    if (!next.ok()) return absl::InvalidArgumentError(next.status().message());
    if (!*next) break;
    const auto error = [&](absl::string_view what) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": line ", reader.record_line(), ": ", what));
    };
    // The original release has no header; copies re-published elsewhere
    // (e.g. Kaggle) start with "Class Index,Title,Description".
    if (reader.record_line() == 1 && !fields.empty() &&
        absl::EqualsIgnoreCase(fields[0], "Class Index")) {
      continue;
    }
    if (fields.size() != 3) {
      return error(
          absl::StrCat(fields.size(), " fields, expected 3 (class index, title, description)"));
    }
    if (fields[0].size() != 1 || fields[0][0] < '1' || fields[0][0] > '4') {
      return error("the class index is not 1, 2, 3 or 4");
    }
    MIA_ASSIGN_OR_RETURN(const bool added, out.Add(absl::StrCat(fields[1], " ", fields[2]), path,
                                                   reader.record_line()));
    if (added) labels.push_back(fields[0][0] - '1');
  }
  TextDataset& dataset = out.dataset();
  dataset.labels = std::move(labels);
  dataset.num_classes = 4;
  // classes.txt of the original release, in class index order.
  dataset.class_names = {"World", "Sports", "Business", "Sci/Tech"};
  return std::move(out).Finish(path);
}

// ---- fortunes ----------------------------------------------------------

// Adds the records of one fortune file: lines up to a line holding only "%".
absl::Status AddFortunes(const std::string& path, const LoadLimits& limits, Collector* out) {
  MIA_ASSIGN_OR_RETURN(const InputFile file, ReadTextFile(path, limits));
  std::string record;
  int64_t record_line = 1;
  bool empty = true;
  // A record's text: its lines joined by LF, without the blank lines that
  // often end a record before its "%".
  const auto add = [&] {
    while (!record.empty() && record.back() == '\n') record.pop_back();
    return out->Add(record, path, record_line).status();
  };
  MIA_RETURN_IF_ERROR(ForEachLine(file.bytes, [&](int64_t line_no, absl::string_view line) {
    if (line == "%") {
      MIA_RETURN_IF_ERROR(add());
      record.clear();
      empty = true;
      record_line = line_no + 1;
      return absl::OkStatus();
    }
    if (!empty) record += '\n';
    record.append(line.data(), line.size());
    empty = false;
    return absl::OkStatus();
  }));
  return add();
}

absl::StatusOr<TextDataset> LoadFortunes(const TextSource& source, const LoadLimits& limits) {
  Collector out("fortunes:" + source.path, limits);
  if (!IsFolder(source.path)) {
    MIA_RETURN_IF_ERROR(AddFortunes(source.path, limits, &out));
    return std::move(out).Finish(source.path);
  }
  // Debian's folder holds each fortune file X with X.dat (strfile's binary
  // index) and X.u8 (a symlink to X): read the regular files only, without
  // the indexes and hidden files.
  MIA_ASSIGN_OR_RETURN(const std::vector<std::string> names,
                       ListFolder(source.path, [](const fs::directory_entry& entry) {
                         std::error_code error;
                         const std::string name = entry.path().filename().string();
                         return entry.symlink_status(error).type() == fs::file_type::regular &&
                                !error && name[0] != '.' && !absl::EndsWith(name, ".dat") &&
                                !absl::EndsWith(name, ".u8");
                       }));
  if (names.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(source.path, ": no fortune files in the folder"));
  }
  for (const std::string& name : names) {
    MIA_RETURN_IF_ERROR(AddFortunes(absl::StrCat(source.path, "/", name), limits, &out));
  }
  return std::move(out).Finish(source.path);
}

// ---- txt-folder --------------------------------------------------------

absl::StatusOr<TextDataset> LoadTxtFolder(const TextSource& source, const LoadLimits& limits) {
  std::error_code error;
  if (!fs::exists(source.path, error)) {
    return absl::NotFoundError(absl::StrCat(source.path, ": no such folder"));
  }
  if (!IsFolder(source.path)) {
    return absl::InvalidArgumentError(absl::StrCat(source.path, ": not a folder"));
  }
  // Regular files, or links to them, named *.txt.
  MIA_ASSIGN_OR_RETURN(const std::vector<std::string> names,
                       ListFolder(source.path, [](const fs::directory_entry& entry) {
                         std::error_code error;
                         const std::string name = entry.path().filename().string();
                         return entry.is_regular_file(error) && !error && name.size() > 4 &&
                                absl::EndsWith(name, ".txt");
                       }));
  if (names.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(source.path, ": no .txt files in the folder"));
  }
  Collector out("txt-folder:" + source.path, limits);
  for (const std::string& name : names) {
    const std::string path = absl::StrCat(source.path, "/", name);
    MIA_ASSIGN_OR_RETURN(const InputFile file, ReadTextFile(path, limits));
    MIA_RETURN_IF_ERROR(out.Add(file.bytes, path, 1).status());
  }
  return std::move(out).Finish(source.path);
}

using Loader = absl::StatusOr<TextDataset> (*)(const TextSource&, const LoadLimits&);

struct FormatEntry {
  const char* name;
  const char* description;
  Loader load;
};

// The one place a text format is registered: name, help text and loader.
constexpr FormatEntry kFormats[] = {
    {"lines", "one text per line; empty lines skipped", LoadLines},
    {"jsonl",
     "JSON Lines: an object per line with a string text field and an optional integer or "
     "string label field",
     LoadJsonl},
    {"agnews",
     "AG News CSV (\"class index\",\"title\",\"description\", class 1..4): a file, or a folder "
     "holding train.csv",
     LoadAgNews},
    {"fortunes",
     "Debian fortune files (records separated by lines \"%\"): a file, or a folder such as "
     "/usr/share/games/fortunes",
     LoadFortunes},
    {"txt-folder", "every .txt file of a folder, sorted by name, one text per file", LoadTxtFolder},
};

}  // namespace

const std::vector<std::pair<std::string, std::string>>& TextFormats() {
  static const auto* const formats = [] {
    auto* list = new std::vector<std::pair<std::string, std::string>>();
    for (const FormatEntry& entry : kFormats) list->emplace_back(entry.name, entry.description);
    return list;
  }();
  return *formats;
}

absl::StatusOr<TextDataset> LoadTextDataset(const TextSource& source, const LoadLimits& limits) {
  for (const FormatEntry& entry : kFormats) {
    if (source.format == entry.name) {
      if (source.path.empty()) {
        return absl::InvalidArgumentError(absl::StrCat(entry.name, ": no path given"));
      }
      return entry.load(source, limits);
    }
  }
  std::string names;
  for (const FormatEntry& entry : kFormats)
    absl::StrAppend(&names, names.empty() ? "" : ", ", entry.name);
  return absl::InvalidArgumentError(
      absl::StrCat("unknown text format \"", source.format, "\" (one of ", names, ")"));
}

}  // namespace mia::data
