// The local (no server) commands of the `mia` CLI. main.cc parses flags into
// these option structs; each command returns a process exit code and prints
// only counts, settings and figures (never data values).
#ifndef MIA_CLIENT_COMMANDS_H_
#define MIA_CLIENT_COMMANDS_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "core/audit/scoring.h"
#include "core/audit/synthetic.h"
#include "core/metrics/one_run_audit.h"

namespace mia::client {

// Exit codes a script can rely on.
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;       // internal or I/O failure
inline constexpr int kExitInvalidInput = 2;  // bad flags, malformed bundle or settings
inline constexpr int kExitNotFound = 3;      // a named file or audit does not exist
inline constexpr int kExitTooLarge = 4;      // input beyond the configured limits, a full queue
inline constexpr int kExitUnavailable = 5;   // the server is unreachable or did not answer in time
inline constexpr int kExitAuditFailed = 6;   // the audit ended FAILED or CANCELLED
// The privacy gate said no: the audit ran, and its policy's verdict is FAIL
// (`mia audit`, `mia score --policy`, `mia submit --follow`, `mia watch`), or
// `mia compare` found B worse than A beyond its thresholds. Never an error.
inline constexpr int kExitPolicyFail = 7;

// The exit code for a status (also for gRPC statuses: the codes are the same).
int ExitCodeFor(const absl::Status& status);

// The headline table on stdout: one row per (attack, target), and the mean
// over targets when there are several.
void PrintSummary(const audit::AuditResult& result);
// Each attack's warnings on stderr.
void PrintWarnings(const audit::AuditResult& result);
// The policy's verdict (when the result has one) on stdout: "policy: PASS" or
// "policy: FAIL", then each failed rule; returns the exit code it implies
// (kExitOk without a policy or on PASS, kExitPolicyFail on FAIL).
int PrintPolicyVerdict(const audit::AuditResult& result);

struct ScoreCommandOptions {
  std::string bundle;   // .npz file or folder of .npy
  std::string out_dir;  // report folder
  audit::ScoringOptions scoring;
  bool all_targets = false;  // attack every model in turn (overrides scoring.targets)
  uint64_t max_bundle_bytes = uint64_t{16} << 30;
  // Most memory the bundle's estimate (decoded arrays, their copies and the
  // signals scoring computes) may reach; checked from the arrays' headers
  // before anything is decoded. 0: DefaultMemoryBudgetBytes() of this machine.
  uint64_t memory_budget_bytes = 0;
  bool quiet = false;  // no progress lines on stderr
  // A policy file (the keys of audit.policy, docs/config.md): the report gets
  // its verdict and the command exits kExitPolicyFail on FAIL.
  std::string policy_file;
};

// `mia score`: load a bundle, run the attacks, write the report, print a summary.
int RunScore(const ScoreCommandOptions& options);

struct MakeBundleOptions {
  std::string out;       // .npz path, or a folder when `folder` is set
  bool folder = false;   // write a folder of .npy files instead of an .npz
  bool compress = true;  // deflate the .npz members
  audit::SyntheticOptions synthetic;
  // A language-model bundle (token log-probs of texts) instead; its models,
  // points, population, leak, targets and seed are taken from `synthetic`.
  bool language_model = false;
  audit::SyntheticLmOptions synthetic_lm;
};

// `mia make-bundle`: write a synthetic example bundle.
int RunMakeBundle(const MakeBundleOptions& options);

// `mia attacks`: list the registered attacks with their needs and options.
int RunListAttacks();

// `mia accountant` (client/accountant_command.cc): the DP-SGD RDP accountant
// of core/metrics/rdp_accountant.h. Each field is a flag of the same name.
struct AccountantOptions {
  double sample_rate = 0;                  // --sample-rate q, in (0, 1]
  std::optional<double> noise_multiplier;  // --noise-multiplier sigma
  std::optional<double> target_epsilon;    // --target-epsilon: solve for sigma instead
  std::optional<int64_t> steps;            // --steps T
  std::optional<double> epochs;            // --epochs E instead: T = ceil(E / q)
  double delta = 1e-5;                     // --delta
  std::string conversion = "spec";         // --conversion: spec or classic
  bool json = false;                       // --json: one JSON object on stdout
};

// Prints epsilon and the RDP order attaining it (or, with target_epsilon, the
// noise multiplier reaching it). Bad flag values exit kExitInvalidInput with a
// message naming the flag; an unreachable target too.
int RunAccountant(const AccountantOptions& options);

struct OneRunBoundOptions {
  metrics::OneRunCounts counts;  // --canaries, --guesses, --correct
  metrics::OneRunOptions bound;  // --delta, --beta
  bool json = false;             // one JSON object on stdout instead of text
};

// `mia one-run-bound`: the epsilon lower bound of a DP audit in one run from
// its counts (client/one_run_command.cc). Bad counts or levels exit 2 with the
// flag named.
int RunOneRunBound(const OneRunBoundOptions& options);

}  // namespace mia::client

#endif  // MIA_CLIENT_COMMANDS_H_
