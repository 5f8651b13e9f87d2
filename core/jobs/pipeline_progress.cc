#include "core/jobs/pipeline_progress.h"

#include <algorithm>

namespace mia::jobs {
namespace {

// Where each pipeline stage sits in the overall fraction, and its job-level
// name (JobProgress::stage). Training dominates an audit that trains.
struct StageSpan {
  const char* pipeline_stage;
  const char* job_stage;
  double begin;
  double end;
};
constexpr StageSpan kStages[] = {
    {"data", "load", 0.0, 0.03},     {"split", "load", 0.03, 0.05},
    {"train", "train", 0.05, 0.80},  {"signals", "signals", 0.80, 0.90},
    {"audit", "attack", 0.90, 0.97}, {"report", "report", 0.97, 1.0},
};

}  // namespace

JobProgress PipelineProgressMapper::Map(const pipeline::Progress& p) {
  JobProgress out;
  out.stage = p.stage;
  out.detail = p.detail;
  double share = p.stage_fraction;
  if (!(share >= 0)) share = p.total > 0 ? static_cast<double>(p.done) / p.total : 0;
  share = std::clamp(share, 0.0, 1.0);
  double fraction = fraction_;
  for (const StageSpan& span : kStages) {
    if (p.stage != span.pipeline_stage) continue;
    out.stage = span.job_stage;
    fraction = span.begin + (span.end - span.begin) * share;
    break;
  }
  fraction_ = std::max(fraction_, fraction);
  out.fraction = fraction_;
  // Models trained or loaded: counted in "train", kept from then on.
  if (p.stage == "train") {
    models_total_ = std::max(models_total_, p.total);
    models_done_ = std::min(std::max(models_done_, p.done), models_total_);
  } else if (p.stage == "signals" || p.stage == "audit" || p.stage == "report") {
    // Past training every model exists (trained, cached or given).
    models_total_ = std::max(models_total_, p.stage == "signals" ? p.total : 0);
    models_done_ = models_total_;
  }
  out.done = models_done_;
  out.total = models_total_;
  return out;
}

}  // namespace mia::jobs
