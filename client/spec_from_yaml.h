// Converts a job file (YAML) into the API's mia.v1.AuditSpec for `mia submit`.
//
// Two shapes are accepted (docs/service.md):
// - the audit config of `mia audit` (sections run, data, train, audit, models;
//   docs/config.md), mapped field for field onto AuditSpec, whose messages
//   mirror the YAML key names;
// - a bundle job: a single top-level `bundle:` section (path plus the scoring
//   options of `mia score`), mapped onto AuditSpec.signals_bundle.
//
// Parsing is as strict as `mia audit`: an unknown key or a value of the wrong
// type is an error naming the key path and line. Values are not range-checked
// here: the server validates every field and reports all problems at once, so
// the API and the CLI share one validator.
//
// File references (data.data_dir, models.torchscript, models.keep,
// bundle.path) become DataRefs: a plain string is a path on the server
// (DataRef.server_path); "artifact:<sha256>" names an artifact uploaded
// earlier; "upload:<local file>" is a file `mia submit` uploads first, listed
// in ConvertedSpec::uploads and filled in by SetUploadedArtifact.
//
// Plain functions without shared state; safe from any thread.
#ifndef MIA_CLIENT_SPEC_FROM_YAML_H_
#define MIA_CLIENT_SPEC_FROM_YAML_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "mia/v1/audit.pb.h"

namespace mia::client {

// A local file named as "upload:FILE" in the job file.
struct PendingUpload {
  // YAML key path of the reference: "data.data_dir", "models.torchscript[1]",
  // "models.keep" or "bundle.path". Also identifies the DataRef to fill.
  std::string field;
  // FILE as written; relative paths are relative to the working directory.
  std::string local_path;
};

struct ConvertedSpec {
  mia::v1::AuditSpec spec;
  // Files to upload before CreateAudit, in the order they appear. Their
  // DataRefs are present in `spec` but have no source until
  // SetUploadedArtifact fills them.
  std::vector<PendingUpload> uploads;
  // Keys that only `mia audit` uses (run.log_dir, audit.report_log: the server
  // decides where files go) and were left out, one human line each.
  std::vector<std::string> notes;
};

// Parses YAML text; `path` prefixes every message. INVALID_ARGUMENT listing
// every problem, one per line ("job.yaml: train.epochs: expected an integer
// (line 12)").
absl::StatusOr<ConvertedSpec> SpecFromYaml(const std::string& yaml_text, const std::string& path);

// Reads and parses a file; NOT_FOUND when it cannot be opened.
absl::StatusOr<ConvertedSpec> SpecFromYamlFile(const std::string& path);

// Points the DataRef at `field` (a PendingUpload::field) to an uploaded
// artifact. NOT_FOUND when `spec` has no reference at that path.
absl::Status SetUploadedArtifact(const std::string& field, const std::string& artifact_id,
                                 mia::v1::AuditSpec* spec);

// Reads a policy file for `mia submit --policy FILE`, as `mia score --policy
// FILE` reads one: the keys of audit.policy at its top level, checked by the
// policy's own parser (core/audit/policy.h: InvalidArgument listing every
// problem with its line, NotFound when the file cannot be opened), then
// mapped onto the API's PolicySection.
absl::StatusOr<mia::v1::PolicySection> PolicyFromYamlFile(const std::string& path);

// Puts `policy` into `spec`: signals_bundle.policy for a bundle job,
// audit.policy for an audit config. InvalidArgument when the job file
// (`job_file`, for the message) already has a policy there.
absl::Status SetSpecPolicy(const mia::v1::PolicySection& policy, const std::string& job_file,
                           mia::v1::AuditSpec* spec);

}  // namespace mia::client

#endif  // MIA_CLIENT_SPEC_FROM_YAML_H_
