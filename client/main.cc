// `mia`: the command-line client. Flags are read here and only here, turned
// into option structs, and handed to the commands in client/commands.h.
#include <cstdio>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "client/commands.h"
#if MIA_WITH_TORCH
#include "client/audit_command.h"
#endif

namespace {

// "all" or a comma-separated list of model indices.
bool ParseTargets(const std::string& text, std::vector<int>* out) {
  out->clear();
  if (text.empty()) return true;
  for (absl::string_view part : absl::StrSplit(text, ',')) {
    int v = 0;
    if (!absl::SimpleAtoi(part, &v)) return false;
    out->push_back(v);
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"mia: membership-inference privacy audits"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("mia ") + MIA_VERSION);

  // mia score
  mia::client::ScoreCommandOptions score;
  std::string attacks = "rmia,lira";
  std::string targets;
  std::vector<double> fprs;
  uint64_t max_bundle_mb = 16384;
  CLI::App* score_cmd =
      app.add_subcommand("score", "Audit a signals bundle computed elsewhere and write a report");
  score_cmd->add_option("--bundle", score.bundle, ".npz file or folder of .npy files")->required();
  score_cmd->add_option("--out", score.out_dir, "Report folder (created if missing)")->required();
  score_cmd
      ->add_option("--attack", attacks,
                   "Comma-separated attacks, each name[:key=value...]; see `mia attacks`")
      ->capture_default_str();
  score_cmd->add_option("--targets", targets,
                        "Comma-separated target model indices (default: the bundle's 'targets')");
  score_cmd->add_flag("--all-targets", score.all_targets, "Attack every model in turn");
  score_cmd->add_option("--temperature", score.scoring.temperature, "Softmax temperature")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  score_cmd->add_option("--fpr", fprs, "FPRs to report TPR at (default 0.1 ... 1e-5, 0)")
      ->delimiter(',')
      ->check(CLI::Range(0.0, 1.0));
  score_cmd
      ->add_option("--bootstrap", score.scoring.bootstrap.resamples,
                   "Bootstrap resamples for confidence intervals (0: none)")
      ->check(CLI::Range(0, 1000000))
      ->capture_default_str();
  score_cmd->add_option("--confidence", score.scoring.bootstrap.confidence, "Interval level")
      ->check(CLI::Range(0.5, 0.9999))
      ->capture_default_str();
  score_cmd->add_option("--delta", score.scoring.epsilon.delta, "delta of the epsilon bound")
      ->check(CLI::Range(0.0, 0.5))
      ->capture_default_str();
  score_cmd->add_option("--beta", score.scoring.epsilon.beta, "Error level of the epsilon bound")
      ->check(CLI::Range(1e-9, 0.5))
      ->capture_default_str();
  score_cmd->add_option("--seed", score.scoring.seed, "Seed of bootstrap and splits")
      ->capture_default_str();
  score_cmd->add_option("--max-bundle-mb", max_bundle_mb, "Largest decoded bundle accepted")
      ->check(CLI::Range(1, 1 << 30))
      ->capture_default_str();
  score_cmd->add_flag("--quiet,-q", score.quiet, "No progress lines");

  // mia make-bundle
  mia::client::MakeBundleOptions make;
  bool stored = false;
  CLI::App* make_cmd =
      app.add_subcommand("make-bundle", "Write a synthetic example bundle (a membership game)");
  make_cmd->add_option("--out", make.out, "Output .npz (or folder with --folder)")->required();
  make_cmd->add_flag("--folder", make.folder, "Write a folder of .npy files");
  make_cmd->add_flag("--stored", stored, "Do not compress the .npz members");
  make_cmd->add_option("--models", make.synthetic.models)->capture_default_str();
  make_cmd->add_option("--points", make.synthetic.points)->capture_default_str();
  make_cmd->add_option("--population", make.synthetic.population)->capture_default_str();
  make_cmd->add_option("--classes", make.synthetic.classes)->capture_default_str();
  make_cmd->add_option("--queries", make.synthetic.queries)->capture_default_str();
  make_cmd->add_option("--leak", make.synthetic.leak, "Memorization strength (0: none)")
      ->capture_default_str();
  make_cmd->add_option("--targets", make.synthetic.targets, "Models 0..k-1 listed as targets")
      ->capture_default_str();
  make_cmd->add_option("--seed", make.synthetic.seed)->capture_default_str();

  CLI::App* attacks_cmd = app.add_subcommand("attacks", "List the attacks and their options");

#if MIA_WITH_TORCH
  // mia audit
  mia::client::AuditCommandOptions audit;
  CLI::App* audit_cmd = app.add_subcommand(
      "audit", "Run a whole audit locally: train (or reuse) models, compute signals, attack");
  audit_cmd->add_option("--config,-c", audit.config, "Audit YAML (see docs/config.md)")
      ->required();
  audit_cmd->add_option("--out", audit.out_dir,
                        "Report folder (default: run.log_dir/audit.report_log)");
  audit_cmd->add_option("--threads", audit.threads, "Compute threads (0: all cores)")
      ->check(CLI::Range(0, 1024));
  audit_cmd->add_flag("--quiet,-q", audit.quiet, "No progress bars");
#endif

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : mia::client::kExitInvalidInput;
  }

  if (*score_cmd) {
    score.scoring.attacks = absl::StrSplit(attacks, ',', absl::SkipWhitespace());
    score.scoring.fprs = fprs;
    score.max_bundle_bytes = max_bundle_mb << 20;
    if (!ParseTargets(targets, &score.scoring.targets)) {
      std::fprintf(stderr, "mia: error: --targets must be comma-separated model indices\n");
      return mia::client::kExitInvalidInput;
    }
    if (score.all_targets && !targets.empty()) {
      std::fprintf(stderr, "mia: error: give --targets or --all-targets, not both\n");
      return mia::client::kExitInvalidInput;
    }
    return mia::client::RunScore(score);
  }
  if (*make_cmd) {
    make.compress = !stored;
    return mia::client::RunMakeBundle(make);
  }
  if (*attacks_cmd) return mia::client::RunListAttacks();
#if MIA_WITH_TORCH
  if (*audit_cmd) return mia::client::RunAudit(audit);
#endif
  return mia::client::kExitInvalidInput;
}
