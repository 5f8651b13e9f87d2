// End-to-end audits on a small synthetic tabular dataset: trains in seconds.
#include "core/pipeline/pipeline.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <set>
#include <sstream>
#include <vector>

#include "core/common/random.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/common/temp_root.h"
#include "nlohmann/json.hpp"
#include "tests/common/write_failures.h"

namespace mia::pipeline {
namespace {

std::string TempRoot(const std::string& name) { return testing_util::FreshTempRoot(name); }

// 1,200 rows, 10 features, 4 overlapping classes, 10% label noise: a small
// MLP memorizes its training rows, so membership leaks.
std::string WriteDataset(const std::string& root) {
  const std::string path = root + "/data.csv";
  std::ofstream out(path);
  Rng rng(42);
  std::vector<std::vector<double>> centers(4, std::vector<double>(10));
  for (auto& c : centers)
    for (double& v : c) v = rng.Normal();
  for (int row = 0; row < 1200; ++row) {
    int label = static_cast<int>(rng.UniformInt(4));
    const int cls = label;
    if (rng.Uniform01() < 0.1) label = static_cast<int>(rng.UniformInt(4));
    out << label;
    for (int f = 0; f < 10; ++f) out << "," << centers[cls][f] + 1.2 * rng.Normal();
    out << "\n";
  }
  return path;
}

std::string FormatNumber(double v) {
  std::ostringstream out;
  out << std::setprecision(17) << v;
  return out.str();
}

std::string ConfigText(const std::string& root, const std::string& data, double lr, int epochs) {
  return "run:\n  random_seed: 5\n  log_dir: " + root + "/runs\n  num_experiments: 2\n" +
         "data:\n  dataset: csv\n  data_dir: " + data +
         "\n  pool_size: 800\n  population_size: 400\n" +
         "train:\n  model_name: mlp\n  hidden: [64]\n  activation: relu\n  optimizer: adam\n"
         "  learning_rate: " +
         FormatNumber(lr) + "\n  epochs: " + std::to_string(epochs) +
         "\n  batch_size: 32\n"
         "audit:\n  attacks: [rmia, lira, loss]\n  num_ref_models: 4\n  data_size: 400\n"
         "  bootstrap: 200\n";
}

double AucOf(const PipelineOutput& out, const std::string& attack, int target) {
  for (const auto& r : out.result.results) {
    if (r.attack == attack && r.target == target) return r.auc;
  }
  ADD_FAILURE() << "no result for " << attack;
  return 0;
}

TEST(PipelineTest, OverfitModelsLeakAndTheCacheIsReused) {
  const std::string root = TempRoot("pipeline_e2e");
  const std::string data = WriteDataset(root);
  auto config = ParseConfig(ConfigText(root, data, 0.01, 40), root + "/audit.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  int train_events = 0;
  std::vector<double> train_shares;     // stage_fraction of train events
  std::set<double> before_first_model;  // ... while no model was saved yet
  PipelineContext ctx;
  ctx.progress = [&](const Progress& p) {
    if (p.stage != "train") return;
    ++train_events;
    train_shares.push_back(p.stage_fraction);
    if (p.done == 0) before_first_model.insert(p.stage_fraction);
  };
  auto first = RunAudit(*config, ctx);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->models_trained, 6);
  EXPECT_GT(train_events, 6);
  // Progress moves by batch, not once per model, and never goes backwards.
  EXPECT_GT(before_first_model.size(), 20u);
  ASSERT_FALSE(train_shares.empty());
  EXPECT_DOUBLE_EQ(train_shares.back(), 1.0);
  for (size_t i = 1; i < train_shares.size(); ++i) {
    ASSERT_GE(train_shares[i], train_shares[i - 1]) << "event " << i;
  }
  ASSERT_EQ(first->models.size(), 6u);
  for (const ModelRecord& m : first->models) {
    EXPECT_GT(m.report.train_accuracy, m.report.test_accuracy + 0.1) << "model " << m.index;
    EXPECT_NEAR(m.train_rows, 400, 60);
  }
  for (int target : {0, 1}) {
    EXPECT_GT(AucOf(*first, "lira", target), 0.6);
    EXPECT_GT(AucOf(*first, "rmia", target), 0.6);
  }
  const std::string report = first->report_dir;
  for (const char* f : {"result.json", "scores.csv", "roc.svg", "roc_log.svg", "summary.md",
                        "timing.log", "models.json", "signals.npz"}) {
    EXPECT_TRUE(std::filesystem::exists(report + "/" + f)) << f;
  }
  std::ifstream models_json(report + "/models.json");
  nlohmann::json models = nlohmann::json::parse(models_json);
  EXPECT_EQ(models["models"].size(), 6u);
  EXPECT_EQ(models["models"][0]["role"], "target");
  EXPECT_EQ(models["models"][0]["source"], "trained");
  // Audit rows are dataset rows of the pool, half members of target 0.
  int members = 0;
  for (size_t i = 0; i < first->result.row_ids.size(); ++i) {
    EXPECT_LT(first->result.row_ids[i], 800);
    members += first->result.membership[0][i];
  }
  EXPECT_EQ(members, 200);

  // A rerun trains nothing and gives the same scores.
  auto second = RunAudit(*config, PipelineContext{});
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(second->models_trained, 0);
  EXPECT_EQ(second->models[3].source, "cache");
  EXPECT_EQ(second->result.results[0].scores, first->result.results[0].scores);

  // A changed recipe misses the cache.
  auto changed = ParseConfig(ConfigText(root, data, 0.01, 41), root + "/audit.yaml");
  auto third = RunAudit(*changed, PipelineContext{});
  ASSERT_TRUE(third.ok()) << third.status();
  EXPECT_EQ(third->models_trained, 6);
}

TEST(PipelineTest, ModelsThatNeverLearnedTheirPointsShowNoLeakage) {
  // A learning rate of 1e-9: every model stays at its initialization, so its
  // outputs do not depend on which rows it was given.
  const std::string root = TempRoot("pipeline_e2e_untrained");
  const std::string data = WriteDataset(root);
  auto config = ParseConfig(ConfigText(root, data, 1e-9, 2), root + "/audit.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  auto out = RunAudit(*config, PipelineContext{});
  ASSERT_TRUE(out.ok()) << out.status();
  for (const auto& r : out->result.results) {
    EXPECT_NEAR(r.auc, 0.5, 0.1) << r.attack << " target " << r.target;
  }
}

const audit::AttackTargetResult* ResultOf(const PipelineOutput& out, const std::string& attack,
                                          int target) {
  for (const auto& r : out.result.results) {
    if (r.attack == attack && r.target == target) return &r;
  }
  return nullptr;
}

// ATTACKS.md, "DP-SGD and its accountant": a DP-SGD model with much noise
// audits to a lower bound far below its accountant epsilon (and no flag),
// while the same data and model trained without DP leak clearly.
TEST(PipelineTest, DpSgdModelsStayBelowTheirAccountantEpsilon) {
  const std::string root = TempRoot("pipeline_e2e_dpsgd");
  const std::string data = WriteDataset(root);
  auto plain = ParseConfig(ConfigText(root, data, 0.01, 40), root + "/audit.yaml");
  ASSERT_TRUE(plain.ok()) << plain.status();
  auto leaky = RunAudit(*plain, PipelineContext{});
  ASSERT_TRUE(leaky.ok()) << leaky.status();
  EXPECT_TRUE(leaky->result.dp.empty());
  EXPECT_TRUE(leaky->result.dp_checks.empty());
  double best = 0;
  for (const auto& r : leaky->result.results) best = std::max(best, r.epsilon.epsilon);
  EXPECT_GT(best, 0.2);

  std::string text = ConfigText(root, data, 0.01, 4);
  const std::string anchor = "  batch_size: 32\n";
  text.replace(text.find(anchor), anchor.size(),
               anchor + "  dp:\n    noise_multiplier: 5\n    max_grad_norm: 1\n");
  auto config = ParseConfig(text, root + "/audit.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  auto out = RunAudit(*config, PipelineContext{});
  ASSERT_TRUE(out.ok()) << out.status();
  ASSERT_EQ(out->result.dp.size(), 2u);  // both targets
  for (const audit::DpGuarantee& g : out->result.dp) {
    const ModelRecord& m = out->models[g.target];
    EXPECT_TRUE(m.report.dp.enabled);
    EXPECT_EQ(g.epsilon, m.report.dp.epsilon);
    EXPECT_EQ(g.noise_multiplier, 5.0);
    EXPECT_EQ(g.max_grad_norm, 1.0);
    EXPECT_NEAR(g.sample_rate, 32.0 / 400, 0.02);
    EXPECT_GT(g.steps, 40);
    EXPECT_GT(g.epsilon, 0);
  }
  for (const ModelRecord& m : out->models) EXPECT_TRUE(m.report.dp.enabled) << m.index;
  ASSERT_EQ(out->result.dp_checks.size(), out->result.results.size());
  for (const audit::DpBoundCheck& c : out->result.dp_checks) {
    EXPECT_FALSE(c.exceeded) << c.attack << " target " << c.target;
    EXPECT_LT(c.lower_bound, 0.5 * c.accountant_epsilon) << c.attack << " target " << c.target;
    const audit::AttackTargetResult* r = ResultOf(*out, c.attack, c.target);
    ASSERT_NE(r, nullptr);
    EXPECT_EQ(c.lower_bound, r->epsilon.epsilon);
  }
  for (const std::string& w : out->result.warnings) {
    EXPECT_THAT(w, ::testing::Not(::testing::HasSubstr("error in training or audit")));
  }
  // The report files carry the guarantee beside the bounds.
  std::ifstream result_json(out->report_dir + "/result.json");
  const nlohmann::json j = nlohmann::json::parse(result_json);
  ASSERT_TRUE(j.contains("dp"));
  EXPECT_EQ(j["dp"].size(), 2u);
  EXPECT_EQ(j["dp_checks"].size(), out->result.results.size());
  EXPECT_EQ(j["spec"]["train"]["dp"]["noise_multiplier"], 5.0);
  std::ifstream models_json(out->report_dir + "/models.json");
  const nlohmann::json models = nlohmann::json::parse(models_json);
  EXPECT_EQ(models["models"][0]["dp"]["steps"], out->result.dp[0].steps);
  std::ifstream summary(out->report_dir + "/summary.md");
  std::stringstream md;
  md << summary.rdbuf();
  EXPECT_THAT(md.str(), ::testing::HasSubstr("## DP-SGD targets"));
  EXPECT_THAT(md.str(), ::testing::HasSubstr("DP-SGD accountant ε"));
  // DP models have their own artifacts: a rerun reuses them, with the record.
  auto again = RunAudit(*config, PipelineContext{});
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->models_trained, 0);
  EXPECT_EQ(again->result.dp.size(), 2u);
  EXPECT_EQ(again->result.dp[0].epsilon, out->result.dp[0].epsilon);
}

TEST(PipelineTest, CancellationStopsTheRun) {
  const std::string root = TempRoot("pipeline_cancel");
  const std::string data = WriteDataset(root);
  auto config = ParseConfig(ConfigText(root, data, 0.01, 50), root + "/audit.yaml");
  std::atomic<bool> cancel{true};
  PipelineContext ctx;
  ctx.cancel = &cancel;
  auto out = RunAudit(*config, ctx);
  EXPECT_EQ(out.status().code(), absl::StatusCode::kCancelled);
}

TEST(PipelineTest, ModelsFinishedBeforeAnInterruptionAreNotRetrained) {
  const std::string root = TempRoot("pipeline_interrupt");
  const std::string data = WriteDataset(root);
  std::string text = ConfigText(root, data, 0.01, 20);
  text.replace(text.find("train:\n"), 7, "train:\n  batched: false\n");
  auto config = ParseConfig(text, root + "/audit.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  // Stop as soon as two models are saved (one at a time per lane), as a crash
  // would.
  std::atomic<bool> cancel{false};
  PipelineContext ctx;
  ctx.cancel = &cancel;
  ctx.progress = [&](const Progress& p) {
    if (p.stage == "train" && p.done >= 2) cancel = true;
  };
  auto interrupted = RunAudit(*config, ctx);
  EXPECT_EQ(interrupted.status().code(), absl::StatusCode::kCancelled);
  auto resumed = RunAudit(*config, PipelineContext{});
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  // The finished ones came from the cache: at least the two seen saved.
  int from_cache = 0;
  for (const auto& model : resumed->models) from_cache += model.source == "cache" ? 1 : 0;
  EXPECT_GE(from_cache, 2);
  EXPECT_EQ(from_cache + resumed->models_trained, 6);
}

// A full disk while trained models are saved to the cache (here a file-size
// limit, which fails write() as ENOSPC does) used to abort the process from
// LibTorch's archive writer; the audit now fails with RESOURCE_EXHAUSTED
// naming the model file, and no temporary file is left in the cache.
TEST(PipelineTest, AFullDiskFailsTheAuditWithResourceExhausted) {
  const std::string root = TempRoot("pipeline_full_disk");
  const std::string data = WriteDataset(root);
  auto config = ParseConfig(ConfigText(root, data, 0.01, 1), root + "/audit.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  absl::StatusOr<PipelineOutput> out;
  {
    testutil::ScopedFileSizeLimit limit(2048);  // a model archive is larger
    ASSERT_TRUE(limit.ok());
    out = RunAudit(*config, PipelineContext{});
  }
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), absl::StatusCode::kResourceExhausted) << out.status();
  EXPECT_THAT(out.status().message(), ::testing::HasSubstr(".pt: cannot write"));
  for (const auto& entry : std::filesystem::recursive_directory_iterator(root)) {
    EXPECT_THAT(entry.path().filename().string(), ::testing::Not(::testing::HasSubstr(".tmp.")));
  }
}

TEST(PipelineTest, BadDataIsAClearError) {
  const std::string root = TempRoot("pipeline_bad");
  const std::string data = root + "/bad.csv";
  std::ofstream(data) << "0,1.0,2.0\n1,abc,3.0\n";
  auto config = ParseConfig(ConfigText(root, data, 0.01, 1), root + "/audit.yaml");
  auto out = RunAudit(*config, PipelineContext{});
  ASSERT_FALSE(out.ok());
  EXPECT_THAT(out.status().message(), ::testing::HasSubstr("bad.csv"));
  EXPECT_THAT(out.status().message(), ::testing::HasSubstr("line 2"));
}

}  // namespace
}  // namespace mia::pipeline
