// Internal to core/pipeline: the stages that the classifier audit
// (pipeline.cc) and the language-model audit (lm_pipeline.cc) share. Not for
// use outside this folder.
#ifndef MIA_CORE_PIPELINE_STAGES_H_
#define MIA_CORE_PIPELINE_STAGES_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/audit/bundle.h"
#include "core/audit/result.h"
#include "core/audit/scoring.h"
#include "core/data/dataset.h"
#include "core/pipeline/artifact_store.h"
#include "core/pipeline/config.h"
#include "core/pipeline/pipeline.h"
#include "core/training/engine.h"

namespace mia::pipeline::internal {

using Clock = std::chrono::steady_clock;

// Streams of the run seed, one per use, so that changing one use (say the
// audit set size) never changes another (say the splits).
enum SeedStream : uint64_t {
  kSeedRows = 1,
  kSeedSplits = 2,
  kSeedAuditSet = 3,
  kSeedScoring = 4,
  kSeedTokenizer = 5,
  kSeedRamiaRanges = 6,   // which rows range centres are built around
  kSeedRamiaPoints = 7,   // each range's centre and sampled points (per centre row)
  kSeedCanaries = 8,      // dp_audit: which pool rows are canaries, and which are included
  kSeedCanaryLabels = 9,  // dp_audit: the canaries' new labels
  kSeedDuci = 10,         // which rows each DUCI target trains on
  kSeedModels = 1000,  // + model index
};

double SecondsSince(Clock::time_point t);
absl::Status CheckCancel(const PipelineContext& ctx);
void SendProgress(const PipelineContext& ctx, const std::string& stage, int64_t done, int64_t total,
                  const std::string& detail, double stage_fraction = -1);

template <typename T>
std::vector<T> Gather(const std::vector<T>& values, const std::vector<int64_t>& index) {
  std::vector<T> out;
  out.reserve(index.size());
  for (int64_t i : index) out.push_back(values[i]);
  return out;
}

// Every game's report folder: ctx.report_dir, else run.log_dir/audit.report_log;
// sets output->report_dir and creates the folder.
void MakeReportDir(const Config& c, const PipelineContext& ctx, PipelineOutput* output);
// The end of every game's report stage (begun at `start`): models.json, the
// stage's time, the privacy gate's verdict on the result (audit.policy), then
// the report files (report::WriteReport) and the last progress event.
absl::Status FinishReport(const Config& c, const PipelineContext& ctx, Clock::time_point start,
                          PipelineOutput* output);
// models.json's text (the models' records and the recipe), for the file and
// for report.html's Models section.
std::string ModelsJson(const std::vector<ModelRecord>& models, const Config& c);

// The loaded dataset and its fingerprint (part of every model key).
struct LoadedData {
  data::Dataset ds;
  std::string fingerprint;  // data::Fingerprint(ds)
};
absl::StatusOr<LoadedData> LoadStage(const Config& c, const PipelineContext& ctx,
                                     std::vector<audit::StageTiming>* timings);

// Pool and population rows of the dataset (row ids), disjoint; refuses a
// pool the training work limit (EpochRowsProblem) refuses.
absl::Status ChoosePoolAndPopulation(const Config& c, int64_t rows, std::vector<int64_t>* pool,
                                     std::vector<int64_t>* population);

// Which rows each model trains on and which rows are audited.
struct Split {
  std::vector<int64_t> pool, population;  // dataset rows, disjoint
  int64_t p = 0;                          // pool.size()
  std::vector<uint8_t> keep;              // [models, p]: 1 where a model trains on a pool row
  std::vector<int64_t> audit_points;      // pool indices
  std::vector<int64_t> audit_half;        // disjoint splits: the pool indices audit points
                                          // come from (sorted); empty otherwise
};
absl::StatusOr<Split> SplitStage(const Config& c, const PipelineContext& ctx, int64_t rows,
                                 std::vector<audit::StageTiming>* timings);

// The classifier audit's stages (pipeline.cc), in the order RunAudit calls
// them after LoadStage and SplitStage; the range audit, the DP audit in one
// run and the DUCI game (ramia_game.cc, dp_audit_game.cc, duci_game.cc) call
// them too.
// Trains the models the store lacks and reuses the rest (or takes the models
// trained elsewhere, models.torchscript); fills output->models and
// models_trained. The path of each model's file, by model index.
absl::StatusOr<std::vector<std::string>> TrainStage(const Config& c, const PipelineContext& ctx,
                                                    const LoadedData& data, const Split& split,
                                                    ArtifactStore* store, PipelineOutput* output,
                                                    std::vector<audit::StageTiming>* timings);

// Every model's logits on the audit points and on the population.
struct Signals {
  std::vector<int64_t> audit_rows;  // dataset rows of the audit points
  int64_t n = 0;                    // audit points
  int64_t z = 0;                    // population points
  int a_count = 0;                  // queries per point (augmentations)
  int classes = 0;
  std::vector<float> audit_logits;  // [models, n, a_count, classes]
  std::vector<float> pop_logits;    // [models, z, a_count, classes]
};
absl::StatusOr<Signals> SignalsStage(const Config& c, const PipelineContext& ctx,
                                     const LoadedData& data, const Split& split,
                                     const std::vector<std::string>& model_paths,
                                     const std::vector<ModelRecord>& models,
                                     const ArtifactStore& store,
                                     std::vector<audit::StageTiming>* timings);

// The audit as a bundle in memory, as `mia score` reads one from a file.
audit::Bundle MakeBundle(const Config& c, const LoadedData& data, const Split& split,
                         Signals signals);

// The audit's files, models.json, and the signals as a bundle that `mia
// score` can re-audit; sets output->report_dir.
absl::Status ReportStage(const Config& c, const PipelineContext& ctx, const audit::Bundle& bundle,
                         PipelineOutput* output);

// The train stage's progress around one engine call, for classifiers and
// language models alike: the count is the models saved so far (batched groups
// and parallel lanes finish models in any order); the stage's share moves with
// every batch of every model and never goes back; the detail follows one model
// at a time until it finishes. `commit(m, report)` records model m (an audit
// index) the moment its archive exists, so that a crash or a drain loses only
// the models still training. The engine calls the two callbacks from one
// thread at a time; the object must outlive the call.
class TrainProgress {
 public:
  using Commit = std::function<absl::Status(int model, const training::ModelReport& report)>;
  TrainProgress(const PipelineContext& ctx, int m_count, std::vector<int> to_train, int epochs,
                Commit commit);
  // Sets tctx->progress and tctx->model_saved.
  void Attach(training::TrainContext* tctx);

 private:
  double Share() const;

  const PipelineContext& ctx_;
  const int m_count_;
  const std::vector<int> to_train_;  // audit index of each model the engine trains
  const int epochs_;
  const int cached_;
  const Commit commit_;
  std::vector<double> model_share_;  // each trained model's share of its batches done
  int saved_ = 0;
  int followed_ = -1;
  bool followed_done_ = true;
};

// Counts the models whose signals are ready, reporting each one ("signals of
// k/M models"); call it once per model, from one thread at a time.
std::function<void()> SignalsCounter(const PipelineContext& ctx, int m_count);

// The train stage of classifiers and language models alike: each model's
// record and artifact key (`key(m, material)` fills all that determines model
// m but its seed), the models the store holds reused, the rest trained by one
// call of `train` (the engine's arguments for those models, and `tctx` with
// cancellation and the TrainProgress callbacks set), each committed as soon
// as its archive exists. `train_points[m]`: what model m trains on, as the
// engine indexes it. Returns every model's file.
using KeyFn = std::function<void(int model, ModelKeyMaterial* material)>;
using TrainFn = std::function<absl::Status(
    const std::vector<std::vector<int64_t>>& points, const std::vector<uint64_t>& seeds,
    const std::vector<std::string>& paths, const training::TrainContext& tctx)>;
absl::StatusOr<std::vector<std::string>> TrainOrReuse(
    const Config& c, const PipelineContext& ctx,
    const std::vector<std::vector<int64_t>>& train_points, const KeyFn& key, int epochs,
    training::TrainContext tctx, const TrainFn& train, ArtifactStore* store,
    PipelineOutput* output, std::vector<audit::StageTiming>* timings);

// Scores the bundle like `mia score` does; fills output->result, its timings
// the pipeline's stages first, then scoring's. With `ranges`, a range audit's
// scoring (audit::RangeGroups).
absl::Status ScoreStage(const Config& c, const PipelineContext& ctx, const audit::Bundle& bundle,
                        std::vector<audit::StageTiming> timings, PipelineOutput* output,
                        const audit::RangeGroups* ranges = nullptr);

// The range audit (ramia_game.cc): RunAudit for c.audit.ramia.
absl::StatusOr<PipelineOutput> RunRamiaAudit(const Config& c, const PipelineContext& ctx);

// The dp_audit section of a result from its scored canaries: for each attack
// against the (one) target, the guesses and bounds of each (k+, k-) of the
// grid (d.grid, or metrics::DefaultOneRunGrid(m)), then Privacy Meter's
// best split, marked as chosen after looking. `result.membership[0]` says
// which canary the target trained on. Torch-free.
absl::StatusOr<audit::DpAuditResult> DpAuditBounds(const DpAuditConfig& d,
                                                   const audit::AuditResult& result);

// The DP audit in one run (dp_audit_game.cc): RunAudit for c.dp_audit.
absl::StatusOr<PipelineOutput> RunDpAuditGame(const Config& c, const PipelineContext& ctx);

// The DUCI game (duci_game.cc): RunAudit for c.audit.duci.
absl::StatusOr<PipelineOutput> RunDuciGame(const Config& c, const PipelineContext& ctx);

// The language-model audit (lm_pipeline.cc): RunAudit for c.language_model().
absl::StatusOr<PipelineOutput> RunLmAudit(const Config& c, const PipelineContext& ctx);

}  // namespace mia::pipeline::internal

#endif  // MIA_CORE_PIPELINE_STAGES_H_
