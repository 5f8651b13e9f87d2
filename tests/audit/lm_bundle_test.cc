// Language-model bundles (docs/bundle-format.md, "Language models"): loading,
// validation, the memory estimate, the synthetic LM game and scoring them.
#include <cmath>
#include <filesystem>
#include <functional>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "core/attacks/sequence_attacks.h"
#include "core/audit/bundle.h"
#include "core/audit/scoring.h"
#include "core/audit/synthetic.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/audit/test_util.h"

namespace mia::audit {
namespace {

using ::testing::HasSubstr;

std::string TempDir() {
  const char* env = std::getenv("MIA_TEST_TMPDIR");
  std::string base = env != nullptr ? env : ::testing::TempDir();
  std::filesystem::create_directories(base);
  return base;
}

io::NpyMap LmArrays(double leak = 1.0, int64_t points = 40, uint64_t seed = 1) {
  SyntheticLmOptions o;
  o.models = 4;
  o.points = points;
  o.population = points / 2;
  o.max_length = 8;
  o.leak = leak;
  o.seed = seed;
  return *MakeSyntheticLmBundle(o);
}

// A tiny hand-made bundle: 2 models x 2 texts x 3 positions.
io::NpyMap Tiny() {
  io::NpyMap a;
  a["keep"] = io::NpyArray::FromBool({2, 2}, {1, 0, 0, 1});
  // Text 0 has 3 tokens, text 1 has 1 (its padding holds anything, NaN too).
  const float nan = std::numeric_limits<float>::quiet_NaN();
  a["token_logprobs"] = io::NpyArray::FromFloat({2, 2, 3}, {-1, -2, -3, -0.5f, nan, 7,  //
                                                            -0.1f, -0.2f, -0.3f, -4, 0, 0});
  a["lengths"] = io::NpyArray::FromInt64({2}, {3, 1});
  a["texts"] = io::NpyArray::FromStrings({"hello world", "caf\xc3\xa9"});
  return a;
}

TEST(LmBundleTest, ReadsATinyBundleByHand) {
  auto b = BundleFromArrays(Tiny(), "mem");
  ASSERT_TRUE(b.ok()) << b.status();
  ASSERT_TRUE(b->language_model());
  EXPECT_EQ(b->models(), 2);
  EXPECT_EQ(b->points(), 2);
  EXPECT_EQ(b->queries(), 1);
  EXPECT_EQ(b->tokens->max_length, 3);
  EXPECT_FALSE(b->tokens->has_stats());
  EXPECT_FALSE(b->population.has_value());
  // The audit signal is the sequence loss: (1 + 2 + 3) / 3, 0.5; 0.2, 4.
  EXPECT_EQ(b->audit.kind, attacks::SignalKind::kLoss);
  EXPECT_EQ(b->audit.array_name, "token_logprobs");
  EXPECT_DOUBLE_EQ(b->audit.signal.at(0, 0), 2.0);
  EXPECT_DOUBLE_EQ(b->audit.signal.at(0, 1), 0.5);
  EXPECT_NEAR(b->audit.signal.at(1, 0), 0.2, 1e-7);
  EXPECT_DOUBLE_EQ(b->audit.signal.at(1, 1), 4.0);
  EXPECT_EQ(b->texts, (std::vector<std::string>{"hello world", "caf\xc3\xa9"}));
  EXPECT_EQ(b->targets, std::vector<int>{0});
  EXPECT_EQ(b->row_ids, (std::vector<int64_t>{0, 1}));
}

TEST(LmBundleTest, AcceptsTheSyntheticBundleAndFloat64) {
  io::NpyMap arrays = LmArrays();
  auto b = BundleFromArrays(arrays, "mem");
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(b->models(), 4);
  EXPECT_EQ(b->points(), 40);
  EXPECT_TRUE(b->tokens->has_stats());
  EXPECT_EQ(b->texts.size(), 40u);
  ASSERT_TRUE(b->population.has_value());
  EXPECT_EQ(b->population->points(), 20);
  EXPECT_EQ(b->population_texts.size(), 20u);
  EXPECT_EQ(b->population_tokens->points, 20);
  // float64 log-probs are read as well.
  const std::vector<int64_t> shape = arrays.at("token_logprobs").shape;
  std::vector<double> as_double = *arrays.at("token_logprobs").ToDouble("x");
  arrays["token_logprobs"] = io::NpyArray::FromDouble(shape, as_double);
  auto b64 = BundleFromArrays(arrays, "mem");
  ASSERT_TRUE(b64.ok()) << b64.status();
  EXPECT_EQ(b64->audit.signal.values, b->audit.signal.values);
}

TEST(LmBundleTest, LoadsFromAnNpzAndAFolder) {
  const io::NpyMap arrays = LmArrays();
  const std::string npz = TempDir() + "/lm_bundle.npz";
  ASSERT_TRUE(io::WriteNpz(npz, arrays, /*compress=*/true).ok());
  auto b = LoadBundle(npz);
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_TRUE(b->language_model());
  const std::string dir = TempDir() + "/lm_bundle_dir";
  std::filesystem::create_directories(dir);
  for (const auto& [name, array] : arrays) {
    ASSERT_TRUE(io::WriteNpy(dir + "/" + name + ".npy", array).ok());
  }
  auto d = LoadBundle(dir);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->audit.signal.values, b->audit.signal.values);
  EXPECT_EQ(d->texts, b->texts);
}

TEST(LmBundleTest, RoundingAboveZeroIsClampedNotRefused) {
  io::NpyMap a = Tiny();
  a["token_logprobs"] = io::NpyArray::FromFloat({2, 2, 3}, {1e-6f, -2, -3, -0.5f, 0, 0,  //
                                                            -0.1f, -0.2f, -0.3f, -4, 0, 0});
  a["token_mean"] = io::NpyArray::FromFloat({2, 2, 3}, std::vector<float>(12, -1.0f));
  std::vector<float> var(12, 1.0f);
  var[1] = -1e-6f;
  a["token_var"] = io::NpyArray::FromFloat({2, 2, 3}, var);
  auto b = BundleFromArrays(a, "mem");
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(b->tokens->logprobs[0], 0.0f);
  EXPECT_EQ(b->tokens->var[1], 0.0f);
  EXPECT_DOUBLE_EQ(b->audit.signal.at(0, 0), 5.0 / 3);
}

using testing_util::BadCase;
using testing_util::ExpectEachRefused;

TEST(LmBundleTest, RefusesBadArraysNamingThem) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const std::vector<BadCase> cases = {
      {"no lengths", [](io::NpyMap& a) { a.erase("lengths"); },
       "array 'lengths' is missing: 'token_logprobs' needs"},
      {"length 0",
       [](io::NpyMap& a) {
         a["lengths"] = io::NpyArray::FromInt64({2}, {3, 0});
       },
       "array 'lengths': entry 1 is outside [1, 3]"},
      {"length past L",
       [](io::NpyMap& a) {
         a["lengths"] = io::NpyArray::FromInt64({2}, {4, 1});
       },
       "array 'lengths': entry 0 is outside [1, 3]"},
      {"float lengths",
       [](io::NpyMap& a) {
         a["lengths"] = io::NpyArray::FromDouble({2}, {3, 1});
       },
       "array 'lengths': dtype float64, expected integers"},
      {"lengths shape",
       [](io::NpyMap& a) {
         a["lengths"] = io::NpyArray::FromInt64({3}, {3, 1, 1});
       },
       "array 'lengths': shape (3), expected (2,)"},
      {"rank 2",
       [](io::NpyMap& a) {
         a["token_logprobs"] = io::NpyArray::FromFloat({2, 2}, {-1, -1, -1, -1});
       },
       "array 'token_logprobs': shape (2, 2)"},
      {"integer log-probs",
       [](io::NpyMap& a) {
         a["token_logprobs"] = io::NpyArray::FromInt64({2, 2, 3}, std::vector<int64_t>(12, -1));
       },
       "array 'token_logprobs': dtype int64, expected float32 or float64"},
      {"NaN in a text",
       [nan](io::NpyMap& a) {
         a["token_logprobs"] = io::NpyArray::FromFloat(
             {2, 2, 3}, {-1, -2, -3, -0.5f, 0, 0, -0.1f, nan, -0.3f, -4, 0, 0});
       },
       "array 'token_logprobs': non-finite value (NaN or inf) at [1, 0, 1]"},
      {"positive log-prob",
       [](io::NpyMap& a) {
         a["token_logprobs"] = io::NpyArray::FromFloat(
             {2, 2, 3}, {-1, -2, 0.5f, -0.5f, 0, 0, -0.1f, -0.2f, -0.3f, -4, 0, 0});
       },
       "array 'token_logprobs': value above 0 at [0, 0, 2]"},
      {"mean without var",
       [](io::NpyMap& a) {
         a["token_mean"] = io::NpyArray::FromFloat({2, 2, 3}, std::vector<float>(12, -1));
       },
       "array 'token_mean' given without 'token_var'"},
      {"negative var",
       [](io::NpyMap& a) {
         a["token_mean"] = io::NpyArray::FromFloat({2, 2, 3}, std::vector<float>(12, -1));
         std::vector<float> var(12, 1.0f);
         var[9] = -0.5f;
         a["token_var"] = io::NpyArray::FromFloat({2, 2, 3}, var);
       },
       "array 'token_var': non-finite or negative value at [1, 1, 0]"},
      {"var shape",
       [](io::NpyMap& a) {
         a["token_mean"] = io::NpyArray::FromFloat({2, 2, 3}, std::vector<float>(12, -1));
         a["token_var"] = io::NpyArray::FromFloat({2, 2, 2}, std::vector<float>(8, 1));
       },
       "array 'token_var': shape (2, 2, 2), expected (2, 2, 3)"},
      {"texts not strings",
       [](io::NpyMap& a) {
         a["texts"] = io::NpyArray::FromDouble({2}, {1, 2});
       },
       "array 'texts': dtype float64, expected a unicode string array"},
      {"texts shape",
       [](io::NpyMap& a) {
         a["texts"] = io::NpyArray::FromStrings({"a", "b", "c"});
       },
       "array 'texts': shape (3), expected (2,)"},
      {"keep shape",
       [](io::NpyMap& a) {
         a["keep"] = io::NpyArray::FromBool({2, 3}, std::vector<uint8_t>(6, 0));
       },
       "array 'keep': shape (2, 3), expected (2, 2)"},
      {"mixed with logits",
       [](io::NpyMap& a) {
         a["signals"] = io::NpyArray::FromDouble({2, 2}, {0.5, 0.5, 0.5, 0.5});
       },
       "array 'signals' is of a classifier bundle, but the bundle has 'token_logprobs'"},
      {"population of other models",
       [](io::NpyMap& a) {
         a["population_token_logprobs"] =
             io::NpyArray::FromFloat({3, 1, 2}, std::vector<float>(6, -1));
         a["population_lengths"] = io::NpyArray::FromInt64({1}, {2});
       },
       "array 'population_token_logprobs': shape (3, 1, 2), expected (2, texts, max length)"},
      {"population lengths alone",
       [](io::NpyMap& a) { a["population_lengths"] = io::NpyArray::FromInt64({1}, {2}); },
       "array 'population_lengths' given without 'population_token_logprobs'"},
      {"population without audit",
       [](io::NpyMap& a) {
         a.erase("token_logprobs");
         a.erase("lengths");
         a.erase("texts");
         a["population_token_logprobs"] =
             io::NpyArray::FromFloat({2, 1, 2}, std::vector<float>(4, -1));
         a["population_lengths"] = io::NpyArray::FromInt64({1}, {2});
       },
       "'population_token_logprobs' given without 'token_logprobs'"},
      {"unknown array",
       [](io::NpyMap& a) { a["token_entropy"] = io::NpyArray::FromInt64({1}, {1}); },
       "unknown array 'token_entropy'"},
  };
  ExpectEachRefused(Tiny, cases);
}

TEST(LmBundleTest, LanguageModelArraysInAClassifierBundleAreRefused) {
  SyntheticOptions o;
  o.models = 2;
  o.points = 10;
  o.population = 0;
  io::NpyMap a = *MakeSyntheticBundle(o);
  a["lengths"] = io::NpyArray::FromInt64({10}, std::vector<int64_t>(10, 1));
  auto b = BundleFromArrays(a, "mem");
  ASSERT_FALSE(b.ok());
  EXPECT_THAT(b.status().message(),
              HasSubstr("array 'lengths' is of a language-model bundle, which needs "
                        "'token_logprobs'"));
}

// The format's writer and its reader agree: per-model signals stacked,
// written as arrays, read back unchanged, and scored.
TEST(LmBundleTest, WriterAndLoaderAgree) {
  const Bundle source = *BundleFromArrays(LmArrays(1.0, 60, 4), "source");
  // As a pipeline gets them: one model at a time.
  std::vector<attacks::TokenSignals> per_model;
  for (int m = 0; m < source.tokens->models; ++m) {
    attacks::TokenSignals one = *source.tokens;
    one.models = 1;
    const int64_t cells = one.points * one.max_length;
    auto slice = [&](const std::vector<float>& v) {
      return std::vector<float>(v.begin() + m * cells, v.begin() + (m + 1) * cells);
    };
    one.logprobs = slice(source.tokens->logprobs);
    one.mean = slice(source.tokens->mean);
    one.var = slice(source.tokens->var);
    per_model.push_back(std::move(one));
  }
  LanguageModelSignals signals;
  signals.audit = *attacks::StackTokenSignals(per_model);
  signals.population = *source.population_tokens;
  signals.texts = source.texts;
  signals.population_texts = source.population_texts;
  const io::NpyMap arrays = LanguageModelBundleArrays(signals, source.keep, source.row_ids, {0, 2});
  auto b = BundleFromArrays(arrays, "written");
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(b->tokens->logprobs, source.tokens->logprobs);
  EXPECT_EQ(b->tokens->var, source.tokens->var);
  EXPECT_EQ(b->population_tokens->logprobs, source.population_tokens->logprobs);
  EXPECT_EQ(b->texts, source.texts);
  EXPECT_EQ(b->population_texts, source.population_texts);
  EXPECT_EQ(b->keep, source.keep);
  EXPECT_EQ(b->row_ids, source.row_ids);
  EXPECT_EQ(b->targets, (std::vector<int>{0, 2}));
  ScoringOptions o;
  o.attacks = {"zlib", "min-k++", "rmia"};
  o.bootstrap.resamples = 0;
  EXPECT_TRUE(ScoreBundle(*b, o).ok());
}

using testing_util::Info;

// Worked out by hand: decoded arrays + converted copies + 3 signal kinds of
// doubles per model and text (audit and population) + one zlib size per text.
TEST(LmBundleTest, MemoryEstimate) {
  io::NpyInfoMap arrays;
  arrays["keep"] = Info(io::DType::kBool, 1, {4, 100});
  arrays["token_logprobs"] = Info(io::DType::kFloat64, 8, {4, 100, 16});
  arrays["lengths"] = Info(io::DType::kInt32, 4, {100});
  arrays["texts"] = Info(io::DType::kUnicode, 4 * 50, {100});
  arrays["population_token_logprobs"] = Info(io::DType::kFloat32, 4, {4, 50, 16});
  arrays["population_lengths"] = Info(io::DType::kInt64, 8, {50});
  const uint64_t decoded = 400 + 6400 * 8 + 400 + 20000 + 3200 * 4 + 400;
  const uint64_t converted =
      400 + 6400 * 4 + 800 + (20000 + 100 * sizeof(std::string)) + 3200 * 4 + 400;
  const uint64_t signals = 4 * 150 * 24 + 100 * 8;
  const BundleMemoryEstimate e = EstimateBundleMemory(arrays);
  EXPECT_EQ(e.bytes, decoded + converted + signals);
  EXPECT_EQ(e.what,
            "scoring a language-model bundle of 4 models x 100 texts x 16 positions and 50 "
            "population texts (6 arrays, 85.2 kB decoded)");
}

// --- Scoring a language-model bundle ---

const std::vector<std::string>& EveryAttack() {
  static const std::vector<std::string>* const kAll = new std::vector<std::string>{
      "loss",      "zlib", "min-k",        "min-k++",      "lm-reference", "population",
      "reference", "rmia", "rmia-offline", "lira-offline", "lira"};
  return *kAll;
}

Bundle SyntheticLm(double leak, uint64_t seed, bool stats = true, bool texts = true) {
  SyntheticLmOptions o;
  o.models = 8;
  o.points = 800;
  o.population = 400;
  o.max_length = 24;
  o.leak = leak;
  o.seed = seed;
  o.stats = stats;
  o.texts = texts;
  return *BundleFromArrays(*MakeSyntheticLmBundle(o), "synthetic-lm");
}

ScoringOptions Options(std::vector<std::string> attacks) {
  ScoringOptions o;
  o.attacks = std::move(attacks);
  o.bootstrap.resamples = 0;
  return o;
}

TEST(LmScoringTest, EveryAttackFindsLeakage) {
  const Bundle b = SyntheticLm(1.0, 5);
  auto r = ScoreBundle(b, Options(EveryAttack()));
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->results.size(), EveryAttack().size());
  for (size_t k = 0; k < EveryAttack().size(); ++k) {
    EXPECT_EQ(r->results[k].attack, EveryAttack()[k]);
    EXPECT_GT(r->results[k].auc, 0.6) << EveryAttack()[k];
  }
}

TEST(LmScoringTest, NoLeakageFoundWhereThereIsNone) {
  // leak = 0: the models' signals are exchangeable; over 3 seeds each
  // attack's mean AUC is 0.5 up to sampling noise (about 0.012 here).
  std::vector<double> sum(EveryAttack().size(), 0.0);
  for (uint64_t seed = 11; seed < 14; ++seed) {
    auto r = ScoreBundle(SyntheticLm(0.0, seed), Options(EveryAttack()));
    ASSERT_TRUE(r.ok()) << r.status();
    for (size_t k = 0; k < sum.size(); ++k) sum[k] += r->results[k].auc;
  }
  for (size_t k = 0; k < sum.size(); ++k) {
    EXPECT_NEAR(sum[k] / 3, 0.5, 0.05) << EveryAttack()[k];
  }
}

// ATTACKS.md, "Corrections": a model that leaks nothing gives an epsilon
// lower bound of 0 in at least 95% of seeds, for every attack, on texts too.
TEST(LmScoringTest, NoLeakageNoEpsilonForAnyAttackOverManySeeds) {
  constexpr int kSeeds = 40;
  std::map<std::string, int> eps_zero, ci_holds_half;
  for (int seed = 1; seed <= kSeeds; ++seed) {
    SyntheticLmOptions o;
    o.models = 8;
    o.points = 1000;
    o.population = 500;
    o.max_length = 16;
    o.leak = 0;
    o.seed = static_cast<uint64_t>(seed);
    const Bundle b = *BundleFromArrays(*MakeSyntheticLmBundle(o), "null");
    ScoringOptions so = Options(EveryAttack());
    so.bootstrap.resamples = 200;
    so.seed = static_cast<uint64_t>(seed) * 7919;
    auto r = ScoreBundle(b, so);
    ASSERT_TRUE(r.ok()) << r.status();
    for (const AttackTargetResult& t : r->results) {
      if (t.epsilon.epsilon == 0) ++eps_zero[t.attack];
      if (t.auc_ci.low <= 0.5 && t.auc_ci.high >= 0.5) ++ci_holds_half[t.attack];
    }
  }
  for (const std::string& a : EveryAttack()) {
    EXPECT_GE(eps_zero[a], (95 * kSeeds + 99) / 100)
        << a << ": epsilon > 0 in " << kSeeds - eps_zero[a] << " seeds";
    EXPECT_GE(ci_holds_half[a], (90 * kSeeds + 99) / 100)
        << a << ": the AUC interval missed 0.5 in " << kSeeds - ci_holds_half[a] << " seeds";
  }
}

TEST(LmScoringTest, ScoresAreTheDefinitions) {
  const Bundle b = SyntheticLm(1.0, 7);
  auto r = ScoreBundle(b, Options({"loss", "zlib"}));
  ASSERT_TRUE(r.ok()) << r.status();
  const std::vector<int64_t> sizes = *attacks::ZlibCompressedSizes(b.texts);
  const attacks::TokenSignals& t = *b.tokens;
  for (int64_t i = 0; i < b.points(); ++i) {
    double sum = 0;
    for (int64_t p = 0; p < t.lengths[i]; ++p) sum += t.logprobs[t.offset(0, i) + p];
    const double loss = -sum / static_cast<double>(t.lengths[i]);
    EXPECT_NEAR(r->results[0].scores[i], -loss, 1e-12);
    EXPECT_NEAR(r->results[1].scores[i], -loss / static_cast<double>(sizes[i]), 1e-12);
  }
}

// A pipeline's report keeps the texts' zlib sizes, not the texts: zlib
// scores the same from either, and a bundle holds one of the two.
TEST(LmScoringTest, ZlibSizesStandForTheTexts) {
  io::NpyMap with_texts = LmArrays(1.0, 40, 3);
  ASSERT_TRUE(with_texts.count("texts") > 0);
  auto texts = with_texts.at("texts").ToStrings("texts");
  ASSERT_TRUE(texts.ok());
  auto sizes = attacks::ZlibCompressedSizes(*texts);
  ASSERT_TRUE(sizes.ok());
  io::NpyMap with_sizes = with_texts;
  with_sizes.erase("texts");
  with_sizes["text_zlib_sizes"] =
      io::NpyArray::FromInt64({static_cast<int64_t>(sizes->size())}, *sizes);
  auto a = BundleFromArrays(with_texts, "texts");
  auto b = BundleFromArrays(with_sizes, "sizes");
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_TRUE(b->texts.empty());
  auto ra = ScoreBundle(*a, Options({"zlib"}));
  auto rb = ScoreBundle(*b, Options({"zlib"}));
  ASSERT_TRUE(ra.ok() && rb.ok());
  EXPECT_EQ(ra->results[0].scores, rb->results[0].scores);

  io::NpyMap both = with_texts;
  both["text_zlib_sizes"] = with_sizes.at("text_zlib_sizes");
  EXPECT_THAT(BundleFromArrays(both, "both").status().message(), HasSubstr("give one"));
  io::NpyMap zero = with_sizes;
  std::vector<int64_t> bad = *sizes;
  bad[3] = 0;
  zero["text_zlib_sizes"] = io::NpyArray::FromInt64({static_cast<int64_t>(bad.size())}, bad);
  EXPECT_THAT(BundleFromArrays(zero, "zero").status().message(),
              HasSubstr("array 'text_zlib_sizes': value below 1 at [3]"));
}

TEST(LmScoringTest, RefusesAttacksWhoseArraysAreMissing) {
  const Bundle plain = SyntheticLm(1.0, 9, /*stats=*/false, /*texts=*/false);
  auto r = ScoreBundle(plain, Options({"min-k++"}));
  EXPECT_THAT(r.status().message(), HasSubstr("min-k++' needs token_mean and token_var"));
  r = ScoreBundle(plain, Options({"zlib"}));
  EXPECT_THAT(r.status().message(), HasSubstr("zlib' needs texts"));
  EXPECT_TRUE(ScoreBundle(plain, Options({"min-k", "loss", "rmia-offline"})).ok());

  io::NpyMap no_population = LmArrays();
  for (const char* name : {"population_token_logprobs", "population_lengths",
                           "population_token_mean", "population_token_var", "population_texts"}) {
    no_population.erase(name);
  }
  r = ScoreBundle(*BundleFromArrays(no_population, "mem"), Options({"rmia"}));
  EXPECT_THAT(r.status().message(), HasSubstr("'population_token_logprobs'"));

  SyntheticOptions o;
  o.points = 50;
  o.population = 10;
  const Bundle classifier = *BundleFromArrays(*MakeSyntheticBundle(o), "classifier");
  r = ScoreBundle(classifier, Options({"min-k"}));
  EXPECT_THAT(r.status().message(), HasSubstr("'min-k' is for language models"));
  // lm-reference reads only the loss: it runs on a classifier too.
  EXPECT_TRUE(ScoreBundle(classifier, Options({"lm-reference"})).ok());

  ScoringOptions hot = Options({"loss"});
  hot.temperature = 2;
  EXPECT_THAT(ScoreBundle(plain, hot).status().message(), HasSubstr("'token_logprobs'"));
}

}  // namespace
}  // namespace mia::audit
