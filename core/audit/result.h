// The result of one audit, as plain data: what the report writer, the CLI and
// (later) the service turn into files and messages. Derived figures are computed
// by core/audit/scoring.cc; nothing here does I/O.
#ifndef MIA_CORE_AUDIT_RESULT_H_
#define MIA_CORE_AUDIT_RESULT_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/metrics/bootstrap.h"
#include "core/metrics/privacy_bound.h"
#include "core/metrics/roc.h"
#include "core/metrics/spread.h"

namespace mia::audit {

// Version of the result.json schema; bump on any incompatible change.
inline constexpr int kResultSchemaVersion = 2;  // docs/report-format.md, "Changelog"

// One attack run against one target model.
struct AttackTargetResult {
  std::string attack;   // registry name with options, e.g. "rmia" or "lira-offline"
  int target = 0;       // model index in the bundle
  int64_t members = 0;  // scored audit points that target trained on
  int64_t non_members = 0;
  int64_t excluded = 0;  // audit points the attack could not score (no OUT/IN reference)
  double auc = 0;
  metrics::Interval auc_ci;
  std::vector<metrics::TprAtFpr> tpr_at_fpr;  // at AuditResult::fprs
  std::vector<metrics::Interval> tpr_ci;      // same order
  metrics::EpsilonBound epsilon;
  std::map<std::string, double> chosen;  // tuned parameters, e.g. {"a": 0.3}
  std::vector<std::string> warnings;
  metrics::RocCurve roc;       // exact ROC of this attack on this target
  std::vector<double> scores;  // per audit point; NaN where excluded
};

// Mean and spread over the targets of one attack.
struct AttackSummary {
  std::string attack;
  metrics::Spread auc;
  std::vector<metrics::Spread> tpr_at_fpr;  // per FPR, over targets where it was resolved
};

// Seconds spent in one stage of the audit. Stages are named as the progress
// stages are (docs/report-format.md): load, train, signals, attack, metrics,
// report; each appears once.
struct StageTiming {
  std::string stage;
  double seconds = 0;
};

// Adds `seconds` to `stage`'s entry, appending the entry the first time, so a
// stage measured in several pieces (signals from the models, then from logits;
// one attack after another) is still one line.
inline void AddStageTime(std::vector<StageTiming>* timings, const std::string& stage,
                         double seconds) {
  for (StageTiming& t : *timings) {
    if (t.stage == stage) {
      t.seconds += seconds;
      return;
    }
  }
  timings->push_back({stage, seconds});
}

// A range audit's settings and counts (RaMIA, ATTACKS.md "Range
// membership"); its attacks' results are on the ranges, named "<attack>@range".
struct RamiaSummary {
  std::string range_function;  // l2 | missing_values | geometric
  int sample_size = 0;         // points sampled per range
  double trim = 0;             // fraction dropped at each end of the sorted scores
  int trimmed_each_end = 0;    // points dropped at each end: floor(trim * sample_size)
  double radius = 0;           // l2 only (0 otherwise)
  int num_missing_feats = 0;   // missing_values only
  int64_t ranges = 0;          // ranges audited
  int64_t member_ranges = 0;   // centred on (perturbed) training points of target 0
  int64_t non_member_ranges = 0;  // centred on (perturbed) population points
  int64_t population_points = 0;  // population points the attacks compared with
};

// The RDP accountant's guarantee of a target trained with DP-SGD (ATTACKS.md,
// "DP-SGD and its accountant"): the upper bound its empirical lower bounds
// must stay below.
struct DpGuarantee {
  int target = 0;               // model index, as in AuditResult::targets
  double epsilon = 0;           // +infinity when the accountant gives no bound
  double delta = 0;
  int order = 0;                // RDP order attaining epsilon
  double noise_multiplier = 0;  // sigma
  double max_grad_norm = 0;     // C
  double sample_rate = 0;       // q
  int64_t steps = 0;            // optimizer steps T
};

// One attack's empirical lower bound on a DP-SGD target beside that target's
// accountant epsilon (audit/dp_guarantee.h computes them).
struct DpBoundCheck {
  std::string attack;
  int target = 0;
  double lower_bound = 0;         // AttackTargetResult::epsilon.epsilon
  double lower_bound_delta = 0;   // the delta it holds for
  double accountant_epsilon = 0;  // DpGuarantee::epsilon
  double accountant_delta = 0;
  // lower_bound > accountant_epsilon: impossible for a correct training and a
  // correct audit (at the bound's confidence), so a bug in one of them.
  bool exceeded = false;
};

// DP auditing in one run (ATTACKS.md, "DP auditing in one run"): one row of
// an attack's table, the guesses of one (k+, k-) split and their bound.
struct DpAuditEntry {
  int64_t k_plus = 0;   // IN guessed for the k+ highest scores
  int64_t k_minus = 0;  // OUT guessed for the k- lowest scores
  int64_t guesses = 0;  // r = k+ + k-
  int64_t correct = 0;  // v
  double epsilon = 0;   // the lower bound at (m, r, v), delta, beta
  // True for the split Privacy Meter would report ("best" over its grid of
  // steps of floor(sqrt(m))): chosen after looking at the scores, so its
  // bound is optimistic.
  bool chosen_after_looking = false;
};

// One attack's guesses and bounds against the target.
struct DpAuditAttackResult {
  std::string attack;
  std::vector<DpAuditEntry> entries;  // the grid asked for, then the chosen-after-looking split
  size_t best = 0;  // entry with the largest epsilon among the grid asked for (first on ties)
};

struct DpAuditResult {
  std::string canary_dataset;  // mislabelled | natural
  std::string training_alg;    // nondp | dp
  int64_t canaries = 0;        // m (the audit points, result.row_ids)
  int64_t included = 0;        // canaries the target trained on
  double delta = 0;
  double beta = 0.05;
  std::vector<DpAuditAttackResult> attacks;  // one per attack, in the audit's order
  // Says that the largest bound over a grid is optimistic unless the grid
  // was fixed before looking at the scores.
  std::string note;
};

// Dataset usage cardinality inference (DUCI; ATTACKS.md, "Dataset usage"):
// what fraction of a candidate dataset X each target trained on.
// docs/duci.md. NaN (null in JSON) where a figure is undefined.

// The estimate of one target by one attack.
struct DuciTargetEstimate {
  int target = 0;                 // model index in the bundle
  double true_fraction = 0;       // what the game trained it on; NaN when unknown
  int64_t points = 0;             // points of X scored
  int64_t excluded = 0;           // points of X the attack could not score
  int64_t predicted_members = 0;  // scored points with score >= the threshold
  double estimate = 0;            // p_hat, unclipped (may leave [0, 1]); NaN: no signal
  double estimate_clipped = 0;    // p_hat clipped to [0, 1]
  double error = 0;               // |estimate - true_fraction| (unclipped)
  double error_clipped = 0;       // |estimate_clipped - true_fraction|
};

// One attack's DUCI: the threshold chosen on the references (each attacked
// with the others as its references; TPR - FPR maximised over all their
// (score, membership) pairs), then every target's estimate.
struct DuciAttackResult {
  std::string attack;
  double threshold = 0;           // member when score >= threshold
  double tpr = 0, fpr = 0;        // of the threshold on the references' pairs
  int64_t reference_members = 0;  // pairs the threshold was chosen on
  int64_t reference_non_members = 0;
  bool signal = false;  // tpr > fpr: false leaves every estimate NaN
  std::vector<DuciTargetEstimate> targets;
  double mean_error = 0;  // mean |estimate - truth| over targets (NaN: none known)
  double mean_error_clipped = 0;
  std::vector<std::string> warnings;
};

struct DuciResult {
  int64_t candidate_points = 0;  // |X|: the audit points
  std::vector<int> references;   // models the thresholds were chosen on
  std::vector<DuciAttackResult> attacks;
};

// One rule of a privacy policy judged on one (attack, target)
// (core/audit/policy.h).
struct PolicyRuleResult {
  // The rule's key path in the policy: "max_auc", "max_tpr_at_fpr[0.001]",
  // "max_epsilon_lower_bound", or "attacks.rmia.max_auc" for a per-attack rule.
  std::string rule;
  std::string attack;  // the attack judged (for a top-level rule: the worst one)
  int target = 0;
  double value = 0;  // the figure judged; NaN when there is none (see note)
  double limit = 0;
  bool pass = false;  // value <= limit
  std::string note;   // why there is no value: "unresolved", "no interval"
};

// The verdict of a policy on a result: PASS when every rule passes.
struct PolicyVerdict {
  bool pass = false;
  std::string use;  // "estimate" or "upper_ci"
  std::vector<PolicyRuleResult> rules;
};

struct AuditResult {
  int schema_version = kResultSchemaVersion;
  std::string tool_version;      // mia version that produced it
  std::string spec_json;         // echo of the audit's settings, as a JSON object
  // What a re-score of the report's signals needs to reproduce the intervals
  // and bounds: `mia score --seed <seed> --bootstrap <resamples> ...`.
  uint64_t seed = 0;  // the scoring seed (ScoringOptions::seed)
  int bootstrap_resamples = 0;
  double confidence = 0.95;
  std::vector<double> fprs;      // FPRs the TPRs are reported at
  std::vector<int64_t> row_ids;  // dataset row id per audit point
  std::vector<int> targets;      // target model indices
  std::vector<std::vector<uint8_t>>
      membership;                           // per target: 1 if that target trained on the point
  std::vector<AttackTargetResult> results;  // every (attack, target) pair
  std::vector<AttackSummary> summaries;     // one per attack
  std::vector<std::string> warnings;        // audit-wide
  std::vector<StageTiming> timings;
  // Set for a range audit (audit.ramia): then row_ids and membership are per
  // range (its centre's dataset row) and every result is a range result.
  std::optional<RamiaSummary> ramia;
  // Targets trained with DP-SGD, one entry each in target order (none when
  // no target was), and each attack's lower bound on them beside the
  // accountant's epsilon (FillDpChecks).
  std::vector<DpGuarantee> dp;
  std::vector<DpBoundCheck> dp_checks;
  std::optional<DpAuditResult> dp_audit;    // a DP audit in one run
  // A DUCI audit's estimates (`results` and `summaries` are then empty).
  std::optional<DuciResult> duci;
  // Set when the audit had a policy (audit.policy, `mia score --policy`).
  std::optional<PolicyVerdict> policy;
};

}  // namespace mia::audit

#endif  // MIA_CORE_AUDIT_RESULT_H_
