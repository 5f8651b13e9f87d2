// Turns a pipeline audit's progress events (pipeline::Progress, one stage at
// a time) into the job's progress (JobProgress: stage, models trained of the
// total, overall fraction), so that what watchers see never goes backwards:
// the fraction only grows, and once models are trained or loaded the count
// stays at the total through signals, attack and report (the pipeline's own
// signals counter, 1/8 after 8/8, goes into the detail only).
//
// Torch-free, so that it is tested without training (tests/jobs).
// Thread-safety: none; one mapper per run, fed from the pipeline's
// (serialized) progress callback.
#ifndef MIA_CORE_JOBS_PIPELINE_PROGRESS_H_
#define MIA_CORE_JOBS_PIPELINE_PROGRESS_H_

#include <cstdint>

#include "core/jobs/job.h"
#include "core/pipeline/pipeline.h"

namespace mia::jobs {

class PipelineProgressMapper {
 public:
  // The job's progress after `p`. Stages map to the job's: data and split ->
  // "load", train, signals, audit -> "attack", report. The fraction places
  // each stage in a fixed span of [0, 1] (training dominates) and moves
  // inside it by p.stage_fraction when given (per batch while training),
  // else by done/total.
  JobProgress Map(const pipeline::Progress& p);

 private:
  int64_t models_done_ = 0;
  int64_t models_total_ = 0;
  double fraction_ = 0;
};

}  // namespace mia::jobs

#endif  // MIA_CORE_JOBS_PIPELINE_PROGRESS_H_
