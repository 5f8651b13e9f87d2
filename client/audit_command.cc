#include "client/audit_command.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>

#include "absl/strings/str_format.h"
#include "client/commands.h"
#include "core/pipeline/pipeline.h"

namespace mia::client {
namespace {

// Draws one progress bar per stage on stderr: redrawn in place on a terminal,
// one line per stage change (and per model) otherwise.
class ProgressPrinter {
 public:
  explicit ProgressPrinter(bool quiet) : quiet_(quiet), tty_(isatty(STDERR_FILENO) != 0) {}

  void Update(const pipeline::Progress& p) {
    if (quiet_) return;
    const double elapsed =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    const bool new_stage = p.stage != stage_;
    const bool new_step = p.done != done_;
    // Off a terminal (logs, CI), print a line per stage and step, and at most
    // one progress line every 10 seconds in between.
    if (!tty_ && !new_stage && !new_step && elapsed - last_line_ < 10) return;
    last_line_ = elapsed;
    if (tty_ && new_stage && !stage_.empty()) std::fputc('\n', stderr);
    constexpr int kWidth = 24;
    const int filled = p.total > 0 ? static_cast<int>(kWidth * p.done / p.total) : 0;
    std::string bar(filled, '#');
    bar.append(kWidth - filled, '.');
    std::fprintf(stderr, "%s[%7.1fs] %-8s [%s] %lld/%lld %s%s", tty_ ? "\r" : "", elapsed,
                 p.stage.c_str(), bar.c_str(), static_cast<long long>(p.done),
                 static_cast<long long>(p.total), p.detail.c_str(), tty_ ? "\033[K" : "\n");
    std::fflush(stderr);
    stage_ = p.stage;
    done_ = p.done;
  }

  void Finish() {
    if (!quiet_ && tty_ && !stage_.empty()) std::fputc('\n', stderr);
  }

 private:
  bool quiet_;
  bool tty_;
  std::string stage_;
  int64_t done_ = -1;
  double last_line_ = 0;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

}  // namespace

int RunAudit(const AuditCommandOptions& options) {
  absl::StatusOr<pipeline::Config> config = pipeline::LoadConfigFile(options.config, options.duci);
  if (!config.ok()) {
    std::fprintf(stderr, "mia: error: %s\n", std::string(config.status().message()).c_str());
    return ExitCodeFor(config.status());
  }
  if (options.threads >= 0) config->run.threads = options.threads;
  ProgressPrinter printer(options.quiet);
  pipeline::PipelineContext ctx;
  ctx.report_dir = options.out_dir;
  ctx.progress = [&](const pipeline::Progress& p) { printer.Update(p); };
  absl::StatusOr<pipeline::PipelineOutput> out = pipeline::RunAudit(*config, ctx);
  printer.Finish();
  if (!out.ok()) {
    std::fprintf(stderr, "mia: error: %s\n", std::string(out.status().message()).c_str());
    return ExitCodeFor(out.status());
  }
  std::printf("%-10s %-9s %-8s %9s %9s %9s\n", "model", "role", "source", "train_acc", "test_acc",
              "seconds");
  for (const pipeline::ModelRecord& m : out->models) {
    std::printf("%-10d %-9s %-8s %9.4f %9.4f %9.2f\n", m.index, m.target ? "target" : "reference",
                m.source.size() > 8 ? "file" : m.source.c_str(), m.report.train_accuracy,
                m.report.test_accuracy, m.report.seconds);
  }
  std::printf("\n");
  PrintSummary(out->result);
  PrintWarnings(out->result);
  std::fprintf(stderr, "report written to %s (%d models trained, %zu reused)\n",
               out->report_dir.c_str(), out->models_trained,
               out->models.size() - static_cast<size_t>(out->models_trained));
  return PrintPolicyVerdict(out->result);
}

}  // namespace mia::client

extern "C" int mia_audit_command_main(const MiaAuditArgs* args) {
  if (args == nullptr || args->abi_version != kMiaAuditAbiVersion) {
    std::fprintf(stderr,
                 "mia: error: %s is from another build of mia (interface version %d, "
                 "expected %d): rebuild or reinstall mia\n",
                 mia::client::kAuditLibraryName, args == nullptr ? -1 : args->abi_version,
                 kMiaAuditAbiVersion);
    return mia::client::kExitFailure;
  }
  mia::client::AuditCommandOptions options;
  options.config = args->config != nullptr ? args->config : "";
  options.out_dir = args->out_dir != nullptr ? args->out_dir : "";
  options.threads = args->threads;
  options.quiet = args->quiet != 0;
  options.duci = args->duci != 0;
  return mia::client::RunAudit(options);
}
