// Audit specs between the API (mia.v1.AuditSpec) and core: SpecFromProto maps
// an AuditSpec onto the YAML keys of docs/config.md and validates it with
// pipeline::ParseConfig, so the API and `mia audit --config` share one
// validator, one set of limits and defaults, and report the same problems by
// the same names. It adds only the server's own checks (inputs are
// references under the operator's roots, artifact ids, fields the server
// refuses). A spec is stored as its canonical proto3 JSON
// (CanonicalSpecJson); GetAudit returns it parsed back (SpecProtoFromJson).
// Nothing here depends on gRPC. Free functions; safe from any thread.
#ifndef MIA_SERVER_SPEC_CONVERT_H_
#define MIA_SERVER_SPEC_CONVERT_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/jobs/job_spec.h"
#include "core/pipeline/config.h"
#include "mia/v1/audit.pb.h"
#include "server/path_sandbox.h"

namespace mia::server {

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
// ids present, and the refused fields
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

}  // namespace mia::server

#endif  // MIA_SERVER_SPEC_CONVERT_H_
