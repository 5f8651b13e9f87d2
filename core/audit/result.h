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
  // A DUCI audit's estimates (`results` and `summaries` are then empty).
  std::optional<DuciResult> duci;
};

}  // namespace mia::audit

#endif  // MIA_CORE_AUDIT_RESULT_H_
