// Reads a finished audit's result back from its report folder, for GetAudit
// and WatchAudit: the figures from result.json, and the exact ROC of every
// (attack, target) recomputed from scores.csv (result.json does not hold the
// curves: one point per distinct score is too big for it). ResultToProto
// (result_convert.h) then downsamples the curves for the API.
//
// ResultCache keeps the converted results of recent audits, since a report
// never changes once its job SUCCEEDED and a thousand watchers of one audit
// should not parse its files a thousand times.
//
// Thread-safety: LoadReportResult is a free function (reads files only).
// ResultCache is safe from any thread; it loads outside its lock.
#ifndef MIA_SERVER_RESULT_LOADER_H_
#define MIA_SERVER_RESULT_LOADER_H_

#include <cstddef>
#include <list>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "core/audit/result.h"
#include "mia/v1/audit.pb.h"

namespace mia::server {

// The result in `report_dir` (result.json and scores.csv; see
// docs/report-format.md). Per-point scores are not kept (ListAuditScores
// pages them from the file). NotFound when result.json is missing, DataLoss
// when it or scores.csv does not parse; a missing scores.csv only leaves the
// curves empty.
absl::StatusOr<audit::AuditResult> LoadReportResult(const std::string& report_dir);

// The files of a report folder a client may download, sorted: regular files
// only, no links, no hidden names (temporary files of an atomic write).
// DataLoss when the folder cannot be read.
absl::StatusOr<std::vector<std::string>> ReportFileNames(const std::string& report_dir);

// The manifest of a report: the names of its files when its audit SUCCEEDED,
// one per line, in "<report_dir>.files" beside the folder (outside it, so it
// is no report file itself). It tells a file deleted under a finished audit
// from one the audit never had. Written by the server when the job ends.
absl::Status WriteReportManifest(const std::string& report_dir);

// The files the manifest lists that `present` lacks, sorted. Empty when there
// is no manifest (a report from before manifests): nothing to compare with.
std::vector<std::string> MissingReportFiles(const std::string& report_dir,
                                            const std::vector<std::string>& present);

// The API form of the results of recently read reports, most recent first,
// at most `capacity` of them.
class ResultCache {
 public:
  explicit ResultCache(size_t capacity = 64) : capacity_(capacity) {}

  // The converted result in `report_dir` (ResultToProto with the ROCs
  // downsampled), loading it on a miss.
  absl::StatusOr<std::shared_ptr<const mia::v1::AuditResult>> Get(const std::string& report_dir);

  // Forgets `report_dir` (its audit was deleted).
  void Erase(const std::string& report_dir);

 private:
  const size_t capacity_;
  absl::Mutex mu_;
  std::list<std::string> order_ ABSL_GUARDED_BY(mu_);  // most recent first
  std::map<std::string,
           std::pair<std::shared_ptr<const mia::v1::AuditResult>, std::list<std::string>::iterator>>
      entries_ ABSL_GUARDED_BY(mu_);
};

}  // namespace mia::server

#endif  // MIA_SERVER_RESULT_LOADER_H_
