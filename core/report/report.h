// The report writer: turns an AuditResult into the files a user reads
// (result.json, scores.csv, roc.svg, roc_log.svg, summary.md, report.html,
// timing.log, and dp_audit.svg for a DP audit in one run).
// The format of each file is described in docs/report-format.md.
//
// The string builders are pure functions of the result (no I/O, no clock), so
// the same result always gives byte-identical files; only WriteReport touches
// the file system. Safe from any thread for distinct output folders.
#ifndef MIA_CORE_REPORT_REPORT_H_
#define MIA_CORE_REPORT_REPORT_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/audit/result.h"
#include "core/common/csv.h"

namespace mia::report {

struct ReportOptions {
  // Most points drawn per ROC curve in the SVG plots. Exact ROCs have one point
  // per distinct score (up to the number of audit points); the curves are
  // thinned so their shape survives on the plot's axes (see ThinCurve).
  int max_plot_points = 400;
  // models.json of the audit (the pipelines write it beside the report), shown
  // in report.html's Models section; empty when the audit trained or loaded no
  // models (bundle scoring), and the section says so.
  std::string models_json;
  // Audit points listed per attack in report.html's "most exposed" section
  // (the highest scores on the first target). scores.csv holds them all.
  int html_top_points = 20;
};

// Writes result.json, scores.csv, roc.svg, roc_log.svg, summary.md,
// report.html and timing.log (a DUCI audit: result.json, duci.svg,
// summary.md, report.html, timing.log; a DP audit in one run adds
// dp_audit.svg) into `out_dir`, creating it (and its parents) if missing and
// replacing files of those names. Each file is written to a temporary file in
// `out_dir` and renamed over its final name, so a reader never sees a partial
// file. Errors name the path concerned: InvalidArgument when
// `result.spec_json` is neither empty nor a JSON object, Internal for file
// system failures.
absl::Status WriteReport(const audit::AuditResult& result, const std::string& out_dir,
                         const ReportOptions& options = {});

// Building blocks of WriteReport, exposed for tests and for the service.

// result.json: pretty-printed, versioned; non-finite numbers become null. If
// spec_json is not valid JSON it is embedded as a string (WriteReport refuses
// it instead).
std::string ResultJson(const audit::AuditResult& result);

// Reads result.json's text back (the server's result loader, `mia compare`):
// every figure and the policy verdict; the ROC curves and per-point arrays are
// not in the file. DataLoss naming `path` when the text is not a mia result or
// a field has the wrong type.
absl::StatusOr<audit::AuditResult> ParseResultJson(const std::string& text,
                                                   const std::string& path);

// scores.csv: one row per (target, audit point), one score column per attack.
std::string ScoresCsv(const audit::AuditResult& result);

// Reading scores.csv back (the server's score pages and result loader), record
// by record through a CsvReader (core/common/csv.h). Errors are DATA_LOSS
// naming the file, the line and the field, never the field's text.
//
// The attack names of a header record; an error unless it starts with
// row_id,target,member.
absl::StatusOr<std::vector<std::string>> ParseScoresHeader(const CsvReader& reader,
                                                           const std::vector<std::string>& fields);
// One row of scores.csv; a score left empty (not scored) is NaN.
struct ScoresRow {
  int64_t row_id = 0;
  int target = 0;
  bool member = false;
  std::vector<double> scores;  // one per attack column
};
// Parses a row record of a file with `attacks` attack columns.
absl::Status ParseScoresRow(const CsvReader& reader, const std::vector<std::string>& fields,
                            size_t attacks, ScoresRow* row);

// summary.md: per-attack tables of the headline figures.
std::string SummaryMarkdown(const audit::AuditResult& result);

// report.html: one self-contained page (inline CSS and SVG, no script, no
// URL loaded) with the verdict (when result.json has a policy), per-attack
// tables, both ROC plots, the epsilon bounds, the spread over targets, the
// models (options.models_json), the most exposed audit points by row id, every
// warning, the spec and the timing. Its figures are result.json's: each figure
// cell carries result.json's exact number in data-value (a TPR cell its FPR in
// data-fpr).
std::string ReportHtml(const audit::AuditResult& result, const ReportOptions& options = {});
// The same page with its figures (and the verdict of a `policy` object) taken
// from `result_json`, the text of result.json that WriteReport writes beside
// it; the ROC curves and exposed points come from `result`.
std::string ReportHtml(const audit::AuditResult& result, const std::string& result_json,
                       const ReportOptions& options);

// timing.log: "stage<TAB>seconds" per stage, then a total line.
std::string TimingLog(const audit::AuditResult& result);

// roc.svg (linear axes) or roc_log.svg (log-log axes from 1e-5 to 1).
std::string RocSvg(const audit::AuditResult& result, bool log_axes,
                   const ReportOptions& options = {});

// dp_audit.svg: a DP audit's epsilon lower bound against the number of
// guesses, one line per attack over its grid, and Privacy Meter's best split
// (chosen after looking) as a separate mark. Written by WriteReport when
// result.dp_audit is set.
std::string DpAuditSvg(const audit::DpAuditResult& dp_audit);

// duci.svg (a DUCI audit's reports only): each attack's clipped estimate
// against the true fraction, the diagonal being a perfect estimate.
std::string DuciSvg(const audit::AuditResult& result);

}  // namespace mia::report

#endif  // MIA_CORE_REPORT_REPORT_H_
