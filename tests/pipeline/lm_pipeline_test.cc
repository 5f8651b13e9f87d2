// End-to-end language-model audits on a tiny synthetic corpus: a one-layer
// GPT trained from scratch in seconds.
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "core/audit/bundle.h"
#include "core/common/random.h"
#include "core/pipeline/pipeline.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace mia::pipeline {
namespace {

std::string TempRoot(const std::string& name) {
  const char* env = std::getenv("MIA_TEST_TMPDIR");
  const std::string root = std::string(env != nullptr ? env : ::testing::TempDir()) + "/" + name;
  std::filesystem::remove_all(root);
  std::filesystem::create_directories(root);
  return root;
}

// 400 texts of 6 to 12 words drawn at random from 40: nothing to learn but
// the texts themselves, so a model that fits its texts leaks membership.
// Every text carries a unique marker word ("qx<i>z") that the report must
// never contain.
std::string WriteCorpus(const std::string& root) {
  const std::string path = root + "/corpus.txt";
  std::ofstream out(path);
  Rng rng(7);
  std::vector<std::string> words;
  for (int w = 0; w < 40; ++w) words.push_back(std::string(1, 'a' + w % 26) + "o" + std::to_string(w));
  for (int i = 0; i < 400; ++i) {
    const int n = 6 + static_cast<int>(rng.UniformInt(7));
    out << "qx" << i << "z";
    for (int k = 0; k < n; ++k) out << " " << words[rng.UniformInt(words.size())];
    out << "\n";
  }
  return path;
}

std::string LmConfig(const std::string& root, const std::string& corpus, double lr) {
  std::ostringstream y;
  y << "run:\n  random_seed: 3\n  log_dir: " << root << "/runs\n"
    << "data:\n  dataset: lines\n  data_dir: " << corpus
    << "\n  pool_size: 300\n  population_size: 100\n  shuffle: true\n"
    << "train:\n  model_name: gpt\n  tokenizer: bpe\n  vocab_size: 400\n  n_layer: 1\n"
    << "  n_head: 2\n  n_embd: 32\n  block_size: 32\n  epochs: 25\n  batch_size: 16\n"
    << "  learning_rate: " << lr << "\n  warmup_ratio: 0.05\n"
    << "audit:\n  num_ref_models: 4\n  bootstrap: 100\n"
    << "  attacks: [loss, zlib, min-k, min-k++, lm-reference, lira-offline, rmia-offline]\n";
  return y.str();
}

double AucOf(const PipelineOutput& out, const std::string& attack) {
  for (const auto& r : out.result.results) {
    if (r.attack == attack && r.target == 0) return r.auc;
  }
  ADD_FAILURE() << "no result for " << attack;
  return 0;
}

TEST(LmPipelineTest, AnOverfitLanguageModelLeaksAndTheReportHoldsNoText) {
  const std::string root = TempRoot("lm_pipeline_e2e");
  const std::string corpus = WriteCorpus(root);
  auto config = ParseConfig(LmConfig(root, corpus, 0.01), root + "/lm.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  std::vector<std::string> details;
  PipelineContext ctx;
  ctx.progress = [&](const Progress& p) { details.push_back(p.detail); };
  auto out = RunAudit(*config, ctx);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->models_trained, 5);
  for (const ModelRecord& m : out->models) {
    // Held-out loss (the population texts) above the training loss: fitted.
    EXPECT_LT(m.report.train_loss, m.report.test_loss) << "model " << m.index;
  }
  EXPECT_GT(AucOf(*out, "loss"), 0.7);
  EXPECT_GT(AucOf(*out, "min-k"), 0.65);
  EXPECT_GT(AucOf(*out, "lm-reference"), 0.7);
  EXPECT_GT(AucOf(*out, "lira-offline"), 0.7);
  EXPECT_GT(AucOf(*out, "rmia-offline"), 0.65);

  // The report's bundle is a language-model bundle `mia score` reads, with
  // the texts' zlib sizes instead of the texts.
  auto bundle = audit::LoadBundle(out->report_dir + "/signals.npz");
  ASSERT_TRUE(bundle.ok()) << bundle.status();
  EXPECT_TRUE(bundle->language_model());
  EXPECT_TRUE(bundle->texts.empty());
  EXPECT_EQ(bundle->text_zlib_sizes.size(), bundle->row_ids.size());
  EXPECT_TRUE(bundle->tokens->has_stats());

  // No text (no marker word) in any report file or progress message.
  for (const auto& entry : std::filesystem::directory_iterator(out->report_dir)) {
    std::ifstream in(entry.path(), std::ios::binary);
    std::stringstream content;
    content << in.rdbuf();
    EXPECT_EQ(content.str().find("qx1"), std::string::npos) << entry.path();
  }
  for (const std::string& d : details) EXPECT_EQ(d.find("qx"), std::string::npos) << d;

  // A rerun reuses the tokenizer, the models and their signals.
  auto again = RunAudit(*config, PipelineContext{});
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->models_trained, 0);
  EXPECT_EQ(again->result.results[0].scores, out->result.results[0].scores);
}

TEST(LmPipelineTest, LanguageModelsThatNeverLearnedTheirTextsShowNoLeakage) {
  // A learning rate of 1e-9: every model stays at its initialization, so its
  // log-probs do not depend on which texts it was given.
  const std::string root = TempRoot("lm_pipeline_untrained");
  const std::string corpus = WriteCorpus(root);
  auto config = ParseConfig(LmConfig(root, corpus, 1e-9), root + "/lm.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  auto out = RunAudit(*config, PipelineContext{});
  ASSERT_TRUE(out.ok()) << out.status();
  for (const auto& r : out->result.results) {
    EXPECT_NEAR(r.auc, 0.5, 0.1) << r.attack;
  }
}

TEST(LmPipelineTest, ACorruptCorpusIsAClearErrorNamingTheLine) {
  const std::string root = TempRoot("lm_pipeline_corrupt");
  const std::string corpus = root + "/corpus.txt";
  std::ofstream(corpus) << "fine text\nsecret \xff byte\n";
  auto config = ParseConfig(LmConfig(root, corpus, 0.01), root + "/lm.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  auto out = RunAudit(*config, PipelineContext{});
  ASSERT_FALSE(out.ok());
  EXPECT_THAT(out.status().message(), ::testing::HasSubstr("line 2"));
  EXPECT_THAT(out.status().message(), ::testing::Not(::testing::HasSubstr("secret")));
}

}  // namespace
}  // namespace mia::pipeline
