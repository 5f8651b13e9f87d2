#include "server/metrics.h"

#include <string>
#include <vector>

#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"
#include "prometheus/text_serializer.h"

namespace mia::server {
namespace {

constexpr jobs::JobState kAllStates[] = {jobs::JobState::kPending, jobs::JobState::kRunning,
                                         jobs::JobState::kSucceeded, jobs::JobState::kFailed,
                                         jobs::JobState::kCancelled};

int StateIndex(jobs::JobState state) { return static_cast<int>(state); }

// Stages take from milliseconds (a small bundle) to hours (a WRN on a CPU).
prometheus::Histogram::BucketBoundaries StageBuckets() {
  return {0.01, 0.05, 0.25, 1, 5, 15, 60, 300, 900, 3600, 10800};
}
// One model: seconds (an MLP) to an hour (a large CNN on a CPU).
prometheus::Histogram::BucketBoundaries TrainingBuckets() {
  return {0.5, 1, 2.5, 5, 10, 30, 60, 180, 600, 1800, 3600};
}

}  // namespace

ServerMetrics::ServerMetrics() : registry_(std::make_shared<prometheus::Registry>()) {
  auto& jobs = prometheus::BuildGauge()
                   .Name("mia_jobs")
                   .Help("Audit jobs known to the server, by state")
                   .Register(*registry_);
  for (jobs::JobState s : kAllStates) {
    jobs_by_state_[StateIndex(s)] = &jobs.Add({{"state", std::string(jobs::JobStateName(s))}});
  }
  queue_depth_ = &prometheus::BuildGauge()
                      .Name("mia_queue_depth")
                      .Help("Audit jobs waiting in the queue for a worker")
                      .Register(*registry_)
                      .Add({});
  watch_streams_ = &prometheus::BuildGauge()
                        .Name("mia_watch_streams")
                        .Help("Open WatchAudit streams")
                        .Register(*registry_)
                        .Add({});
  models_trained_ = &prometheus::BuildCounter()
                         .Name("mia_models_trained_total")
                         .Help("Target and reference models trained")
                         .Register(*registry_)
                         .Add({});
  upload_bytes_ = &prometheus::BuildCounter()
                       .Name("mia_upload_bytes_total")
                       .Help("Bytes of artifacts received by UploadArtifact and stored")
                       .Register(*registry_)
                       .Add({});
  training_seconds_ = &prometheus::BuildHistogram()
                           .Name("mia_model_training_seconds")
                           .Help("Wall time to train one model")
                           .Register(*registry_)
                           .Add({}, TrainingBuckets());
  stage_seconds_ = &prometheus::BuildHistogram()
                        .Name("mia_stage_seconds")
                        .Help("Wall time a job spent in one stage (load, train, signals, ...)")
                        .Register(*registry_);
  rpcs_ = &prometheus::BuildCounter()
               .Name("mia_rpcs_total")
               .Help("Finished RPCs of mia.v1.AuditService, by method and status code")
               .Register(*registry_);
}

ServerMetrics::~ServerMetrics() = default;

void ServerMetrics::SetJobs(jobs::JobState state, int64_t count) {
  jobs_by_state_[StateIndex(state)]->Set(static_cast<double>(count));
}

void ServerMetrics::OnJobDeleted(jobs::JobState state) {
  jobs_by_state_[StateIndex(state)]->Decrement();
}

void ServerMetrics::OnRpc(absl::string_view method, absl::string_view code) {
  rpcs_->Add({{"method", std::string(method)}, {"code", std::string(code)}}).Increment();
}

void ServerMetrics::SetWatchStreams(int64_t streams) {
  watch_streams_->Set(static_cast<double>(streams));
}

void ServerMetrics::OnUploadBytes(int64_t bytes) {
  if (bytes > 0) upload_bytes_->Increment(static_cast<double>(bytes));
}

void ServerMetrics::OnStateChange(std::optional<jobs::JobState> from, jobs::JobState to) {
  if (from.has_value()) jobs_by_state_[StateIndex(*from)]->Decrement();
  jobs_by_state_[StateIndex(to)]->Increment();
}

void ServerMetrics::OnQueueDepth(int64_t depth) { queue_depth_->Set(static_cast<double>(depth)); }

void ServerMetrics::OnStageDuration(const std::string& stage, double seconds) {
  // Stage names come from runners, a small fixed set; anything else is
  // folded into "other" so that a new runner cannot grow the series count.
  static const char* const kStages[] = {"queued", "load",    "train",  "signals",
                                        "attack", "metrics", "report", "done"};
  std::string label = "other";
  for (const char* s : kStages) {
    if (stage == s) label = s;
  }
  stage_seconds_->Add({{"stage", label}}, StageBuckets()).Observe(seconds);
}

void ServerMetrics::OnModelTrained(double seconds) {
  models_trained_->Increment();
  training_seconds_->Observe(seconds);
}

std::string ServerMetrics::Text() const {
  return prometheus::TextSerializer().Serialize(registry_->Collect());
}

}  // namespace mia::server
