#include "core/audit/scoring.h"

#include <cmath>
#include <map>
#include <set>

#include "core/audit/synthetic.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace mia::audit {
namespace {

using ::testing::HasSubstr;

Bundle Synthetic(double leak, int models = 8, int targets = 1, uint64_t seed = 3) {
  SyntheticOptions o;
  o.models = models;
  o.points = 1000;
  o.population = 500;
  o.leak = leak;
  o.targets = targets;
  o.seed = seed;
  return *BundleFromArrays(*MakeSyntheticBundle(o), "synthetic");
}

ScoringOptions Options(std::vector<std::string> attacks) {
  ScoringOptions o;
  o.attacks = std::move(attacks);
  o.bootstrap.resamples = 200;
  return o;
}

TEST(ScoringTest, FindsLeakageWithEveryAttack) {
  const Bundle b = Synthetic(2.0);
  auto r = ScoreBundle(b, Options({"loss", "population", "reference", "lira", "lira-offline",
                                   "rmia", "rmia-offline"}));
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->results.size(), 7u);
  for (const AttackTargetResult& t : r->results) {
    EXPECT_GT(t.auc, 0.6) << t.attack;
    EXPECT_LE(t.auc_ci.low, t.auc) << t.attack;
    EXPECT_GE(t.auc_ci.high, t.auc) << t.attack;
    EXPECT_EQ(t.members + t.non_members + t.excluded, 1000) << t.attack;
    EXPECT_EQ(t.scores.size(), 1000u);
    EXPECT_EQ(t.tpr_at_fpr.size(), metrics::DefaultFprs().size());
    EXPECT_GT(t.epsilon.epsilon, 0) << t.attack;
  }
  // LiRA and RMIA beat the reference-free baselines on this game.
  EXPECT_GT(r->results[3].auc, r->results[0].auc);
  EXPECT_GT(r->results[5].auc, r->results[0].auc);
  EXPECT_TRUE(r->results[6].chosen.count("a"));
  EXPECT_EQ(r->row_ids[0], 10000);
  EXPECT_TRUE(nlohmann::json::parse(r->spec_json).is_object());
}

TEST(ScoringTest, NoLeakageGivesChance) {
  const Bundle b = Synthetic(0.0);
  auto r = ScoreBundle(b, Options({"rmia", "lira"}));
  ASSERT_TRUE(r.ok()) << r.status();
  for (const AttackTargetResult& t : r->results) {
    EXPECT_NEAR(t.auc, 0.5, 0.06) << t.attack;
    EXPECT_LT(t.auc_ci.low, 0.5 + 0.01) << t.attack;
  }
}

// ATTACKS.md, "Corrections": a model that leaks nothing shows no leakage with
// any attack. Before the reference counts were equalized, Attack-R gave a
// positive epsilon in 30 of 30 seeds (a member has one more OUT reference).
TEST(ScoringTest, NoLeakageNoEpsilonForAnyAttackOverManySeeds) {
  const std::vector<std::string> attacks = {"loss", "population",   "reference", "lira",
                                            "lira-offline", "rmia", "rmia-offline"};
  constexpr int kSeeds = 40;
  std::map<std::string, int> eps_zero, ci_holds_half;
  for (int seed = 1; seed <= kSeeds; ++seed) {
    SyntheticOptions o;
    o.models = 8;
    o.points = 2000;
    o.population = 1000;
    o.leak = 0;
    o.seed = static_cast<uint64_t>(seed);
    const Bundle b = *BundleFromArrays(*MakeSyntheticBundle(o), "null");
    ScoringOptions so = Options(attacks);
    so.seed = static_cast<uint64_t>(seed) * 7919;
    auto r = ScoreBundle(b, so);
    ASSERT_TRUE(r.ok()) << r.status();
    for (const AttackTargetResult& t : r->results) {
      if (t.epsilon.epsilon == 0) ++eps_zero[t.attack];
      if (t.auc_ci.low <= 0.5 && t.auc_ci.high >= 0.5) ++ci_holds_half[t.attack];
    }
  }
  for (const std::string& a : attacks) {
    EXPECT_GE(eps_zero[a], (95 * kSeeds + 99) / 100) << a << ": epsilon > 0 in "
                                                     << kSeeds - eps_zero[a] << " seeds";
    EXPECT_GE(ci_holds_half[a], (90 * kSeeds + 99) / 100)
        << a << ": the AUC interval missed 0.5 in " << kSeeds - ci_holds_half[a] << " seeds";
  }
}

// Every point is scored with the same number of OUT (and, online, IN)
// references, whatever its membership in the target.
TEST(ScoringTest, ReferenceAttackScoresTakeTheSameValuesForMembersAndNonMembers) {
  const Bundle b = Synthetic(0.0);
  auto r = ScoreBundle(b, Options({"reference"}));
  ASSERT_TRUE(r.ok()) << r.status();
  std::set<double> member_values, non_member_values;
  const AttackTargetResult& t = r->results[0];
  for (size_t i = 0; i < t.scores.size(); ++i) {
    (r->membership[0][i] ? member_values : non_member_values).insert(t.scores[i]);
  }
  // 8 models, balanced: 3 OUT references per point, so scores are k / 6.
  EXPECT_EQ(member_values, non_member_values);
  for (double v : member_values) EXPECT_NEAR(v * 6, std::round(v * 6), 1e-12) << v;
}

// Seeds follow the attack's name, not its position in the list, and every
// attack shares one selection/evaluation split.
TEST(ScoringTest, MetricsDoNotDependOnTheAttacksOrder) {
  const Bundle b = Synthetic(1.0);
  auto a = ScoreBundle(b, Options({"lira-offline", "rmia"}));
  auto c = ScoreBundle(b, Options({"rmia", "loss", "lira-offline"}));
  ASSERT_TRUE(a.ok() && c.ok());
  auto find = [](const AuditResult& r, const std::string& name) {
    for (const AttackTargetResult& t : r.results) {
      if (t.attack == name) return t;
    }
    return AttackTargetResult{};
  };
  for (const std::string name : {"lira-offline", "rmia"}) {
    const AttackTargetResult x = find(*a, name), y = find(*c, name);
    EXPECT_EQ(x.auc_ci.low, y.auc_ci.low) << name;
    EXPECT_EQ(x.auc_ci.high, y.auc_ci.high) << name;
    EXPECT_EQ(x.epsilon.epsilon, y.epsilon.epsilon) << name;
    EXPECT_EQ(x.epsilon.threshold, y.epsilon.threshold) << name;
    EXPECT_EQ(x.epsilon.delta, 1e-5) << name;
  }
  // One split for all attacks: the same number of points on each side.
  for (const AttackTargetResult& t : c->results) {
    EXPECT_EQ(t.epsilon.selection_points, c->results[0].epsilon.selection_points);
  }
  EXPECT_EQ(a->seed, 0u);
  EXPECT_EQ(a->bootstrap_resamples, 200);
}

TEST(ScoringTest, NoBootstrapMeansNoInterval) {
  const Bundle b = Synthetic(1.0);
  ScoringOptions o = Options({"rmia"});
  o.bootstrap.resamples = 0;
  auto r = ScoreBundle(b, o);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(std::isnan(r->results[0].auc_ci.low));
  EXPECT_EQ(r->bootstrap_resamples, 0);
  EXPECT_TRUE(r->results[0].warnings.empty());
}

// phi from logits is exact: a 2-class bundle with logits scaled by 1e4 gives
// the same LiRA-offline z-scores (scale-free) as the unscaled one. With the
// old +-745 clamp most values were clamped and the AUC fell.
TEST(ScoringTest, LiraOfflineIsUnchangedByHugeLogits) {
  SyntheticOptions o;
  o.models = 8;
  o.points = 1000;
  o.population = 0;
  o.classes = 2;
  o.leak = 1.5;
  io::NpyMap arrays = *MakeSyntheticBundle(o);
  const Bundle plain = *BundleFromArrays(arrays, "plain");
  io::NpyArray& logits = arrays.at("logits");
  float* v = reinterpret_cast<float*>(logits.data.data());
  const size_t count = logits.data.size() / sizeof(float);
  // Two classes: phi = z_y - z_other, so scaling the margin by 1e4 scales phi.
  for (size_t k = 0; k < count; ++k) v[k] *= 1e4f;
  const Bundle scaled = *BundleFromArrays(arrays, "scaled");
  auto a = ScoreBundle(plain, Options({"lira-offline"}));
  auto c = ScoreBundle(scaled, Options({"lira-offline"}));
  ASSERT_TRUE(a.ok() && c.ok()) << a.status() << c.status();
  EXPECT_NEAR(a->results[0].auc, c->results[0].auc, 1e-3);
  EXPECT_GT(c->results[0].auc, 0.6);
}

// One reference per point on a side leaves no deviation to estimate: LiRA
// refuses instead of dividing by 1e-30 (scores of +-5e30 before).
TEST(ScoringTest, LiraWithOneReferencePerPointIsRefused) {
  const Bundle b = Synthetic(1.0, /*models=*/4);
  auto r = ScoreBundle(b, Options({"lira-offline"}));
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("only 1 OUT reference"));
  EXPECT_THAT(r.status().message(), HasSubstr("at least 2"));
}

TEST(ScoringTest, SeveralTargetsAndTheirSpread) {
  const Bundle b = Synthetic(1.5, 8, 3);
  auto r = ScoreBundle(b, Options({"lira"}));
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->results.size(), 3u);
  ASSERT_EQ(r->summaries.size(), 1u);
  EXPECT_EQ(r->summaries[0].auc.count, 3);
  double mean = 0;
  for (const auto& t : r->results) mean += t.auc / 3;
  EXPECT_NEAR(r->summaries[0].auc.mean, mean, 1e-12);
  EXPECT_GT(r->summaries[0].auc.stddev, 0);
  EXPECT_EQ(r->membership.size(), 3u);
  // Membership of target k is row k of keep.
  EXPECT_EQ(r->membership[2][7], b.keep[2 * 1000 + 7]);
}

TEST(ScoringTest, SameSeedSameResult) {
  const Bundle b = Synthetic(1.0);
  auto a = ScoreBundle(b, Options({"rmia-offline", "lira"}));
  auto c = ScoreBundle(b, Options({"rmia-offline", "lira"}));
  ASSERT_TRUE(a.ok() && c.ok());
  for (size_t k = 0; k < a->results.size(); ++k) {
    EXPECT_EQ(a->results[k].auc_ci.low, c->results[k].auc_ci.low);
    EXPECT_EQ(a->results[k].epsilon.epsilon, c->results[k].epsilon.epsilon);
    EXPECT_EQ(a->results[k].scores, c->results[k].scores);
  }
}

TEST(ScoringTest, SignalsBundleMatchesLogitsBundle) {
  // The prob signal computed outside and given as 'signals' scores the same as
  // the logits it came from.
  const Bundle b = Synthetic(1.0);
  attacks::SignalSet audit, pop;
  ASSERT_TRUE(ComputeSignals(b, {attacks::SignalKind::kProb}, 1.0, &audit, &pop).ok());
  Bundle s = b;
  s.audit = SignalSource();
  s.audit.signal = audit.prob;
  s.audit.array_name = "signals";
  s.population = SignalSource();
  s.population->signal = pop.prob;
  s.population->array_name = "population_signals";
  auto from_logits = ScoreBundle(b, Options({"rmia", "reference"}));
  auto from_signals = ScoreBundle(s, Options({"rmia", "reference"}));
  ASSERT_TRUE(from_logits.ok() && from_signals.ok()) << from_signals.status();
  for (size_t k = 0; k < 2; ++k) {
    EXPECT_EQ(from_logits->results[k].auc, from_signals->results[k].auc);
  }
}

TEST(ScoringTest, UnmetNeedsAreClearErrors) {
  Bundle b = Synthetic(1.0);
  b.population.reset();
  auto r = ScoreBundle(b, Options({"rmia"}));
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("needs population points"));
  EXPECT_TRUE(ScoreBundle(b, Options({"lira"})).ok());
  auto unknown = ScoreBundle(b, Options({"lira:bogus=1"}));
  EXPECT_THAT(unknown.status().message(), HasSubstr("unknown option 'bogus'"));
  ScoringOptions bad_target = Options({"lira"});
  bad_target.targets = {8};
  EXPECT_THAT(ScoreBundle(b, bad_target).status().message(), HasSubstr("target model 8"));
}

TEST(ScoringTest, ExcludedPointsAreCountedAndAllExcludedIsAnError) {
  Bundle b = Synthetic(1.0, 6);
  // Point 5: every model trained on it, so no OUT reference for target 0.
  for (int m = 0; m < 6; ++m) b.keep[m * 1000 + 5] = 1;
  auto r = ScoreBundle(b, Options({"lira-offline"}));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->results[0].excluded, 1);
  EXPECT_TRUE(std::isnan(r->results[0].scores[5]));
  EXPECT_THAT(r->results[0].warnings.back(), HasSubstr("1 of 1000 audit points"));
  // Every reference trained on every point: nothing is scorable.
  for (int m = 1; m < 6; ++m)
    for (int i = 0; i < 1000; ++i) b.keep[m * 1000 + i] = 1;
  auto none = ScoreBundle(b, Options({"lira-offline"}));
  ASSERT_FALSE(none.ok());
  EXPECT_THAT(none.status().message(), HasSubstr("keep"));
}

}  // namespace
}  // namespace mia::audit
