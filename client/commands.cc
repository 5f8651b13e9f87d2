#include "client/commands.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "core/attacks/registry.h"
#include "core/audit/bundle.h"
#include "core/audit/policy.h"
#include "core/common/memory_budget.h"
#include "core/common/version.h"
#include "core/io/npy.h"
#include "core/pipeline/config.h"
#include "core/report/report.h"

namespace mia::client {
namespace {

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

void PrintError(const absl::Status& status) {
  std::fprintf(stderr, "mia: error: %s\n", std::string(status.message()).c_str());
}

std::string Percent(const metrics::TprAtFpr& t) {
  return t.resolved ? absl::StrFormat("%.2f%%", 100 * t.tpr) : "unresolved";
}

}  // namespace

void PrintSummary(const audit::AuditResult& result) {
  if (result.duci.has_value()) {
    // estimate: p_hat unclipped; clipped: p_hat in [0, 1] (docs/duci.md).
    std::printf("%-34s %6s %8s %9s %8s %8s\n", "attack", "target", "true", "estimate",
                "clipped", "error");
    for (const audit::DuciAttackResult& a : result.duci->attacks) {
      for (const audit::DuciTargetEstimate& e : a.targets) {
        std::printf("%-34s %6d %8.4f %9.4f %8.4f %8.4f\n", a.attack.c_str(), e.target,
                    e.true_fraction, e.estimate, e.estimate_clipped, e.error);
      }
      std::printf("%-34s %6s %8s %9s %8s %8.4f  (threshold TPR %.4f, FPR %.4f)\n",
                  a.attack.c_str(), "mean", "", "", "", a.mean_error, a.tpr, a.fpr);
    }
    return;
  }
  auto column = [&](double fpr) {
    for (size_t k = 0; k < result.fprs.size(); ++k) {
      if (result.fprs[k] == fpr) return static_cast<int>(k);
    }
    return -1;
  };
  const int at_1 = column(0.01), at_01 = column(0.001);
  const std::string ci_header = result.bootstrap_resamples > 0
                                    ? absl::StrFormat("AUC %g%% CI", result.confidence * 100)
                                    : std::string("AUC CI");
  std::printf("%-34s %6s %8s %17s %12s %12s %8s %8s\n", "attack", "target", "AUC",
              ci_header.c_str(), "TPR@1%FPR", "TPR@0.1%FPR", "eps_lb", "excluded");
  for (const audit::AttackTargetResult& r : result.results) {
    // No resamples (--bootstrap 0), or too few points: no interval, not [nan, nan].
    const std::string ci = std::isfinite(r.auc_ci.low) && std::isfinite(r.auc_ci.high)
                               ? absl::StrFormat("[%6.4f, %6.4f]", r.auc_ci.low, r.auc_ci.high)
                               : std::string("-");
    std::printf("%-34s %6d %8.4f %17s %12s %12s %8.3f %8lld\n", r.attack.c_str(), r.target, r.auc,
                ci.c_str(), at_1 >= 0 ? Percent(r.tpr_at_fpr[at_1]).c_str() : "-",
                at_01 >= 0 ? Percent(r.tpr_at_fpr[at_01]).c_str() : "-", r.epsilon.epsilon,
                static_cast<long long>(r.excluded));
  }
  if (result.targets.size() > 1) {
    for (const audit::AttackSummary& s : result.summaries) {
      std::printf("%-34s %6s %8.4f +- %.4f over %d targets\n", s.attack.c_str(), "mean", s.auc.mean,
                  s.auc.stddev, s.auc.count);
    }
  }
}

void PrintWarnings(const audit::AuditResult& result) {
  // Audit-wide first (a CPU run of a config asking for CUDA, the splits auto
  // chose), as `mia watch` prints a server's.
  for (const std::string& w : result.warnings) std::fprintf(stderr, "mia: warning: %s\n", w.c_str());
  if (result.duci.has_value()) {
    for (const audit::DuciAttackResult& a : result.duci->attacks) {
      for (const std::string& w : a.warnings) {
        std::fprintf(stderr, "mia: warning: %s (duci): %s\n", a.attack.c_str(), w.c_str());
      }
    }
  }
  for (const audit::AttackTargetResult& r : result.results) {
    for (const std::string& w : r.warnings) {
      std::fprintf(stderr, "mia: warning: %s (target %d): %s\n", r.attack.c_str(), r.target,
                   w.c_str());
    }
  }
}

int PrintPolicyVerdict(const audit::AuditResult& result) {
  if (!result.policy.has_value()) return kExitOk;
  const audit::PolicyVerdict& v = *result.policy;
  int failed = 0;
  for (const audit::PolicyRuleResult& r : v.rules) failed += r.pass ? 0 : 1;
  std::printf("policy: %s (%zu rule checks, %d failed; judged on the %s)\n",
              v.pass ? "PASS" : "FAIL", v.rules.size(), failed,
              v.use == "upper_ci" ? "upper ends of the intervals" : "estimates");
  for (const audit::PolicyRuleResult& r : v.rules) {
    if (r.pass) continue;
    const std::string value = std::isnan(r.value) ? r.note : absl::StrFormat("%.6g", r.value);
    std::printf("  FAIL %s: %s, target %d: %s > %.6g\n", r.rule.c_str(), r.attack.c_str(), r.target,
                value.c_str(), r.limit);
  }
  return v.pass ? kExitOk : kExitPolicyFail;
}

int ExitCodeFor(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kOk:
      return kExitOk;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kOutOfRange:
    case absl::StatusCode::kAlreadyExists:  // a request id reused with another spec
      return kExitInvalidInput;
    case absl::StatusCode::kNotFound:
      return kExitNotFound;
    case absl::StatusCode::kResourceExhausted:
      return kExitTooLarge;
    // Both are worth retrying later; a script treats them alike.
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
      return kExitUnavailable;
    default:
      return kExitFailure;
  }
}

// The scoring flags checked by core's one validator of scoring options (the
// rules a config file's audit section and the server's bundle specs obey),
// each problem named by its flag: "--fpr[2]: must be in [0, 1]".
absl::Status ScoringFlagProblems(const audit::ScoringOptions& scoring) {
  std::vector<pipeline::ConfigProblem> problems =
      pipeline::AttackListProblems(scoring.attacks, "--attack");
  for (pipeline::ConfigProblem& p : pipeline::ScoringProblems(scoring, "--")) {
    if (absl::StartsWith(p.field, "--fprs")) p.field.replace(0, 6, "--fpr");
    problems.push_back(std::move(p));
  }
  if (problems.empty()) return absl::OkStatus();
  std::vector<std::string> lines;
  for (const pipeline::ConfigProblem& p : problems) lines.push_back(p.ToString());
  return absl::InvalidArgumentError(absl::StrJoin(lines, "; "));
}

// The policy file of `mia score --policy`, read by the parser of
// audit.policy and checked against the scoring flags as ParseConfig checks it
// against the audit section; its FPRs are added to `scoring->fprs`.
absl::StatusOr<audit::PolicySpec> LoadScorePolicy(const std::string& file,
                                                  audit::ScoringOptions* scoring) {
  absl::StatusOr<audit::PolicySpec> policy = audit::LoadPolicyFile(file);
  if (!policy.ok()) return policy.status();
  std::vector<std::string> names;
  for (const std::string& spec : scoring->attacks) {
    absl::StatusOr<std::unique_ptr<attacks::Attack>> made = attacks::MakeAttack(spec);
    if (made.ok()) names.push_back((*made)->name());
  }
  std::vector<std::string> lines;
  for (const audit::PolicyProblem& p :
       audit::PolicyAuditProblems(*policy, names, scoring->bootstrap.resamples, "")) {
    lines.push_back(absl::StrCat(p.field, ": ", p.message));
  }
  std::vector<double> fprs = audit::WithPolicyFprs(scoring->fprs, *policy);
  if (fprs.size() > pipeline::kMaxFprs) {
    lines.push_back(absl::StrCat("max_tpr_at_fpr: its FPRs and --fpr together are ", fprs.size(),
                                 ", above the limit of ", pipeline::kMaxFprs));
  }
  if (!lines.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(file, ": ", absl::StrJoin(lines, "; ")));
  }
  scoring->fprs = std::move(fprs);
  return policy;
}

int RunScore(const ScoreCommandOptions& options) {
  const Clock::time_point start = Clock::now();
  if (const absl::Status flags = ScoringFlagProblems(options.scoring); !flags.ok()) {
    PrintError(flags);
    return ExitCodeFor(flags);
  }
  audit::ScoringOptions scoring = options.scoring;
  std::optional<audit::PolicySpec> policy;
  if (!options.policy_file.empty()) {
    absl::StatusOr<audit::PolicySpec> loaded = LoadScorePolicy(options.policy_file, &scoring);
    if (!loaded.ok()) {
      PrintError(loaded.status());
      return ExitCodeFor(loaded.status());
    }
    policy = *std::move(loaded);
  }
  auto progress = [&](const std::string& stage) {
    if (!options.quiet) std::fprintf(stderr, "[%7.2fs] %s\n", SecondsSince(start), stage.c_str());
  };
  io::ReadLimits limits;
  limits.max_total_bytes = options.max_bundle_bytes;
  limits.max_array_bytes = std::min(limits.max_array_bytes, options.max_bundle_bytes);
  // Headers first: a bundle that declares more than the limits or the memory
  // budget is refused before anything is decoded or allocated.
  const absl::StatusOr<io::NpyInfoMap> declared = io::ReadArrayInfos(options.bundle, limits);
  if (!declared.ok()) {
    PrintError(declared.status());
    return ExitCodeFor(declared.status());
  }
  const audit::BundleMemoryEstimate estimate =
      audit::EstimateBundleMemory(*declared, scoring.bootstrap, scoring.fprs.size());
  const absl::Status admitted = CheckMemoryBudget(
      estimate.bytes, estimate.what,
      options.memory_budget_bytes > 0 ? options.memory_budget_bytes : DefaultMemoryBudgetBytes(),
      "this machine's", "see --memory-budget-mb");
  if (!admitted.ok()) {
    PrintError(admitted);
    return ExitCodeFor(admitted);
  }
  const int threads = scoring.bootstrap.threads > 0
                          ? scoring.bootstrap.threads
                          : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  absl::StatusOr<audit::Bundle> bundle = audit::LoadBundle(options.bundle, limits, threads);
  if (!bundle.ok()) {
    PrintError(bundle.status());
    return ExitCodeFor(bundle.status());
  }
  const double load_seconds = SecondsSince(start);
  if (bundle->language_model()) {
    progress(absl::StrFormat(
        "loaded language-model bundle: %d models, %d audit texts, %d population texts, "
        "at most %d tokens a text",
        bundle->models(), bundle->points(),
        bundle->population.has_value() ? bundle->population->points() : 0,
        bundle->tokens->max_length));
  } else {
    progress(absl::StrFormat(
        "loaded bundle: %d models, %d audit points, %d population points, "
        "%d queries",
        bundle->models(), bundle->points(),
        bundle->population.has_value() ? bundle->population->points() : 0, bundle->queries()));
  }
  if (options.all_targets) {
    scoring.targets.clear();
    for (int m = 0; m < bundle->models(); ++m) scoring.targets.push_back(m);
  }
  absl::StatusOr<audit::AuditResult> result = audit::ScoreBundle(*bundle, scoring, progress);
  if (!result.ok()) {
    PrintError(result.status());
    return ExitCodeFor(result.status());
  }
  result->tool_version = MIA_VERSION;
  result->timings.insert(result->timings.begin(), {"load", load_seconds});
  if (policy.has_value()) {
    absl::StatusOr<audit::PolicyVerdict> verdict = audit::Judge(*result, *policy);
    if (!verdict.ok()) {
      PrintError(verdict.status());
      return ExitCodeFor(verdict.status());
    }
    result->policy = *std::move(verdict);
  }
  const absl::Status written = report::WriteReport(*result, options.out_dir);
  if (!written.ok()) {
    PrintError(written);
    return ExitCodeFor(written);
  }
  progress(absl::StrCat("report written to ", options.out_dir));
  PrintSummary(*result);
  PrintWarnings(*result);
  return PrintPolicyVerdict(*result);
}

int RunMakeBundle(const MakeBundleOptions& options) {
  absl::StatusOr<io::NpyMap> arrays;
  if (options.language_model) {
    audit::SyntheticLmOptions lm = options.synthetic_lm;
    lm.models = options.synthetic.models;
    lm.points = options.synthetic.points;
    lm.population = options.synthetic.population;
    lm.leak = options.synthetic.leak;
    lm.targets = options.synthetic.targets;
    lm.seed = options.synthetic.seed;
    arrays = audit::MakeSyntheticLmBundle(lm);
  } else {
    arrays = audit::MakeSyntheticBundle(options.synthetic);
  }
  if (!arrays.ok()) {
    PrintError(arrays.status());
    return ExitCodeFor(arrays.status());
  }
  absl::Status status;
  if (options.folder) {
    std::error_code ec;
    std::filesystem::create_directories(options.out, ec);
    if (ec) {
      status = absl::InternalError(absl::StrCat(options.out, ": cannot create folder"));
    }
    for (const auto& [name, array] : *arrays) {
      if (!status.ok()) break;
      status = io::WriteNpy((std::filesystem::path(options.out) / (name + ".npy")).string(), array);
    }
  } else {
    status = io::WriteNpz(options.out, *arrays, options.compress);
  }
  if (!status.ok()) {
    PrintError(status);
    return ExitCodeFor(status);
  }
  std::fprintf(stderr, "wrote %s: %s%d models, %lld audit points, %lld population points\n",
               options.out.c_str(), options.language_model ? "language-model bundle, " : "",
               options.synthetic.models, static_cast<long long>(options.synthetic.points),
               static_cast<long long>(options.synthetic.population));
  return kExitOk;
}

int RunListAttacks() {
  for (const attacks::AttackInfo& info : attacks::AttackCatalog()) {
    std::string needs = attacks::SignalKindName(info.needs.signal);
    if (info.needs.references) needs += ", references";
    if (info.needs.in_references) needs += " (IN and OUT)";
    if (info.needs.population) needs += ", population";
    if (info.needs.token_logprobs) needs += ", token_logprobs";
    if (info.needs.token_stats) needs += ", token_mean and token_var";
    if (info.needs.texts) needs += ", texts";
    std::printf("%-14s %s\n", info.name.c_str(), info.summary.c_str());
    std::printf("%-14s needs: %s\n", "", needs.c_str());
    if (!info.aliases.empty()) {
      std::string aliases;
      for (const auto& a : info.aliases) aliases += (aliases.empty() ? "" : ", ") + a;
      std::printf("%-14s aliases: %s\n", "", aliases.c_str());
    }
    if (!info.options_help.empty()) {
      std::printf("%-14s options: %s\n", "", info.options_help.c_str());
    }
  }
  return kExitOk;
}

}  // namespace mia::client
