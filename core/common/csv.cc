#include "core/common/csv.h"

#include <charconv>

#include <streambuf>
#include <utility>

#include "absl/strings/str_cat.h"

namespace mia {

std::string CsvField(absl::string_view text) {
  if (text.find_first_of(",\"\r\n") == absl::string_view::npos) return std::string(text);
  std::string out = "\"";
  for (char c : text) {
    if (c == '"') out += '"';
    out += c;
  }
  out += '"';
  return out;
}

void AppendCsvRecord(const std::vector<std::string>& fields, std::string* out) {
  for (size_t i = 0; i < fields.size(); ++i) {
    if (i > 0) out->push_back(',');
    out->append(CsvField(fields[i]));
  }
  out->push_back('\n');
}

CsvReader::CsvReader(std::istream* in, std::string name, int64_t first_line)
    : in_(in), name_(std::move(name)), line_(first_line), column_(1) {}

absl::Status CsvReader::Error(int64_t line, int64_t column, absl::string_view what) const {
  return absl::DataLossError(absl::StrCat(name_, ": line ", line, ", column ", column, ": ", what));
}

absl::Status CsvReader::FieldError(size_t field, absl::string_view what) const {
  return absl::DataLossError(
      absl::StrCat(name_, ": line ", record_line_, ", field ", field + 1, ": ", what));
}

absl::StatusOr<bool> CsvReader::Next(std::vector<std::string>* fields) {
  fields->clear();
  std::streambuf* buf = in_->rdbuf();
  constexpr int kEof = std::char_traits<char>::eof();
  // Reads one character, keeping the position (offset, line, column) current.
  const auto take = [&]() {
    const int c = buf->sbumpc();
    if (c == kEof) return c;
    ++offset_;
    if (c == '\n') {
      ++line_;
      column_ = 1;
    } else {
      ++column_;
    }
    return c;
  };

  // Empty lines are no records.
  while (true) {
    const int c = buf->sgetc();
    if (c == kEof) {
      in_->setstate(std::ios::eofbit);
      return false;
    }
    if (c == '\n') {
      take();
    } else if (c == '\r' && (take(), buf->sgetc() == '\n')) {
      take();
    } else if (c == '\r') {
      // A lone CR was a field of its own: undoing take() is not possible on
      // every stream, so the record starts with it.
      record_line_ = line_;
      record_offset_ = offset_ - 1;
      fields->emplace_back("\r");
      break;
    } else {
      record_line_ = line_;
      record_offset_ = offset_;
      fields->emplace_back();
      break;
    }
  }

  enum class State { kFieldStart, kUnquoted, kQuoted, kAfterQuote };
  State state = fields->back().empty() ? State::kFieldStart : State::kUnquoted;
  int64_t quote_line = 0, quote_column = 0;  // where an open quote began
  while (true) {
    const int64_t line = line_, column = column_;
    const int c = take();
    if (c == kEof) {
      if (state == State::kQuoted) {
        return Error(quote_line, quote_column, "a quoted field is not closed");
      }
      return true;
    }
    std::string& field = fields->back();
    if (state == State::kQuoted) {
      if (c == '"') {
        if (buf->sgetc() == '"') {
          take();
          field += '"';
        } else {
          state = State::kAfterQuote;
        }
      } else {
        field += static_cast<char>(c);
      }
      continue;
    }
    if (c == ',') {
      fields->emplace_back();
      state = State::kFieldStart;
    } else if (c == '\n') {
      return true;
    } else if (c == '\r' && buf->sgetc() == '\n') {
      take();
      return true;
    } else if (state == State::kAfterQuote) {
      return Error(line, column, "expected a comma or a line end after a closing quote");
    } else if (c == '"') {
      if (state != State::kFieldStart) {
        return Error(line, column, "a quote inside an unquoted field");
      }
      state = State::kQuoted;
      quote_line = line;
      quote_column = column;
    } else {
      field += static_cast<char>(c);
      state = State::kUnquoted;
    }
  }
}

std::string CsvNumber(double value) {
  char buffer[40];
  const std::to_chars_result r = std::to_chars(buffer, buffer + sizeof(buffer), value);
  return std::string(buffer, r.ptr);
}

}  // namespace mia
