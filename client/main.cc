// `mia`: the command-line client. Flags are read here and only here, turned
// into option structs, and handed to the commands in client/commands.h.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "client/commands.h"
#include "client/compare_command.h"
#include "client/remote_commands.h"
#include "core/common/version.h"
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
  // The scoring flags' ranges and list limits are checked once, by core's
  // validator (pipeline::ScoringProblems, AttackListProblems, in RunScore).
  score_cmd->add_option("--temperature", score.scoring.temperature, "Softmax temperature")
      ->capture_default_str();
  score_cmd->add_option("--fpr", fprs, "FPRs to report TPR at (default 0.1 ... 1e-5, 0)")
      ->delimiter(',');
  score_cmd
      ->add_option("--bootstrap", score.scoring.bootstrap.resamples,
                   "Bootstrap resamples for confidence intervals (0: none)")
      ->capture_default_str();
  // The bootstrap is most of a score's time: on every core unless told.
  score.scoring.bootstrap.threads = 0;
  score_cmd
      ->add_option("--threads", score.scoring.bootstrap.threads,
                   "Threads for the bootstrap (0: all cores); the result does not depend on it")
      ->check(CLI::Range(0, 1024))
      ->capture_default_str();
  score_cmd->add_option("--confidence", score.scoring.bootstrap.confidence, "Interval level")
      ->capture_default_str();
  score_cmd->add_option("--delta", score.scoring.epsilon.delta, "delta of the epsilon bound")
      ->capture_default_str();
  score_cmd->add_option("--beta", score.scoring.epsilon.beta, "Error level of the epsilon bound")
      ->capture_default_str();
  score_cmd->add_option("--seed", score.scoring.seed, "Seed of bootstrap and splits")
      ->capture_default_str();
  score_cmd->add_option("--max-bundle-mb", max_bundle_mb, "Largest decoded bundle accepted")
      ->check(CLI::Range(1, 1 << 30))
      ->capture_default_str();
  uint64_t memory_budget_mb = 0;
  score_cmd
      ->add_option("--memory-budget-mb", memory_budget_mb,
                   "Most memory the bundle may be estimated to need (0: 80% of this machine's "
                   "or container's memory)")
      ->check(CLI::Range(uint64_t{0}, uint64_t{1} << 40))
      ->capture_default_str();
  score_cmd->add_flag("--quiet,-q", score.quiet, "No progress lines");
  score_cmd->add_option("--policy", score.policy_file,
                        "Policy file (the keys of audit.policy): exit 7 when its verdict is FAIL");

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
  make_cmd->add_flag("--lm", make.language_model,
                     "A language-model bundle: per-token log-probs of texts");
  make_cmd
      ->add_option("--max-length", make.synthetic_lm.max_length, "Tokens per text at most (--lm)")
      ->capture_default_str();
  bool no_token_stats = false, no_texts = false;
  make_cmd->add_flag("--no-token-stats", no_token_stats,
                     "Leave out token_mean and token_var (--lm)");
  make_cmd->add_flag("--no-texts", no_texts, "Leave out the texts (--lm)");

  CLI::App* attacks_cmd = app.add_subcommand("attacks", "List the attacks and their options");

  // mia accountant (client/accountant_command.cc; the values are checked there)
  mia::client::AccountantOptions acct;
  CLI::App* acct_cmd = app.add_subcommand("accountant", "DP-SGD's epsilon by the RDP accountant");
  acct_cmd->add_option("--sample-rate", acct.sample_rate, "q = batch size / examples")->required();
  acct_cmd->add_option("--noise-multiplier", acct.noise_multiplier, "sigma = noise std / clip");
  acct_cmd->add_option("--target-epsilon", acct.target_epsilon, "Solve for sigma instead");
  acct_cmd->add_option("--steps", acct.steps, "Training steps T");
  acct_cmd->add_option("--epochs", acct.epochs, "Epochs E instead: T = ceil(E / q)");
  acct_cmd->add_option("--delta", acct.delta, "delta of (epsilon, delta)")->capture_default_str();
  acct_cmd->add_option("--conversion", acct.conversion, "RDP to (eps, delta): spec or classic")
      ->capture_default_str();
  acct_cmd->add_flag("--json", acct.json, "One JSON object on stdout");
  // mia one-run-bound (client/one_run_command.cc)
  mia::client::OneRunBoundOptions one_run;
  CLI::App* one_run_cmd = app.add_subcommand(
      "one-run-bound", "Epsilon lower bound of a DP audit in one run, from its counts");
  one_run_cmd->add_option("--canaries", one_run.counts.canaries, "Canaries m")->required();
  one_run_cmd->add_option("--guesses", one_run.counts.guesses, "Guesses r = k+ + k-")->required();
  one_run_cmd->add_option("--correct", one_run.counts.correct, "Right guesses v")->required();
  one_run_cmd->add_option("--delta", one_run.bound.delta, "delta of the DP claim")
      ->capture_default_str();
  one_run_cmd->add_option("--beta", one_run.bound.beta, "Error level (confidence 1 - beta)")
      ->capture_default_str();
  one_run_cmd->add_flag("--json", one_run.json, "One JSON object instead of text");

#if MIA_WITH_TORCH
  // mia audit
  mia::client::AuditCommandOptions audit;
  CLI::App* audit_cmd = app.add_subcommand(
      "audit", "Run a whole audit locally: train (or reuse) models, compute signals, attack");
  audit_cmd->add_option("--config,-c", audit.config, "Audit YAML (see docs/config.md)")->required();
  audit_cmd->add_option("--out", audit.out_dir,
                        "Report folder (default: run.log_dir/audit.report_log)");
  audit_cmd->add_option("--threads", audit.threads, "Compute threads (0: all cores)")
      ->check(CLI::Range(0, 1024));
  audit_cmd->add_flag("--quiet,-q", audit.quiet, "No progress bars");

  // mia duci: the same run as a dataset usage (DUCI) game (docs/duci.md); a
  // Privacy Meter config runs as its run_duci.py runs it (--cf).
  mia::client::AuditCommandOptions duci;
  duci.duci = true;
  CLI::App* duci_cmd = app.add_subcommand(
      "duci", "Run a dataset usage (DUCI) game locally: estimate what fraction of a dataset "
              "each target trained on");
  duci_cmd->add_option("--config,-c,--cf", duci.config, "Audit YAML (see docs/duci.md)")
      ->required();
  duci_cmd->add_option("--out", duci.out_dir,
                       "Report folder (default: run.log_dir/audit.report_log)");
  duci_cmd->add_option("--threads", duci.threads, "Compute threads (0: all cores)")
      ->check(CLI::Range(0, 1024));
  duci_cmd->add_flag("--quiet,-q", duci.quiet, "No progress bars");
#endif

  // Remote commands (a mia server; docs/service.md). The default address comes
  // from MIA_SERVER so that a shell session can point every command at one
  // server.
  mia::client::RemoteOptions remote;
  if (const char* env = std::getenv("MIA_SERVER"); env != nullptr && *env != '\0') {
    remote.server = env;
  }
  // TLS settings from the environment (empty: unset); flags override them.
  std::string tls_env_error;
  if (const char* env = std::getenv("MIA_TLS"); env != nullptr && *env != '\0') {
    const std::string v = env;
    if (v == "1" || v == "true" || v == "yes" || v == "on") {
      remote.tls = true;
    } else if (!(v == "0" || v == "false" || v == "no" || v == "off")) {
      tls_env_error = "MIA_TLS='" + v + "': expected 1 (TLS) or 0 (plaintext)";
    }
  }
  for (const auto& [name, field] :
       {std::pair<const char*, std::string*>{"MIA_TLS_CA", &remote.tls_ca},
        {"MIA_TLS_CERT", &remote.tls_cert},
        {"MIA_TLS_KEY", &remote.tls_key},
        {"MIA_TLS_SERVER_NAME", &remote.tls_server_name}}) {
    if (const char* env = std::getenv(name); env != nullptr && *env != '\0') *field = env;
  }
  auto add_remote_flags = [&](CLI::App* cmd) {
    cmd->add_option("--server", remote.server, "Server address host:port (env MIA_SERVER)")
        ->capture_default_str();
    cmd->add_option("--timeout", remote.timeout_seconds, "Deadline of each call, in seconds")
        ->check(CLI::PositiveNumber)
        ->capture_default_str();
    cmd->add_flag("--tls", remote.tls,
                  "Use TLS, verifying the server with the system's root CAs (env MIA_TLS=1)");
    cmd->add_option("--tls-ca", remote.tls_ca,
                    "PEM root CA to verify the server with; implies --tls (env MIA_TLS_CA)");
    cmd->add_option("--tls-cert", remote.tls_cert,
                    "PEM client certificate for mutual TLS, with --tls-key; implies --tls "
                    "(env MIA_TLS_CERT)");
    cmd->add_option("--tls-key", remote.tls_key, "PEM private key of --tls-cert (env MIA_TLS_KEY)");
    cmd->add_option("--tls-server-name", remote.tls_server_name,
                    "Name the server's certificate must carry, when not the host in --server "
                    "(env MIA_TLS_SERVER_NAME)");
    // The value is never printed: no capture_default_str.
    cmd->add_option("--token", remote.token,
                    "Bearer token sent with every call (env MIA_TOKEN; prefer --token-file or "
                    "MIA_TOKEN: a command line is visible to other users of the machine)");
    cmd->add_option("--token-file", remote.token_file,
                    "File holding the bearer token (used when --token and MIA_TOKEN are unset)");
  };
  mia::client::Console console{&std::cout, &std::cerr, isatty(STDERR_FILENO) != 0};

  mia::client::SubmitOptions submit;
  CLI::App* submit_cmd = app.add_subcommand("submit", "Submit an audit job (YAML) to a mia server");
  submit_cmd->add_option("job", submit.job_file, "Audit config or bundle job (docs/service.md)")
      ->required();
  submit_cmd->add_flag("--follow,-f", submit.follow,
                       "Show progress until it ends, then the summary (exit 0 only on success)");
  submit_cmd->add_option("--request-id", submit.request_id,
                         "Idempotency key: a retry with the same key returns the first audit");
  // One value per --label, so that a label before the job file does not take it.
  submit_cmd->add_option("--label", submit.labels, "Label key=value (repeatable)")
      ->allow_extra_args(false);
  submit_cmd->add_option("--priority", submit.priority, "Higher runs first")
      ->check(CLI::Range(-100, 100));
  submit_cmd->add_option("--policy", submit.policy_file,
                         "Policy file (the keys of audit.policy), sent as the job's policy: "
                         "with --follow, exit 7 when its verdict is FAIL");
  // Watching commands: how long to wait for a server that went away.
  auto add_reconnect_flag = [&](CLI::App* cmd) {
    cmd->add_option("--reconnect-timeout", remote.reconnect_timeout_seconds,
                    "Seconds to keep reconnecting a broken watch (server drain, restart, "
                    "rolling update) without progress before giving up, exit 5 (0: never)")
        ->check(CLI::NonNegativeNumber)
        ->capture_default_str();
  };
  add_reconnect_flag(submit_cmd);
  add_remote_flags(submit_cmd);

  std::string get_name;
  bool get_json = false;
  CLI::App* get_cmd = app.add_subcommand("get", "Show one audit: state, progress, result");
  get_cmd->add_option("name", get_name, "audits/ID or ID")->required();
  get_cmd->add_flag("--json", get_json, "Print the audit as the API's JSON");
  add_remote_flags(get_cmd);

  mia::client::ListOptions list;
  CLI::App* list_cmd = app.add_subcommand("list", "List audits, oldest first");
  list_cmd->add_option("--state", list.state,
                       "Only pending, running, succeeded, failed or cancelled ones");
  list_cmd->add_option("--page-size", list.page_size, "Audits per page (0: server default)")
      ->check(CLI::Range(0, 1000));
  list_cmd->add_option("--page-token", list.page_token, "Continue a listing from this page");
  list_cmd->add_flag("--all", list.all, "Follow pages to the end");
  list_cmd->add_flag("--json", list.json,
                     "One JSON object {\"audits\": [...], \"next_page_token\": ...} instead "
                     "of the table");
  add_remote_flags(list_cmd);

  std::string watch_name;
  int64_t from_version = 0;
  CLI::App* watch_cmd =
      app.add_subcommand("watch", "Show an audit's progress until it ends, then the summary");
  watch_cmd->add_option("name", watch_name, "audits/ID or ID")->required();
  watch_cmd->add_option("--from-version", from_version, "Resume after this version")
      ->check(CLI::NonNegativeNumber);
  bool watch_json = false;
  watch_cmd->add_flag("--json", watch_json,
                      "One JSON object per line per snapshot on stdout instead of progress bars "
                      "and the summary table");
  add_reconnect_flag(watch_cmd);
  add_remote_flags(watch_cmd);

  std::string cancel_name;
  CLI::App* cancel_cmd = app.add_subcommand("cancel", "Cancel an audit (best effort)");
  cancel_cmd->add_option("name", cancel_name, "audits/ID or ID")->required();
  add_remote_flags(cancel_cmd);

  std::string delete_name;
  CLI::App* delete_cmd =
      app.add_subcommand("delete", "Delete a finished audit with its result and report");
  delete_cmd->add_option("name", delete_name, "audits/ID or ID")->required();
  add_remote_flags(delete_cmd);

  mia::client::ScoresOptions scores;
  int scores_target = -1;
  CLI::App* scores_cmd =
      app.add_subcommand("scores", "Per-example scores of a finished audit, as CSV");
  scores_cmd->add_option("name", scores.name, "audits/ID or ID")->required();
  scores_cmd->add_option("--target", scores_target, "Only this target model's rows")
      ->check(CLI::NonNegativeNumber);
  scores_cmd->add_option("--page-size", scores.page_size, "Rows per request (0: server default)")
      ->check(CLI::Range(0, 10000));
  scores_cmd->add_option("--out", scores.out, "CSV file (default: stdout)");
  add_remote_flags(scores_cmd);

  std::string report_name, report_out;
  CLI::App* report_cmd = app.add_subcommand("report", "Download a finished audit's report files");
  report_cmd->add_option("name", report_name, "audits/ID or ID")->required();
  report_cmd->add_option("--out", report_out, "Folder (created if missing)")->required();
  add_remote_flags(report_cmd);

  std::string upload_file;
  CLI::App* upload_cmd = app.add_subcommand(
      "upload", "Upload a file (dataset, model, keep matrix, bundle); prints its artifact id");
  upload_cmd->add_option("file", upload_file, "The file")->required();
  add_remote_flags(upload_cmd);

  mia::client::CompareOptions compare;
  double tpr_threshold = 0, epsilon_threshold = 0;
  CLI::App* compare_cmd = app.add_subcommand(
      "compare", "Compare two audits (report folders or audits/ID): is B worse than A?");
  compare_cmd->add_option("a", compare.a, "Baseline: report folder or audits/ID")->required();
  compare_cmd->add_option("b", compare.b, "Candidate: report folder or audits/ID")->required();
  compare_cmd
      ->add_option("--threshold", compare.auc_threshold,
                   "B is worse when its AUC exceeds A's by more than this")
      ->capture_default_str();
  CLI::Option* tpr_opt = compare_cmd->add_option("--tpr-threshold", tpr_threshold,
                                                 "Also judge each TPR at FPR with this threshold");
  CLI::Option* eps_opt = compare_cmd->add_option("--epsilon-threshold", epsilon_threshold,
                                                 "Also judge the epsilon lower bound");
  compare_cmd
      ->add_option("--use", compare.use,
                   "Judge the difference's estimate, or the lower end of its interval (lower_ci)")
      ->check(CLI::IsMember({"estimate", "lower_ci"}))
      ->capture_default_str();
  compare_cmd->add_flag("--json", compare.json, "One JSON object instead of the tables");
  add_remote_flags(compare_cmd);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : mia::client::kExitInvalidInput;
  }
  // The token: --token, else --token-file, else MIA_TOKEN.
  if (remote.token.empty() && remote.token_file.empty()) {
    if (const char* env = std::getenv("MIA_TOKEN"); env != nullptr) remote.token = env;
  }

  if (*score_cmd) {
    score.scoring.attacks = absl::StrSplit(attacks, ',', absl::SkipWhitespace());
    score.scoring.fprs = fprs;
    score.max_bundle_bytes = max_bundle_mb << 20;
    score.memory_budget_bytes = memory_budget_mb << 20;
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
    make.synthetic_lm.stats = !no_token_stats;
    make.synthetic_lm.texts = !no_texts;
    return mia::client::RunMakeBundle(make);
  }
  if (*attacks_cmd) return mia::client::RunListAttacks();
  if (*acct_cmd) return mia::client::RunAccountant(acct);
  if (*one_run_cmd) return mia::client::RunOneRunBound(one_run);
#if MIA_WITH_TORCH
  if (*audit_cmd) return mia::client::RunAuditCommand(audit);
  if (*duci_cmd) return mia::client::RunAuditCommand(duci);
#endif
  const bool remote_command = *submit_cmd || *get_cmd || *list_cmd || *watch_cmd || *cancel_cmd ||
                              *delete_cmd || *scores_cmd || *report_cmd || *upload_cmd;
  if (remote_command && !tls_env_error.empty()) {
    std::fprintf(stderr, "mia: error: %s\n", tls_env_error.c_str());
    return mia::client::kExitInvalidInput;
  }
  if (*compare_cmd) {
    if (*tpr_opt) compare.tpr_threshold = tpr_threshold;
    if (*eps_opt) compare.epsilon_threshold = epsilon_threshold;
    const bool remote_source =
        absl::StartsWith(compare.a, "audits/") || absl::StartsWith(compare.b, "audits/");
    if (remote_source && !tls_env_error.empty()) {
      std::fprintf(stderr, "mia: error: %s\n", tls_env_error.c_str());
      return mia::client::kExitInvalidInput;
    }
    return mia::client::RunCompare(compare, remote, console);
  }
  if (*submit_cmd) return mia::client::RunSubmit(remote, submit, console);
  if (*get_cmd) return mia::client::RunGet(remote, get_name, get_json, console);
  if (*list_cmd) return mia::client::RunList(remote, list, console);
  if (*watch_cmd) {
    return mia::client::RunWatch(remote, watch_name, from_version, watch_json, console);
  }
  if (*cancel_cmd) return mia::client::RunCancel(remote, cancel_name, console);
  if (*delete_cmd) return mia::client::RunDelete(remote, delete_name, console);
  if (*scores_cmd) {
    if (scores_target >= 0) scores.target = scores_target;
    return mia::client::RunScores(remote, scores, console);
  }
  if (*report_cmd) return mia::client::RunReport(remote, report_name, report_out, console);
  if (*upload_cmd) return mia::client::RunUpload(remote, upload_file, console);
  return mia::client::kExitInvalidInput;
}
