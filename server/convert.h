// The one place where API messages (mia.v1) and core types meet. Service
// handlers are few-line adapters: convert the request here, call a
// transport-free function, convert the answer here, and turn the Status into a
// grpc::Status once at the edge. Nothing in this header depends on gRPC.
//
// - Specs: SpecFromProto maps an AuditSpec onto the YAML keys of
//   docs/config.md and validates it with pipeline::ParseConfig, so the API and
//   `mia audit --config` share one validator, one set of limits and defaults,
//   and report the same problems by the same names. It adds only the server's
//   own checks (inputs are references under the operator's roots, artifact
//   ids, fields the server refuses).
// - Storage: a spec is stored as its canonical proto3 JSON (CanonicalSpecJson);
//   GetAudit returns it parsed back (SpecProtoFromJson), i.e. the spec as the
//   client sent it, normalized by the JSON encoding.
// - Results, jobs, error codes and per-example score pages: plain conversions.
//
// Free functions without shared state; safe from any thread. Functions that
// read the filesystem (SpecFromProto, ScoresPage) see it as it is at the call.
#ifndef MIA_SERVER_CONVERT_H_
#define MIA_SERVER_CONVERT_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/audit/result.h"
#include "core/audit/scoring.h"
#include "core/jobs/job.h"
#include "core/jobs/job_spec.h"
#include "core/pipeline/config.h"
#include "mia/v1/audit.pb.h"

namespace mia::server {

// Where the server may read inputs and write files; set by the operator at
// start (flags or config file), fixed for the server's lifetime.
struct ServerRoots {
  // Folders a DataRef.server_path may point into (after resolving `..` and
  // symbolic links). Relative server paths are looked up under each root in
  // order. Empty: only uploaded artifacts can be referenced.
  std::vector<std::string> data_roots;
  // Uploaded artifacts: artifact_dir/<64 hex id> (a file, or a folder for a
  // folder-shaped upload). Empty: the server holds no uploads.
  std::string artifact_dir;
  // One folder per job: jobs_dir/<job id>/ (its report under report/).
  std::string jobs_dir;
  // Trained models and signals shared by every job (the pipeline's artifact
  // store, keyed by what determines each model), so a job reuses the models an
  // earlier job trained. Empty: the folder `cache` beside jobs_dir.
  std::string cache_dir;

  // cache_dir, or <parent of jobs_dir>/cache when it is empty.
  std::string ModelCacheDir() const;
};

// One problem with a spec: google.rpc.BadRequest.FieldViolation, plus the
// status code it calls for on its own.
struct FieldViolation {
  std::string field;        // path from the request, e.g. "spec.train.learning_rate"
  std::string description;  // what is wrong, e.g. "must be in [1e-12, 100]"; no data values
  // kInvalidArgument, or kNotFound for a reference to a file or artifact the
  // server does not have.
  absl::StatusCode code = absl::StatusCode::kInvalidArgument;
};

// The type URL under which ViolationsToStatus attaches the violations, as a
// serialized google.rpc.BadRequest, for the gRPC layer to forward as details.
inline constexpr char kBadRequestTypeUrl[] = "type.googleapis.com/google.rpc.BadRequest";

// One status for a non-empty list of violations: NOT_FOUND when every one is a
// missing reference, else INVALID_ARGUMENT. The message lists them all
// ("spec has 2 problems: spec.a: ...; spec.b: ..."); the payload
// kBadRequestTypeUrl holds them as a google.rpc.BadRequest. OK when empty.
absl::Status ViolationsToStatus(const std::vector<FieldViolation>& violations);

// A validated spec, ready for a job to run.
struct JobSpec {
  enum class Kind {
    kPipeline,  // load data, train or load models, compute signals, score
    kBundle,    // score a signals bundle
  };
  Kind kind = Kind::kPipeline;
  // kPipeline: the validated configuration, what the job runs (handed to the
  // pipeline runner as a value) and what the server's own checks read (the
  // memory estimate). Paths in it are resolved and inside the roots;
  // run.log_dir is the shared model cache.
  pipeline::Config config;
  // kBundle: what to score; bundle_path is resolved and inside the roots.
  jobs::BundleAuditSpec bundle;
  // CanonicalSpecJson of the spec: what the store keeps (JobRecord.spec_json).
  std::string spec_json;
  // SHA-256 hex of spec_json: what idempotency compares (JobRecord.spec_hash).
  std::string spec_hash;
  // ServerRoots::ModelCacheDir() at conversion.
  std::string model_cache_dir;
};

// Validates `spec` and converts it, collecting every problem rather than
// stopping at the first. Pipeline sections: ParseConfig's problems (ranges,
// choices, list limits, rules across fields), each named "spec." + its key
// path (train.hidden as spec.train.hidden.widths). The server's own: exactly
// one of data / signals_bundle, server paths inside roots.data_roots, artifact
// ids present, attacks' need of a population, and the refused fields
// run.log_dir and audit.report_log (the server decides where files go); a
// field the server refused is not reported again by ParseConfig. A signals
// bundle: its attacks, targets and scoring ranges by the same shared checks
// (pipeline::AttackListProblems, ScoringProblems). On failure the status is
// ViolationsToStatus(all problems); `violations`, when given, receives them
// too (empty on success).
absl::StatusOr<JobSpec> SpecFromProto(const mia::v1::AuditSpec& spec, const ServerRoots& roots,
                                      std::vector<FieldViolation>* violations = nullptr);

// The storage form of a spec: proto3 JSON with the .proto field names, fields
// in field-number order and nothing else, so the same spec always gives the
// same bytes however it was built or in whatever order a client's JSON listed
// its keys. Unset optional fields are absent; set ones appear even when 0.
std::string CanonicalSpecJson(const mia::v1::AuditSpec& spec);

// Parses a stored spec (CanonicalSpecJson output) back. INTERNAL when it does
// not parse: stored specs are the server's own.
absl::StatusOr<mia::v1::AuditSpec> SpecProtoFromJson(const std::string& json);

// The figures of `result` as an API message. Conventions, for values core
// marks as missing:
// - an Interval (auc_ci, tpr_at_fpr[].ci) is set only when both ends are
//   finite (the bootstrap off or failed: unset);
// - an unresolved TPR has resolved = false and neither tpr nor ci set;
// - `epsilon` is unset when no bound could be computed (NaN); its threshold
//   may be +Infinity; its delta comes from result.spec_json when stated there
//   (audit.delta, epsilon.delta or delta);
// - any other NaN stays NaN (proto3 doubles and their JSON carry it).
// Each ROC is downsampled with metrics::DownsampleLogFpr to about roc_points
// points on a log-spaced FPR grid from 1e-5, so the low-FPR region survives.
void ResultToProto(const audit::AuditResult& result, mia::v1::AuditResult* out,
                   int roc_points = 300);

// JobState <-> Audit.State.
mia::v1::Audit::State StateToProto(jobs::JobState state);
// STATE_UNSPECIFIED (and unknown values) give nullopt: "any state" as a filter.
std::optional<jobs::JobState> StateFromProto(mia::v1::Audit::State state);

// The API view of a job. `result` (may be null) is set only for a SUCCEEDED
// job; `error` only for a FAILED one (its field_path taken from a message that
// starts with "spec.<path>: ", its stage from the job's last progress stage).
// `view`: BASIC omits the spec and the ROC curves; FULL and UNSPECIFIED
// include them (callers resolve a method's default before calling). INTERNAL
// when the stored spec does not parse; `out` is then complete but for it.
absl::Status JobToProto(const jobs::JobRecord& job, const audit::AuditResult* result,
                        mia::v1::AuditView view, mia::v1::Audit* out);

// Canonical code names, as google.rpc.Code and Error.code spell them:
// "INVALID_ARGUMENT", "NOT_FOUND", ... (kOk: "OK").
std::string StatusCodeName(absl::StatusCode code);
// The inverse; nullopt for any other text.
std::optional<absl::StatusCode> StatusCodeFromName(absl::string_view name);
// The status a stored error stands for (an unknown code name reads UNKNOWN).
absl::Status StatusFromError(absl::string_view code_name, absl::string_view message);

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

#endif  // MIA_SERVER_CONVERT_H_
