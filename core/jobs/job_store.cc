// Parts shared by every JobStore implementation: page tokens.
#include "core/jobs/job_store.h"

#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace mia::jobs {
namespace {

// A version tag first, so the format can change without old tokens being
// misread: "p1|<create_time unix nanos>|<state name or empty>|<id>".
constexpr absl::string_view kTokenVersion = "p1";

absl::Status Malformed() {
  return absl::InvalidArgumentError("page_token: malformed (use the next_page_token of a page)");
}

}  // namespace

std::string EncodePageToken(const PageCursor& cursor) {
  const std::string raw =
      absl::StrCat(kTokenVersion, "|", absl::ToUnixNanos(cursor.create_time), "|",
                   cursor.state.has_value() ? JobStateName(*cursor.state) : "", "|", cursor.id);
  return absl::WebSafeBase64Escape(raw);
}

absl::StatusOr<PageCursor> DecodePageToken(absl::string_view token) {
  std::string raw;
  if (token.size() > 512 || !absl::WebSafeBase64Unescape(token, &raw)) return Malformed();
  const std::vector<absl::string_view> parts = absl::StrSplit(raw, absl::MaxSplits('|', 3));
  if (parts.size() != 4 || parts[0] != kTokenVersion) return Malformed();
  PageCursor cursor;
  int64_t nanos = 0;
  if (!absl::SimpleAtoi(parts[1], &nanos)) return Malformed();
  cursor.create_time = absl::FromUnixNanos(nanos);
  if (!parts[2].empty()) {
    cursor.state = ParseJobState(parts[2]);
    if (!cursor.state.has_value()) return Malformed();
  }
  if (!ValidateJobId(parts[3]).ok()) return Malformed();
  cursor.id = std::string(parts[3]);
  return cursor;
}

}  // namespace mia::jobs
