#include "core/attacks/sequence_attacks.h"

#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <string>
#include <vector>

#include "core/attacks/registry.h"
#include "core/common/random.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/attacks/test_util.h"

namespace mia::attacks {
namespace {

using testing::AucAgainst;
using ::testing::HasSubstr;

constexpr float kNan = std::numeric_limits<float>::quiet_NaN();

// Token signals from nested per-model, per-text rows (padded to L with NaN,
// which every reader must ignore).
TokenSignals Tokens(const std::vector<std::vector<std::vector<float>>>& lp,
                    const std::vector<std::vector<std::vector<float>>>& mean = {},
                    const std::vector<std::vector<std::vector<float>>>& var = {}) {
  TokenSignals s;
  s.models = static_cast<int>(lp.size());
  s.points = static_cast<int64_t>(lp[0].size());
  for (const auto& text : lp[0]) {
    s.lengths.push_back(static_cast<int64_t>(text.size()));
    s.max_length = std::max<int64_t>(s.max_length, static_cast<int64_t>(text.size()));
  }
  auto flatten = [&](const std::vector<std::vector<std::vector<float>>>& rows,
                     std::vector<float>* out) {
    for (const auto& model : rows) {
      for (const auto& text : model) {
        out->insert(out->end(), text.begin(), text.end());
        out->insert(out->end(), s.max_length - static_cast<int64_t>(text.size()), kNan);
      }
    }
  };
  flatten(lp, &s.logprobs);
  if (!mean.empty()) flatten(mean, &s.mean);
  if (!var.empty()) flatten(var, &s.var);
  return s;
}

// A membership game on texts: each text in a random half of the models; the
// per-token log-probs of a member raised by `leak` (0: the models' signals are
// exchangeable, whatever the membership).
struct LmGame {
  TokenSignals tokens, population;
  std::vector<uint8_t> keep;
  std::vector<int64_t> compressed;
};

LmGame MakeLmGame(int models, int64_t points, int64_t length, double leak, uint64_t seed) {
  Rng rng(seed);
  LmGame g;
  g.keep.assign(static_cast<size_t>(models) * points, 0);
  std::vector<int> order(models);
  for (int64_t i = 0; i < points; ++i) {
    std::iota(order.begin(), order.end(), 0);
    for (int m = models - 1; m > 0; --m) std::swap(order[m], order[rng.UniformInt(m + 1)]);
    for (int k = 0; k < models / 2; ++k) g.keep[static_cast<size_t>(order[k]) * points + i] = 1;
  }
  auto fill = [&](TokenSignals* s, int64_t n, bool audit) {
    s->models = models;
    s->points = n;
    s->max_length = length;
    s->lengths.resize(n);
    for (auto& t : s->lengths) t = 1 + static_cast<int64_t>(rng.UniformInt(length));
    const size_t cells = static_cast<size_t>(models) * n * length;
    s->logprobs.assign(cells, kNan);
    s->mean.assign(cells, kNan);
    s->var.assign(cells, kNan);
    std::vector<double> difficulty(length);
    for (int64_t i = 0; i < n; ++i) {
      for (auto& d : difficulty) d = 2.0 * rng.Normal();
      for (int m = 0; m < models; ++m) {
        const bool member = audit && g.keep[static_cast<size_t>(m) * n + i];
        for (int64_t t = 0; t < s->lengths[i]; ++t) {
          const double x = difficulty[t] + 0.7 * rng.Normal() + (member ? leak : 0.0);
          const size_t k = static_cast<size_t>(s->offset(m, i) + t);
          s->logprobs[k] = static_cast<float>(-std::log1p(std::exp(-x)));  // -softplus(-x) <= 0
          s->mean[k] = static_cast<float>(-1.0 - rng.Uniform01());
          s->var[k] = rng.Uniform01() < 0.1 ? 0.0f : static_cast<float>(0.5 + rng.Uniform01());
        }
      }
    }
  };
  fill(&g.tokens, points, true);
  fill(&g.population, points / 2, false);
  g.compressed.resize(points);
  for (auto& c : g.compressed) c = 20 + static_cast<int64_t>(rng.UniformInt(200));
  return g;
}

struct Inputs {
  SignalSet audit, population;
  AttackInput input;
};

void Bind(const LmGame& g, int target, Inputs* in) {
  in->audit = SequenceSignalSet(g.tokens);
  in->population = SequenceSignalSet(g.population);
  in->input.audit = &in->audit;
  in->input.population = &in->population;
  in->input.keep = g.keep;
  in->input.target = target;
  in->input.references.clear();
  for (int m = 0; m < g.tokens.models; ++m) {
    if (m != target) in->input.references.push_back(m);
  }
  in->input.tokens = &g.tokens;
  in->input.compressed_sizes = g.compressed;
  in->input.seed = 7;
}

// --- The sequence loss and the signals built from it ---

TEST(SequenceLossTest, HandWorkedThreeTokens) {
  // lp = {-1, -2, -3}: loss = 2; the second text, {-0.5}, has loss 0.5. The
  // NaN padding past each length is never read.
  const TokenSignals s = Tokens({{{-1, -2, -3}, {-0.5}}});
  const SignalTensor loss = SequenceLoss(s);
  ASSERT_EQ(loss.models, 1);
  ASSERT_EQ(loss.points, 2);
  EXPECT_DOUBLE_EQ(loss.at(0, 0), 2.0);
  EXPECT_DOUBLE_EQ(loss.at(0, 1), 0.5);
}

TEST(SequenceLossTest, SignalSetMatchesTheSpecFormulas) {
  const TokenSignals s = Tokens({{{-1, -2, -3}, {-0.25, -0.5}}, {{-0.1, -0.1, -0.4}, {-7, -9}}});
  const SignalSet set = SequenceSignalSet(s);
  for (int m = 0; m < 2; ++m) {
    for (int64_t i = 0; i < 2; ++i) {
      double sum = 0;
      for (int64_t t = 0; t < s.lengths[i]; ++t) sum += s.logprobs[s.offset(m, i) + t];
      const double loss = -sum / static_cast<double>(s.lengths[i]);
      const double p = std::exp(-loss);
      EXPECT_DOUBLE_EQ(set.loss.at(m, i), loss);
      EXPECT_DOUBLE_EQ(set.prob.at(m, i), p);
      // phi = log p - log(1 - p), here where p is far from 0 and 1.
      EXPECT_NEAR(set.logit_scaled.at(m, i), std::log(p) - std::log(1 - p), 1e-12);
    }
  }
  // Only the kinds asked for.
  const SignalSet only_loss = SequenceSignalSet(s, {SignalKind::kLoss});
  EXPECT_TRUE(only_loss.prob.empty());
  EXPECT_EQ(only_loss.loss.values, set.loss.values);
}

TEST(SequenceLossTest, SumsInDoubleAndNeverGoesNegative) {
  // 100000 tokens of -1e-4 (a float sum would drift); and log-probs rounded
  // just above 0 give loss 0, not a negative loss.
  TokenSignals s;
  s.models = 1;
  s.points = 2;
  s.max_length = 100000;
  s.lengths = {100000, 2};
  s.logprobs.assign(200000, -1e-4f);
  s.logprobs[100000] = 1e-6f;
  s.logprobs[100001] = 0.0f;
  const SignalTensor loss = SequenceLoss(s);
  EXPECT_NEAR(loss.at(0, 0), static_cast<double>(1e-4f), 1e-15);
  EXPECT_EQ(loss.at(0, 1), 0.0);
  const SignalSet set = SequenceSignalSet(s);
  EXPECT_EQ(set.prob.at(0, 1), 1.0);
  EXPECT_EQ(set.logit_scaled.at(0, 1), kMaxLogitScaled);
}

// --- n = max(1, floor(k T)) ---

TEST(MinKCountTest, HandWorked) {
  EXPECT_EQ(MinKCount(0.2, 5), 1);
  EXPECT_EQ(MinKCount(0.2, 4), 1);  // floor(0.8) = 0 -> 1
  EXPECT_EQ(MinKCount(0.2, 1), 1);
  EXPECT_EQ(MinKCount(0.2, 10), 2);
  EXPECT_EQ(MinKCount(0.57, 100), 57);  // 0.57 * 100 = 56.99999999999999 in double
  EXPECT_EQ(MinKCount(0.29, 100), 29);  // 28.999999999999996
  EXPECT_EQ(MinKCount(0.7, 10), 7);     // 7.000000000000001
  EXPECT_EQ(MinKCount(1.0, 7), 7);
  EXPECT_EQ(MinKCount(0.5, 3), 1);
  EXPECT_EQ(MinKCount(0.999, 1000), 999);
}

TEST(MinKCountTest, EqualsExactRationalFloorForEveryPercentAndLength) {
  // k = a / 100 (every percent) and k = a / 1000: n must be the integer floor
  // of a T / 100 (or / 1000), computed exactly in integers.
  for (int64_t denom : {100, 1000}) {
    for (int64_t a = 1; a <= denom; ++a) {
      const double k = static_cast<double>(a) / static_cast<double>(denom);
      for (int64_t t = 1; t <= 600; ++t) {
        const int64_t expected = std::max<int64_t>(1, a * t / denom);
        ASSERT_EQ(MinKCount(k, t), expected) << "k = " << a << "/" << denom << ", T = " << t;
      }
    }
  }
}

// --- Min-K% and Min-K%++: hand-worked ---

TEST(MinKAttackTest, HandWorked) {
  // T = 5: lp = {-0.5, -3, -1, -2, -0.1}. k = 0.2: n = 1, score -3;
  // k = 0.4: n = 2, mean(-3, -2) = -2.5; k = 1: the mean of all, -1.32.
  const TokenSignals s = Tokens({{{-0.5f, -3, -1, -2, -0.1f}, {-4}}});
  SignalSet audit;
  audit.loss = SequenceLoss(s);
  const std::vector<uint8_t> keep = {1, 0};
  AttackInput in{&audit, nullptr, keep, 0, {}};
  in.tokens = &s;
  EXPECT_DOUBLE_EQ(MinKAttack(in, 0.2)->scores[0], -3.0);
  EXPECT_DOUBLE_EQ(MinKAttack(in, 0.4)->scores[0], -2.5);
  EXPECT_NEAR(MinKAttack(in, 1.0)->scores[0], (-0.5 - 3 - 1 - 2 - 0.1) / 5, 1e-7);
  EXPECT_DOUBLE_EQ(MinKAttack(in, 0.2)->scores[1], -4.0);
  EXPECT_FALSE(MinKAttack(in, 0.0).ok());
  EXPECT_FALSE(MinKAttack(in, 1.5).ok());
}

TEST(MinKPlusPlusAttackTest, HandWorked) {
  // T = 3: lp = {-1, -2, -4}, mu = {-1.5, -1.5, -2}, var = {0.25, 1, 0}:
  // z = {(-1 + 1.5) / 0.5, (-2 + 1.5) / 1, 0 (var = 0)} = {1, -0.5, 0}.
  // k = 0.5: n = 1, score -0.5; k = 1: n = 3, score 0.5 / 3.
  const TokenSignals s = Tokens({{{-1, -2, -4}}}, {{{-1.5f, -1.5f, -2}}}, {{{0.25f, 1, 0}}});
  SignalSet audit;
  audit.loss = SequenceLoss(s);
  const std::vector<uint8_t> keep = {1};
  AttackInput in{&audit, nullptr, keep, 0, {}};
  in.tokens = &s;
  EXPECT_DOUBLE_EQ(MinKPlusPlusAttack(in, 0.5)->scores[0], -0.5);
  EXPECT_DOUBLE_EQ(MinKPlusPlusAttack(in, 1.0)->scores[0], 0.5 / 3);
  EXPECT_DOUBLE_EQ(MinKPlusPlusAttack(in, 0.2)->scores[0], -0.5);  // n = max(1, 0)
}

// --- zlib ---

TEST(ZlibTest, CompressedSizesAreZlibLevel6) {
  // The empty text: a 2-byte header, an empty final block (2 bytes) and the
  // 4-byte Adler-32: 8 bytes.
  const std::vector<std::string> texts = {"", "a", std::string(1000, 'a'),
                                          "The quick brown fox jumps over the lazy dog.",
                                          "na\xc3\xafve caf\xc3\xa9 \xe2\x82\xac"};
  auto sizes = ZlibCompressedSizes(texts);
  ASSERT_TRUE(sizes.ok()) << sizes.status();
  EXPECT_EQ((*sizes)[0], 8);
  for (size_t i = 0; i < texts.size(); ++i) {
    std::vector<Bytef> buf(compressBound(texts[i].size()));
    uLongf len = buf.size();
    ASSERT_EQ(compress2(buf.data(), &len, reinterpret_cast<const Bytef*>(texts[i].data()),
                        texts[i].size(), 6),
              Z_OK);
    EXPECT_EQ((*sizes)[i], static_cast<int64_t>(len)) << i;
  }
  // Repetition compresses: 1000 'a's take far fewer than 1000 bytes.
  EXPECT_LT((*sizes)[2], 30);
}

TEST(ZlibAttackTest, HandWorked) {
  // loss_t = {2, 0.5}, Zl = {8, 20}: scores -2 / 8 and -0.5 / 20.
  const TokenSignals s = Tokens({{{-1, -2, -3}, {-0.5}}});
  SignalSet audit;
  audit.loss = SequenceLoss(s);
  const std::vector<uint8_t> keep = {1, 0};
  const std::vector<int64_t> sizes = {8, 20};
  AttackInput in{&audit, nullptr, keep, 0, {}};
  in.compressed_sizes = sizes;
  auto out = ZlibAttack(in);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_THAT(out->scores, ::testing::ElementsAre(-0.25, -0.025));
}

// --- Reference loss ---

TEST(LmReferenceAttackTest, HandWorked) {
  // Target 0; references 1, 2, 3. Point 0: OUT = {1, 2, 3} minus those that
  // trained on it. keep below gives every point exactly 2 OUT references, so
  // all of them are used: score = mean of their losses - target's loss.
  SignalSet audit;
  audit.loss = testing::Tensor({{1.0, 2.0}, {3.0, 0.5}, {5.0, 4.0}, {0.0, 6.0}});
  const std::vector<uint8_t> keep = testing::Keep({{1, 0}, {0, 1}, {0, 0}, {1, 0}});
  AttackInput in{&audit, nullptr, keep, 0, {1, 2, 3}};
  auto out = LmReferenceAttack(in);
  ASSERT_TRUE(out.ok()) << out.status();
  // Point 0: OUT = {1, 2}: (3 + 5) / 2 - 1 = 3. Point 1: OUT = {2, 3}: (4 + 6) / 2 - 2 = 3.
  EXPECT_THAT(out->scores, ::testing::ElementsAre(3.0, 3.0));
}

TEST(LmReferenceAttackTest, EveryPointUsesTheSameNumberOfOutReferences) {
  // Point 0 has 3 OUT references, point 1 has 1, point 2 has none (excluded):
  // each scorable point averages exactly 1 of its OUT references.
  SignalSet audit;
  audit.loss =
      testing::Tensor({{1.0, 1.0, 1.0}, {2.0, 3.0, 0.1}, {4.0, 8.0, 0.2}, {8.0, 16.0, 0.3}});
  const std::vector<uint8_t> keep = testing::Keep({{0, 0, 0}, {0, 1, 1}, {0, 1, 1}, {0, 0, 1}});
  AttackInput in{&audit, nullptr, keep, 0, {1, 2, 3}};
  for (uint64_t seed = 0; seed < 20; ++seed) {
    in.seed = seed;
    auto out = LmReferenceAttack(in);
    ASSERT_TRUE(out.ok());
    EXPECT_THAT(out->scores[0], ::testing::AnyOf(1.0, 3.0, 7.0));  // one of 2, 4, 8, minus 1
    EXPECT_DOUBLE_EQ(out->scores[1], 15.0);                        // only reference 3: 16 - 1
    EXPECT_TRUE(std::isnan(out->scores[2]));
    EXPECT_EQ(out->excluded, 1);
  }
}

// --- Against plain definitions on random inputs ---

TEST(SequenceAttacksTest, MatchPlainDefinitionsOnRandomInputs) {
  for (uint64_t seed = 1; seed <= 5; ++seed) {
    const LmGame g = MakeLmGame(5, 60, 17, 0.5, seed);
    for (int target = 0; target < 2; ++target) {
      Inputs in;
      Bind(g, target, &in);
      const double k = 0.05 + 0.19 * static_cast<double>(seed);  // 0.24 .. 1
      auto mink = MinKAttack(in.input, k);
      auto minkpp = MinKPlusPlusAttack(in.input, k);
      auto zlib = ZlibAttack(in.input);
      ASSERT_TRUE(mink.ok() && minkpp.ok() && zlib.ok());
      for (int64_t i = 0; i < g.tokens.points; ++i) {
        const int64_t t_count = g.tokens.lengths[i];
        const int64_t base = g.tokens.offset(target, i);
        // n by exact integer arithmetic: k has at most 2 decimals here.
        const int64_t k100 = std::llround(k * 100);
        const int64_t n = std::max<int64_t>(1, k100 * t_count / 100);
        std::vector<double> lp, z;
        double sum = 0;
        for (int64_t t = 0; t < t_count; ++t) {
          lp.push_back(g.tokens.logprobs[base + t]);
          sum += lp.back();
          const double var = g.tokens.var[base + t];
          z.push_back(var == 0 ? 0.0 : (lp.back() - g.tokens.mean[base + t]) / std::sqrt(var));
        }
        std::sort(lp.begin(), lp.end());
        std::sort(z.begin(), z.end());
        EXPECT_NEAR(mink->scores[i], std::accumulate(lp.begin(), lp.begin() + n, 0.0) / n, 1e-9);
        EXPECT_NEAR(minkpp->scores[i], std::accumulate(z.begin(), z.begin() + n, 0.0) / n, 1e-9);
        const double loss = -sum / static_cast<double>(t_count);
        EXPECT_NEAR(zlib->scores[i], -loss / static_cast<double>(g.compressed[i]), 1e-12);
      }
    }
  }
}

TEST(SequenceAttacksTest, LmReferenceMatchesPlainDefinitionWithEqualCounts) {
  // With a balanced split over 6 models, against target 0 every member has 3
  // OUT references and every non-member 2: every point must average exactly 2
  // of its OUT references' losses.
  const LmGame g = MakeLmGame(6, 80, 9, 0.3, 11);
  Inputs in;
  Bind(g, 0, &in);
  auto out = LmReferenceAttack(in.input);
  ASSERT_TRUE(out.ok());
  const SignalTensor& loss = in.audit.loss;
  for (int64_t i = 0; i < g.tokens.points; ++i) {
    std::vector<double> outs;
    for (int r = 1; r < 6; ++r) {
      if (!g.keep[static_cast<size_t>(r) * g.tokens.points + i]) outs.push_back(loss.at(r, i));
    }
    std::vector<double> candidates;  // the mean of every pair of OUT references
    for (size_t a = 0; a < outs.size(); ++a) {
      for (size_t b = a + 1; b < outs.size(); ++b) {
        candidates.push_back((outs[a] + outs[b]) / 2 - loss.at(0, i));
      }
    }
    const bool found = std::any_of(candidates.begin(), candidates.end(),
                                   [&](double c) { return std::fabs(c - out->scores[i]) < 1e-12; });
    EXPECT_TRUE(found) << "point " << i;
  }
}

// --- Invariants ---

TEST(SequenceAttacksTest, MinKWithKOneIsMinusTheLoss) {
  const LmGame g = MakeLmGame(4, 40, 12, 0.0, 3);
  Inputs in;
  Bind(g, 1, &in);
  auto mink = MinKAttack(in.input, 1.0);
  auto loss = MakeAttack("loss");
  ASSERT_TRUE(loss.ok());
  auto loss_out = (*loss)->Run(in.input);
  ASSERT_TRUE(mink.ok() && loss_out.ok());
  for (int64_t i = 0; i < g.tokens.points; ++i) {
    EXPECT_NEAR(mink->scores[i], loss_out->scores[i], 1e-9);
  }
}

TEST(SequenceAttacksTest, TokenOrderAndPaddingDoNotMatter) {
  TokenSignals a = Tokens({{{-1, -5, -0.25f, -2}}}, {{{-1, -2, -3, -4}}}, {{{1, 2, 0.5f, 0}}});
  TokenSignals b = Tokens({{{-2, -0.25f, -5, -1}}}, {{{-4, -3, -2, -1}}}, {{{0, 0.5f, 2, 1}}});
  // Padding: the same text in a wider array, whatever the padding holds.
  TokenSignals c = a;
  c.max_length = 6;
  c.logprobs = {-1, -5, -0.25f, -2, 123, kNan};
  c.mean = {-1, -2, -3, -4, kNan, 0};
  c.var = {1, 2, 0.5f, 0, -7, kNan};
  const std::vector<uint8_t> keep = {1};
  for (double k : {0.25, 0.5, 1.0}) {
    std::vector<double> mink, minkpp;
    for (const TokenSignals* s : {&a, &b, &c}) {
      SignalSet audit;
      audit.loss = SequenceLoss(*s);
      AttackInput in{&audit, nullptr, keep, 0, {}};
      in.tokens = s;
      mink.push_back(MinKAttack(in, k)->scores[0]);
      minkpp.push_back(MinKPlusPlusAttack(in, k)->scores[0]);
    }
    EXPECT_EQ(mink[0], mink[1]);
    EXPECT_EQ(mink[0], mink[2]);
    EXPECT_EQ(minkpp[0], minkpp[1]);
    EXPECT_EQ(minkpp[0], minkpp[2]);
  }
}

// --- Refusals: an attack names what it lacks ---

TEST(SequenceAttacksTest, RefusesMissingInputsNamingThem) {
  const TokenSignals s = Tokens({{{-1, -2}}, {{-1, -1}}});
  SignalSet audit;
  audit.loss = SequenceLoss(s);
  const std::vector<uint8_t> keep = {1, 0};
  AttackInput in{&audit, nullptr, keep, 0, {1}};
  EXPECT_THAT(MinKAttack(in, 0.2).status().message(), HasSubstr("token_logprobs"));
  EXPECT_THAT(ZlibAttack(in).status().message(), HasSubstr("texts"));
  in.tokens = &s;
  EXPECT_TRUE(MinKAttack(in, 0.2).ok());
  EXPECT_THAT(MinKPlusPlusAttack(in, 0.2).status().message(),
              HasSubstr("token_mean and token_var"));
  const std::vector<int64_t> wrong = {5, 6};  // one per point expected: 1 point
  in.compressed_sizes = wrong;
  EXPECT_FALSE(ZlibAttack(in).ok());
  // Token signals of other shapes than the loss signal.
  const TokenSignals other = Tokens({{{-1}, {-2}}, {{-1}, {-1}}});
  in.tokens = &other;
  EXPECT_FALSE(MinKAttack(in, 0.2).ok());
}

// --- The registry ---

TEST(SequenceRegistryTest, NamesOptionsAndNeeds) {
  for (const char* name : {"zlib", "min-k", "min-k++", "lm-reference"}) {
    auto a = MakeAttack(name);
    ASSERT_TRUE(a.ok()) << name << ": " << a.status();
    EXPECT_EQ((*a)->name(), name);
  }
  EXPECT_EQ((*MakeAttack("mink"))->name(), "min-k");
  EXPECT_EQ((*MakeAttack("min-k:k=0.1"))->name(), "min-k:k=0.1");
  EXPECT_EQ((*MakeAttack("min-k++:k=0.2"))->name(), "min-k++");
  EXPECT_EQ((*MakeAttack("mink++:k=1"))->name(), "min-k++:k=1");
  EXPECT_FALSE(MakeAttack("min-k:k=0").ok());
  EXPECT_FALSE(MakeAttack("min-k:k=1.5").ok());
  EXPECT_FALSE(MakeAttack("zlib:k=1").ok());
  EXPECT_TRUE((*MakeAttack("zlib"))->needs().texts);
  EXPECT_TRUE((*MakeAttack("min-k"))->needs().token_logprobs);
  EXPECT_FALSE((*MakeAttack("min-k"))->needs().token_stats);
  EXPECT_TRUE((*MakeAttack("min-k++"))->needs().token_stats);
  EXPECT_TRUE((*MakeAttack("lm-reference"))->needs().references);
  EXPECT_FALSE((*MakeAttack("lm-reference"))->needs().token_logprobs);
  // One LOSS: the classifier's attack on the sequence loss, no second entry.
  int loss_entries = 0;
  for (const AttackInfo& info : AttackCatalog()) {
    if (info.name.find("loss") != std::string::npos && info.name != "loss") ++loss_entries;
  }
  EXPECT_EQ(loss_entries, 0);
}

// --- Leakage is found, and none where there is none ---

const std::vector<std::string>& AllSequenceAttacks() {
  static const std::vector<std::string>* const kAll = new std::vector<std::string>{
      "loss",      "zlib", "min-k",        "min-k++",      "lm-reference", "population",
      "reference", "rmia", "rmia-offline", "lira-offline", "lira"};
  return *kAll;
}

TEST(SequenceAttacksTest, FindLeakageInALeakyGame) {
  const LmGame g = MakeLmGame(8, 400, 24, 0.8, 21);
  Inputs in;
  Bind(g, 0, &in);
  for (const std::string& spec : AllSequenceAttacks()) {
    auto attack = MakeAttack(spec);
    ASSERT_TRUE(attack.ok());
    auto out = (*attack)->Run(in.input);
    ASSERT_TRUE(out.ok()) << spec << ": " << out.status();
    EXPECT_GT(AucAgainst(out->scores, g.keep, 0), 0.6) << spec;
  }
}

TEST(SequenceAttacksTest, NoLeakWhenModelsAreExchangeable) {
  // Without leakage every model's signals are exchangeable: each attack's AUC,
  // averaged over targets and seeds, is 0.5 up to sampling noise.
  for (const std::string& spec : AllSequenceAttacks()) {
    auto attack = MakeAttack(spec);
    ASSERT_TRUE(attack.ok());
    double sum = 0;
    int runs = 0;
    for (uint64_t seed = 100; seed < 104; ++seed) {
      const LmGame g = MakeLmGame(8, 400, 16, 0.0, seed);
      for (int target = 0; target < 2; ++target) {
        Inputs in;
        Bind(g, target, &in);
        auto out = (*attack)->Run(in.input);
        ASSERT_TRUE(out.ok()) << spec << ": " << out.status();
        sum += AucAgainst(out->scores, g.keep, target);
        ++runs;
      }
    }
    // 8 runs of 400 points: the mean AUC's standard error is about 0.01.
    EXPECT_NEAR(sum / runs, 0.5, 0.04) << spec;
  }
}

}  // namespace
}  // namespace mia::attacks
