// The job's view of a pipeline audit's progress never goes backwards.
#include "core/jobs/pipeline_progress.h"

#include <vector>

#include "gtest/gtest.h"

namespace mia::jobs {
namespace {

pipeline::Progress Event(const std::string& stage, int64_t done, int64_t total,
                         double stage_fraction = -1) {
  pipeline::Progress p;
  p.stage = stage;
  p.done = done;
  p.total = total;
  p.stage_fraction = stage_fraction;
  return p;
}

TEST(PipelineProgressTest, ModelCountsAndFractionNeverGoBackwards) {
  // The sequence the review saw: 8/8 models, then the signals stage counts
  // 1/8 again, then the attack's 0/1.
  const std::vector<pipeline::Progress> events = {
      Event("data", 0, 1),         Event("data", 1, 1),        Event("split", 1, 1),
      Event("train", 0, 8, 0.0),   Event("train", 0, 8, 0.05), Event("train", 0, 8, 0.1),
      Event("train", 1, 8, 0.125), Event("train", 8, 8, 1.0),  Event("signals", 1, 8),
      Event("signals", 8, 8),      Event("audit", 0, 1),       Event("audit", 1, 1),
      Event("report", 1, 1)};
  PipelineProgressMapper mapper;
  JobProgress last;
  bool trained_all = false;
  for (size_t i = 0; i < events.size(); ++i) {
    const JobProgress p = mapper.Map(events[i]);
    EXPECT_GE(p.fraction, last.fraction) << "event " << i;
    EXPECT_GE(p.done, last.done) << "event " << i;
    EXPECT_GE(p.total, last.total) << "event " << i;
    if (trained_all) {
      EXPECT_EQ(p.done, 8) << "event " << i;
      EXPECT_EQ(p.total, 8) << "event " << i;
    }
    trained_all = trained_all || (events[i].stage == "train" && events[i].done == 8);
    last = p;
  }
  EXPECT_EQ(last.stage, "report");
  EXPECT_DOUBLE_EQ(last.fraction, 1.0);
}

TEST(PipelineProgressTest, TrainingMovesByBatchInsideItsSpan) {
  PipelineProgressMapper mapper;
  const JobProgress a = mapper.Map(Event("train", 0, 4, 0.01));
  const JobProgress b = mapper.Map(Event("train", 0, 4, 0.02));
  EXPECT_EQ(a.stage, "train");
  EXPECT_GT(b.fraction, a.fraction);  // no model finished, yet it moved
  EXPECT_EQ(b.done, 0);
  EXPECT_EQ(b.total, 4);
  // Without a stage fraction, done/total places it.
  PipelineProgressMapper counts;
  const JobProgress half = counts.Map(Event("train", 2, 4));
  const JobProgress full = counts.Map(Event("train", 4, 4));
  EXPECT_GT(full.fraction, half.fraction);
  EXPECT_LT(full.fraction, 1.0);
}

TEST(PipelineProgressTest, AStageOutOfOrderDoesNotMoveBack) {
  PipelineProgressMapper mapper;
  const JobProgress signals = mapper.Map(Event("signals", 4, 4));
  const JobProgress late_train = mapper.Map(Event("train", 1, 4, 0.3));
  EXPECT_GE(late_train.fraction, signals.fraction);
  EXPECT_EQ(late_train.done, 4);
}

}  // namespace
}  // namespace mia::jobs
