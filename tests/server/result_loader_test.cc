#include "server/result_loader.h"
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "core/report/report.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace mia::server {
namespace {

namespace fs = std::filesystem;

std::string TempDir(const std::string& name) {
  const char* env = std::getenv("MIA_TEST_TMPDIR");
  const fs::path dir =
      fs::path(env != nullptr ? env : ::testing::TempDir()) / "result_loader_test" / name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir.string();
}

// Two attacks whose names need CSV quoting (a comma, quotes, a line break),
// written by the report writer and read back with a curve for each.
TEST(LoadReportResultTest, AttackNamesNeedingQuotesKeepTheirCurves) {
  const std::string dir = TempDir("quoted");
  audit::AuditResult r;
  r.row_ids = {10, 11, 12, 13};
  r.targets = {0};
  r.membership = {{1, 0, 1, 0}};
  for (const char* name : {"rmia:gamma=2,offline", "say \"hi\"\nnow"}) {
    audit::AttackTargetResult a;
    a.attack = name;
    a.scores = {0.9, 0.1, 0.8, 0.2};
    a.members = 2;
    a.non_members = 2;
    r.results.push_back(a);
  }
  std::ofstream(dir + "/result.json") << report::ResultJson(r);
  std::ofstream(dir + "/scores.csv") << report::ScoresCsv(r);

  absl::StatusOr<audit::AuditResult> back = LoadReportResult(dir);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_THAT(back->row_ids, ::testing::ElementsAre(10, 11, 12, 13));
  ASSERT_EQ(back->results.size(), 2u);
  EXPECT_EQ(back->results[1].attack, "say \"hi\"\nnow");
  for (const audit::AttackTargetResult& a : back->results) {
    EXPECT_THAT(a.roc.fpr, ::testing::Not(::testing::IsEmpty())) << a.attack;
  }
}

// A range audit's section comes back from result.json (GetAudit serves it).
TEST(LoadReportResultTest, RamiaSectionRoundTrips) {
  const std::string dir = TempDir("ramia");
  audit::AuditResult r;
  r.row_ids = {10, 31000};
  r.targets = {0};
  r.membership = {{1, 0}};
  audit::AttackTargetResult a;
  a.attack = "rmia-offline@range";
  a.scores = {0.9, 0.1};
  a.members = 1;
  a.non_members = 1;
  r.results.push_back(a);
  audit::RamiaSummary s;
  s.range_function = "missing_values";
  s.sample_size = 10;
  s.trim = 0.2;
  s.trimmed_each_end = 2;
  s.num_missing_feats = 10;
  s.ranges = 2;
  s.member_ranges = 1;
  s.non_member_ranges = 1;
  s.population_points = 7;
  r.ramia = s;
  std::ofstream(dir + "/result.json") << report::ResultJson(r);
  std::ofstream(dir + "/scores.csv") << report::ScoresCsv(r);
  absl::StatusOr<audit::AuditResult> back = LoadReportResult(dir);
  ASSERT_TRUE(back.ok()) << back.status();
  ASSERT_TRUE(back->ramia.has_value());
  EXPECT_EQ(back->ramia->range_function, "missing_values");
  EXPECT_EQ(back->ramia->sample_size, 10);
  EXPECT_EQ(back->ramia->trim, 0.2);
  EXPECT_EQ(back->ramia->trimmed_each_end, 2);
  EXPECT_EQ(back->ramia->num_missing_feats, 10);
  EXPECT_EQ(back->ramia->ranges, 2);
  EXPECT_EQ(back->ramia->member_ranges, 1);
  EXPECT_EQ(back->ramia->non_member_ranges, 1);
  EXPECT_EQ(back->ramia->population_points, 7);
  // Other audits have none.
  r.ramia.reset();
  std::ofstream(dir + "/result.json") << report::ResultJson(r);
  back = LoadReportResult(dir);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_FALSE(back->ramia.has_value());
}

// A DP-SGD target's guarantee survives result.json; the checks are derived
// again from it and the bounds.
TEST(LoadReportResultTest, DpGuaranteesRoundTrip) {
  const std::string dir = TempDir("dp");
  audit::AuditResult r;
  r.row_ids = {10, 11, 12, 13};
  r.targets = {0};
  r.membership = {{1, 0, 1, 0}};
  audit::AttackTargetResult a;
  a.attack = "rmia";
  a.scores = {0.9, 0.1, 0.8, 0.2};
  a.members = 2;
  a.non_members = 2;
  a.epsilon.epsilon = 0.7;
  a.epsilon.delta = 1e-5;
  r.results.push_back(a);
  r.dp.push_back({0, 0.5, 1e-5, 20, 1.1, 1.0, 0.01, 6000});
  r.dp_checks.push_back({"rmia", 0, 0.7, 1e-5, 0.5, 1e-5, true});
  std::ofstream(dir + "/result.json") << report::ResultJson(r);
  std::ofstream(dir + "/scores.csv") << report::ScoresCsv(r);

  absl::StatusOr<audit::AuditResult> back = LoadReportResult(dir);
  ASSERT_TRUE(back.ok()) << back.status();
  ASSERT_EQ(back->dp.size(), 1u);
  EXPECT_EQ(back->dp[0].epsilon, 0.5);
  EXPECT_EQ(back->dp[0].order, 20);
  EXPECT_EQ(back->dp[0].steps, 6000);
  EXPECT_EQ(back->dp[0].sample_rate, 0.01);
  ASSERT_EQ(back->dp_checks.size(), 1u);
  EXPECT_TRUE(back->dp_checks[0].exceeded);
  EXPECT_EQ(back->dp_checks[0].lower_bound, 0.7);
}

TEST(LoadReportResultTest, MalformedScoresNameLineAndColumn) {
  const std::string dir = TempDir("malformed");
  audit::AuditResult r;
  std::ofstream(dir + "/result.json") << report::ResultJson(r);
  std::ofstream(dir + "/scores.csv") << "row_id,target,member,a\n1,0,1,0.5\n2,0,\"1,0.5\n";
  absl::StatusOr<audit::AuditResult> back = LoadReportResult(dir);
  EXPECT_EQ(back.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(back.status().message()),
              ::testing::HasSubstr("scores.csv: line 3, column 5"));

  std::ofstream(dir + "/scores.csv") << "row_id,target,member,a\n1,0,2,0.5\n";
  back = LoadReportResult(dir);
  EXPECT_EQ(back.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(back.status().message()),
              ::testing::HasSubstr("scores.csv: line 2, field 3"));
}

}  // namespace

// The DP audit's table survives result.json, so the API's AuditResult has it.
TEST(LoadReportResultTest, DpAuditTableRoundTrips) {
  const std::string dir = TempDir("dp_audit");
  audit::AuditResult r;
  r.row_ids = {10, 11, 12, 13};
  r.targets = {0};
  r.membership = {{1, 0, 1, 0}};
  audit::AttackTargetResult a;
  a.attack = "loss";
  a.scores = {0.9, 0.1, 0.8, 0.2};
  a.members = 2;
  a.non_members = 2;
  r.results.push_back(a);
  audit::DpAuditResult d;
  d.canary_dataset = "natural";
  d.training_alg = "nondp";
  d.canaries = 4;
  d.included = 2;
  d.delta = 0;
  d.beta = 0.05;
  d.note = "optimistic";
  audit::DpAuditAttackResult t;
  t.attack = "loss";
  t.entries = {{1, 1, 2, 2, 0.25, false}, {2, 1, 3, 3, 0.5, true}};
  t.best = 0;
  d.attacks.push_back(t);
  r.dp_audit = d;
  std::ofstream(dir + "/result.json") << report::ResultJson(r);
  std::ofstream(dir + "/scores.csv") << report::ScoresCsv(r);
  absl::StatusOr<audit::AuditResult> back = LoadReportResult(dir);
  ASSERT_TRUE(back.ok()) << back.status();
  ASSERT_TRUE(back->dp_audit.has_value());
  EXPECT_EQ(nlohmann::json::parse(report::ResultJson(*back))["dp_audit"],
            nlohmann::json::parse(report::ResultJson(r))["dp_audit"]);
  EXPECT_EQ(back->dp_audit->attacks[0].entries[1].epsilon, 0.5);
  EXPECT_TRUE(back->dp_audit->attacks[0].entries[1].chosen_after_looking);
}



// A DUCI report (result.json with `duci`, no scores.csv) reads back whole,
// null figures as NaN.
TEST(LoadReportResultTest, DuciRoundTrips) {
  const std::string dir = TempDir("duci");
  audit::AuditResult r;
  r.targets = {0, 1};
  audit::DuciResult d;
  d.candidate_points = 40;
  d.references = {2, 3, 4, 5};
  audit::DuciAttackResult a;
  a.attack = "rmia";
  a.threshold = 0.5;
  a.tpr = 0.75;
  a.fpr = 0.25;
  a.reference_members = 80;
  a.reference_non_members = 80;
  a.signal = true;
  a.mean_error = 0.125;
  a.mean_error_clipped = 0.0625;
  a.warnings = {"w"};
  a.targets.push_back({0, 0.0, 40, 0, 8, -0.125, 0.0, 0.125, 0.0});
  a.targets.push_back({1, 1.0, 39, 1, 30, std::nan(""), std::nan(""), std::nan(""),
                       std::nan("")});
  d.attacks.push_back(a);
  r.duci = d;
  std::ofstream(dir + "/result.json") << report::ResultJson(r);

  absl::StatusOr<audit::AuditResult> back = LoadReportResult(dir);
  ASSERT_TRUE(back.ok()) << back.status();
  ASSERT_TRUE(back->duci.has_value());
  EXPECT_EQ(back->duci->candidate_points, 40);
  EXPECT_THAT(back->duci->references, ::testing::ElementsAre(2, 3, 4, 5));
  ASSERT_EQ(back->duci->attacks.size(), 1u);
  const audit::DuciAttackResult& b = back->duci->attacks[0];
  EXPECT_EQ(b.attack, "rmia");
  EXPECT_EQ(b.threshold, 0.5);
  EXPECT_EQ(b.tpr, 0.75);
  EXPECT_EQ(b.fpr, 0.25);
  EXPECT_EQ(b.reference_members, 80);
  EXPECT_EQ(b.reference_non_members, 80);
  EXPECT_TRUE(b.signal);
  EXPECT_EQ(b.mean_error, 0.125);
  EXPECT_EQ(b.mean_error_clipped, 0.0625);
  EXPECT_THAT(b.warnings, ::testing::ElementsAre("w"));
  ASSERT_EQ(b.targets.size(), 2u);
  EXPECT_EQ(b.targets[0].estimate, -0.125);
  EXPECT_EQ(b.targets[0].predicted_members, 8);
  EXPECT_EQ(b.targets[1].points, 39);
  EXPECT_EQ(b.targets[1].excluded, 1);
  EXPECT_EQ(b.targets[1].true_fraction, 1.0);
  EXPECT_TRUE(std::isnan(b.targets[1].estimate));
  EXPECT_TRUE(std::isnan(b.targets[1].error_clipped));
}
}  // namespace mia::server
