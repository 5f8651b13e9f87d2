#include "server/scores_page.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <set>
#include <system_error>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/cord.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "core/attacks/registry.h"
#include "core/common/csv.h"
#include "core/common/sha256.h"
#include "core/metrics/roc.h"
#include "core/report/report.h"
#include "google/protobuf/util/json_util.h"
#include "google/rpc/error_details.pb.h"
#include "nlohmann/json.hpp"
#include "server/result_convert.h"

namespace mia::server {

namespace fs = std::filesystem;

// ---------------------------------------------------------------------------
// Per-example scores.

namespace {

// s2 tokens also hold the line number of the next row, for error messages
// (s1 tokens, without it, from an older server, read as malformed).
constexpr char kTokenVersion[] = "s2";

// Binds a page token to one file (by path and size) and one filter, so that a
// token from another listing is recognized instead of misread.
std::string TokenBinding(const std::string& path, uint64_t size, std::optional<int> target) {
  return Sha256Hex(absl::StrCat(path, "|", size, "|",
                                target.has_value() ? absl::StrCat(*target) : std::string("*")))
      .substr(0, 16);
}

std::string EncodeToken(int64_t offset, int64_t line, const std::string& binding) {
  return absl::WebSafeBase64Escape(
      absl::StrCat(kTokenVersion, ":", offset, ":", line, ":", binding));
}

}  // namespace

absl::Status ScoresPage(const std::string& scores_csv_path, int64_t page_size,
                        const std::string& page_token, v1::ListAuditScoresResponse* out,
                        std::optional<int> target) {
  out->Clear();
  if (page_size < 0) return absl::InvalidArgumentError("page_size: must not be negative");
  if (page_size == 0) page_size = kDefaultScoresPageSize;
  page_size = std::min(page_size, kMaxScoresPageSize);

  std::error_code ec;
  const uint64_t size = fs::file_size(scores_csv_path, ec);
  std::ifstream in(scores_csv_path, std::ios::binary);
  if (ec || !in) return absl::NotFoundError("scores.csv: the audit has no scores file");

  std::vector<std::string> fields;
  absl::StatusOr<std::vector<std::string>> attacks;
  int64_t header_end = 0, first_row_line = 0;
  {
    CsvReader header(&in, "scores.csv");
    absl::StatusOr<bool> read = header.Next(&fields);
    if (!read.ok()) return read.status();
    if (!*read) return absl::DataLossError("scores.csv: line 1: no header");
    attacks = report::ParseScoresHeader(header, fields);
    if (!attacks.ok()) return attacks.status();
    header_end = header.offset();
    first_row_line = header.line();
  }
  for (const std::string& name : *attacks) out->add_attacks(name);
  const std::string binding = TokenBinding(scores_csv_path, size, target);

  int64_t offset = header_end;
  int64_t line = first_row_line;
  if (!page_token.empty()) {
    std::string decoded;
    std::vector<std::string> parts;
    if (absl::WebSafeBase64Unescape(page_token, &decoded)) {
      parts = absl::StrSplit(decoded, ':');
    }
    if (parts.size() != 4 || parts[0] != kTokenVersion || !absl::SimpleAtoi(parts[1], &offset) ||
        !absl::SimpleAtoi(parts[2], &line) || line < first_row_line || parts[3].size() != 16) {
      return absl::InvalidArgumentError("page_token: malformed");
    }
    if (parts[3] != binding) {
      return absl::InvalidArgumentError(
          "page_token: issued for another listing (another audit or target filter)");
    }
    // A row starts right after a line break, past the header.
    char before = 0;
    if (offset <= header_end || static_cast<uint64_t>(offset) >= size ||
        !in.seekg(offset - 1).get(before) || before != '\n') {
      return absl::InvalidArgumentError("page_token: malformed");
    }
  }
  in.clear();
  in.seekg(offset);

  CsvReader reader(&in, "scores.csv", line);
  report::ScoresRow row;
  int64_t next = -1, next_line = 0;
  bool matched = false;
  while (true) {
    absl::StatusOr<bool> read = reader.Next(&fields);
    if (!read.ok()) return read.status();
    if (!*read) break;
    const absl::Status parsed = report::ParseScoresRow(reader, fields, attacks->size(), &row);
    if (!parsed.ok()) return parsed;
    if (target.has_value() && row.target != *target) {
      // Rows are grouped by target: past the requested one, nothing follows.
      if (matched) break;
      continue;
    }
    matched = true;
    if (out->rows_size() == page_size) {
      next = offset + reader.record_offset();
      next_line = reader.record_line();
      break;
    }
    v1::ScoreRow* proto = out->add_rows();
    proto->set_row_id(row.row_id);
    proto->set_target(row.target);
    proto->set_member(row.member);
    for (double score : row.scores) proto->add_scores(score);
  }
  if (next >= 0) out->set_next_page_token(EncodeToken(next, next_line, binding));
  return absl::OkStatus();
}

}  // namespace mia::server
