// `mia compare A B`: the figures of two audits side by side, their
// differences with intervals, and whether B is worse than A beyond a
// threshold: privacy regression tests between model versions. A and B are
// report folders (with result.json) or remote audits ("audits/ID", fetched
// from --server). Torch-free; docs/ci.md shows it in a CI job.
#ifndef MIA_CLIENT_COMPARE_COMMAND_H_
#define MIA_CLIENT_COMPARE_COMMAND_H_

#include <optional>
#include <string>
#include <vector>

#include "client/remote_commands.h"
#include "core/audit/result.h"

namespace mia::client {

struct CompareOptions {
  std::string a;  // the baseline: a report folder or audits/ID
  std::string b;  // the candidate
  // B is worse when a figure of B exceeds A's by more than its threshold
  // (B - A > threshold). AUC always; TPR and epsilon when given.
  double auc_threshold = 0.02;
  std::optional<double> tpr_threshold;      // for every TPR at an FPR both audits have
  std::optional<double> epsilon_threshold;  // for the epsilon lower bound
  // "estimate": judge the difference of the estimates; "lower_ci": the lower
  // end of the difference's interval (B is worse only when the interval lies
  // above the threshold).
  std::string use = "estimate";
  bool json = false;  // one JSON object on stdout instead of the tables
};

// One figure of one attack in both audits.
struct ComparedFigure {
  std::string figure;  // "auc", "tpr@0.001", "epsilon"
  double a = 0, b = 0;
  metrics::Interval a_ci, b_ci;  // NaN ends when there is none
  double diff = 0;               // b - a; NaN when either is missing
  metrics::Interval diff_ci;     // NaN ends when either interval is missing
  std::optional<double> threshold;
  bool worse = false;
};

struct ComparedAttack {
  std::string attack;
  int targets_a = 0, targets_b = 0;  // targets each figure is over (mean when > 1)
  std::vector<ComparedFigure> figures;
};

struct Comparison {
  std::vector<ComparedAttack> attacks;  // attacks both audits ran, in A's order
  std::vector<std::string> only_in_a, only_in_b;
  bool worse = false;  // some judged figure of B is worse beyond its threshold
};

// The comparison of two results (pure; tested on hand-made results). The
// figure of an attack is its value on the single target, or the mean over the
// targets with several; intervals: the bootstrap interval of a single target,
// or mean +- z sd / sqrt(n) over several (z of the result's confidence
// level). The difference's interval treats the two audits as independent:
// each interval is read as normal (half-width = z se), and the difference
// gets b - a +- z sqrt(se_a^2 + se_b^2), at A's confidence level.
Comparison CompareResults(const audit::AuditResult& a, const audit::AuditResult& b,
                          const CompareOptions& options);

// The command: reads both results, prints the tables (or JSON), returns
// kExitOk, kExitPolicyFail when B is worse, or an error's code.
int RunCompare(const CompareOptions& options, const RemoteOptions& remote, const Console& console);

}  // namespace mia::client

#endif  // MIA_CLIENT_COMPARE_COMMAND_H_
