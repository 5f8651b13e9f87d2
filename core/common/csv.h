// CSV per RFC 4180, the one reader and the one writer of the project
// (scores.csv is written by core/report and read back by the server's score
// pages and result loader). Fields holding a comma, a quote or a line break
// are quoted, quotes inside doubled. Records end with LF or CRLF; a line
// break inside quotes is part of the field.
//
// The reader is strict so that a damaged file is reported, not misread: a
// quote inside an unquoted field, anything but a comma or a line end after a
// closing quote, and a quote left open at the end of the input are errors
// naming the line and column (1-based). An empty line is no record.
//
// CsvReader is not thread-safe; one reader per stream.
#ifndef MIA_CORE_COMMON_CSV_H_
#define MIA_CORE_COMMON_CSV_H_

#include <cstdint>
#include <istream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace mia {

// `text` as one CSV field: as is, or quoted when it holds a comma, a quote or
// a line break.
std::string CsvField(absl::string_view text);

// Appends the fields, comma-separated, and a line break.
void AppendCsvRecord(const std::vector<std::string>& fields, std::string* out);

// A number field: the shortest decimal that parses back to exactly `value`
// (std::to_chars), as scores.csv and `mia scores` write scores.
std::string CsvNumber(double value);

// Reads records from a stream, from its current position.
class CsvReader {
 public:
  // `name` (a file name) starts every error message. `first_line` is the line
  // number of the stream's current position, for a reader that starts inside
  // a file (after a seek).
  CsvReader(std::istream* in, std::string name, int64_t first_line = 1);

  // The next record into `fields`: true, or false at the end of the input.
  // DATA_LOSS, naming the line and column, when the CSV is malformed.
  absl::StatusOr<bool> Next(std::vector<std::string>* fields);

  // Where the record last returned by Next starts: its line and its byte
  // offset from the reader's start.
  int64_t record_line() const { return record_line_; }
  int64_t record_offset() const { return record_offset_; }
  // The line of the next character to read.
  int64_t line() const { return line_; }
  // Bytes consumed since the reader's start (past the last record's line end).
  int64_t offset() const { return offset_; }

  // DATA_LOSS "<name>: line L, field F: <what>", for callers that find a
  // field (0-based index) of the record last read malformed; F is 1-based.
  absl::Status FieldError(size_t field, absl::string_view what) const;

 private:
  absl::Status Error(int64_t line, int64_t column, absl::string_view what) const;

  std::istream* in_;
  std::string name_;
  int64_t line_;    // of the next character
  int64_t column_;  // of the next character
  int64_t offset_ = 0;
  int64_t record_line_ = 0;
  int64_t record_offset_ = 0;
};

}  // namespace mia

#endif  // MIA_CORE_COMMON_CSV_H_
