#include "core/audit/scoring.h"

#include <cmath>

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
  Bundle b = Synthetic(1.0, 4);
  // Point 5: every model trained on it, so no OUT reference for target 0.
  for (int m = 0; m < 4; ++m) b.keep[m * 1000 + 5] = 1;
  auto r = ScoreBundle(b, Options({"lira-offline"}));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->results[0].excluded, 1);
  EXPECT_TRUE(std::isnan(r->results[0].scores[5]));
  EXPECT_THAT(r->results[0].warnings.back(), HasSubstr("1 of 1000 audit points"));
  // Every reference trained on every point: nothing is scorable.
  for (int m = 1; m < 4; ++m)
    for (int i = 0; i < 1000; ++i) b.keep[m * 1000 + i] = 1;
  auto none = ScoreBundle(b, Options({"lira-offline"}));
  ASSERT_FALSE(none.ok());
  EXPECT_THAT(none.status().message(), HasSubstr("keep"));
}

}  // namespace
}  // namespace mia::audit
