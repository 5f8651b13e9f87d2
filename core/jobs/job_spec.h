// What a job runs, as the store keeps it: JobRecord::spec_json. The job layer
// accepts two kinds of spec, told apart by the top-level "kind" key.
//
// 1. A pipeline audit (train or load models, compute signals, attack, report):
//    the audit configuration of docs/config.md (sections run, data, train,
//    audit, models) written as JSON. No "kind" key, or "kind": "pipeline"
//    (removed before parsing). pipeline::ParseConfig reads it (JSON is YAML),
//    strictly: an unknown key is an error naming its path.
//
//      {"run": {"random_seed": 7, "num_experiments": 1},
//       "data": {"dataset": "purchase100", "data_dir": "/srv/data/purchase100",
//                "population_size": 10000},
//       "train": {"model_name": "mlp", "epochs": 20},
//       "audit": {"attacks": ["rmia"], "num_ref_models": 4}}
//
// 2. A bundle audit: score a signals bundle computed elsewhere
//    (docs/bundle-format.md); no training.
//
//      {"kind": "bundle",
//       "bundle_path": "/srv/inputs/signals.npz",
//       "scoring": {"attacks": ["rmia", "lira"], "targets": [0], "all_targets": false,
//                   "temperature": 1.0, "fprs": [0.1, 0.01, 0.001], "bootstrap": 1000,
//                   "confidence": 0.95, "delta": 1e-5, "beta": 0.05, "seed": 0}}
//
//    bundle_path (an .npz file or a folder) is required; "scoring", "policy"
//    and each of their keys are optional. "policy" is the privacy gate,
//    written with the keys of audit.policy (docs/config.md), e.g.
//    {"use": "estimate", "max_auc": 0.6, "max_tpr_at_fpr": {"0.001": 0.01},
//     "attacks": {"rmia": {"max_epsilon_lower_bound": 2}}}; its FPRs are
//    added to scoring.fprs, and the result carries its verdict. Of scoring: attacks (default ["rmia", "lira"]), targets
//    (default: the bundle's list), all_targets (attack every model in turn),
//    temperature in (0, 1e6], fprs each in [0, 1] (default: the standard
//    grid), bootstrap resamples in [0, 1e6] (0: no intervals), confidence in
//    [0.5, 0.9999], delta in [0, 0.5], beta in [1e-9, 0.5], seed an unsigned
//    64-bit integer. (tests/jobs/job_manager_test.cc decodes both examples.)
//
//    The key names match the `audit` section of the configuration and the
//    flags of `mia score`. Unknown keys and wrong types are InvalidArgument
//    naming the key path ("scoring.temperature"). Paths are used as given:
//    checking them against the server's allowed roots is the caller's job.
//
// Torch-free: the server validates specs with these functions before it
// creates a job, and the runners decode them again when they run it.
// Free functions; safe from any thread.
#ifndef MIA_CORE_JOBS_JOB_SPEC_H_
#define MIA_CORE_JOBS_JOB_SPEC_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/audit/policy.h"
#include "core/audit/scoring.h"
#include "core/pipeline/config.h"

namespace YAML {
class Node;
}  // namespace YAML

namespace mia::jobs {

enum class JobSpecKind {
  kPipeline,  // an audit configuration: RunAudit
  kBundle,    // a signals bundle: LoadBundle + ScoreBundle
};

// A bundle audit, decoded.
struct BundleAuditSpec {
  std::string bundle_path;        // .npz file or folder of .npy files
  audit::ScoringOptions scoring;  // targets empty: the bundle's own list
  bool all_targets = false;       // every model of the bundle is a target in turn
  // The privacy gate (disabled: nothing is judged); scoring.fprs holds its
  // FPRs (BundlePolicyProblems adds them).
  audit::PolicySpec policy;
};

// Reads the policy mapping `node` (the keys of audit.policy; JSON is YAML)
// into spec->policy and checks it against spec->scoring as ParseConfig
// checks audit.policy against the audit section: per-attack limits name
// attacks that run, upper_ci needs bootstrap intervals, and the policy's FPRs
// and scoring.fprs together stay within pipeline::kMaxFprs; the FPRs are then
// added to spec->scoring.fprs. One problem per field, named `path` + its key
// ("spec.signals_bundle.policy.max_auc"). The server's CheckBundle and
// DecodeBundleSpec both go through here.
std::vector<pipeline::ConfigProblem> BundlePolicyProblems(const YAML::Node& node,
                                                          const std::string& path,
                                                          BundleAuditSpec* spec);

// Which kind of spec `spec_json` is. InvalidArgument when it is not a JSON
// object or names an unknown kind. Does not validate the rest.
absl::StatusOr<JobSpecKind> JobSpecKindOf(absl::string_view spec_json);

// Decodes and validates a bundle audit spec (kind must be "bundle").
absl::StatusOr<BundleAuditSpec> DecodeBundleSpec(absl::string_view spec_json);

// The JSON DecodeBundleSpec accepts, every key written (the form the store
// keeps when a client sends a protobuf spec). Round-trips every field the
// format above names.
std::string EncodeBundleSpec(const BundleAuditSpec& spec);

// Decodes and validates a pipeline audit spec with pipeline::ParseConfig;
// relative paths in it are relative to the server's working directory.
absl::StatusOr<pipeline::Config> DecodePipelineSpec(absl::string_view spec_json);

// Decodes a spec of either kind, reporting the first problem: what the server
// runs before accepting a job.
absl::Status ValidateJobSpec(absl::string_view spec_json);

}  // namespace mia::jobs

#endif  // MIA_CORE_JOBS_JOB_SPEC_H_
