// The privacy gate: a policy (largest AUC, TPR at chosen FPRs and epsilon
// lower bound an audit may show) and the verdict of an audit's result against
// it. The policy is written as YAML keys (docs/config.md, "audit.policy"):
// under `audit.policy` in an audit config, or as a file of its own for
// `mia score --policy FILE`; both go through ParsePolicy, the one parser and
// validator of those keys. Judge is a pure function of a result and a policy.
//
// Torch-free, no I/O besides reading the file in LoadPolicyFile; safe from any
// thread.
#ifndef MIA_CORE_AUDIT_POLICY_H_
#define MIA_CORE_AUDIT_POLICY_H_

#include <cstddef>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "core/audit/result.h"

namespace YAML {
class Node;
}  // namespace YAML

namespace mia::audit {

// Limits on a policy (docs/config.md, "Limits"; pipeline/config.h repeats them).
inline constexpr size_t kMaxPolicyFprs = 64;     // max_tpr_at_fpr entries (per rule set)
inline constexpr size_t kMaxPolicyAttacks = 32;  // policy.attacks entries

// One set of limits. A limit left unset is not judged.
struct PolicyRules {
  std::optional<double> max_auc;  // largest AUC allowed, in [0, 1]
  // (FPR, largest TPR allowed at that FPR), both in [0, 1], sorted by FPR; no
  // FPR twice.
  std::vector<std::pair<double, double>> max_tpr_at_fpr;
  std::optional<double> max_epsilon_lower_bound;  // largest epsilon lower bound, >= 0

  bool empty() const {
    return !max_auc.has_value() && max_tpr_at_fpr.empty() && !max_epsilon_lower_bound.has_value();
  }
};

struct PolicySpec {
  bool enabled = false;  // a policy was given (otherwise nothing is judged)
  // "estimate": judge the figures themselves; "upper_ci": the upper end of
  // their bootstrap interval (AUC and TPR; the epsilon lower bound is already a
  // one-sided confidence bound and is judged as it is).
  std::string use = "estimate";
  // Top-level limits, judged on the worst attack: every attack of the audit.
  PolicyRules all_attacks;
  // Limits for one attack each: (canonical attack name, its limits), sorted
  // by name.
  std::vector<std::pair<std::string, PolicyRules>> per_attack;

  // Every FPR a rule names, sorted, without repeats.
  std::vector<double> Fprs() const;
};

// One problem with a policy, as pipeline::ConfigProblem: `field` is the key
// path ("audit.policy.max_tpr_at_fpr[0.001]"), `line` 1-based (0: unknown).
struct PolicyProblem {
  std::string field;
  std::string message;
  int line = 0;
};

// Parses the policy mapping `node` whose key path is `path` ("audit.policy",
// or "" for a policy file). Every problem is appended to `problems`; the
// returned spec holds the valid parts only. A null or missing node gives a
// disabled policy.
PolicySpec ParsePolicy(const YAML::Node& node, const std::string& path,
                       std::vector<PolicyProblem>* problems);

// Reads a policy file (`mia score --policy FILE`): the keys of audit.policy
// at its top level. InvalidArgument listing every problem ("FILE: field:
// message (line N); ..."), NotFound when it cannot be opened.
absl::StatusOr<PolicySpec> LoadPolicyFile(const std::string& path);

// The checks of a policy against the audit it judges: each per-attack entry
// names an attack of `attacks` (canonical names), and upper_ci needs bootstrap
// intervals (`bootstrap_resamples` > 0). Fields are `path` + the key.
std::vector<PolicyProblem> PolicyAuditProblems(const PolicySpec& policy,
                                               const std::vector<std::string>& attacks,
                                               int bootstrap_resamples, const std::string& path);

// The FPRs to score so that every rule can be judged: `fprs` (empty meaning
// metrics::DefaultFprs()) with the policy's FPRs that are not among them
// appended in increasing order. `fprs` is returned unchanged when it already
// holds them all.
std::vector<double> WithPolicyFprs(const std::vector<double>& fprs, const PolicySpec& policy);

// Judges `result` against `policy` (docs/config.md, "audit.policy"):
// - every target is judged on its own, and all must pass (the mean over
//   targets is not judged: a mean can hide one leaking model);
// - top-level rules are judged on the worst attack for each target (the one
//   with the largest value); per-attack rules on that attack;
// - a value equal to its limit passes;
// - a TPR that is unresolved at the rule's FPR (too few non-members), or an
//   upper_ci rule without an interval, fails (the audit cannot show the limit
//   holds), with a note saying why.
// InvalidArgument, naming the rule, when a rule's FPR is not among
// result.fprs or a per-attack rule names an attack the result does not have.
absl::StatusOr<PolicyVerdict> Judge(const AuditResult& result, const PolicySpec& policy);

}  // namespace mia::audit

#endif  // MIA_CORE_AUDIT_POLICY_H_
