// TrainLanguageModels and ComputeTokenSignalsMany: training that learns,
// seeded and lane-independent results, LoRA artifacts tied to their base, and
// per-token signals against a plain per-text computation.
#include "core/training/lm_engine.h"

#include <atomic>
#include <cmath>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/models/gpt.h"
#include "core/training/archive.h"
#include "core/training/lm_recipe.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/training/lm_test_util.h"
#include "tests/training/test_data.h"

namespace mia::training {
namespace {

using ::testing::HasSubstr;
using testing::MarkovCorpus;
using testing::TestDir;
using testing::WriteHfCheckpoint;

constexpr int32_t kVocab = 17;

LmSpec TinySpec() {
  LmSpec spec;
  spec.architecture = "gpt";
  spec.n_layer = 1;
  spec.n_head = 2;
  spec.n_embd = 32;
  spec.block_size = 12;
  return spec;
}

LmRecipe FastRecipe(int epochs) {
  LmRecipe r;
  r.learning_rate = 5e-3;
  r.epochs = epochs;
  r.batch_size = 4;
  return r;
}

std::vector<int64_t> Range(int64_t begin, int64_t end) {
  std::vector<int64_t> v;
  for (int64_t i = begin; i < end; ++i) v.push_back(i);
  return v;
}

// lp, mean and var of one text by the definition, in double, one text at a time.
struct Naive {
  std::vector<double> lp, mean, var;
};
Naive NaiveSignals(models::Gpt& model, const TokenizedCorpus& corpus, int64_t text,
                   int64_t context) {
  torch::NoGradGuard no_grad;
  model.eval();
  const std::vector<int32_t>& x = corpus.tokens[text];
  const int64_t T = std::min<int64_t>(x.size(), context);
  torch::Tensor input = torch::empty({1, T}, torch::kInt64);
  input[0][0] = corpus.bos_id;
  for (int64_t t = 1; t < T; ++t) input[0][t] = x[t - 1];
  const torch::Tensor logp =
      torch::log_softmax(model.forward(input)[0].to(torch::kFloat64), -1);  // [T, V]
  Naive n;
  for (int64_t t = 0; t < T; ++t) {
    n.lp.push_back(logp[t][x[t]].item<double>());
    double mean = 0, second = 0;
    for (int64_t v = 0; v < logp.size(1); ++v) {
      const double l = logp[t][v].item<double>();
      mean += std::exp(l) * l;
      second += std::exp(l) * l * l;
    }
    n.mean.push_back(mean);
    n.var.push_back(second - mean * mean);
  }
  return n;
}

std::shared_ptr<models::Gpt> LoadFull(const std::string& path, const models::GptConfig& config) {
  absl::StatusOr<std::vector<models::NamedTensor>> state = ReadModelState(path);
  EXPECT_TRUE(state.ok()) << state.status();
  models::Initializer none = models::Initializer::None();
  auto model = std::make_shared<models::Gpt>(config, none);
  EXPECT_TRUE(models::LoadGptState(*state, *model).ok());
  return model;
}

attacks::TokenSignals Signals(const std::string& path, const LmSpec& spec,
                              const TokenizedCorpus& corpus, const std::vector<int64_t>& indices,
                              bool stats, int batch) {
  attacks::TokenSignals out;
  int calls = 0;
  absl::Status s =
      ComputeTokenSignalsMany({path}, spec, corpus, indices, stats, batch, TrainContext{},
                              [&](int m, attacks::TokenSignals signals) {
                                EXPECT_EQ(m, 0);
                                ++calls;
                                out = std::move(signals);
                                return absl::OkStatus();
                              });
  EXPECT_TRUE(s.ok()) << s;
  EXPECT_EQ(calls, 1);
  return out;
}

double MeanLp(const attacks::TokenSignals& s, int64_t from, int64_t to) {
  double sum = 0;
  int64_t n = 0;
  for (int64_t i = from; i < to; ++i) {
    for (int64_t t = 0; t < s.lengths[i]; ++t) sum += s.logprobs[s.offset(0, i) + t], ++n;
  }
  return sum / n;
}

void ExpectMatchesNaive(const attacks::TokenSignals& s, models::Gpt& model,
                        const TokenizedCorpus& corpus, const std::vector<int64_t>& indices,
                        int64_t context) {
  ASSERT_EQ(s.models, 1);
  ASSERT_EQ(s.points, static_cast<int64_t>(indices.size()));
  for (size_t i = 0; i < indices.size(); ++i) {
    const Naive n = NaiveSignals(model, corpus, indices[i], context);
    ASSERT_EQ(s.lengths[i], static_cast<int64_t>(n.lp.size()));
    for (size_t t = 0; t < n.lp.size(); ++t) {
      const int64_t at = s.offset(0, i) + t;
      EXPECT_NEAR(s.logprobs[at], n.lp[t], 1e-4) << "text " << i << " position " << t;
      if (s.has_stats()) {
        EXPECT_NEAR(s.mean[at], n.mean[t], 1e-4);
        EXPECT_NEAR(s.var[at], n.var[t], 2e-4 * std::max(1.0, n.var[t]));
        EXPECT_GE(s.var[at], 0.0f);
      }
    }
  }
}

TEST(LmRecipeTest, WarmUpThenCosineToZero) {
  LmRecipe r;
  r.learning_rate = 1.0;
  r.warmup_fraction = 0.1;  // 10 steps of 100
  EXPECT_DOUBLE_EQ(LmLearningRate(r, 0, 100), 0.1);
  EXPECT_DOUBLE_EQ(LmLearningRate(r, 4, 100), 0.5);
  EXPECT_DOUBLE_EQ(LmLearningRate(r, 9, 100), 1.0);
  EXPECT_DOUBLE_EQ(LmLearningRate(r, 10, 100), 1.0);   // the cosine's start
  EXPECT_NEAR(LmLearningRate(r, 54, 100), 0.5, 0.02);  // half way down the cosine
  EXPECT_NEAR(LmLearningRate(r, 99, 100), 0.0, 1e-12);
  double previous = 2;
  for (int s = 10; s < 100; ++s) {
    EXPECT_LE(LmLearningRate(r, s, 100), previous);
    previous = LmLearningRate(r, s, 100);
  }
  r.warmup_fraction = 0;
  EXPECT_DOUBLE_EQ(LmLearningRate(r, 0, 5), 1.0);
  EXPECT_DOUBLE_EQ(LmLearningRate(r, 0, 1), 1.0);  // one step: no decay to 0
  r.batch_size = 0;
  EXPECT_THAT(ValidateLmRecipe(r).message(), HasSubstr("batch_size"));
}

TEST(LmRecipeTest, BucketedBatchesHoldEveryTextOnceWithLittlePadding) {
  Rng lengths_rng(1);
  std::vector<TextLength> texts;
  for (int64_t i = 0; i < 1000; ++i) {
    texts.push_back({i * 3, 1 + static_cast<int64_t>(lengths_rng.UniformInt(200))});
  }
  std::map<int64_t, int64_t> length_of;
  for (const TextLength& t : texts) length_of[t.text] = t.length;
  auto padding = [&](const std::vector<std::vector<int64_t>>& batches) {
    int64_t pad = 0, real = 0;
    for (const auto& b : batches) {
      int64_t longest = 0;
      for (int64_t t : b) longest = std::max(longest, length_of[t]);
      for (int64_t t : b) pad += longest - length_of[t], real += length_of[t];
    }
    return static_cast<double>(pad) / real;
  };
  Rng rng(7);
  const auto batches = LengthBucketedBatches(texts, 8, rng);
  std::vector<int64_t> seen;
  for (const auto& b : batches) {
    EXPECT_LE(b.size(), 8u);
    seen.insert(seen.end(), b.begin(), b.end());
  }
  std::sort(seen.begin(), seen.end());
  std::vector<int64_t> expect;
  for (const TextLength& t : texts) expect.push_back(t.text);
  EXPECT_EQ(seen, expect);
  EXPECT_EQ(batches.size(), 125u);  // 1000 = 3 full windows of 256 + 232: all batches full
  // Random batches pad about 80% here; bucketed ones a few percent.
  std::vector<std::vector<int64_t>> random(125);
  for (size_t i = 0; i < texts.size(); ++i) random[i / 8].push_back(texts[i].text);
  EXPECT_GT(padding(random), 0.5);
  EXPECT_LT(padding(batches), 0.1);
  // Seeded: the same seed repeats, another seed differs.
  Rng again(7), other(8);
  EXPECT_EQ(LengthBucketedBatches(texts, 8, again), batches);
  EXPECT_NE(LengthBucketedBatches(texts, 8, other), batches);
}

TEST(LmEngineTest, LearnsOverfitsAndSignalsMatchTheDefinition) {
  const TokenizedCorpus corpus = MarkovCorpus(32, 3, 16, kVocab, 1);  // some texts > block 12
  const LmSpec spec = TinySpec();
  const std::string path = TestDir() + "/m0.pt";
  int progress = 0;
  TrainContext ctx;
  ctx.progress = [&](int, int, int, int) { ++progress; };
  absl::StatusOr<std::vector<ModelReport>> reports = TrainLanguageModels(
      corpus, spec, FastRecipe(60), {Range(0, 16)}, Range(16, 32), {11}, {path}, ctx);
  ASSERT_TRUE(reports.ok()) << reports.status();
  const ModelReport& r = (*reports)[0];
  EXPECT_EQ(progress, 60 * 4);
  EXPECT_LT(r.train_loss, r.test_loss);
  EXPECT_LT(r.train_loss, std::log(kVocab) - 0.5);
  EXPECT_GT(r.train_accuracy, r.test_accuracy);
  EXPECT_GT(r.seconds, 0);

  // Members' tokens are likelier than non-members' (an overfit model).
  const std::vector<int64_t> all = Range(0, 32);
  const attacks::TokenSignals s = Signals(path, spec, corpus, all, true, 5);
  EXPECT_GT(MeanLp(s, 0, 16), MeanLp(s, 16, 32) + 0.3);
  EXPECT_EQ(s.max_length, 12);

  // Batched, length-sorted signals equal the plain per-text computation.
  models::GptConfig config;
  config.n_layer = 1;
  config.n_head = 2;
  config.n_embd = 32;
  config.block_size = 12;
  config.vocab_size = kVocab;
  auto model = LoadFull(path, config);
  ExpectMatchesNaive(s, *model, corpus, all, 12);
  // Indices in any order, repeated, without stats.
  const std::vector<int64_t> some = {5, 30, 5, 2};
  const attacks::TokenSignals t = Signals(path, spec, corpus, some, false, 3);
  EXPECT_FALSE(t.has_stats());
  ExpectMatchesNaive(t, *model, corpus, some, 12);
}

TEST(LmEngineTest, SeededAndTheSameInLanes) {
  const TokenizedCorpus corpus = MarkovCorpus(20, 3, 10, kVocab, 2);
  LmSpec spec = TinySpec();
  spec.dropout = 0.1;
  const std::string dir = TestDir();
  auto train = [&](int threads, const std::string& tag) {
    SetComputeThreads(threads);
    std::vector<int> saved;
    TrainContext ctx;
    ctx.model_saved = [&](int k, const ModelReport&) {
      saved.push_back(k);
      return absl::OkStatus();
    };
    absl::StatusOr<std::vector<ModelReport>> r = TrainLanguageModels(
        corpus, spec, FastRecipe(3), {Range(0, 10), Range(5, 15), Range(0, 10)}, Range(15, 20),
        {1, 2, 1}, {dir + "/a" + tag, dir + "/b" + tag, dir + "/c" + tag}, ctx);
    EXPECT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(saved.size(), 3u);
    return *r;
  };
  const auto one = train(1, "1");
  const auto two = train(2, "2");
  SetComputeThreads(1);
  for (int k = 0; k < 3; ++k) {
    EXPECT_EQ(one[k].train_loss, two[k].train_loss) << k;
    EXPECT_EQ(one[k].test_loss, two[k].test_loss) << k;
  }
  EXPECT_EQ(one[0].train_loss, one[2].train_loss);  // same seed, same data
  EXPECT_NE(one[0].train_loss, one[1].train_loss);
  const auto a = *ReadModelState(dir + "/a1");
  const auto b = *ReadModelState(dir + "/a2");
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(torch::equal(a[i].value, b[i].value));
}

TEST(LmEngineTest, LoraArtifactsHoldAdaptersAndNameTheirBase) {
  const TokenizedCorpus corpus = MarkovCorpus(16, 3, 10, kVocab, 3);
  const std::string dir = TestDir();
  const std::string ckpt = dir + "/base";
  std::filesystem::create_directories(ckpt);
  models::GptConfig config;
  config.n_layer = 2;
  config.n_head = 2;
  config.n_embd = 16;
  config.block_size = 10;
  config.vocab_size = kVocab + 3;  // a tokenizer may use fewer ids than the model has
  models::Initializer init(5);
  models::Gpt base(config, init);
  WriteHfCheckpoint(base, ckpt, true);

  LmSpec spec;
  spec.checkpoint = ckpt;
  spec.block_size = 8;  // caps the context below the checkpoint's 10 positions
  spec.lora.rank = 2;
  spec.lora.alpha = 4;
  spec.lora.target_modules = {"c_attn", "c_proj"};
  const std::string path = dir + "/lora.pt";
  absl::StatusOr<std::vector<ModelReport>> r = TrainLanguageModels(
      corpus, spec, FastRecipe(5), {Range(0, 8)}, Range(8, 16), {3}, {path}, TrainContext{});
  ASSERT_TRUE(r.ok()) << r.status();

  const auto stored = *ReadModelState(path);
  std::vector<models::NamedTensor> adapters;
  for (const auto& t : stored) {
    if (t.name.rfind("mia.", 0) != 0) adapters.push_back(t);
  }
  EXPECT_EQ(stored.size(), adapters.size() + 3);  // + base hash, alpha, base path
  ASSERT_EQ(adapters.size(), 2u * 3 * 2);
  for (const auto& t : adapters) {
    EXPECT_THAT(t.name,
                ::testing::AnyOf(::testing::EndsWith(".lora_A"), ::testing::EndsWith(".lora_B")));
    if (t.name.find("lora_B") != std::string::npos) {
      EXPECT_GT(t.value.abs().max().item<float>(), 0);
    }
  }

  // Signals equal those of base + merged adapters, built by hand.
  models::Initializer none = models::Initializer::None();
  models::Gpt adapted(config, none);
  ASSERT_TRUE(models::LoadGptState(base.State(), adapted).ok());
  models::LoraConfig lora;
  lora.rank = 2;
  lora.alpha = 4;
  lora.target_modules = spec.lora.target_modules;
  ASSERT_TRUE(adapted.AddLora(lora, none).ok());
  std::vector<models::NamedTensor> all = base.State();
  all.insert(all.end(), adapters.begin(), adapters.end());
  ASSERT_TRUE(models::LoadGptState(all, adapted).ok());
  const std::vector<int64_t> indices = Range(0, 16);
  const attacks::TokenSignals s = Signals(path, spec, corpus, indices, true, 4);
  EXPECT_EQ(s.max_length, 8);
  ExpectMatchesNaive(s, adapted, corpus, indices, 8);

  // Another alpha, or a changed base checkpoint, is refused.
  LmSpec other = spec;
  other.lora.alpha = 8;
  auto ignore = [](int, attacks::TokenSignals) { return absl::OkStatus(); };
  EXPECT_EQ(
      ComputeTokenSignalsMany({path}, other, corpus, indices, false, 4, TrainContext{}, ignore)
          .code(),
      absl::StatusCode::kInvalidArgument);
  models::Initializer init2(6);
  models::Gpt changed(config, init2);
  WriteHfCheckpoint(changed, ckpt, true);
  absl::Status s2 =
      ComputeTokenSignalsMany({path}, spec, corpus, indices, false, 4, TrainContext{}, ignore);
  EXPECT_EQ(s2.code(), absl::StatusCode::kFailedPrecondition) << s2;
  EXPECT_THAT(s2.message(), HasSubstr("SHA-256"));
}

TEST(LmEngineTest, FineTunesACheckpointFully) {
  const TokenizedCorpus corpus = MarkovCorpus(12, 3, 9, kVocab, 4);
  const std::string dir = TestDir();
  models::GptConfig config;
  config.n_layer = 1;
  config.n_head = 2;
  config.n_embd = 16;
  config.block_size = 10;
  config.vocab_size = kVocab;
  models::Initializer init(5);
  models::Gpt base(config, init);
  WriteHfCheckpoint(base, dir, false);
  LmSpec spec;
  spec.checkpoint = dir;
  spec.block_size = 64;  // more than the checkpoint has: its 10 positions win
  const std::string path = dir + "/full.pt";
  absl::StatusOr<std::vector<ModelReport>> r = TrainLanguageModels(
      corpus, spec, FastRecipe(2), {Range(0, 6)}, Range(6, 12), {3}, {path}, TrainContext{});
  ASSERT_TRUE(r.ok()) << r.status();
  auto model = LoadFull(path, config);
  const attacks::TokenSignals s = Signals(path, spec, corpus, Range(0, 12), true, 5);
  ExpectMatchesNaive(s, *model, corpus, Range(0, 12), 10);
  // The model moved away from its base.
  EXPECT_FALSE(torch::equal(model->State()[4].value, base.State()[4].value));
}

TEST(LmEngineTest, RefusesBadCallsAndStopsOnCancel) {
  const TokenizedCorpus corpus = MarkovCorpus(8, 2, 6, kVocab, 5);
  const std::string path = TestDir() + "/m.pt";
  auto train = [&](const TokenizedCorpus& c, const LmSpec& spec, const LmRecipe& recipe,
                   const TrainContext& ctx) {
    return TrainLanguageModels(c, spec, recipe, {Range(0, 4)}, Range(4, 8), {1}, {path}, ctx)
        .status();
  };
  LmSpec lora = TinySpec();
  lora.lora.rank = 2;
  EXPECT_THAT(train(corpus, lora, FastRecipe(1), {}).message(), HasSubstr("checkpoint"));
  TokenizedCorpus bad = corpus;
  bad.tokens[3][0] = kVocab;
  EXPECT_EQ(train(bad, TinySpec(), FastRecipe(1), {}).code(), absl::StatusCode::kInvalidArgument);
  bad = corpus;
  bad.tokens[2].clear();
  EXPECT_EQ(train(bad, TinySpec(), FastRecipe(1), {}).code(), absl::StatusCode::kInvalidArgument);
  LmSpec small = TinySpec();
  small.vocab_size = kVocab - 1;
  EXPECT_EQ(train(corpus, small, FastRecipe(1), {}).code(), absl::StatusCode::kInvalidArgument);
  LmSpec odd = TinySpec();
  odd.n_head = 3;
  EXPECT_THAT(train(corpus, odd, FastRecipe(1), {}).message(), HasSubstr("n_head"));
  LmSpec unknown = TinySpec();
  unknown.architecture = "llama";
  EXPECT_EQ(train(corpus, unknown, FastRecipe(1), {}).code(), absl::StatusCode::kInvalidArgument);
  LmRecipe recipe = FastRecipe(1);
  recipe.warmup_fraction = 2;
  EXPECT_THAT(train(corpus, TinySpec(), recipe, {}).message(), HasSubstr("warmup_fraction"));
  EXPECT_EQ(TrainLanguageModels(corpus, TinySpec(), FastRecipe(1), {{0, 9}}, {}, {1}, {path}, {})
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  std::atomic<bool> cancel{true};
  TrainContext ctx;
  ctx.cancel = &cancel;
  EXPECT_EQ(train(corpus, TinySpec(), FastRecipe(1), ctx).code(), absl::StatusCode::kCancelled);
  EXPECT_FALSE(std::filesystem::exists(path));
  auto ignore = [](int, attacks::TokenSignals) { return absl::OkStatus(); };
  EXPECT_EQ(ComputeTokenSignalsMany({TestDir() + "/none.pt"}, TinySpec(), corpus, {0}, false, 2,
                                    TrainContext{}, ignore)
                .code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(
      ComputeTokenSignalsMany({path}, TinySpec(), corpus, {0}, false, 0, TrainContext{}, ignore)
          .code(),
      absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace mia::training
