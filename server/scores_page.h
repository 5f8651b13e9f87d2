// ListAuditScores: pages of a report's scores.csv (docs/report-format.md) as
// API messages, read through the one CSV reader (core/common/csv.h). Reads
// only the rows of a page (plus the header). Safe from any thread.
#ifndef MIA_SERVER_SCORES_PAGE_H_
#define MIA_SERVER_SCORES_PAGE_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "mia/v1/audit.pb.h"

namespace mia::server {

// ListAuditScores paging.
inline constexpr int64_t kDefaultScoresPageSize = 1000;
inline constexpr int64_t kMaxScoresPageSize = 10000;

// One page of the per-example scores in a report's scores.csv
// (docs/report-format.md). page_size 0 means kDefaultScoresPageSize and larger
// values are capped at kMaxScoresPageSize; negative is INVALID_ARGUMENT.
// `target` keeps only that target's rows. The page token is opaque: it holds
// the file position of the next row and is bound to this file and filter; a
// malformed token, or one issued for another listing, is INVALID_ARGUMENT.
// NOT_FOUND when the file is missing; DATA_LOSS, naming the line and field or
// column, when it is not a scores file.
// Reads only the rows of the page (plus the header), not the whole file.
absl::Status ScoresPage(const std::string& scores_csv_path, int64_t page_size,
                        const std::string& page_token, mia::v1::ListAuditScoresResponse* out,
                        std::optional<int> target = std::nullopt);

}  // namespace mia::server

#endif  // MIA_SERVER_SCORES_PAGE_H_
