#include "core/attacks/rmia.h"

#include <cmath>

#include "core/common/random.h"
#include "core/metrics/roc.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/attacks/test_util.h"

namespace mia::attacks {
namespace {

using testing::Keep;
using testing::Tensor;

// Target 0, references 1 and 2.
//   audit point 0: p_t = 0.8, ref 1 (IN) 0.6, ref 2 (OUT) 0.2.
//   audit point 1: both references OUT (no IN reference).
//   population:  p_t = {0.3, 0.5, 0.1, 0.4}, refs 1 and 2 = {0.3, 0.25, 0.2, 0.3}.
// Offline, equal counts give every audit point one OUT reference: point 1
// takes ref 1 or ref 2, both 0.5.
struct HandCase {
  SignalSet audit, pop;
  std::vector<uint8_t> keep;
  HandCase() {
    audit.prob = Tensor({{0.8, 0.5}, {0.6, 0.5}, {0.2, 0.5}});
    pop.prob = Tensor({{0.3, 0.5, 0.1, 0.4}, {0.3, 0.25, 0.2, 0.3}, {0.3, 0.25, 0.2, 0.3}});
    keep = Keep({{1, 0}, {1, 0}, {0, 0}});
  }
  AttackInput input() const { return {&audit, &pop, keep, 0, {1, 2}}; }
};

TEST(RmiaTest, OnlineHandWorked) {
  // Online Pr = mean of both references. Point 0: Pr = 0.4, ratio = 2.
  // Population Pr = {0.3, 0.25, 0.2, 0.3}, ratios {1, 2, 0.5, 1.333}.
  // gamma 1: ratios <= 2: all four: score 1. gamma 2: ratios <= 1: two: 0.5.
  HandCase c;
  RmiaOptions o;
  auto out = RmiaAttack(c.input(), o);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_DOUBLE_EQ(out->scores[0], 1.0);
  EXPECT_TRUE(std::isnan(out->scores[1]));  // no IN reference: not scored online
  EXPECT_EQ(out->excluded, 1);
  o.gamma = 2;
  EXPECT_DOUBLE_EQ(RmiaAttack(c.input(), o)->scores[0], 0.5);
}

TEST(RmiaTest, OfflineHandWorkedWithFixedA) {
  // a = 0.5: Pr(x) = (1.5 * mean_OUT + 0.5) / 2.
  // Point 0: mean_OUT = 0.2: Pr = 0.4, ratio 2. Point 1: mean_OUT = 0.5:
  // Pr = 0.625, ratio 0.8. Population (all references OUT): means
  // {0.3, 0.25, 0.2, 0.3}: Pr {0.475, 0.4375, 0.4, 0.475}: ratios
  // {0.631579, 1.142857, 0.25, 0.842105}.
  // gamma 1: point 0 beats all 4 (1.0); point 1 beats 0.631579 and 0.25 (0.5).
  // gamma 2: point 0: ratios <= 1: three (0.75).
  HandCase c;
  RmiaOptions o;
  o.online = false;
  o.a = 0.5;
  auto out = RmiaAttack(c.input(), o);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_DOUBLE_EQ(out->scores[0], 1.0);
  EXPECT_DOUBLE_EQ(out->scores[1], 0.5);
  EXPECT_EQ(out->chosen.at("a"), 0.5);
  o.gamma = 2;
  EXPECT_DOUBLE_EQ(RmiaAttack(c.input(), o)->scores[0], 0.75);
}

TEST(RmiaTest, FastPathEqualsDefinitionOnRandomRatios) {
  Rng rng(42);
  for (int trial = 0; trial < 20; ++trial) {
    const int n = 1 + static_cast<int>(rng.UniformInt(300));
    const int z = 1 + static_cast<int>(rng.UniformInt(300));
    std::vector<double> audit(n), pop(z);
    // Coarse values make many exact ties; zeros and NaN exercise the edges.
    for (double& v : audit) v = static_cast<double>(rng.UniformInt(20)) / 4;
    for (double& v : pop) v = static_cast<double>(rng.UniformInt(20)) / 4;
    audit[0] = std::nan("");
    for (double gamma : {1.0, 0.5, 2.0, 1.7}) {
      const auto fast = RmiaScoresFromRatios(audit, pop, gamma);
      const auto slow = RmiaScoresDefinitional(audit, pop, gamma);
      ASSERT_EQ(fast.size(), slow.size());
      EXPECT_TRUE(std::isnan(fast[0]));
      for (int i = 1; i < n; ++i) EXPECT_EQ(fast[i], slow[i]) << "trial " << trial << " i " << i;
    }
    for (double& v : audit) v = rng.Uniform01() * 3;
    for (double& v : pop) v = rng.Uniform01() * 3;
    const auto fast = RmiaScoresFromRatios(audit, pop, 1.3);
    const auto slow = RmiaScoresDefinitional(audit, pop, 1.3);
    for (int i = 0; i < n; ++i) EXPECT_EQ(fast[i], slow[i]);
  }
}

// RMIA straight from the definitions of ATTACKS.md, one point at a time, with
// the references of each audit point as ReferenceSelection equalizes them
// (online: the same number k of IN and OUT references).
std::vector<double> NaiveRmia(const testing::RandomGame& g, int target,
                              const std::vector<int>& refs, bool online, double a, double gamma) {
  const SignalTensor& p = g.audit.prob;
  const SignalTensor& pop = g.population.prob;
  const int64_t n = p.points;
  AttackInput input{&g.audit, &g.population, g.keep, target, refs};
  const ReferenceSelection sel = ReferenceSelection::Choose(input, online);
  const int k = online ? std::min(sel.in_count(), sel.out_count()) : sel.out_count();
  std::vector<double> scores(n);
  for (int64_t i = 0; i < n; ++i) {
    if (!sel.scorable(i)) {
      scores[i] = std::nan("");
      continue;
    }
    double sum = 0;
    for (int q = 0; q < p.queries; ++q) {
      double out = 0, in = 0;
      for (int j = 0; j < k; ++j) out += p.at(sel.out(i)[j], i, q);
      if (online) {
        for (int j = 0; j < k; ++j) in += p.at(sel.in(i)[j], i, q);
      }
      const double pr_i =
          std::max(online ? (in + out) / (2 * k) : ((1 + a) * (out / k) + (1 - a)) / 2, kMinPr);
      const double ratio_i = p.at(target, i, q) / pr_i;
      int64_t count = 0;
      for (int64_t z = 0; z < pop.points; ++z) {
        double all = 0;  // every reference is OUT for a population point
        for (int r : refs) all += pop.at(r, z, q);
        const double mean = all / static_cast<double>(refs.size());
        const double pr_z = std::max(online ? mean : ((1 + a) * mean + (1 - a)) / 2, kMinPr);
        count += ratio_i / (pop.at(target, z, q) / pr_z) >= gamma ? 1 : 0;
      }
      sum += static_cast<double>(count) / pop.points;
    }
    scores[i] = sum / p.queries;
  }
  return scores;
}

TEST(RmiaTest, AttackEqualsNaiveDefinition) {
  for (int queries : {1, 3}) {
    auto g = testing::MakeRandomGame(8, 150, 120, queries, 1.0, 5 + queries);
    const std::vector<int> refs = {1, 2, 3, 4, 5, 6, 7};
    for (bool online : {true, false}) {
      RmiaOptions o;
      o.online = online;
      o.a = 0.3;
      o.gamma = online ? 1.0 : 1.5;
      auto out = RmiaAttack({&g.audit, &g.population, g.keep, 0, refs}, o);
      ASSERT_TRUE(out.ok()) << out.status();
      const auto naive = NaiveRmia(g, 0, refs, online, 0.3, o.gamma);
      for (size_t i = 0; i < naive.size(); ++i) {
        if (std::isnan(naive[i])) {
          EXPECT_TRUE(std::isnan(out->scores[i])) << "i " << i;
        } else {
          EXPECT_NEAR(out->scores[i], naive[i], 1e-12) << "i " << i;
        }
      }
    }
  }
}

TEST(RmiaTest, TunedAIsTheArgmaxOfReferenceAuc) {
  auto g = testing::MakeRandomGame(6, 400, 200, 1, 1.5, 9);
  const std::vector<int> refs = {1, 2, 3, 4, 5};
  RmiaOptions tuned;
  tuned.online = false;
  auto out = RmiaAttack({&g.audit, &g.population, g.keep, 0, refs}, tuned);
  ASSERT_TRUE(out.ok()) << out.status();
  // By hand: attack reference 1 with references 2..5 at every a of the grid.
  double best_auc = -1, best_a = -1;
  for (double a : RmiaAGrid()) {
    RmiaOptions fixed = tuned;
    fixed.a = a;
    auto ref_out = RmiaAttack({&g.audit, &g.population, g.keep, 1, {2, 3, 4, 5}}, fixed);
    ASSERT_TRUE(ref_out.ok());
    std::vector<double> s;
    std::vector<uint8_t> y;
    for (int64_t i = 0; i < 400; ++i) {
      if (std::isnan(ref_out->scores[i])) continue;
      s.push_back(ref_out->scores[i]);
      y.push_back(g.keep[400 + i]);
    }
    const double auc = *metrics::Auc(s, y);
    if (auc > best_auc) {
      best_auc = auc;
      best_a = a;
    }
  }
  EXPECT_EQ(out->chosen.at("a"), best_a);
  // And the final scores are those of the fixed-a attack at the chosen a.
  RmiaOptions at_best = tuned;
  at_best.a = best_a;
  auto fixed_out = RmiaAttack({&g.audit, &g.population, g.keep, 0, refs}, at_best);
  for (size_t i = 0; i < out->scores.size(); ++i) {
    if (std::isnan(out->scores[i])) continue;
    EXPECT_EQ(out->scores[i], fixed_out->scores[i]);
  }
}

// Tuning a on several threads (AttackInput::threads) chooses the same a and
// gives the same scores, bit for bit, as on one.
TEST(RmiaTest, ThreadsGiveTheSameOutput) {
  auto g = testing::MakeRandomGame(6, 500, 300, 2, 1.5, 21);
  RmiaOptions tuned;
  tuned.online = false;
  AttackInput input{&g.audit, &g.population, g.keep, 0, {1, 2, 3, 4, 5}};
  auto serial = RmiaAttack(input, tuned);
  ASSERT_TRUE(serial.ok()) << serial.status();
  for (int threads : {2, 3, 16}) {
    input.threads = threads;
    auto parallel = RmiaAttack(input, tuned);
    ASSERT_TRUE(parallel.ok()) << parallel.status();
    EXPECT_EQ(parallel->chosen, serial->chosen) << threads;
    ASSERT_EQ(parallel->scores.size(), serial->scores.size());
    for (size_t i = 0; i < serial->scores.size(); ++i) {
      if (std::isnan(serial->scores[i])) {
        EXPECT_TRUE(std::isnan(parallel->scores[i])) << i;
      } else {
        EXPECT_EQ(parallel->scores[i], serial->scores[i]) << i;
      }
    }
  }
}

TEST(RmiaTest, UntunableAWarns) {
  HandCase c;
  RmiaOptions o;
  o.online = false;
  AttackInput in = c.input();
  in.references = {2};
  auto out = RmiaAttack(in, o);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->chosen.at("a"), o.untunable_a);
  ASSERT_EQ(out->warnings.size(), 1u);
}

TEST(RmiaTest, DetectsLeakage) {
  for (double leak : {2.0, 0.0}) {
    auto g = testing::MakeRandomGame(10, 2000, 1000, 1, leak, 21);
    const std::vector<int> refs = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    auto out = RmiaAttack({&g.audit, &g.population, g.keep, 0, refs}, RmiaOptions{});
    ASSERT_TRUE(out.ok());
    const double auc = testing::AucAgainst(out->scores, g.keep, 0);
    if (leak > 0) {
      EXPECT_GT(auc, 0.75);
    } else {
      EXPECT_NEAR(auc, 0.5, 0.05);
    }
  }
}

TEST(RmiaTest, RejectsBadGamma) {
  HandCase c;
  RmiaOptions o;
  o.gamma = 0;
  EXPECT_FALSE(RmiaAttack(c.input(), o).ok());
}

}  // namespace
}  // namespace mia::attacks
