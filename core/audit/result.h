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
inline constexpr int kResultSchemaVersion = 1;

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
  // Set when the audit had a policy (audit.policy, `mia score --policy`).
  std::optional<PolicyVerdict> policy;
};

}  // namespace mia::audit

#endif  // MIA_CORE_AUDIT_RESULT_H_
