// The text formats: Purchase-100 (`dataset_purchase`), Texas-100 (`feats` and
// `labels`) and generic numeric CSV. All three go through one table parser
// that reads comma-separated numbers line by line, straight into the final
// arrays, with std::from_chars (locale-independent and allocation-free).
//
// The CSV dialect is numeric only: no quoting (a header line, when declared,
// is skipped unread), LF or CRLF line ends, optional spaces or tabs around a
// field, an optional UTF-8 byte order mark. Lines and columns in messages are
// 1-based. (Quoted text, as in scores.csv, goes through the RFC 4180 reader of
// core/common/csv.h; a numeric table has nothing to quote, and this parser
// keeps its fast path: no string per field.)
#include <sys/stat.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "core/common/status_macros.h"
#include "core/data/internal.h"

namespace mia::data::internal {
namespace {

constexpr int64_t kPurchaseFeatures = 600;
constexpr int64_t kTexasFeatures = 6169;
constexpr int kPurchaseTexasClasses = 100;

// How one table file is laid out and what it may hold.
struct TableSpec {
  bool header = false;
  int64_t label_column = -1;       // -1: no label column
  int64_t expected_features = -1;  // -1: the first data row decides
  bool binary_features = false;    // every feature must be 0 or 1
  int64_t label_min = 0;
  int64_t label_max = kMaxClasses - 1;
};

struct Table {
  int64_t rows = 0;
  int64_t features_per_row = 0;
  std::vector<float> features;
  std::vector<int64_t> labels;  // as written in the file
};

enum class FieldError { kNone, kEmpty, kNotNumber, kOutOfRange, kNotFinite, kNotBinary };

const char* Describe(FieldError error) {
  switch (error) {
    case FieldError::kNone:
      return "ok";
    case FieldError::kEmpty:
      return "empty field";
    case FieldError::kNotNumber:
      return "not a number";
    case FieldError::kOutOfRange:
      return "number out of the float32 range";
    case FieldError::kNotFinite:
      return "not a finite number";
    case FieldError::kNotBinary:
      return "feature is not 0 or 1";
  }
  return "bad field";
}

inline bool IsBlank(char c) { return c == ' ' || c == '\t'; }

inline void Trim(const char*& begin, const char*& end) {
  while (begin < end && IsBlank(*begin)) ++begin;
  while (end > begin && IsBlank(end[-1])) --end;
}

inline FieldError ParseFeature(const char* begin, const char* end, bool binary, float* out) {
  // Fast path for the binary datasets: one digit, no from_chars call.
  if (end - begin == 1 && *begin >= '0' && *begin <= '9') {
    *out = static_cast<float>(*begin - '0');
  } else {
    Trim(begin, end);
    if (begin == end) return FieldError::kEmpty;
    float value = 0;
    const std::from_chars_result result = std::from_chars(begin, end, value);
    if (result.ec == std::errc::result_out_of_range) return FieldError::kOutOfRange;
    if (result.ec != std::errc() || result.ptr != end) return FieldError::kNotNumber;
    if (!std::isfinite(value)) return FieldError::kNotFinite;
    *out = value;
  }
  if (binary && *out != 0.0f && *out != 1.0f) return FieldError::kNotBinary;
  return FieldError::kNone;
}

// Number of fields of a line (for width messages only).
int64_t CountFields(absl::string_view line) {
  return 1 + static_cast<int64_t>(std::count(line.begin(), line.end(), ','));
}

absl::StatusOr<Table> ParseTable(const InputFile& file, const TableSpec& spec,
                                 const LoadLimits& limits) {
  absl::string_view text = file.bytes;
  if (text.substr(0, 3) == "\xEF\xBB\xBF") text.remove_prefix(3);
  const int64_t has_label = spec.label_column >= 0 ? 1 : 0;

  // Count lines first so that the arrays are sized once, after the limits
  // check, instead of growing.
  int64_t lines = std::count(text.begin(), text.end(), '\n');
  if (!text.empty() && text.back() != '\n') ++lines;
  const int64_t data_lines = lines - (spec.header ? 1 : 0);
  if (data_lines <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(file.path, ": no data rows"));
  }
  if (data_lines > limits.max_rows) {
    return absl::ResourceExhaustedError(absl::StrCat(
        file.path, ": ", data_lines, " rows, above the LoadLimits max_rows of ", limits.max_rows));
  }

  Table table;
  int64_t width = -1;  // fields per line, fixed by the first data line
  float* out = nullptr;
  MIA_RETURN_IF_ERROR(
      ForEachLine(text, [&](int64_t line_no, absl::string_view line) -> absl::Status {
        if (spec.header && line_no == 1) return absl::OkStatus();
        if (line.empty()) {
          return absl::InvalidArgumentError(
              absl::StrCat(file.path, ": line ", line_no, ": empty line"));
        }

        if (width < 0) {
          width = CountFields(line);
          const int64_t features = width - has_label;
          if (spec.label_column >= width) {
            return absl::InvalidArgumentError(absl::StrCat(
                file.path, ": line ", line_no, " has ", width, " columns; label column ",
                spec.label_column, " (0-based) is beyond them"));
          }
          if (spec.expected_features >= 0 && features != spec.expected_features) {
            return absl::InvalidArgumentError(absl::StrCat(file.path, ": line ", line_no, " has ",
                                                           features, " features, expected ",
                                                           spec.expected_features));
          }
          if (features == 0 && spec.expected_features != 0) {
            return absl::InvalidArgumentError(absl::StrCat(
                file.path, ": line ", line_no, " has no feature columns besides the label"));
          }
          MIA_RETURN_IF_ERROR(CheckSize(file.path, static_cast<uint64_t>(data_lines),
                                        static_cast<uint64_t>(features), limits));
          table.features_per_row = features;
          table.features.resize(static_cast<size_t>(data_lines * features));
          table.labels.reserve(has_label ? static_cast<size_t>(data_lines) : 0);
          out = table.features.data();
        }

        const char* p = line.data();
        const char* const line_end = line.data() + line.size();
        int64_t column = 0;
        while (true) {
          const char* q = p;
          while (q < line_end && *q != ',') ++q;
          if (column >= width) {
            return absl::InvalidArgumentError(
                absl::StrCat(file.path, ": line ", line_no, " has ", CountFields(line) - has_label,
                             " features, expected ", width - has_label));
          }
          if (column == spec.label_column) {
            const char* b = p;
            const char* e = q;
            Trim(b, e);
            int64_t label = 0;
            const std::from_chars_result result = std::from_chars(b, e, label);
            if (b == e || result.ec != std::errc() || result.ptr != e) {
              return absl::InvalidArgumentError(
                  absl::StrCat(file.path, ": line ", line_no, ", column ", column + 1,
                               b == e ? ": empty label" : ": label is not an integer"));
            }
            if (label < spec.label_min || label > spec.label_max) {
              return absl::InvalidArgumentError(
                  absl::StrCat(file.path, ": line ", line_no, ", column ", column + 1,
                               ": label out of range ", spec.label_min, "..", spec.label_max));
            }
            table.labels.push_back(label);
          } else {
            const FieldError error = ParseFeature(p, q, spec.binary_features, out);
            if (error != FieldError::kNone) {
              return absl::InvalidArgumentError(absl::StrCat(
                  file.path, ": line ", line_no, ", column ", column + 1, ": ", Describe(error)));
            }
            ++out;
          }
          ++column;
          if (q == line_end) break;
          p = q + 1;
        }
        if (column != width) {
          return absl::InvalidArgumentError(absl::StrCat(file.path, ": line ", line_no, " has ",
                                                         column - has_label, " features, expected ",
                                                         width - has_label));
        }
        ++table.rows;
        return absl::OkStatus();
      }));
  // Every line was a data line (empty ones are errors), so the count is exact.
  if (table.rows != data_lines) {
    return absl::InternalError(
        absl::StrCat(file.path, ": counted ", data_lines, " rows but parsed ", table.rows));
  }
  return table;
}

bool IsFolder(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

Dataset ToDataset(std::string name, Table table, int64_t label_shift, int num_classes) {
  Dataset dataset;
  dataset.name = std::move(name);
  dataset.sample_shape = {table.features_per_row};
  dataset.features = std::move(table.features);
  dataset.labels = std::move(table.labels);
  for (int64_t& label : dataset.labels) label -= label_shift;
  dataset.num_classes = num_classes;
  return dataset;
}

}  // namespace

absl::StatusOr<Dataset> LoadPurchase100(const DataSource& source, const LoadLimits& limits) {
  MIA_RETURN_IF_ERROR(CheckNoSplit(source));
  std::string path = source.path;
  if (IsFolder(path)) {
    MIA_ASSIGN_OR_RETURN(path, FindFile(path, "dataset_purchase"));
  }
  MIA_ASSIGN_OR_RETURN(const InputFile file, ReadInput(path, limits.max_bytes));
  TableSpec spec;
  spec.label_column = 0;
  spec.expected_features = kPurchaseFeatures;
  spec.binary_features = true;
  spec.label_min = 1;
  spec.label_max = kPurchaseTexasClasses;
  MIA_ASSIGN_OR_RETURN(Table table, ParseTable(file, spec, limits));
  return ToDataset(absl::StrCat("purchase100:", source.path), std::move(table), 1,
                   kPurchaseTexasClasses);
}

absl::StatusOr<Dataset> LoadTexas100(const DataSource& source, const LoadLimits& limits) {
  MIA_RETURN_IF_ERROR(CheckNoSplit(source));
  // Privacy Meter's data_dir holds the extracted dataset_texas folder.
  std::string folder = source.path;
  if (!FindFile(folder, "feats").ok() && IsFolder(folder + "/dataset_texas")) {
    folder += "/dataset_texas";
  }
  MIA_ASSIGN_OR_RETURN(const std::string feats_path, FindFile(folder, "feats"));
  MIA_ASSIGN_OR_RETURN(const std::string labels_path, FindFile(folder, "labels"));

  // Labels first: the small file, and its row count bounds the features.
  TableSpec label_spec;
  label_spec.label_column = 0;
  label_spec.expected_features = 0;
  label_spec.label_min = 1;
  label_spec.label_max = kPurchaseTexasClasses;
  MIA_ASSIGN_OR_RETURN(const InputFile labels_file, ReadInput(labels_path, limits.max_bytes));
  MIA_ASSIGN_OR_RETURN(Table labels, ParseTable(labels_file, label_spec, limits));

  TableSpec feats_spec;
  feats_spec.expected_features = kTexasFeatures;
  feats_spec.binary_features = true;
  MIA_ASSIGN_OR_RETURN(const InputFile feats_file, ReadInput(feats_path, limits.max_bytes));
  MIA_ASSIGN_OR_RETURN(Table feats, ParseTable(feats_file, feats_spec, limits));
  if (feats.rows != labels.rows) {
    return absl::InvalidArgumentError(absl::StrCat(feats_path, " has ", feats.rows, " rows but ",
                                                   labels_path, " has ", labels.rows));
  }
  feats.labels = std::move(labels.labels);
  return ToDataset(absl::StrCat("texas100:", source.path), std::move(feats), 1,
                   kPurchaseTexasClasses);
}

absl::StatusOr<Dataset> LoadCsv(const DataSource& source, const LoadLimits& limits) {
  MIA_RETURN_IF_ERROR(CheckNoSplit(source));
  if (source.label_column < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("csv: label_column must be 0 or more (0-based), got ", source.label_column));
  }
  MIA_ASSIGN_OR_RETURN(const InputFile file, ReadInput(source.path, limits.max_bytes));
  TableSpec spec;
  spec.header = source.header;
  spec.label_column = source.label_column;
  MIA_ASSIGN_OR_RETURN(Table table, ParseTable(file, spec, limits));
  const int64_t max_label = *std::max_element(table.labels.begin(), table.labels.end());
  return ToDataset(absl::StrCat("csv:", source.path), std::move(table), 0,
                   static_cast<int>(max_label + 1));
}

}  // namespace mia::data::internal
