#include "core/report/report.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "core/audit/result.h"
#include "core/common/random.h"
#include "core/metrics/roc.h"
#include "core/report/svg_plot.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace mia::report {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();
// Registry names can carry options; this one needs CSV quoting and XML escaping.
constexpr char kAttackA[] = "rmia:gamma=2,offline<a>";
constexpr char kAttackB[] = "lira-offline";

metrics::RocCurve SmallRoc() {
  metrics::RocCurve roc;
  roc.fpr = {0, 1e-3, 0.5, 1};
  roc.tpr = {0, 0.1, 0.5, 1};
  roc.thresholds = {kInf, 2, 1, 0};
  roc.positives = 10;
  roc.negatives = 1000;  // FPR 1e-3 is the smallest resolvable
  return roc;
}

audit::AttackTargetResult MakeAttackTarget(const std::string& attack, int target, double auc) {
  audit::AttackTargetResult r;
  r.attack = attack;
  r.target = target;
  r.members = 3;
  r.non_members = 3;
  r.auc = auc;
  r.auc_ci = {0.6, 0.9};
  r.tpr_at_fpr = {{0.1, true, 0.5}, {0.01, false, 0.25}, {0.001, false, 0.0}, {0.0, true, 0.25}};
  r.tpr_ci = {{0.2, 0.8}, {0.0, 0.5}, {0.0, 0.5}, {0.0, 0.5}};
  r.epsilon = {0.42, 1e-5, 0.3, 0.6, 0.2, 3, 3};
  r.roc = SmallRoc();
  return r;
}

// 2 attacks x 2 targets (model indices 0 and 3), 6 audit points, one excluded
// (NaN) point, unresolved TPRs, a NaN interval and an infinite threshold.
audit::AuditResult MakeResult() {
  audit::AuditResult result;
  result.tool_version = "0.1.0-test";
  result.spec_json = R"({"seed": 7, "epsilon": {"delta": 1e-05}})";
  result.fprs = {0.1, 0.01, 0.001, 0.0};
  result.row_ids = {10, 11, 12, 13, 14, 15};
  result.targets = {0, 3};
  result.membership = {{1, 0, 1, 0, 1, 0}, {0, 1, 1, 0, 0, 1}};

  audit::AttackTargetResult a0 = MakeAttackTarget(kAttackA, 0, 0.75);
  a0.scores = {0.1, 1.0 / 3.0, kNaN, -2.5e-300, 1e300, 0.7};
  a0.members = 2;
  a0.excluded = 1;
  a0.warnings = {"point 12 has no OUT reference"};
  audit::AttackTargetResult a3 = MakeAttackTarget(kAttackA, 3, 0.625);
  a3.scores = {0.2, 0.3, 0.4, 0.5, 0.6, std::nextafter(1.0, 2.0)};
  audit::AttackTargetResult b0 = MakeAttackTarget(kAttackB, 0, 0.5);
  b0.scores = {-1, -2, -3, -4, -5, -6};
  b0.chosen = {{"a", 0.3}};
  b0.epsilon.threshold = kInf;  // nobody flagged: not a JSON number
  audit::AttackTargetResult b3 = MakeAttackTarget(kAttackB, 3, 0.55);
  b3.scores = {1, 2, 3, 4, 5, 6};
  b3.auc_ci = {kNaN, kNaN};
  result.results = {a0, a3, b0, b3};

  audit::AttackSummary sa;
  sa.attack = kAttackA;
  sa.auc = {2, 0.6875, 0.0883883, 0.625, 0.75};
  sa.tpr_at_fpr = {{2, 0.5, 0, 0.5, 0.5}, {0, 0, 0, 0, 0}, {0, 0, 0, 0, 0}, {2, 0.25, 0, 0.25, 0.25}};
  audit::AttackSummary sb = sa;
  sb.attack = kAttackB;
  sb.auc = {2, 0.525, kNaN, 0.5, 0.55};
  result.summaries = {sa, sb};
  result.warnings = {"fewer than 32 references per side: fixed variance"};
  result.timings = {{"load", 0.0123}, {"attack", 1.5}};
  result.seed = 77;
  result.bootstrap_resamples = 1000;
  return result;
}

size_t Count(const std::string& text, const std::string& needle) {
  size_t count = 0;
  for (size_t pos = text.find(needle); pos != std::string::npos;
       pos = text.find(needle, pos + needle.size())) {
    ++count;
  }
  return count;
}

// A folder of its own under MIA_TEST_TMPDIR (set by ctest) or gtest's
// TempDir, removed with everything in it when the test ends.
class TestDir {
 public:
  TestDir() {
    const char* env = std::getenv("MIA_TEST_TMPDIR");
    const std::filesystem::path root =
        env != nullptr && *env != '\0' ? env : ::testing::TempDir();
    const testing::TestInfo* info = testing::UnitTest::GetInstance()->current_test_info();
    root_ = root / ("report_test_" + std::string(info->name()) + "_" + std::to_string(getpid()));
    std::filesystem::remove_all(root_);
    std::filesystem::create_directories(root_);
  }
  ~TestDir() {
    std::error_code ignored;
    std::filesystem::remove_all(root_, ignored);
  }
  std::filesystem::path operator/(const std::string& name) const { return root_ / name; }

 private:
  std::filesystem::path root_;
};

std::string ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

// Minimal RFC 4180 reader: quoted fields, doubled quotes, LF or CRLF records.
std::vector<std::vector<std::string>> ParseCsv(const std::string& text) {
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> row;
  std::string field;
  bool quoted = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (quoted) {
      if (c == '"' && i + 1 < text.size() && text[i + 1] == '"') {
        field += '"';
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        field += c;
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      row.push_back(field);
      field.clear();
    } else if (c == '\n' || c == '\r') {
      if (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n') ++i;
      row.push_back(field);
      field.clear();
      rows.push_back(row);
      row.clear();
    } else {
      field += c;
    }
  }
  EXPECT_FALSE(quoted) << "unterminated quoted field";
  if (!field.empty() || !row.empty()) {
    row.push_back(field);
    rows.push_back(row);
  }
  return rows;
}

// Checks that tags nest, the root is <svg>, every '&' starts an entity and no
// '>' or '<' appears in text; returns "" or what is wrong.
std::string XmlProblems(const std::string& text) {
  std::vector<std::string> stack;
  size_t i = 0;
  bool seen_root = false;
  while (i < text.size()) {
    const char c = text[i];
    if (c == '&') {
      static const char* kEntities[] = {"&amp;", "&lt;", "&gt;", "&quot;", "&apos;", "&#"};
      bool ok = false;
      for (const char* e : kEntities) ok |= text.compare(i, std::strlen(e), e) == 0;
      if (!ok) return "bare & at " + std::to_string(i);
      ++i;
      continue;
    }
    if (c == '>') return "bare > at " + std::to_string(i);
    if (c != '<') {
      ++i;
      continue;
    }
    // A tag: find its end outside attribute quotes.
    size_t end = i + 1;
    char quote = 0;
    for (; end < text.size(); ++end) {
      if (quote != 0) {
        if (text[end] == quote) quote = 0;
        if (text[end] == '<') return "'<' inside attribute at " + std::to_string(end);
      } else if (text[end] == '"' || text[end] == '\'') {
        quote = text[end];
      } else if (text[end] == '>') {
        break;
      } else if (text[end] == '<') {
        return "'<' inside tag at " + std::to_string(end);
      }
    }
    if (end >= text.size()) return "unterminated tag at " + std::to_string(i);
    std::string tag = text.substr(i + 1, end - i - 1);
    i = end + 1;
    if (!tag.empty() && tag[0] == '/') {
      const std::string name = tag.substr(1);
      if (stack.empty() || stack.back() != name) return "unbalanced </" + name + ">";
      stack.pop_back();
      continue;
    }
    const bool self_closing = !tag.empty() && tag.back() == '/';
    const std::string name = tag.substr(0, tag.find_first_of(" \t\n/"));
    if (stack.empty()) {
      if (seen_root) return "content after the root element";
      if (name != "svg") return "root element is <" + name + ">";
      seen_root = true;
    }
    if (!self_closing) stack.push_back(name);
  }
  if (!stack.empty()) return "unclosed <" + stack.back() + ">";
  return seen_root ? "" : "no root element";
}

// The "x,y" pairs of every <polyline points="..."> in order.
std::vector<std::vector<std::pair<double, double>>> Polylines(const std::string& svg) {
  std::vector<std::vector<std::pair<double, double>>> lines;
  for (size_t pos = svg.find("<polyline"); pos != std::string::npos;
       pos = svg.find("<polyline", pos + 1)) {
    const size_t start = svg.find("points=\"", pos) + 8;
    const size_t end = svg.find('"', start);
    std::istringstream in(svg.substr(start, end - start));
    std::vector<std::pair<double, double>> points;
    std::string pair;
    while (in >> pair) {
      const size_t comma = pair.find(',');
      points.emplace_back(std::stod(pair.substr(0, comma)), std::stod(pair.substr(comma + 1)));
    }
    lines.push_back(points);
  }
  return lines;
}

double Attribute(const std::string& svg, size_t element, const std::string& name) {
  const size_t start = svg.find(" " + name + "=\"", element) + name.size() + 3;
  return std::stod(svg.substr(start, svg.find('"', start) - start));
}

TEST(ResultJsonTest, ParsesWithSchemaAndRoundTripsValues) {
  const audit::AuditResult result = MakeResult();
  const nlohmann::json j = nlohmann::json::parse(ResultJson(result));
  EXPECT_EQ(j.at("schema"), "mia.result");
  EXPECT_EQ(j.at("schema_version"), audit::kResultSchemaVersion);
  EXPECT_EQ(j.at("tool_version"), "0.1.0-test");
  EXPECT_EQ(j.at("spec").at("seed"), 7);
  // The scoring seed and settings that reproduce the intervals.
  EXPECT_EQ(j.at("scoring").at("seed"), 77);
  EXPECT_EQ(j.at("scoring").at("bootstrap_resamples"), 1000);
  EXPECT_EQ(j.at("scoring").at("confidence").get<double>(), 0.95);
  EXPECT_EQ(j.at("fprs").get<std::vector<double>>(), result.fprs);
  EXPECT_EQ(j.at("targets").get<std::vector<int>>(), result.targets);

  const nlohmann::json& results = j.at("results");
  ASSERT_EQ(results.size(), 4u);
  const nlohmann::json& a0 = results[0];
  EXPECT_EQ(a0.at("attack"), kAttackA);
  EXPECT_EQ(a0.at("target"), 0);
  EXPECT_EQ(a0.at("counts").at("members"), 2);
  EXPECT_EQ(a0.at("counts").at("non_members"), 3);
  EXPECT_EQ(a0.at("counts").at("excluded"), 1);
  EXPECT_EQ(a0.at("auc").get<double>(), 0.75);
  EXPECT_EQ(a0.at("auc_ci"), nlohmann::json::array({0.6, 0.9}));
  EXPECT_EQ(a0.at("warnings"), nlohmann::json::array({"point 12 has no OUT reference"}));

  const nlohmann::json& tprs = a0.at("tpr_at_fpr");
  ASSERT_EQ(tprs.size(), 4u);
  EXPECT_EQ(tprs[0].at("fpr").get<double>(), 0.1);
  EXPECT_TRUE(tprs[0].at("resolved").get<bool>());
  EXPECT_EQ(tprs[0].at("tpr").get<double>(), 0.5);
  EXPECT_EQ(tprs[0].at("ci"), nlohmann::json::array({0.2, 0.8}));
  // Unresolved: no number, no interval, even though the struct holds some.
  EXPECT_EQ(tprs[1].at("fpr").get<double>(), 0.01);
  EXPECT_FALSE(tprs[1].at("resolved").get<bool>());
  EXPECT_TRUE(tprs[1].at("tpr").is_null());
  EXPECT_TRUE(tprs[1].at("ci").is_null());
  EXPECT_EQ(tprs[3].at("tpr").get<double>(), 0.25);

  const nlohmann::json& eps = a0.at("epsilon");
  EXPECT_EQ(eps.at("value").get<double>(), 0.42);
  EXPECT_EQ(eps.at("delta").get<double>(), 1e-5);
  EXPECT_EQ(eps.at("threshold").get<double>(), 0.3);
  EXPECT_EQ(eps.at("fpr_upper").get<double>(), 0.6);
  EXPECT_EQ(eps.at("fnr_upper").get<double>(), 0.2);
  EXPECT_EQ(eps.at("selection_points"), 3);
  EXPECT_EQ(eps.at("evaluation_points"), 3);
  EXPECT_TRUE(results[2].at("epsilon").at("threshold").is_null());  // +infinity
  EXPECT_EQ(results[2].at("chosen").at("a").get<double>(), 0.3);
  EXPECT_TRUE(results[0].at("chosen").is_object());
  EXPECT_TRUE(results[3].at("auc_ci").is_null());  // NaN: no interval at all

  // Per-point scores and full ROCs stay out of result.json.
  for (const nlohmann::json& r : results) {
    EXPECT_FALSE(r.contains("scores"));
    EXPECT_FALSE(r.contains("roc"));
  }

  const nlohmann::json& summaries = j.at("summaries");
  ASSERT_EQ(summaries.size(), 2u);
  EXPECT_EQ(summaries[0].at("attack"), kAttackA);
  EXPECT_EQ(summaries[0].at("auc").at("count"), 2);
  EXPECT_EQ(summaries[0].at("auc").at("mean").get<double>(), 0.6875);
  EXPECT_EQ(summaries[0].at("auc").at("stddev").get<double>(), 0.0883883);
  EXPECT_TRUE(summaries[1].at("auc").at("stddev").is_null());
  ASSERT_EQ(summaries[0].at("tpr_at_fpr").size(), 4u);
  EXPECT_EQ(summaries[0].at("tpr_at_fpr")[1].at("fpr").get<double>(), 0.01);
  EXPECT_EQ(summaries[0].at("tpr_at_fpr")[1].at("count"), 0);
  EXPECT_EQ(summaries[0].at("tpr_at_fpr")[3].at("mean").get<double>(), 0.25);

  EXPECT_EQ(j.at("warnings").size(), 1u);
  ASSERT_EQ(j.at("timings").size(), 2u);
  EXPECT_EQ(j.at("timings")[0].at("stage"), "load");
  EXPECT_EQ(j.at("timings")[0].at("seconds").get<double>(), 0.0123);
}

audit::PolicyVerdict HandVerdict() {
  audit::PolicyVerdict v;
  v.pass = false;
  v.use = "estimate";
  v.rules.push_back({"max_auc", "rmia", 0, 0.75, 0.8, true, ""});
  v.rules.push_back({"max_tpr_at_fpr[0.01]", "lira|x", 1, std::nan(""), 0.1, false, "unresolved"});
  return v;
}

TEST(ResultJsonTest, PolicyVerdictWrittenAndReadBack) {
  audit::AuditResult result = MakeResult();
  // No policy: no object.
  EXPECT_FALSE(nlohmann::json::parse(ResultJson(result)).contains("policy"));
  result.policy = HandVerdict();
  const std::string text = ResultJson(result);
  const nlohmann::json j = nlohmann::json::parse(text);
  const nlohmann::json& p = j.at("policy");
  EXPECT_EQ(p.at("verdict"), "FAIL");
  EXPECT_EQ(p.at("use"), "estimate");
  EXPECT_EQ(p.at("targets"), "each");
  ASSERT_EQ(p.at("rules").size(), 2u);
  EXPECT_EQ(p.at("rules")[0].at("rule"), "max_auc");
  EXPECT_EQ(p.at("rules")[0].at("value").get<double>(), 0.75);
  EXPECT_TRUE(p.at("rules")[0].at("pass").get<bool>());
  EXPECT_FALSE(p.at("rules")[0].contains("note"));
  EXPECT_TRUE(p.at("rules")[1].at("value").is_null());
  EXPECT_EQ(p.at("rules")[1].at("note"), "unresolved");

  // ParseResultJson reads back what ResultJson wrote.
  absl::StatusOr<audit::AuditResult> back = ParseResultJson(text, "result.json");
  ASSERT_TRUE(back.ok()) << back.status();
  ASSERT_TRUE(back->policy.has_value());
  EXPECT_FALSE(back->policy->pass);
  ASSERT_EQ(back->policy->rules.size(), 2u);
  EXPECT_EQ(back->policy->rules[1].attack, "lira|x");
  EXPECT_EQ(back->policy->rules[1].target, 1);
  EXPECT_TRUE(std::isnan(back->policy->rules[1].value));
  EXPECT_EQ(back->policy->rules[1].limit, 0.1);
  EXPECT_EQ(back->results.size(), result.results.size());
  EXPECT_EQ(back->results[0].auc, result.results[0].auc);
  EXPECT_EQ(back->fprs, result.fprs);

  EXPECT_EQ(ParseResultJson("{}", "x.json").status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(ParseResultJson("not json", "x.json").status().code(), absl::StatusCode::kDataLoss);
}

TEST(SummaryMarkdownTest, VerdictSectionAtTheTop) {
  audit::AuditResult result = MakeResult();
  EXPECT_THAT(SummaryMarkdown(result), Not(HasSubstr("Privacy policy")));
  result.policy = HandVerdict();
  const std::string md = SummaryMarkdown(result);
  const size_t verdict = md.find("## Privacy policy: FAIL");
  ASSERT_NE(verdict, std::string::npos);
  EXPECT_LT(verdict, md.find("- Tool:"));  // first thing after the title
  EXPECT_THAT(md, HasSubstr("| `max_auc` | `rmia` | 0 | 0.75 | 0.8 | pass |"));
  // A table cell escapes '|'; a missing value shows why.
  EXPECT_THAT(md, HasSubstr("`lira\\|x` | 1 | unresolved | 0.1 | **FAIL** |"));
  result.policy->pass = true;
  EXPECT_THAT(SummaryMarkdown(result), HasSubstr("## Privacy policy: PASS"));
}

TEST(ResultJsonTest, NoNonFiniteLiterals) {
  const std::string text = ResultJson(MakeResult());
  EXPECT_THAT(text, Not(HasSubstr("NaN")));
  EXPECT_THAT(text, Not(HasSubstr("nan")));
  EXPECT_THAT(text, Not(HasSubstr("inf")));
  EXPECT_THAT(text, Not(HasSubstr("Infinity")));
}

TEST(ResultJsonTest, EmptySpecIsEmptyObject) {
  audit::AuditResult result = MakeResult();
  result.spec_json = "";
  const nlohmann::json j = nlohmann::json::parse(ResultJson(result));
  EXPECT_TRUE(j.at("spec").is_object());
  EXPECT_TRUE(j.at("spec").empty());
  // The delta comes with the bound itself, whatever the spec says.
  EXPECT_EQ(j.at("results")[0].at("epsilon").at("delta").get<double>(), 1e-5);
}

TEST(ResultJsonTest, InvalidUtf8InNamesStillGivesValidJson) {
  audit::AuditResult result = MakeResult();
  result.results[0].attack = "bad\xff name";
  const nlohmann::json j = nlohmann::json::parse(ResultJson(result));
  EXPECT_THAT(j.at("results")[0].at("attack").get<std::string>(), HasSubstr("name"));
}

TEST(ScoresCsvTest, RowsColumnsQuotingAndExactScores) {
  const audit::AuditResult result = MakeResult();
  const std::string csv = ScoresCsv(result);
  // The name with a comma is quoted in the raw text.
  EXPECT_EQ(csv.substr(0, csv.find('\n')),
            "row_id,target,member,\"rmia:gamma=2,offline<a>\",lira-offline");

  const std::vector<std::vector<std::string>> rows = ParseCsv(csv);
  ASSERT_EQ(rows.size(), 1u + 2 * 6);
  EXPECT_EQ(rows[0], (std::vector<std::string>{"row_id", "target", "member", kAttackA, kAttackB}));
  for (size_t t = 0; t < 2; ++t) {
    const audit::AttackTargetResult& a = result.results[t];      // attack A, target t
    const audit::AttackTargetResult& b = result.results[2 + t];  // attack B, target t
    for (size_t i = 0; i < 6; ++i) {
      const std::vector<std::string>& row = rows[1 + t * 6 + i];
      ASSERT_EQ(row.size(), 5u);
      EXPECT_EQ(row[0], std::to_string(result.row_ids[i]));
      EXPECT_EQ(row[1], std::to_string(result.targets[t]));
      EXPECT_EQ(row[2], result.membership[t][i] ? "1" : "0");
      if (std::isnan(a.scores[i])) {
        EXPECT_EQ(row[3], "");
      } else {
        EXPECT_EQ(std::strtod(row[3].c_str(), nullptr), a.scores[i]) << row[3];
      }
      EXPECT_EQ(std::strtod(row[4].c_str(), nullptr), b.scores[i]) << row[4];
    }
  }
  // The excluded point of attack A on target 0 (row id 12).
  EXPECT_EQ(rows[3][0], "12");
  EXPECT_EQ(rows[3][3], "");
}

TEST(ScoresCsvTest, QuotesQuotesAndLineBreaks) {
  audit::AuditResult result = MakeResult();
  result.results[2].attack = "odd \"name\"\nwith break";
  result.results[3].attack = result.results[2].attack;
  const std::string csv = ScoresCsv(result);
  EXPECT_THAT(csv, HasSubstr("\"odd \"\"name\"\"\nwith break\""));
  const std::vector<std::vector<std::string>> rows = ParseCsv(csv);
  ASSERT_EQ(rows.size(), 13u);
  EXPECT_EQ(rows[0][4], "odd \"name\"\nwith break");
}

// The (stroke, dash) pair of every curve.
std::set<std::pair<std::string, std::string>> CurveStyles(const std::string& svg) {
  std::set<std::pair<std::string, std::string>> styles;
  for (size_t pos = svg.find("<polyline"); pos != std::string::npos;
       pos = svg.find("<polyline", pos + 1)) {
    const size_t end = svg.find('>', pos);
    const std::string tag = svg.substr(pos, end - pos);
    auto attr = [&](const std::string& name) {
      const size_t a = tag.find(" " + name + "=\"");
      if (a == std::string::npos) return std::string();
      const size_t start = a + name.size() + 3;
      return tag.substr(start, tag.find('"', start) - start);
    };
    styles.insert({attr("stroke"), attr("stroke-dasharray")});
  }
  return styles;
}

TEST(RocSvgTest, SixteenCurvesStayTellableApart) {
  audit::AuditResult result = MakeResult();
  result.results.clear();
  result.targets = {0, 1, 2, 3};
  for (const char* attack : {"rmia", "rmia-offline", "lira", "lira-offline"}) {
    for (int t = 0; t < 4; ++t) result.results.push_back(MakeAttackTarget(attack, t, 0.6));
  }
  for (bool log_axes : {false, true}) {
    const std::string svg = RocSvg(result, log_axes);
    EXPECT_EQ(Count(svg, "<polyline"), 16u);
    EXPECT_EQ(CurveStyles(svg).size(), 16u);
    // The legend shows the dash too.
    EXPECT_EQ(Count(svg, "stroke-dasharray=\"7 4\""), 2u * 4u);
  }
}

// The figure agrees with the table: along each drawn curve, the TPR at any FPR
// is metrics::TprAtFprs's (the largest TPR with FPR <= alpha), and nothing is
// drawn below the smallest resolvable FPR.
TEST(StepCurveTest, DrawnCurveIsTheTablesTprAtEveryFpr) {
  Rng rng(5);
  std::vector<double> scores;
  std::vector<uint8_t> members;
  for (int i = 0; i < 3000; ++i) {
    const bool m = i % 3 == 0;
    members.push_back(m);
    // Rounded scores: ties between members and non-members (diagonal ROC steps).
    scores.push_back(std::round((rng.Normal() + (m ? 0.7 : 0)) * 20) / 20);
  }
  const metrics::RocCurve roc = *metrics::ComputeRoc(scores, members);
  const double min_fpr = 1.0 / static_cast<double>(roc.negatives);
  std::vector<double> x, y;
  StepCurve(roc.fpr, roc.tpr, min_fpr, &x, &y);
  ASSERT_GE(x.size(), 2u);
  EXPECT_DOUBLE_EQ(x.front(), min_fpr);
  for (size_t k = 0; k + 1 < x.size(); ++k) {
    EXPECT_LE(x[k], x[k + 1]);
    EXPECT_LE(y[k], y[k + 1]);
    EXPECT_TRUE(x[k] == x[k + 1] || y[k] == y[k + 1]) << "segment " << k << " is not a step";
  }
  // The curve's height at alpha: the last vertex with x <= alpha.
  for (double alpha : {min_fpr, 1e-3, 2e-3, 0.01, 0.05, 0.1, 0.3, 0.5, 0.9, 1.0}) {
    double drawn = -1;
    for (size_t k = 0; k < x.size() && x[k] <= alpha; ++k) drawn = y[k];
    const metrics::TprAtFpr table = metrics::TprAtFprs(roc, {alpha})[0];
    EXPECT_DOUBLE_EQ(drawn, table.tpr) << "alpha " << alpha;
  }
}

TEST(RocSvgTest, WellFormedWithCurvesLegendAndEscapedNames) {
  const audit::AuditResult result = MakeResult();
  for (bool log_axes : {false, true}) {
    SCOPED_TRACE(log_axes ? "log" : "linear");
    const std::string svg = RocSvg(result, log_axes);
    EXPECT_EQ(svg.rfind("<svg", 0), 0u);
    EXPECT_EQ(Count(svg, "<svg"), 1u);
    EXPECT_EQ(Count(svg, "</svg>"), 1u);
    EXPECT_EQ(XmlProblems(svg), "");
    EXPECT_EQ(Count(svg, "<polyline"), 4u);
    EXPECT_THAT(svg, HasSubstr(">rmia:gamma=2,offline&lt;a&gt; (target 0) AUC 0.7500</text>"));
    EXPECT_THAT(svg, HasSubstr(">rmia:gamma=2,offline&lt;a&gt; (target 3) AUC 0.6250</text>"));
    EXPECT_THAT(svg, HasSubstr(">lira-offline (target 3) AUC 0.5500</text>"));
    EXPECT_THAT(svg, Not(HasSubstr("offline<a>")));
    EXPECT_THAT(svg, HasSubstr(">False positive rate</text>"));
    EXPECT_THAT(svg, HasSubstr(">True positive rate</text>"));
    EXPECT_THAT(svg, HasSubstr("class=\"chance\""));
    // Self-contained: nothing fetched from elsewhere.
    EXPECT_THAT(svg, Not(HasSubstr("href")));
    EXPECT_THAT(svg, Not(HasSubstr("<script")));
    EXPECT_THAT(svg, Not(HasSubstr("@import")));
    // A color per attack, a dash per target: every curve is distinct.
    EXPECT_EQ(CurveStyles(svg).size(), 4u);
  }
}

TEST(RocSvgTest, LogAxesMapDecadesToPlotEdges) {
  const std::string svg = RocSvg(MakeResult(), /*log_axes=*/true);
  const size_t area = svg.find("class=\"plot-area\"");
  ASSERT_NE(area, std::string::npos);
  const double left = Attribute(svg, area, "x");
  const double top = Attribute(svg, area, "y");
  const double right = left + Attribute(svg, area, "width");
  const double bottom = top + Attribute(svg, area, "height");
  ASSERT_GT(right, left);
  ASSERT_GT(bottom, top);

  const auto lines = Polylines(svg);
  ASSERT_EQ(lines.size(), 4u);
  // ROC (0,0) (1e-3,0.1) (0.5,0.5) (1,1) with 1000 non-members, as a step
  // function from FPR 1e-3: (1e-3,0.1) (0.5,0.1) (0.5,0.5) (1,0.5) (1,1).
  const auto& curve = lines[0];
  ASSERT_EQ(curve.size(), 5u);
  // 1e-3 is 2 of 5 decades from the left; 0.1 is 4 of 5 decades up. Nothing
  // is drawn left of it: FPR 1e-3 is the smallest this audit resolves.
  EXPECT_NEAR(curve[0].first, left + 0.4 * (right - left), 0.01);
  EXPECT_NEAR(curve[0].second, bottom - 0.8 * (bottom - top), 0.01);
  for (const auto& point : curve) EXPECT_GE(point.first, curve[0].first - 0.01);
  // Level to FPR 0.5, then up.
  EXPECT_NEAR(curve[1].second, curve[0].second, 0.01);
  EXPECT_NEAR(curve[2].first, curve[1].first, 0.01);
  // FPR 1 at the right edge, TPR 1 at the top.
  EXPECT_NEAR(curve[4].first, right, 0.01);
  EXPECT_NEAR(curve[4].second, top, 0.01);
  // Decade tick labels 1e-5 .. 1.
  for (const char* label : {">1e-5<", ">1e-4<", ">1e-3<", ">1e-2<", ">1e-1<", ">1<"}) {
    EXPECT_EQ(Count(svg, label), 2u) << label;  // one on each axis
  }
}

TEST(RocSvgTest, LinearAxesSpanZeroToOne) {
  const std::string svg = RocSvg(MakeResult(), /*log_axes=*/false);
  const size_t area = svg.find("class=\"plot-area\"");
  ASSERT_NE(area, std::string::npos);
  const double left = Attribute(svg, area, "x");
  const double top = Attribute(svg, area, "y");
  const double size = Attribute(svg, area, "width");
  const auto lines = Polylines(svg);
  ASSERT_FALSE(lines.empty());
  // Steps from FPR 0: (0,0) (1e-3,0) (1e-3,0.1) (0.5,0.1) (0.5,0.5) (1,0.5) (1,1).
  ASSERT_EQ(lines[0].size(), 7u);
  EXPECT_NEAR(lines[0][0].first, left, 0.01);
  EXPECT_NEAR(lines[0][0].second, top + size, 0.01);
  EXPECT_NEAR(lines[0][4].first, left + size / 2, 0.01);
  EXPECT_NEAR(lines[0][4].second, top + size / 2, 0.01);
  EXPECT_NEAR(lines[0][6].first, left + size, 0.01);
  EXPECT_NEAR(lines[0][6].second, top, 0.01);
}

TEST(RocSvgTest, ManyTargetsPlotFirstFourPerAttack) {
  audit::AuditResult result = MakeResult();
  result.targets.clear();
  result.results.clear();
  for (int t = 0; t < 10; ++t) {
    result.targets.push_back(t);
    result.results.push_back(MakeAttackTarget(kAttackB, t, 0.5 + t / 100.0));
  }
  const std::string svg = RocSvg(result, false);
  EXPECT_EQ(Count(svg, "<polyline"), 4u);
  EXPECT_THAT(svg, HasSubstr("first 4 of 10 targets per attack"));
  EXPECT_THAT(svg, HasSubstr("(target 3) AUC"));
  EXPECT_THAT(svg, Not(HasSubstr("(target 4) AUC")));
}

// A staircase ROC with `n` points, concave like a real attack's.
metrics::RocCurve BigRoc(int n) {
  metrics::RocCurve roc;
  for (int i = 0; i < n; ++i) {
    const double f = i / static_cast<double>(n - 1);
    roc.fpr.push_back(f);
    roc.tpr.push_back(std::pow(f, 0.3));
  }
  roc.negatives = n - 1;
  roc.positives = n - 1;
  return roc;
}

TEST(RocSvgTest, LongCurvesAreThinnedToTheLimit) {
  audit::AuditResult result = MakeResult();
  for (audit::AttackTargetResult& r : result.results) r.roc = BigRoc(20000);
  ReportOptions options;
  options.max_plot_points = 150;
  for (bool log_axes : {false, true}) {
    const auto lines = Polylines(RocSvg(result, log_axes, options));
    ASSERT_EQ(lines.size(), 4u);
    for (const auto& line : lines) {
      EXPECT_LE(line.size(), 2 * 150u);  // thinned points, each a step's corner
      EXPECT_GE(line.size(), 50u);
    }
  }
}

TEST(ThinCurveTest, KeepsEndsAndShapeOnLogAxes) {
  const metrics::RocCurve roc = BigRoc(100000);
  const Axis x = XAxis(true, 1e-5);
  const Axis y = YAxis(true, 1e-5);
  const int max_points = 400;
  const std::vector<size_t> kept = ThinCurve(roc.fpr, roc.tpr, max_points, x, y);
  ASSERT_LE(kept.size(), static_cast<size_t>(max_points));
  ASSERT_GE(kept.size(), 2u);
  EXPECT_EQ(kept.front(), 0u);
  EXPECT_EQ(kept.back(), roc.fpr.size() - 1);
  // Every dropped point lies between two consecutive kept points that are at
  // most one bin apart in normalized plot units (|dx| + |dy|).
  const double bin = 2.0 / ((max_points - 2) / 2);
  for (size_t k = 0; k + 1 < kept.size(); ++k) {
    ASSERT_LT(kept[k], kept[k + 1]);
    if (kept[k + 1] == kept[k] + 1) continue;
    const double span = (x.Normalize(roc.fpr[kept[k + 1]]) - x.Normalize(roc.fpr[kept[k]])) +
                        (y.Normalize(roc.tpr[kept[k + 1]]) - y.Normalize(roc.tpr[kept[k]]));
    EXPECT_LE(span, bin + 1e-12) << "between " << kept[k] << " and " << kept[k + 1];
  }
  // The low-FPR region keeps detail: points below FPR 1e-3 survive.
  size_t low = 0;
  for (size_t i : kept) low += roc.fpr[i] > 0 && roc.fpr[i] < 1e-3;
  EXPECT_GE(low, 10u);
}

TEST(ThinCurveTest, ShortCurvesAreKeptWhole) {
  const metrics::RocCurve roc = SmallRoc();
  const std::vector<size_t> kept =
      ThinCurve(roc.fpr, roc.tpr, 400, XAxis(false, 1e-5), YAxis(false, 1e-5));
  EXPECT_EQ(kept, (std::vector<size_t>{0, 1, 2, 3}));
}

TEST(AxisTest, LogAxisClampsAndMapsDecades) {
  const Axis x = XAxis(true, 1e-5);
  EXPECT_DOUBLE_EQ(x.Map(1e-5), kPlotLeft);
  EXPECT_DOUBLE_EQ(x.Map(0), kPlotLeft);
  EXPECT_DOUBLE_EQ(x.Map(1e-9), kPlotLeft);
  EXPECT_DOUBLE_EQ(x.Map(1), kPlotLeft + kPlotSize);
  EXPECT_NEAR(x.Map(1e-2), kPlotLeft + 0.6 * kPlotSize, 1e-9);
  const Axis y = YAxis(true, 1e-5);
  EXPECT_DOUBLE_EQ(y.Map(0), kPlotTop + kPlotSize);
  EXPECT_DOUBLE_EQ(y.Map(1), kPlotTop);
}

TEST(XmlEscapeTest, EscapesSpecialsAndRepairsBadText) {
  EXPECT_EQ(XmlEscape("a<b>&\"c'"), "a&lt;b&gt;&amp;&quot;c&apos;");
  EXPECT_EQ(XmlEscape("caf\xc3\xa9"), "caf\xc3\xa9");                 // valid UTF-8 kept
  EXPECT_EQ(XmlEscape("x\xff y"), "x\xEF\xBF\xBD y");                  // invalid byte
  EXPECT_EQ(XmlEscape(std::string("a\x01z")), "a\xEF\xBF\xBDz");      // control char
  EXPECT_EQ(XmlEscape("\xed\xa0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // surrogate
}

TEST(SeriesColorTest, DistinctForManyCurves) {
  std::set<std::string> colors;
  for (int i = 0; i < 40; ++i) colors.insert(SeriesColor(i));
  EXPECT_EQ(colors.size(), 40u);
}

TEST(SummaryMarkdownTest, TablesFiguresAndFiles) {
  const std::string md = SummaryMarkdown(MakeResult());
  EXPECT_THAT(md, HasSubstr("## Attack `rmia:gamma=2,offline<a>`"));
  EXPECT_THAT(md, HasSubstr("## Attack `lira-offline`"));
  EXPECT_THAT(md, HasSubstr("TPR at 1% FPR [CI]"));
  EXPECT_THAT(md, HasSubstr("TPR at 0.1% FPR [CI]"));
  EXPECT_THAT(md, HasSubstr("| 0 | 2 | 3 | 1 | 0.7500 [0.6000, 0.9000] | unresolved | unresolved "
                            "| 0.420 |"));
  EXPECT_THAT(md, HasSubstr("| mean ± sd (2 targets) |"));
  EXPECT_THAT(md, HasSubstr("0.6875 ± 0.0884"));
  EXPECT_THAT(md, HasSubstr("δ = 1e-05"));
  EXPECT_THAT(md, HasSubstr("point 12 has no OUT reference"));
  EXPECT_THAT(md, HasSubstr("## Warnings"));
  EXPECT_THAT(md, HasSubstr("a = 0.3"));
  for (const char* file :
       {"result.json", "scores.csv", "roc.svg", "roc_log.svg", "summary.md", "timing.log"}) {
    EXPECT_THAT(md, HasSubstr(std::string("`") + file + "`"));
  }
}

TEST(SummaryMarkdownTest, NoBootstrapShowsNoInterval) {
  audit::AuditResult result = MakeResult();
  result.bootstrap_resamples = 0;
  for (audit::AttackTargetResult& r : result.results) {
    r.auc_ci = {kNaN, kNaN};
    for (metrics::Interval& ci : r.tpr_ci) ci = {kNaN, kNaN};
  }
  const std::string md = SummaryMarkdown(result);
  EXPECT_THAT(md, Not(HasSubstr("nan")));
  EXPECT_THAT(md, HasSubstr("| 0.7500 |"));
  EXPECT_THAT(md, HasSubstr("no intervals"));
  EXPECT_THAT(md, HasSubstr("mia score --seed 77"));
}

// A DP-SGD target: its guarantee in result.json and summary.md, each lower
// bound beside the accountant's epsilon, an exceeded one marked.
TEST(SummaryMarkdownTest, DpSgdTargetsShowTheAccountantsEpsilon) {
  audit::AuditResult result = MakeResult();
  EXPECT_THAT(SummaryMarkdown(result), Not(HasSubstr("DP-SGD")));
  EXPECT_FALSE(nlohmann::json::parse(ResultJson(result)).contains("dp"));

  result.dp.push_back({0, 0.3, 1e-5, 14, 1.1, 1.0, 0.01, 6000});
  for (const audit::AttackTargetResult& r : result.results) {
    if (r.target != 0) continue;
    result.dp_checks.push_back({r.attack, 0, r.epsilon.epsilon, r.epsilon.delta, 0.3, 1e-5,
                                r.epsilon.epsilon > 0.3});
  }
  ASSERT_FALSE(result.dp_checks.empty());
  const std::string md = SummaryMarkdown(result);
  EXPECT_THAT(md, HasSubstr("## DP-SGD targets"));
  EXPECT_THAT(md, HasSubstr("| 0 | 0.3000 | 1e-05 | 1.1 | 1 | 0.01 | 6000 |"));
  EXPECT_THAT(md, HasSubstr("DP-SGD accountant ε |"));
  // Target 0's bound 0.420 is above 0.3; target 3 has no guarantee.
  EXPECT_THAT(md, HasSubstr("| 0.420 | 0.300 **lower bound above it: error in training or audit** |"));
  EXPECT_THAT(md, HasSubstr(" | n/a |\n"));

  const nlohmann::json j = nlohmann::json::parse(ResultJson(result));
  ASSERT_TRUE(j.contains("dp"));
  ASSERT_EQ(j["dp"].size(), 1u);
  EXPECT_EQ(j["dp"][0]["target"], 0);
  EXPECT_EQ(j["dp"][0]["epsilon"], 0.3);
  EXPECT_EQ(j["dp"][0]["order"], 14);
  EXPECT_EQ(j["dp"][0]["steps"], 6000);
  EXPECT_EQ(j["dp"][0]["sample_rate"], 0.01);
  ASSERT_EQ(j["dp_checks"].size(), result.dp_checks.size());
  EXPECT_EQ(j["dp_checks"][0]["accountant_epsilon"], 0.3);
  EXPECT_EQ(j["dp_checks"][0]["exceeded"], result.dp_checks[0].exceeded);

  // An unbounded guarantee is null, not a literal infinity.
  result.dp[0].epsilon = std::numeric_limits<double>::infinity();
  const nlohmann::json inf = nlohmann::json::parse(ResultJson(result));
  EXPECT_TRUE(inf["dp"][0]["epsilon"].is_null());
  EXPECT_THAT(SummaryMarkdown(result), HasSubstr("| 0 | ∞ |"));
}

TEST(AddStageTimeTest, OneEntryPerStage) {
  std::vector<audit::StageTiming> timings;
  audit::AddStageTime(&timings, "signals", 1.0);
  audit::AddStageTime(&timings, "attack", 2.0);
  audit::AddStageTime(&timings, "signals", 0.5);
  ASSERT_EQ(timings.size(), 2u);
  EXPECT_EQ(timings[0].stage, "signals");
  EXPECT_EQ(timings[0].seconds, 1.5);
}

TEST(TimingLogTest, OneLinePerStageThenTotal) {
  EXPECT_EQ(TimingLog(MakeResult()), "load\t0.012\nattack\t1.500\ntotal\t1.512\n");
  EXPECT_EQ(TimingLog(audit::AuditResult{}), "total\t0.000\n");
}

// ---------------------------------------------------------------------------
// report.html

// The <tr> ... </tr> that starts with `opening`, or "" when there is none.
std::string RowStartingWith(const std::string& html, const std::string& opening) {
  const size_t begin = html.find(opening);
  if (begin == std::string::npos) return "";
  return html.substr(begin, html.find("</tr>", begin) - begin);
}

std::string Cell(const std::string& field, const nlohmann::json& value) {
  return "data-field=\"" + XmlEscape(field) + "\" data-value=\"" + value.dump() + "\"";
}

TEST(ReportHtmlTest, SelfContainedPrintableAndEscaped) {
  audit::AuditResult result = MakeResult();
  result.spec_json = R"({"data": {"path": "</pre><script>alert(1)</script>"}})";
  result.warnings.push_back("<img src=x onerror=alert(1)>");
  const std::string html = ReportHtml(result);
  // Nothing is loaded from anywhere: no URL, script, external style or image.
  EXPECT_THAT(html, Not(HasSubstr("http://")));
  EXPECT_THAT(html, Not(HasSubstr("https://")));
  EXPECT_THAT(html, Not(HasSubstr("<script")));
  EXPECT_THAT(html, Not(HasSubstr("<link")));
  EXPECT_THAT(html, Not(HasSubstr("<img")));
  EXPECT_THAT(html, Not(HasSubstr("url(")));
  EXPECT_THAT(html, Not(HasSubstr("@import")));
  EXPECT_THAT(html, HasSubstr("@media print"));
  EXPECT_THAT(html, HasSubstr("&lt;/pre&gt;&lt;script&gt;alert(1)&lt;/script&gt;"));
  EXPECT_THAT(html, HasSubstr("&lt;img src=x onerror=alert(1)&gt;"));
  // The attack name is escaped wherever it appears.
  EXPECT_THAT(html, Not(HasSubstr("offline<a>")));
  EXPECT_THAT(html, HasSubstr("<code>rmia:gamma=2,offline&lt;a&gt;</code>"));
  // Both plots inline, with their curves.
  EXPECT_EQ(Count(html, "<svg "), 2u);
  EXPECT_EQ(Count(html, "<polyline class=\"curve\""), 8u);
  for (const char* id : {"results", "roc", "epsilon", "spread", "models", "exposed", "warnings",
                         "spec", "timing"}) {
    EXPECT_THAT(html, HasSubstr("<section id=\"" + std::string(id) + "\">")) << id;
  }
  EXPECT_THAT(html, Not(HasSubstr("<section id=\"verdict\">")));  // no policy
  EXPECT_TRUE(html.rfind("<!DOCTYPE html>", 0) == 0);
  EXPECT_EQ(html.substr(html.size() - 8), "</html>\n");
  // Deterministic.
  EXPECT_EQ(html, ReportHtml(result));
}

TEST(ReportHtmlTest, EveryFigureEqualsResultJson) {
  const audit::AuditResult result = MakeResult();
  const std::string html = ReportHtml(result);
  const nlohmann::json j = nlohmann::json::parse(ResultJson(result));
  size_t rows = 0;
  for (const nlohmann::json& r : j["results"]) {
    const std::string attack = r["attack"].get<std::string>();
    const std::string row = RowStartingWith(
        html, "<tr class=\"result\" data-attack=\"" + XmlEscape(attack) + "\" data-target=\"" +
                  r["target"].dump() + "\">");
    ASSERT_FALSE(row.empty()) << attack << " " << r["target"];
    ++rows;
    EXPECT_THAT(row, HasSubstr(Cell("members", r["counts"]["members"])));
    EXPECT_THAT(row, HasSubstr(Cell("non_members", r["counts"]["non_members"])));
    EXPECT_THAT(row, HasSubstr(Cell("excluded", r["counts"]["excluded"])));
    EXPECT_THAT(row, HasSubstr(Cell("auc", r["auc"])));
    EXPECT_THAT(row, HasSubstr(Cell("epsilon", r["epsilon"]["value"])));
    for (const nlohmann::json& t : r["tpr_at_fpr"]) {
      const std::string cell =
          "data-field=\"tpr\" data-fpr=\"" + t["fpr"].dump() + "\" data-value=\"";
      if (t["resolved"].get<bool>()) {
        EXPECT_THAT(row, HasSubstr(cell + t["tpr"].dump() + "\""));
      } else {
        EXPECT_THAT(row, HasSubstr(cell + "null\">unresolved"));
      }
    }
    const std::string eps_row = RowStartingWith(
        html, "<tr data-attack=\"" + XmlEscape(attack) + "\" data-target=\"" +
                  r["target"].dump() + "\">");
    EXPECT_THAT(eps_row, HasSubstr(Cell("delta", r["epsilon"]["delta"])));
    EXPECT_THAT(eps_row, HasSubstr(Cell("evaluation_points", r["epsilon"]["evaluation_points"])));
  }
  EXPECT_EQ(rows, result.results.size());
  // Shown rounded, with the interval (a0: AUC 0.75 in [0.6, 0.9]; TPR at 10% 0.5).
  EXPECT_THAT(html, HasSubstr(Cell("auc", 0.75) +
                              ">0.7500 <span class=\"ci\">[0.6000, 0.9000]</span></td>"));
  // An infinite threshold is no number in result.json, nor on the page.
  EXPECT_THAT(html, HasSubstr("data-field=\"threshold\" data-value=\"null\">n/a"));
  // The spread over targets: AUC of the first attack.
  const std::string spread = RowStartingWith(
      html, "<tr data-attack=\"" + XmlEscape(kAttackA) + "\" data-figure=\"auc\">");
  EXPECT_THAT(spread, HasSubstr(Cell("mean", j["summaries"][0]["auc"]["mean"])));
  EXPECT_THAT(spread, HasSubstr(Cell("stddev", j["summaries"][0]["auc"]["stddev"])));
  EXPECT_THAT(spread, HasSubstr(Cell("count", 2)));
  // TPR at 1% is resolved on no target of attack A: no mean shown.
  const std::string unresolved = RowStartingWith(
      html, "<tr data-attack=\"" + XmlEscape(kAttackA) + "\" data-figure=\"tpr\" data-fpr=\"0.01\">");
  EXPECT_THAT(unresolved, HasSubstr(Cell("count", 0)));
  EXPECT_THAT(unresolved, HasSubstr("unresolved on every target"));
  EXPECT_THAT(unresolved, Not(HasSubstr("data-field=\"mean\"")));
}

TEST(ReportHtmlTest, MostExposedPointsAreTheTopScoresOfTheFirstTarget) {
  const audit::AuditResult result = MakeResult();
  ReportOptions options;
  options.html_top_points = 4;
  const std::string html = ReportHtml(result, options);
  const size_t begin = html.find("<table class=\"exposed\" data-attack=\"" +
                                 XmlEscape(kAttackA) + "\" data-target=\"0\">");
  ASSERT_NE(begin, std::string::npos);
  const std::string table = html.substr(begin, html.find("</table>", begin) - begin);
  // Definition: sort the scored points of (attack A, target 0) by score, highest first.
  const audit::AttackTargetResult& a0 = result.results[0];
  std::vector<size_t> order;
  for (size_t i = 0; i < a0.scores.size(); ++i) {
    if (!std::isnan(a0.scores[i])) order.push_back(i);
  }
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return a0.scores[a] > a0.scores[b]; });
  ASSERT_EQ(order, (std::vector<size_t>{4, 5, 1, 0, 3}));  // worked by hand
  size_t pos = 0;
  for (size_t k = 0; k < 4; ++k) {
    const size_t i = order[k];
    const std::string expected =
        "<tr><td>" + std::to_string(k + 1) + "</td><td class=\"num\" data-field=\"row_id\">" +
        std::to_string(result.row_ids[i]) + "</td>" + "<td class=\"num\" " +
        Cell("score", a0.scores[i]);
    const size_t at = table.find(expected, pos);
    ASSERT_NE(at, std::string::npos) << expected;
    pos = at;
    EXPECT_THAT(table.substr(at, table.find("</tr>", at) - at),
                HasSubstr(result.membership[0][i] ? ">yes<" : ">no<"));
  }
  EXPECT_EQ(Count(table, "<tr><td>"), 4u);  // the limit holds; NaN never listed
  // Only target 0 is listed.
  EXPECT_THAT(html, Not(HasSubstr("<table class=\"exposed\" data-attack=\"lira-offline\" "
                                  "data-target=\"3\"")));
}

TEST(ReportHtmlTest, WarningsListEveryKind) {
  const std::string html = ReportHtml(MakeResult());
  const size_t begin = html.find("<section id=\"warnings\">");
  ASSERT_NE(begin, std::string::npos);
  const std::string section = html.substr(begin, html.find("</section>", begin) - begin);
  EXPECT_THAT(section, HasSubstr("fewer than 32 references per side: fixed variance"));
  EXPECT_THAT(section, HasSubstr("target 0: 1 audit points excluded"));
  EXPECT_THAT(section, HasSubstr("point 12 has no OUT reference"));
  EXPECT_THAT(section, HasSubstr("TPR at 1% FPR unresolved"));
  EXPECT_THAT(section, HasSubstr("TPR at 0.1% FPR unresolved"));
  // 1 audit-wide, 1 exclusion, 1 attack warning, 2 unresolved FPRs x 4 results.
  EXPECT_THAT(section, HasSubstr("<h2>Warnings (11)</h2>"));
  audit::AuditResult clean;
  EXPECT_THAT(ReportHtml(clean), HasSubstr("<h2>Warnings (0)</h2>\n<p>None.</p>"));
}

TEST(ReportHtmlTest, ModelsShowAccuracyLossAndGap) {
  ReportOptions options;
  options.models_json = R"({"schema": "mia.models", "models": [
      {"index": 0, "role": "target", "source": "trained", "train_rows": 100,
       "train_accuracy": 0.75, "train_loss": 0.5, "test_accuracy": 0.5, "test_loss": 1.25,
       "seconds": 2.5},
      {"index": 1, "role": "reference", "source": "<cache>", "train_rows": 100,
       "train_accuracy": null, "test_accuracy": 0.5}]})";
  const std::string html = ReportHtml(MakeResult(), options);
  const std::string row0 = RowStartingWith(html, "<tr data-index=\"0\">");
  EXPECT_THAT(row0, HasSubstr(Cell("train_accuracy", 0.75)));
  EXPECT_THAT(row0, HasSubstr(Cell("test_accuracy", 0.5)));
  EXPECT_THAT(row0, HasSubstr(Cell("gap", 0.25) + ">0.2500<"));
  EXPECT_THAT(row0, HasSubstr(Cell("test_loss", 1.25)));
  const std::string row1 = RowStartingWith(html, "<tr data-index=\"1\">");
  EXPECT_THAT(row1, HasSubstr("&lt;cache&gt;"));
  EXPECT_THAT(row1, HasSubstr("data-field=\"gap\" data-value=\"null\">n/a"));
  // Without models.json (a bundle audit) the section says why it is empty.
  EXPECT_THAT(ReportHtml(MakeResult()), HasSubstr("No models were trained or loaded"));
  options.models_json = "not json";
  EXPECT_THAT(ReportHtml(MakeResult(), options), HasSubstr("No models were trained or loaded"));
}

TEST(ReportHtmlTest, VerdictFromThePolicyInResultJson) {
  const audit::AuditResult result = MakeResult();
  nlohmann::ordered_json j = nlohmann::ordered_json::parse(ResultJson(result));
  j["policy"] = {{"verdict", "FAIL"},
                 {"rules",
                  {{{"rule", "max_auc"}, {"attack", "rmia<x>"}, {"target", 0}, {"value", 0.75},
                    {"limit", 0.6}, {"pass", false}},
                   {{"rule", "max_epsilon"}, {"attack", "lira"}, {"value", 0.1}, {"limit", 1},
                    {"pass", true}}}}};
  const std::string html = ReportHtml(result, j.dump(), ReportOptions{});
  EXPECT_THAT(html, HasSubstr("<section id=\"verdict\">"));
  EXPECT_THAT(html, HasSubstr("<span class=\"verdict fail\" data-field=\"verdict\">FAIL</span>"));
  EXPECT_THAT(html, HasSubstr("<tr class=\"fail\"><td>max_auc</td><td>rmia&lt;x&gt;</td><td>0</td>"
                              "<td>0.75</td><td>0.6</td><td>FAIL</td></tr>"));
  EXPECT_THAT(html, HasSubstr("<tr class=\"pass\"><td>max_epsilon</td><td>lira</td><td>all</td>"));
  j["policy"]["verdict"] = "PASS";
  EXPECT_THAT(ReportHtml(result, j.dump(), ReportOptions{}),
              HasSubstr("<span class=\"verdict pass\" data-field=\"verdict\">PASS</span>"));
}

TEST(ReportHtmlTest, AForeignResultJsonFallsBackToTheResults) {
  const audit::AuditResult result = MakeResult();
  for (const char* text : {"", "not json", "[]", R"({"results": []})"}) {
    EXPECT_EQ(ReportHtml(result, text, ReportOptions{}), ReportHtml(result)) << text;
  }
}

TEST(ReportHtmlTest, EmptyResultStillRenders) {
  const std::string html = ReportHtml(audit::AuditResult{});
  EXPECT_THAT(html, HasSubstr("</html>"));
  EXPECT_THAT(html, HasSubstr("No target model."));
  EXPECT_THAT(html, HasSubstr("Not recorded"));
}

TEST(WriteReportTest, CreatesFolderAndAllFilesWithoutTempFiles) {
  const audit::AuditResult result = MakeResult();
  const TestDir tmp;
  const std::filesystem::path dir = tmp / "nested/out";
  ASSERT_FALSE(std::filesystem::exists(dir));
  ASSERT_TRUE(WriteReport(result, dir.string()).ok());
  // Twice: replacing an existing report works too.
  const absl::Status again = WriteReport(result, dir.string());
  ASSERT_TRUE(again.ok()) << again;

  std::set<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    EXPECT_TRUE(entry.is_regular_file()) << entry.path();
    names.insert(entry.path().filename().string());
  }
  EXPECT_EQ(names, (std::set<std::string>{"result.json", "scores.csv", "roc.svg", "roc_log.svg",
                                          "summary.md", "report.html", "timing.log"}));
  EXPECT_EQ(ReadFile(dir / "report.html"), ReportHtml(result));
  EXPECT_EQ(ReadFile(dir / "result.json"), ResultJson(result));
  EXPECT_EQ(ReadFile(dir / "scores.csv"), ScoresCsv(result));
  EXPECT_EQ(ReadFile(dir / "roc.svg"), RocSvg(result, false));
  EXPECT_EQ(ReadFile(dir / "roc_log.svg"), RocSvg(result, true));
  EXPECT_EQ(ReadFile(dir / "summary.md"), SummaryMarkdown(result));
  EXPECT_EQ(ReadFile(dir / "timing.log"), TimingLog(result));
}

TEST(WriteReportTest, FolderUnderRegularFileFailsNamingThePath) {
  const TestDir tmp;
  const std::filesystem::path base = tmp / "base";
  std::filesystem::create_directories(base);
  const std::filesystem::path file = base / "not-a-folder";
  std::ofstream(file) << "x";
  const std::string out = (file / "report").string();
  const absl::Status status = WriteReport(MakeResult(), out);
  EXPECT_FALSE(status.ok());
  EXPECT_THAT(std::string(status.message()), HasSubstr(out));
}

TEST(WriteReportTest, OutDirThatIsAFileFails) {
  const TestDir tmp;
  const std::filesystem::path base = tmp / "base";
  std::filesystem::create_directories(base);
  const std::filesystem::path file = base / "file";
  std::ofstream(file) << "x";
  const absl::Status status = WriteReport(MakeResult(), file.string());
  EXPECT_FALSE(status.ok());
  EXPECT_THAT(std::string(status.message()), HasSubstr(file.string()));
}

TEST(WriteReportTest, InvalidSpecIsRejectedBeforeWriting) {
  audit::AuditResult result = MakeResult();
  result.spec_json = "{not json";
  const TestDir tmp;
  const std::filesystem::path dir = tmp / "out";
  const absl::Status status = WriteReport(result, dir.string());
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()), HasSubstr("result.json"));
  EXPECT_FALSE(std::filesystem::exists(dir));
  // The string builder keeps it, as text.
  EXPECT_EQ(nlohmann::json::parse(ResultJson(result)).at("spec"), "{not json");

  result.spec_json = "[1, 2]";  // valid JSON but not an object
  EXPECT_EQ(WriteReport(result, dir.string()).code(), absl::StatusCode::kInvalidArgument);
}


audit::DpAuditResult HandDpAudit() {
  audit::DpAuditResult d;
  d.canary_dataset = "mislabelled";
  d.training_alg = "nondp";
  d.canaries = 100;
  d.included = 48;
  d.delta = 1e-5;
  d.beta = 0.05;
  d.note = "The largest bound over a grid of (k+, k-) is optimistic";
  audit::DpAuditAttackResult a;
  a.attack = "loss";
  a.entries = {{10, 10, 20, 19, 1.25, false},
               {50, 50, 100, 80, 0.75, false},
               {5, 5, 10, 10, 0.5, false},
               {30, 20, 50, 49, 2.5, true}};
  a.best = 0;
  d.attacks.push_back(a);
  return d;
}

TEST(DpAuditReportTest, TableInResultJsonAndSummaryAndAPlot) {
  audit::AuditResult result = MakeResult();
  // Without a DP audit: no section, no plot.
  EXPECT_FALSE(nlohmann::json::parse(ResultJson(result)).contains("dp_audit"));
  EXPECT_THAT(SummaryMarkdown(result), ::testing::Not(::testing::HasSubstr("DP audit")));
  result.dp_audit = HandDpAudit();

  const nlohmann::json j = nlohmann::json::parse(ResultJson(result));
  const nlohmann::json& d = j["dp_audit"];
  EXPECT_EQ(d["canaries"], 100);
  EXPECT_EQ(d["included"], 48);
  EXPECT_EQ(d["delta"], 1e-5);
  ASSERT_EQ(d["attacks"].size(), 1u);
  EXPECT_EQ(d["attacks"][0]["best"], 0);
  const nlohmann::json& e = d["attacks"][0]["entries"];
  ASSERT_EQ(e.size(), 4u);
  EXPECT_EQ(e[1]["k_plus"], 50);
  EXPECT_EQ(e[1]["guesses"], 100);
  EXPECT_EQ(e[1]["correct"], 80);
  EXPECT_EQ(e[1]["epsilon"], 0.75);
  EXPECT_EQ(e[3]["chosen_after_looking"], true);
  EXPECT_THAT(d["note"].get<std::string>(), ::testing::HasSubstr("optimistic"));

  const std::string md = SummaryMarkdown(result);
  EXPECT_THAT(md, ::testing::HasSubstr("## DP audit in one run"));
  EXPECT_THAT(md, ::testing::HasSubstr("| 10 | 10 | 20 | 19 | **1.2500** (largest) |"));
  EXPECT_THAT(md, ::testing::HasSubstr("| 50 | 50 | 100 | 80 | 0.7500 |"));
  EXPECT_THAT(md, ::testing::HasSubstr(
                      "| 30 | 20 | 50 | 49 | 2.5000 (Privacy Meter's best, chosen after looking) |"));
  EXPECT_THAT(md, ::testing::HasSubstr("`dp_audit.svg`"));

  // The plot: x from 0 to m, the grid's line sorted by guesses, the
  // chosen-after-looking split as its own mark.
  const std::string svg = DpAuditSvg(*result.dp_audit);
  EXPECT_EQ(svg.rfind("<svg", 0), 0u);
  EXPECT_THAT(svg, ::testing::HasSubstr(">100</text>"));  // the x axis ends at m
  EXPECT_THAT(svg, ::testing::HasSubstr(">3.0</text>"));  // y: above the largest bound, 2.5
  EXPECT_THAT(svg, ::testing::HasSubstr("chosen after looking"));
  const std::vector<double> xs = {10, 20, 100};  // r of the grid, ascending
  const Axis x_axis{false, 0, 100, kPlotLeft, kPlotLeft + kPlotSize};
  size_t at = 0;
  for (double x : xs) {
    char buffer[32];
    std::snprintf(buffer, sizeof(buffer), "%.2f,", x_axis.Map(x));
    const size_t next = svg.find(buffer, at);
    ASSERT_NE(next, std::string::npos) << x;
    at = next;
  }

  const TestDir tmp;
  ASSERT_TRUE(WriteReport(result, (tmp / "out").string()).ok());
  EXPECT_TRUE(std::filesystem::exists(tmp / "out/dp_audit.svg"));
}

}  // namespace


audit::AuditResult DuciResult() {
  audit::AuditResult r;
  r.tool_version = "0.1.0";
  r.spec_json = "{}";
  r.targets = {0, 1};
  r.row_ids = {7, 8, 9, 10};
  r.membership = {{0, 0, 0, 0}, {1, 1, 1, 1}};
  audit::DuciResult d;
  d.candidate_points = 4;
  d.references = {2, 3, 4, 5};
  audit::DuciAttackResult a;
  a.attack = "rmia";
  a.threshold = 0.75;
  a.tpr = 0.5;
  a.fpr = 0.125;
  a.reference_members = 8;
  a.reference_non_members = 8;
  a.signal = true;
  a.targets.push_back({0, 0.0, 4, 0, 0, -1.0 / 3, 0.0, 1.0 / 3, 0.0});
  a.targets.push_back({1, 1.0, 4, 0, 2, 1.0, 1.0, 0.0, 0.0});
  a.mean_error = 1.0 / 6;
  a.mean_error_clipped = 0;
  d.attacks.push_back(a);
  audit::DuciAttackResult none = a;
  none.attack = "loss";
  none.signal = false;
  for (auto& e : none.targets) e.estimate = e.estimate_clipped = e.error = e.error_clipped = NAN;
  none.mean_error = none.mean_error_clipped = NAN;
  none.warnings = {"no signal"};
  d.attacks.push_back(none);
  r.duci = d;
  return r;
}

TEST(DuciReportTest, JsonSummaryAndPlot) {
  const audit::AuditResult r = DuciResult();
  const nlohmann::json j = nlohmann::json::parse(ResultJson(r));
  ASSERT_TRUE(j.contains("duci"));
  EXPECT_EQ(j["duci"]["candidate_points"], 4);
  EXPECT_EQ(j["duci"]["references"], nlohmann::json({2, 3, 4, 5}));
  const nlohmann::json& a = j["duci"]["attacks"][0];
  EXPECT_EQ(a["attack"], "rmia");
  EXPECT_EQ(a["threshold"], 0.75);
  EXPECT_EQ(a["tpr"], 0.5);
  EXPECT_EQ(a["fpr"], 0.125);
  EXPECT_EQ(a["signal"], true);
  EXPECT_EQ(a["targets"][0]["estimate"], -1.0 / 3);
  EXPECT_EQ(a["targets"][0]["estimate_clipped"], 0.0);
  EXPECT_EQ(a["targets"][0]["true_fraction"], 0.0);
  EXPECT_EQ(a["targets"][1]["predicted_members"], 2);
  // Undefined figures are null, not NaN literals.
  const nlohmann::json& b = j["duci"]["attacks"][1];
  EXPECT_TRUE(b["targets"][0]["estimate"].is_null());
  EXPECT_TRUE(b["mean_error"].is_null());
  EXPECT_EQ(b["warnings"], nlohmann::json({"no signal"}));
  EXPECT_FALSE(nlohmann::json::parse(ResultJson(audit::AuditResult{})).contains("duci"));

  const std::string md = SummaryMarkdown(r);
  EXPECT_THAT(md, ::testing::HasSubstr("# Dataset usage (DUCI) audit summary"));
  EXPECT_THAT(md, ::testing::HasSubstr("| target | true fraction | estimate | clipped | error |"));
  EXPECT_THAT(md, ::testing::HasSubstr("| 0 | 0.0000 | -0.3333 | 0.0000 | 0.3333 |"));
  EXPECT_THAT(md, ::testing::HasSubstr("| 1 | 1.0000 | 1.0000 | 1.0000 | 0.0000 |"));
  EXPECT_THAT(md, ::testing::HasSubstr("| 0 | 0.0000 | n/a | n/a | n/a |"));
  EXPECT_THAT(md, ::testing::HasSubstr("Warning: no signal"));

  const std::string svg = DuciSvg(r);
  EXPECT_THAT(svg, ::testing::HasSubstr("<svg"));
  EXPECT_THAT(svg, ::testing::HasSubstr("rmia (mean error 0.167)"));

  TestDir dir;
  ASSERT_TRUE(WriteReport(r, (dir / "out").string()).ok());
  for (const char* f : {"result.json", "duci.svg", "summary.md", "timing.log"}) {
    EXPECT_TRUE(std::filesystem::exists(dir / ("out/" + std::string(f)))) << f;
  }
  EXPECT_FALSE(std::filesystem::exists(dir / "out/scores.csv"));
  EXPECT_FALSE(std::filesystem::exists(dir / "out/roc.svg"));
}
}  // namespace mia::report
