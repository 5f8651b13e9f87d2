// End-to-end language-model audits on a tiny synthetic corpus: a one-layer
// GPT trained from scratch in seconds.
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "core/audit/bundle.h"
#include "core/common/random.h"
#include "core/pipeline/pipeline.h"
#include "core/text/bpe_trainer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/common/temp_root.h"

namespace mia::pipeline {
namespace {

std::string TempRoot(const std::string& name) { return testing_util::FreshTempRoot(name); }

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

  // report.html too (it lists the most exposed points by row id only).
  EXPECT_TRUE(std::filesystem::exists(out->report_dir + "/report.html"));
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

  // A kept tokenizer that does not read back is trained again, to the same
  // tokenizer (deterministic), so the models are still reused.
  int corrupted = 0;
  for (const auto& entry : std::filesystem::directory_iterator(root + "/runs/tokenizers")) {
    std::ofstream(entry.path() / "vocab.json") << "{\"trunc";
    ++corrupted;
  }
  EXPECT_EQ(corrupted, 1);
  auto third = RunAudit(*config, PipelineContext{});
  ASSERT_TRUE(third.ok()) << third.status();
  EXPECT_EQ(third->models_trained, 0);
  EXPECT_EQ(third->result.results[0].scores, out->result.results[0].scores);
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

// Privacy Meter's agnews_lora.yaml keys: AG News in its CSV form, a `gpt2`
// folder holding the tokenizer and a Hugging Face checkpoint (a small random
// one, written by tests/training/gpt2_reference.py for this tokenizer), and
// LoRA adapters on c_attn, c_proj and c_fc.
TEST(LmPipelineTest, PrivacyMeterAgNewsLoraConfigRunsOnLocalFiles) {
  const std::string root = TempRoot("lm_pipeline_agnews");
  std::filesystem::create_directories(root + "/data");
  std::vector<std::string> texts;
  {
    std::ofstream csv(root + "/data/train.csv");
    Rng rng(11);
    for (int i = 0; i < 240; ++i) {
      std::string title = "Story " + std::to_string(i);
      std::string body;
      for (int k = 0; k < 8; ++k) body += " w" + std::to_string(rng.UniformInt(30));
      csv << "\"" << 1 + i % 4 << "\",\"" << title << "\",\"" << body << "\"\n";
      texts.push_back(title + " " + body);
    }
  }
  const std::string gpt2 = root + "/gpt2";
  auto tokenizer = text::TrainByteBpe(texts, 300);
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  std::filesystem::create_directories(gpt2);
  ASSERT_TRUE((*tokenizer)->Save(gpt2).ok());
  const std::string cmd = std::string("/usr/bin/python3 ") + MIA_SOURCE_DIR +
                          "/tests/training/gpt2_reference.py " + gpt2 + " F32 1 " +
                          std::to_string((*tokenizer)->vocab_size()) + " 24";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;

  std::ostringstream y;
  y << "run:\n  random_seed: 12345\n  log_dir: " << root << "/runs\n  time_log: True\n"
    << "  num_experiments: 1\n"
    << "audit:\n  privacy_game: privacy_loss_model\n  algorithm: RMIA\n  num_ref_models: 4\n"
    << "  device: cpu\n  report_log: report_rmia\n  batch_size: 10\n  data_size: 100\n"
    << "  population_size: 40\n  bootstrap: 0\n"
    << "train:\n  model_name: gpt2\n  tokenizer: " << gpt2 << "\n  device: cpu\n"
    << "  batch_size: 8\n  learning_rate: 0.01\n  weight_decay: 0.01\n  epochs: 2\n"
    << "  optimizer: adamw_torch\n"
    << "  peft:\n    type: lora\n    fan_in_fan_out: True\n    r: 4\n"
    << "    target_modules: [\"c_attn\", \"c_proj\", \"c_fc\"]\n"
    << "data:\n  dataset: agnews\n  data_dir: " << root << "/data\n  tokenize: True\n"
    << "  tokenizer: " << gpt2 << "\n";
  auto config = ParseConfig(y.str(), root + "/agnews_lora.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->lm->spec.checkpoint, gpt2);
  auto out = RunAudit(*config, PipelineContext{});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->models_trained, 5);
  ASSERT_EQ(out->result.results.size(), 1u);
  EXPECT_EQ(out->result.results[0].attack, "rmia-offline");  // Privacy Meter's RMIA
  EXPECT_EQ(out->result.results[0].scores.size(), 100u);
  // LoRA models are their adapters, far smaller than the base.
  const auto base = std::filesystem::file_size(gpt2 + "/model.safetensors");
  for (const auto& entry : std::filesystem::directory_iterator(root + "/runs/models")) {
    if (entry.path().extension() == ".pt") {
      EXPECT_LT(std::filesystem::file_size(entry.path()), base) << entry.path();
    }
  }

  // A tokenizer that is not the checkpoint's is refused, naming both sizes.
  const std::string other = root + "/other";
  auto small = text::TrainByteBpe(texts, 280);
  std::filesystem::create_directories(other);
  ASSERT_TRUE(small.ok() && (*small)->Save(other).ok());
  std::string mismatched = y.str();
  for (size_t at; (at = mismatched.find("tokenizer: " + gpt2)) != std::string::npos;) {
    mismatched.replace(at, 11 + gpt2.size(), "tokenizer: " + other);
  }
  mismatched += "  \n";
  auto bad = ParseConfig(mismatched, root + "/mismatch.yaml");
  ASSERT_TRUE(bad.ok()) << bad.status();
  bad->lm->spec.checkpoint = gpt2;
  auto refused = RunAudit(*bad, PipelineContext{});
  ASSERT_FALSE(refused.ok());
  EXPECT_THAT(refused.status().message(), ::testing::HasSubstr("must be the same tokenizer"));
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
