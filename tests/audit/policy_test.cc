#include "core/audit/policy.h"

#include <cmath>
#include <fstream>
#include <limits>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "yaml-cpp/yaml.h"

namespace mia::audit {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Pair;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

PolicySpec Parse(const std::string& yaml, std::vector<PolicyProblem>* problems) {
  return ParsePolicy(YAML::Load(yaml), "audit.policy", problems);
}

PolicySpec ParseOk(const std::string& yaml) {
  std::vector<PolicyProblem> problems;
  PolicySpec p = Parse(yaml, &problems);
  for (const PolicyProblem& x : problems) ADD_FAILURE() << x.field << ": " << x.message;
  return p;
}

std::vector<std::string> Fields(const std::vector<PolicyProblem>& problems) {
  std::vector<std::string> out;
  for (const PolicyProblem& p : problems) out.push_back(p.field);
  return out;
}

AttackTargetResult Row(const std::string& attack, int target, double auc, metrics::Interval auc_ci,
                       std::vector<metrics::TprAtFpr> tprs, std::vector<metrics::Interval> tpr_ci,
                       double epsilon) {
  AttackTargetResult r;
  r.attack = attack;
  r.target = target;
  r.auc = auc;
  r.auc_ci = auc_ci;
  r.tpr_at_fpr = std::move(tprs);
  r.tpr_ci = std::move(tpr_ci);
  r.epsilon.epsilon = epsilon;
  return r;
}

// Worked by hand: one target, two attacks, FPRs 0.01 and 0.001.
//   rmia: AUC 0.60 [0.55, 0.65]; TPR 0.05 [0.03, 0.07] at 1%, unresolved at
//         0.1%; epsilon 0.5
//   lira: AUC 0.70 [0.62, 0.78]; TPR 0.08 [0.06, 0.10] at 1%, 0.02 [0.01,
//         0.04] at 0.1%; epsilon 1.2
AuditResult OneTarget() {
  AuditResult r;
  r.fprs = {0.01, 0.001};
  r.targets = {0};
  r.results.push_back(Row("rmia", 0, 0.60, {0.55, 0.65}, {{0.01, true, 0.05}, {0.001, false, 0}},
                          {{0.03, 0.07}, {kNaN, kNaN}}, 0.5));
  r.results.push_back(Row("lira", 0, 0.70, {0.62, 0.78}, {{0.01, true, 0.08}, {0.001, true, 0.02}},
                          {{0.06, 0.10}, {0.01, 0.04}}, 1.2));
  return r;
}

TEST(PolicyParseTest, EveryKey) {
  const PolicySpec p = ParseOk(R"(
use: upper_ci
max_auc: 0.6
max_tpr_at_fpr: {0.01: 0.1, 0.001: 0.02}
max_epsilon_lower_bound: 2
attacks:
  lira-offline: {max_auc: 0.55}
  rmia: {max_tpr_at_fpr: {1e-4: 0.01}}
)");
  EXPECT_TRUE(p.enabled);
  EXPECT_EQ(p.use, "upper_ci");
  EXPECT_EQ(p.all_attacks.max_auc, 0.6);
  // Sorted by FPR, whatever the order written.
  EXPECT_THAT(p.all_attacks.max_tpr_at_fpr, ElementsAre(Pair(0.001, 0.02), Pair(0.01, 0.1)));
  EXPECT_EQ(p.all_attacks.max_epsilon_lower_bound, 2);
  ASSERT_EQ(p.per_attack.size(), 2u);
  // Canonical names, sorted.
  EXPECT_EQ(p.per_attack[0].first, "lira-offline");
  EXPECT_EQ(p.per_attack[0].second.max_auc, 0.55);
  EXPECT_EQ(p.per_attack[1].first, "rmia");
  EXPECT_THAT(p.per_attack[1].second.max_tpr_at_fpr, ElementsAre(Pair(1e-4, 0.01)));
  EXPECT_THAT(p.Fprs(), ElementsAre(1e-4, 0.001, 0.01));
}

TEST(PolicyParseTest, DefaultsAndAbsence) {
  EXPECT_EQ(ParseOk("max_auc: 0.5").use, "estimate");
  std::vector<PolicyProblem> problems;
  EXPECT_FALSE(ParsePolicy(YAML::Node(), "audit.policy", &problems).enabled);
  EXPECT_THAT(problems, IsEmpty());
}

TEST(PolicyParseTest, EveryProblemNamedByItsField) {
  std::vector<PolicyProblem> problems;
  Parse(R"(
use: mean
max_auc: 1.5
max_tpr_at_fpr: {0.001: 2, abc: 0.1, 1e-3: 0.01, 2: 0.1}
max_epsilon_lower_bound: -1
colour: red
attacks:
  nope: {max_auc: 0.5}
  rmia: {max_auc: x, other: 1}
)",
        &problems);
  EXPECT_THAT(Fields(problems),
              ::testing::UnorderedElementsAre(
                  "audit.policy.use", "audit.policy.max_auc", "audit.policy.max_tpr_at_fpr[0.001]",
                  "audit.policy.max_tpr_at_fpr[abc]", "audit.policy.max_tpr_at_fpr[2]",
                  "audit.policy.max_epsilon_lower_bound", "audit.policy.colour",
                  "audit.policy.attacks.nope", "audit.policy.attacks.rmia.max_auc",
                  "audit.policy.attacks.rmia.other"));
  for (const PolicyProblem& p : problems) EXPECT_GT(p.line, 0) << p.field;
}

TEST(PolicyParseTest, SameFprTwiceAndLimits) {
  std::vector<PolicyProblem> problems;
  Parse("max_tpr_at_fpr: {0.001: 0.1, 1e-3: 0.2}", &problems);
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_EQ(problems[0].field, "audit.policy.max_tpr_at_fpr[1e-3]");
  EXPECT_THAT(problems[0].message, HasSubstr("the same FPR as [0.001]"));

  std::string many = "max_tpr_at_fpr: {";
  for (size_t i = 0; i <= kMaxPolicyFprs; ++i)
    many += absl::StrCat(i ? ", " : "", i * 0.001, ": 0.5");
  problems.clear();
  Parse(many + "}", &problems);
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_THAT(problems[0].message, HasSubstr("at most 64 entries"));

  problems.clear();
  Parse("use: estimate", &problems);
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_THAT(problems[0].message, HasSubstr("names no rule"));

  problems.clear();
  Parse("[1, 2]", &problems);
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_EQ(problems[0].field, "audit.policy");
}

TEST(PolicyParseTest, AgainstTheAudit) {
  const PolicySpec p = ParseOk("use: upper_ci\nattacks: {lira: {max_auc: 0.6}}");
  EXPECT_THAT(Fields(PolicyAuditProblems(p, {"rmia", "lira"}, 1000, "audit.policy")), IsEmpty());
  EXPECT_THAT(Fields(PolicyAuditProblems(p, {"rmia"}, 0, "audit.policy")),
              ElementsAre("audit.policy.attacks.lira", "audit.policy.use"));
}

TEST(PolicyParseTest, WithPolicyFprs) {
  const PolicySpec in_defaults = ParseOk("max_tpr_at_fpr: {0.001: 0.1}");
  EXPECT_THAT(WithPolicyFprs({}, in_defaults), IsEmpty());  // the defaults hold it
  const PolicySpec other = ParseOk("max_tpr_at_fpr: {0.005: 0.1, 0.01: 0.2}");
  std::vector<double> expected = metrics::DefaultFprs();
  expected.push_back(0.005);
  EXPECT_EQ(WithPolicyFprs({}, other), expected);
  EXPECT_THAT(WithPolicyFprs({0.1}, other), ElementsAre(0.1, 0.005, 0.01));
  EXPECT_THAT(WithPolicyFprs({0.01, 0.005}, other), ElementsAre(0.01, 0.005));
}

TEST(PolicyParseTest, LoadPolicyFile) {
  const std::string path = ::testing::TempDir() + "/policy_test.yaml";
  std::ofstream(path) << "max_auc: 0.6\nmax_tpr_at_fpr: {0.001: 3}\n";
  const absl::StatusOr<PolicySpec> bad = LoadPolicyFile(path);
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(),
              HasSubstr("max_tpr_at_fpr[0.001]: must be in [0, 1] (line 2)"));
  std::ofstream(path) << "max_auc: 0.6\n";
  ASSERT_TRUE(LoadPolicyFile(path).ok());
  EXPECT_EQ(LoadPolicyFile(path + ".missing").status().code(), absl::StatusCode::kNotFound);
}

TEST(PolicyJudgeTest, WorstAttackAndBoundary) {
  const AuditResult r = OneTarget();
  // The worst AUC is lira's 0.70: equal to the limit passes.
  absl::StatusOr<PolicyVerdict> v = Judge(r, ParseOk("max_auc: 0.7"));
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_TRUE(v->pass);
  ASSERT_EQ(v->rules.size(), 1u);
  EXPECT_EQ(v->rules[0].rule, "max_auc");
  EXPECT_EQ(v->rules[0].attack, "lira");
  EXPECT_EQ(v->rules[0].value, 0.7);
  EXPECT_EQ(v->rules[0].limit, 0.7);
  // Just below: FAIL.
  v = Judge(r, ParseOk("max_auc: 0.6999"));
  ASSERT_TRUE(v.ok());
  EXPECT_FALSE(v->pass);
  EXPECT_FALSE(v->rules[0].pass);
}

TEST(PolicyJudgeTest, EstimateAgainstUpperCi) {
  const AuditResult r = OneTarget();
  // Estimates: AUC 0.70 <= 0.75 passes; upper ends: 0.78 > 0.75 fails.
  EXPECT_TRUE(Judge(r, ParseOk("max_auc: 0.75"))->pass);
  absl::StatusOr<PolicyVerdict> v = Judge(r, ParseOk("use: upper_ci\nmax_auc: 0.75"));
  ASSERT_TRUE(v.ok());
  EXPECT_FALSE(v->pass);
  EXPECT_EQ(v->use, "upper_ci");
  EXPECT_EQ(v->rules[0].value, 0.78);
  // TPR at 1%: estimate 0.08, upper end 0.10.
  EXPECT_TRUE(Judge(r, ParseOk("max_tpr_at_fpr: {0.01: 0.09}"))->pass);
  v = Judge(r, ParseOk("use: upper_ci\nmax_tpr_at_fpr: {0.01: 0.09}"));
  EXPECT_FALSE(v->pass);
  EXPECT_EQ(v->rules[0].rule, "max_tpr_at_fpr[0.01]");
  EXPECT_EQ(v->rules[0].value, 0.10);
  // The epsilon bound is judged as it is, even with upper_ci.
  v = Judge(r, ParseOk("use: upper_ci\nmax_epsilon_lower_bound: 1.2"));
  EXPECT_TRUE(v->pass);
  EXPECT_EQ(v->rules[0].value, 1.2);
  EXPECT_EQ(v->rules[0].attack, "lira");
}

TEST(PolicyJudgeTest, PerAttackRules) {
  const AuditResult r = OneTarget();
  // rmia alone: its AUC 0.60 passes 0.65 (the worst attack, lira, would not).
  absl::StatusOr<PolicyVerdict> v =
      Judge(r, ParseOk("attacks: {rmia: {max_auc: 0.65, max_epsilon_lower_bound: 0.4}}"));
  ASSERT_TRUE(v.ok()) << v.status();
  ASSERT_EQ(v->rules.size(), 2u);
  EXPECT_EQ(v->rules[0].rule, "attacks.rmia.max_auc");
  EXPECT_TRUE(v->rules[0].pass);
  EXPECT_EQ(v->rules[1].rule, "attacks.rmia.max_epsilon_lower_bound");
  EXPECT_FALSE(v->rules[1].pass);  // 0.5 > 0.4
  EXPECT_FALSE(v->pass);
  // An attack the result does not have is an error naming the rule.
  v = Judge(r, ParseOk("attacks: {loss: {max_auc: 0.6}}"));
  ASSERT_FALSE(v.ok());
  EXPECT_THAT(v.status().message(), HasSubstr("attacks.loss"));
}

TEST(PolicyJudgeTest, UnresolvedFailsAndMissingFprIsAnError) {
  const AuditResult r = OneTarget();
  // rmia's TPR at 0.1% is unresolved: the worst attack there, and FAIL.
  absl::StatusOr<PolicyVerdict> v = Judge(r, ParseOk("max_tpr_at_fpr: {0.001: 0.5}"));
  ASSERT_TRUE(v.ok());
  EXPECT_FALSE(v->pass);
  EXPECT_EQ(v->rules[0].attack, "rmia");
  EXPECT_TRUE(std::isnan(v->rules[0].value));
  EXPECT_EQ(v->rules[0].note, "unresolved");
  // lira alone is resolved there and passes.
  EXPECT_TRUE(Judge(r, ParseOk("attacks: {lira: {max_tpr_at_fpr: {0.001: 0.02}}}"))->pass);
  // An FPR the result was not scored at.
  v = Judge(r, ParseOk("max_tpr_at_fpr: {0.1: 0.5}"));
  ASSERT_FALSE(v.ok());
  EXPECT_THAT(v.status().message(), HasSubstr("max_tpr_at_fpr[0.1]"));
  // upper_ci on a result without intervals fails with a note.
  AuditResult no_ci = r;
  for (AttackTargetResult& x : no_ci.results) x.auc_ci = {kNaN, kNaN};
  v = Judge(no_ci, ParseOk("use: upper_ci\nmax_auc: 1"));
  EXPECT_FALSE(v->pass);
  EXPECT_EQ(v->rules[0].note, "no interval");
}

TEST(PolicyJudgeTest, EveryTargetMustPass) {
  AuditResult r;
  r.fprs = {0.01};
  r.targets = {0, 1};
  r.results.push_back(Row("rmia", 0, 0.55, {0.5, 0.6}, {{0.01, true, 0.02}}, {{0, 0.04}}, 0.1));
  r.results.push_back(Row("rmia", 1, 0.65, {0.6, 0.7}, {{0.01, true, 0.03}}, {{0, 0.05}}, 0.2));
  // The mean AUC (0.60) is under 0.62, but target 1's is not.
  absl::StatusOr<PolicyVerdict> v = Judge(r, ParseOk("max_auc: 0.62"));
  ASSERT_TRUE(v.ok());
  ASSERT_EQ(v->rules.size(), 2u);
  EXPECT_EQ(v->rules[0].target, 0);
  EXPECT_TRUE(v->rules[0].pass);
  EXPECT_EQ(v->rules[1].target, 1);
  EXPECT_FALSE(v->rules[1].pass);
  EXPECT_FALSE(v->pass);
  EXPECT_TRUE(Judge(r, ParseOk("max_auc: 0.65"))->pass);
}

TEST(PolicyJudgeTest, NoLeakNoFail) {
  // A model that leaks nothing (AUC 0.5, TPR = FPR, epsilon 0) passes a
  // strict policy at its own chance level.
  AuditResult r;
  r.fprs = {0.1};
  r.targets = {0};
  r.results.push_back(Row("rmia", 0, 0.5, {0.45, 0.55}, {{0.1, true, 0.1}}, {{0.07, 0.13}}, 0));
  EXPECT_TRUE(Judge(r, ParseOk("max_auc: 0.55\nmax_tpr_at_fpr: {0.1: 0.1}\n"
                               "max_epsilon_lower_bound: 0"))
                  ->pass);
}

}  // namespace
}  // namespace mia::audit
