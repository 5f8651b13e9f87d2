// Internal to core/pipeline: the stages that the classifier audit
// (pipeline.cc) and the language-model audit (lm_pipeline.cc) share. Not for
// use outside this folder.
#ifndef MIA_CORE_PIPELINE_STAGES_H_
#define MIA_CORE_PIPELINE_STAGES_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/audit/bundle.h"
#include "core/audit/result.h"
#include "core/pipeline/config.h"
#include "core/pipeline/pipeline.h"

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

absl::StatusOr<std::string> FileSha256(const std::string& path);
absl::Status WriteModelsJson(const std::string& path, const std::vector<ModelRecord>& models,
                             const Config& c);

// Which rows each model trains on and which rows are audited.
struct Split {
  std::vector<int64_t> pool, population;  // dataset rows, disjoint
  int64_t p = 0;                          // pool.size()
  std::vector<uint8_t> keep;              // [models, p]: 1 where a model trains on a pool row
  std::vector<int64_t> audit_points;      // pool indices
};
absl::StatusOr<Split> SplitStage(const Config& c, const PipelineContext& ctx, int64_t rows,
                                 std::vector<audit::StageTiming>* timings);

// Scores the bundle like `mia score` does; fills output->result, its timings
// the pipeline's stages first, then scoring's.
absl::Status ScoreStage(const Config& c, const PipelineContext& ctx, const audit::Bundle& bundle,
                        std::vector<audit::StageTiming> timings, PipelineOutput* output);

// The language-model audit (lm_pipeline.cc): RunAudit for c.language_model().
absl::StatusOr<PipelineOutput> RunLmAudit(const Config& c, const PipelineContext& ctx);

}  // namespace mia::pipeline::internal

#endif  // MIA_CORE_PIPELINE_STAGES_H_
