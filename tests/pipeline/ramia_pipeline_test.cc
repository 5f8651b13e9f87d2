// Range audits (RaMIA) end to end: the range game on a small synthetic
// tabular dataset (seconds), and the incumbent's two Purchase range configs
// on the shared Purchase file.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "core/common/random.h"
#include "core/pipeline/pipeline.h"
#include "core/training/engine.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/common/temp_root.h"
#include "tests/pipeline/test_data.h"

namespace mia::pipeline {
namespace {

using ::testing::HasSubstr;

std::string WriteDataset(const std::string& root) { return testing_util::WriteClusteredCsv(root); }

std::string ConfigText(const std::string& root, const std::string& data,
                       const std::string& ramia) {
  return "run:\n  random_seed: 5\n  log_dir: " + root + "/runs\n" +
         "data:\n  dataset: csv\n  data_dir: " + data +
         "\n  pool_size: 800\n  population_size: 400\n" +
         "train:\n  model_name: mlp\n  hidden: [64]\n  activation: relu\n  optimizer: adam\n"
         "  learning_rate: 0.01\n  epochs: 40\n  batch_size: 32\n"
         "audit:\n  attacks: [rmia-offline, loss]\n  num_ref_models: 2\n  data_size: 200\n"
         "  bootstrap: 100\n" +
         ramia;
}

const audit::AttackTargetResult* ResultOf(const PipelineOutput& out, const std::string& attack) {
  for (const auto& r : out.result.results) {
    if (r.attack == attack) return &r;
  }
  return nullptr;
}

TEST(RamiaPipelineTest, TheRangeGameOnSmallTabularData) {
  const std::string root = testing_util::FreshTempRoot("ramia_game");
  const std::string data = WriteDataset(root);
  auto config = ParseConfig(
      ConfigText(root, data, "ramia:\n  range_function: l2\n  radius: 0.5\n  sample_size: 8\n"),
      root + "/audit.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  auto out = RunAudit(*config, PipelineContext{});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->models_trained, 3);
  const audit::AuditResult& r = out->result;
  ASSERT_TRUE(r.ramia.has_value());
  EXPECT_EQ(r.ramia->range_function, "l2");
  EXPECT_EQ(r.ramia->ranges, 200);
  EXPECT_EQ(r.ramia->member_ranges, 100);
  EXPECT_EQ(r.ramia->non_member_ranges, 100);
  EXPECT_EQ(r.ramia->population_points, 300);  // 400 less the 100 non-member centres
  EXPECT_EQ(r.ramia->trimmed_each_end, 1);     // floor(0.2 * 8)
  // Ranges: members first (pool rows target 0 trained on), then population rows.
  ASSERT_EQ(r.row_ids.size(), 200u);
  ASSERT_EQ(r.membership.size(), 1u);
  std::set<int64_t> centres(r.row_ids.begin(), r.row_ids.end());
  EXPECT_EQ(centres.size(), 200u);
  for (size_t i = 0; i < 200; ++i) {
    if (i < 100) {
      EXPECT_LT(r.row_ids[i], 800);
      EXPECT_EQ(r.membership[0][i], 1);
    } else {
      EXPECT_GE(r.row_ids[i], 800);
      EXPECT_EQ(r.membership[0][i], 0);
    }
  }
  const audit::AttackTargetResult* rmia = ResultOf(*out, "rmia-offline@range");
  const audit::AttackTargetResult* loss = ResultOf(*out, "loss@range");
  ASSERT_NE(rmia, nullptr);
  ASSERT_NE(loss, nullptr);
  EXPECT_EQ(rmia->members, 100);
  EXPECT_EQ(rmia->non_members, 100);
  EXPECT_EQ(rmia->scores.size(), 200u);
  // Overfit models: ranges around their training rows score higher.
  EXPECT_GT(rmia->auc, 0.6);
  EXPECT_GT(loss->auc, 0.6);
  EXPECT_TRUE(std::isfinite(rmia->auc_ci.low));
  // The report says it is a range audit.
  std::ifstream result_json(out->report_dir + "/result.json");
  const nlohmann::json j = nlohmann::json::parse(result_json);
  EXPECT_EQ(j["ramia"]["range_function"], "l2");
  EXPECT_EQ(j["ramia"]["ranges"], 200);
  EXPECT_EQ(j["spec"]["audit"]["ramia"]["radius"], 0.5);
  std::ifstream summary(out->report_dir + "/summary.md");
  std::stringstream text;
  text << summary.rdbuf();
  EXPECT_THAT(text.str(), HasSubstr("## Ranges (RaMIA)"));
  EXPECT_THAT(text.str(), HasSubstr("rmia-offline@range"));
  EXPECT_TRUE(std::filesystem::exists(out->report_dir + "/scores.csv"));
  EXPECT_TRUE(std::filesystem::exists(out->report_dir + "/models.json"));

  // Seeded: the same spec gives the same range scores (models from the cache).
  auto again = RunAudit(*config, PipelineContext{});
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->models_trained, 0);
  EXPECT_EQ(ResultOf(*again, "rmia-offline@range")->scores, rmia->scores);

  // missing_values on the same models: the last 2 features drawn from [-2, 2].
  auto mv = ParseConfig(ConfigText(root, data,
                                   "ramia:\n  range_function: missing_values\n"
                                   "  col_ranges: [[-2, 2], [-2, 2]]\n  trim: 0.1\n"),
                        root + "/audit.yaml");
  ASSERT_TRUE(mv.ok()) << mv.status();
  auto mv_out = RunAudit(*mv, PipelineContext{});
  ASSERT_TRUE(mv_out.ok()) << mv_out.status();
  EXPECT_EQ(mv_out->models_trained, 0);
  ASSERT_TRUE(mv_out->result.ramia.has_value());
  EXPECT_EQ(mv_out->result.ramia->num_missing_feats, 2);
  EXPECT_EQ(mv_out->result.ramia->trimmed_each_end, 1);  // floor(0.1 * 10)
  std::printf("missing_values: loss@range AUC %.4f, rmia-offline@range AUC %.4f\n",
              ResultOf(*mv_out, "loss@range")->auc, ResultOf(*mv_out, "rmia-offline@range")->auc);
  EXPECT_GT(ResultOf(*mv_out, "loss@range")->auc, 0.55);
}

TEST(RamiaPipelineTest, RangesTooManyForTheDataAreRefusedBeforeTraining) {
  const std::string root = testing_util::FreshTempRoot("ramia_refused");
  const std::string data = WriteDataset(root);
  // More missing features than the rows have.
  std::string cols;
  for (int i = 0; i < 11; ++i) cols += std::string(i ? ", " : "") + "[0, 1]";
  auto c = ParseConfig(ConfigText(root, data,
                                  "ramia:\n  range_function: missing_values\n  col_ranges: [" +
                                      cols + "]\n"),
                       root + "/audit.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  auto out = RunAudit(*c, PipelineContext{});
  ASSERT_FALSE(out.ok());
  EXPECT_THAT(std::string(out.status().message()), HasSubstr("ramia.num_missing_feats"));
  EXPECT_FALSE(std::filesystem::exists(root + "/runs/models"));
  // Geometric ranges of tabular rows.
  auto g = ParseConfig(ConfigText(root, data,
                                  "ramia:\n  range_function: geometric\n"
                                  "  transformations: [horizontal_flip]\n"),
                       root + "/audit.yaml");
  ASSERT_TRUE(g.ok()) << g.status();
  auto g_out = RunAudit(*g, PipelineContext{});
  ASSERT_FALSE(g_out.ok());
  EXPECT_THAT(std::string(g_out.status().message()), HasSubstr("images"));
}

// The incumbent's configs/ramia/purchase.yaml and purchase_missingvalues.yaml
// with only data_dir and log_dir changed (tests/incumbent_configs/), on the
// shared Purchase file; the two share models, as they share the incumbent's
// log_dir. The data path is relative to the repository root; the run folder
// is a temporary one; cuda:0 becomes cpu on a machine without CUDA.
TEST(RamiaIncumbentConfigTest, PurchaseL2AndMissingValues) {
  const std::string root = testing_util::FreshTempRoot("ramia_incumbent");
  for (const char* name : {"ramia_purchase", "ramia_purchase_missingvalues"}) {
    auto c = LoadConfigFile(std::string(MIA_SOURCE_DIR) + "/tests/incumbent_configs/" + name +
                            ".yaml");
    ASSERT_TRUE(c.ok()) << c.status();
    c->data.source.path = std::string(MIA_SOURCE_DIR) + "/" + c->data.source.path;
    if (!std::filesystem::exists(c->data.source.path)) {
      GTEST_SKIP() << "no shared Purchase file at " << c->data.source.path;
    }
    c->run.log_dir = root + "/runs";
    if (training::ResolveDevice("auto") == "cpu") c->train_device = c->audit.device = "cpu";
    const auto start = std::chrono::steady_clock::now();
    auto out = RunAudit(*c, PipelineContext{});
    ASSERT_TRUE(out.ok()) << name << ": " << out.status();
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::printf("%s: %.1f s, %d models trained\n", name, seconds, out->models_trained);
    const audit::AuditResult& r = out->result;
    ASSERT_TRUE(r.ramia.has_value());
    EXPECT_EQ(r.ramia->ranges, 10000);
    EXPECT_EQ(r.ramia->member_ranges, 5000);
    EXPECT_EQ(r.ramia->population_points, 5000);
    ASSERT_EQ(r.results.size(), 1u);
    EXPECT_EQ(r.results[0].attack, "rmia-offline@range");
    EXPECT_EQ(r.results[0].members, 5000);
    EXPECT_EQ(r.results[0].non_members, 5000);
    std::printf("%s: AUC %.4f\n", name, r.results[0].auc);
    // 100 epochs of SGD at 0.1 overfit Purchase: ranges around training rows
    // are told apart (l2 balls of radius 10 blur them more than 10 missing
    // features do).
    EXPECT_GT(r.results[0].auc, std::string(name) == "ramia_purchase" ? 0.5 : 0.55) << name;
  }
}

}  // namespace
}  // namespace mia::pipeline
