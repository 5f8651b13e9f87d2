// The DP audit in one run end to end (audit.dp_audit) on a small synthetic
// tabular dataset: trains in seconds.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <set>
#include <sstream>
#include <vector>

#include "core/common/random.h"
#include "core/io/npy.h"
#include "core/metrics/one_run_audit.h"
#include "core/pipeline/pipeline.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/common/temp_root.h"
#include "tests/pipeline/test_data.h"

namespace mia::pipeline {
namespace {

using ::testing::HasSubstr;

// 1,000 rows, 10 features, 4 classes around random centres, no label noise.
std::string WriteDataset(const std::string& root, std::vector<int64_t>* labels) {
  return testing_util::WriteClusteredCsv(root, 1000, 7, 1.0, 0.0, labels);
}

std::string DpConfig(const std::string& root, const std::string& data, uint64_t seed,
                     const std::string& lr, int epochs, const std::string& attacks, int refs,
                     const std::string& dp_audit) {
  std::ostringstream y;
  y << "run:\n  random_seed: " << seed << "\n  log_dir: " << root << "/runs\n"
    << "data:\n  dataset: csv\n  data_dir: " << data << "\n  pool_size: 800\n"
    << "train:\n  model_name: mlp\n  hidden: [64]\n  activation: relu\n  optimizer: adam\n"
    << "  learning_rate: " << lr << "\n  epochs: " << epochs << "\n  batch_size: 32\n"
    << "audit:\n  attacks: " << attacks << "\n  num_ref_models: " << refs
    << "\n  bootstrap: 0\n  dp_audit: " << dp_audit << "\n";
  return y.str();
}

// The guesses of (k+, k-) by their definition: order the canaries by score,
// higher first, equal scores by index; IN for the first k+, OUT for the last
// k-; count the right ones.
int64_t CorrectGuesses(const std::vector<double>& scores, const std::vector<uint8_t>& included,
                       int64_t k_plus, int64_t k_minus) {
  std::vector<size_t> order(scores.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return scores[a] > scores[b]; });
  int64_t correct = 0;
  for (int64_t k = 0; k < k_plus; ++k) correct += included[order[k]] == 1;
  for (int64_t k = 0; k < k_minus; ++k) correct += included[order[order.size() - 1 - k]] == 0;
  return correct;
}

TEST(DpAuditGameTest, AnOverfitModelWithMislabelledCanariesGivesAPositiveBound) {
  const std::string root = testing_util::FreshTempRoot("dp_audit_overfit");
  std::vector<int64_t> labels;
  const std::string data = WriteDataset(root, &labels);
  auto config = ParseConfig(
      DpConfig(root, data, 11, "0.01", 40, "[loss, lira-offline]", 2,
               "{canary_dataset: mislabelled, canary_size: 200, "
               "grid: [{k_plus: 20, k_minus: 20}, {k_plus: 50, k_minus: 50}, "
               "{k_plus: 30, k_minus: 0}]}"),
      root + "/audit.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  auto out = RunAudit(*config, PipelineContext{});
  ASSERT_TRUE(out.ok()) << out.status();
  const audit::AuditResult& result = out->result;
  ASSERT_TRUE(result.dp_audit.has_value());
  const audit::DpAuditResult& d = *result.dp_audit;
  EXPECT_EQ(d.canaries, 200);
  EXPECT_EQ(d.canary_dataset, "mislabelled");
  ASSERT_EQ(result.row_ids.size(), 200u);
  ASSERT_EQ(result.membership.size(), 1u);
  const std::vector<uint8_t>& included = result.membership[0];
  EXPECT_EQ(d.included, std::count(included.begin(), included.end(), 1));
  EXPECT_NEAR(d.included, 100, 30);  // Binomial(200, 1/2): sd about 7

  // The canaries are pool rows, each relabelled to another class.
  io::NpyMap arrays = *io::ReadArrays(out->report_dir + "/signals.npz");
  const std::vector<int64_t> trained_labels = *arrays.at("labels").ToInt64("labels");
  for (size_t i = 0; i < result.row_ids.size(); ++i) {
    EXPECT_LT(result.row_ids[i], 800);
    EXPECT_NE(trained_labels[i], labels[result.row_ids[i]]) << "canary " << i;
  }
  // The target trained on exactly its included canaries and every other pool row.
  EXPECT_EQ(out->models[0].train_rows, 800 - 200 + d.included);
  EXPECT_EQ(out->models[1].train_rows, 600);

  ASSERT_EQ(d.attacks.size(), 2u);
  for (const audit::DpAuditAttackResult& a : d.attacks) {
    const audit::AttackTargetResult* scored = nullptr;
    for (const auto& r : result.results) {
      if (r.attack == a.attack) scored = &r;
    }
    ASSERT_NE(scored, nullptr);
    ASSERT_EQ(a.entries.size(), 4u) << a.attack;  // the grid, then Privacy Meter's best
    for (size_t k = 0; k < a.entries.size(); ++k) {
      const audit::DpAuditEntry& e = a.entries[k];
      EXPECT_EQ(e.chosen_after_looking, k == 3);
      EXPECT_EQ(e.guesses, e.k_plus + e.k_minus);
      EXPECT_EQ(e.correct, CorrectGuesses(scored->scores, included, e.k_plus, e.k_minus))
          << a.attack << " entry " << k;
      // What `mia one-run-bound --canaries m --guesses r --correct v` prints.
      metrics::OneRunOptions options;
      options.delta = d.delta;
      options.beta = d.beta;
      EXPECT_EQ(e.epsilon,
                *metrics::OneRunEpsilonLowerBound({d.canaries, e.guesses, e.correct}, options));
    }
    EXPECT_EQ(a.entries[0].k_plus, 20);
    EXPECT_EQ(a.entries[2].k_minus, 0);
    // The best of the grid asked for.
    for (size_t k = 0; k < 3; ++k) EXPECT_LE(a.entries[k].epsilon, a.entries[a.best].epsilon);
    // Privacy Meter's best: the first largest bound over its grid, steps of
    // floor(sqrt(200)) = 14, OUT for the a lowest and IN from sorted position
    // b on (a < b < m), b outer and a inner.
    metrics::OneRunOptions options;
    options.delta = d.delta;
    options.beta = d.beta;
    double best_eps = -1;
    int64_t best_plus = -1, best_minus = -1;
    for (int64_t b = 0; b < 200; b += 14) {
      for (int64_t lo = 0; lo < b; lo += 14) {
        const int64_t v = CorrectGuesses(scored->scores, included, 200 - b, lo);
        const double eps =
            *metrics::OneRunEpsilonLowerBound({200, 200 - b + lo, v}, options);
        if (eps > best_eps) {
          best_eps = eps;
          best_plus = 200 - b;
          best_minus = lo;
        }
      }
    }
    EXPECT_EQ(a.entries[3].epsilon, best_eps) << a.attack;
    EXPECT_EQ(a.entries[3].k_plus, best_plus) << a.attack;
    EXPECT_EQ(a.entries[3].k_minus, best_minus) << a.attack;
  }
  // LOSS separates fitted wrong labels from unseen ones: a clearly positive bound.
  EXPECT_GT(d.attacks[0].entries[d.attacks[0].best].epsilon, 1.0);
  EXPECT_THAT(d.note, HasSubstr("optimistic"));

  // The report: the table in result.json, summary.md and the plot.
  std::ifstream in(out->report_dir + "/result.json");
  const nlohmann::json j = nlohmann::json::parse(in);
  ASSERT_TRUE(j.contains("dp_audit"));
  EXPECT_EQ(j["dp_audit"]["canaries"], 200);
  for (size_t a = 0; a < d.attacks.size(); ++a) {
    const nlohmann::json& entries = j["dp_audit"]["attacks"][a]["entries"];
    ASSERT_EQ(entries.size(), d.attacks[a].entries.size());
    for (size_t k = 0; k < entries.size(); ++k) {
      const audit::DpAuditEntry& e = d.attacks[a].entries[k];
      metrics::OneRunOptions options;
      options.delta = j["dp_audit"]["delta"].get<double>();
      options.beta = j["dp_audit"]["beta"].get<double>();
      const metrics::OneRunCounts counts{j["dp_audit"]["canaries"].get<int64_t>(),
                                         entries[k]["guesses"].get<int64_t>(),
                                         entries[k]["correct"].get<int64_t>()};
      EXPECT_EQ(entries[k]["epsilon"].get<double>(),
                *metrics::OneRunEpsilonLowerBound(counts, options));
      EXPECT_EQ(entries[k]["k_plus"], e.k_plus);
    }
  }
  std::ifstream summary_in(out->report_dir + "/summary.md");
  std::stringstream summary;
  summary << summary_in.rdbuf();
  EXPECT_THAT(summary.str(), HasSubstr("## DP audit in one run"));
  EXPECT_THAT(summary.str(), HasSubstr("| k+ | k- | guesses | correct | ε lower bound |"));
  EXPECT_TRUE(std::filesystem::exists(out->report_dir + "/dp_audit.svg"));

  // A rerun draws the same canaries and trains nothing.
  auto again = RunAudit(*config, PipelineContext{});
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->models_trained, 0);
  EXPECT_EQ(again->result.row_ids, result.row_ids);
  EXPECT_EQ(again->result.membership, result.membership);
}

TEST(DpAuditGameTest, AModelThatLearnsNothingShowsNoLeakageAndTheDrawIsBalanced) {
  // A learning rate of 1e-9: the target stays at its initialization, so its
  // scores do not depend on which canaries it was given.
  const std::string root = testing_util::FreshTempRoot("dp_audit_null");
  std::vector<int64_t> labels;
  const std::string data = WriteDataset(root, &labels);
  constexpr int kSeeds = 6;
  int positive = 0;
  int64_t included = 0;
  std::set<std::vector<int64_t>> canary_sets;
  for (int seed = 1; seed <= kSeeds; ++seed) {
    auto config = ParseConfig(DpConfig(root, data, seed, "1e-9", 1, "[loss]", 0,
                                       "{canary_dataset: natural, canary_size: 300, "
                                       "grid: [{k_plus: 150, k_minus: 150}]}"),
                              root + "/audit.yaml");
    ASSERT_TRUE(config.ok()) << config.status();
    auto out = RunAudit(*config, PipelineContext{});
    ASSERT_TRUE(out.ok()) << out.status();
    const audit::DpAuditResult& d = *out->result.dp_audit;
    EXPECT_EQ(d.canary_dataset, "natural");
    positive += d.attacks[0].entries[0].epsilon > 0 ? 1 : 0;
    included += d.included;
    canary_sets.insert(out->result.row_ids);
  }
  // At 95% confidence a bound above 0 comes by chance in about 1 seed of 20.
  EXPECT_LE(positive, 1);
  // Each canary is in with probability 1/2: 1,800 coins, sd about 21.
  EXPECT_NEAR(included, kSeeds * 300 / 2, 90);
  // The draw follows the seed.
  EXPECT_EQ(canary_sets.size(), static_cast<size_t>(kSeeds));
}

TEST(DpAuditGameTest, MoreCanariesThanThePoolIsAClearError) {
  const std::string root = testing_util::FreshTempRoot("dp_audit_big");
  std::vector<int64_t> labels;
  const std::string data = WriteDataset(root, &labels);
  std::string text = DpConfig(root, data, 1, "0.01", 1, "[loss]", 0, "{canary_size: 900}");
  text.replace(text.find("  pool_size: 800\n"), 17, "");
  text.replace(text.find("data:\n"), 6, "data:\n  population_size: 300\n");
  auto config = ParseConfig(text, root + "/audit.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  auto out = RunAudit(*config, PipelineContext{});
  ASSERT_FALSE(out.ok());
  EXPECT_THAT(out.status().message(), HasSubstr("audit.dp_audit.canary_size (900)"));
}

}  // namespace
}  // namespace mia::pipeline
