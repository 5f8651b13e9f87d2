#include "core/report/report.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iterator>
#include <limits>
#include <map>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/audit/dp_guarantee.h"
#include "core/common/csv.h"
#include "core/common/file_util.h"
#include "core/common/status_macros.h"
#include "core/report/svg_plot.h"
#include "nlohmann/json.hpp"

namespace mia::report {
namespace {

// ordered_json keeps keys in insertion order, so result.json reads in the
// order of the schema rather than alphabetically.
using Json = nlohmann::ordered_json;

constexpr char kSchemaName[] = "mia.result";
constexpr double kLogAxisMin = 1e-5;
// Above this many targets the plots show only the first kPlottedTargets of
// each attack: 9+ curves per attack make the figure unreadable.
constexpr size_t kMaxTargetsPlottedInFull = 8;
constexpr size_t kPlottedTargets = 4;

// The headline FPRs of summary.md.
constexpr double kSummaryFprs[] = {0.01, 0.001};

// ---------------------------------------------------------------------------
// Shared helpers.

std::string Fixed(double value, int decimals) {
  if (!std::isfinite(value)) return "n/a";
  char buffer[64];
  std::snprintf(buffer, sizeof(buffer), "%.*f", decimals, value);
  return buffer;
}

// The shortest %g text that reads back as the same double, for figures people
// read (summary.md: plain decimals where %g gives them).
std::string Shortest(double value) {
  char buffer[40];
  for (int precision = 1; precision <= 17; ++precision) {
    std::snprintf(buffer, sizeof(buffer), "%.*g", precision, value);
    if (std::strtod(buffer, nullptr) == value) break;
  }
  return buffer;
}

// `digits` significant digits (%g), for figures people read.
std::string Significant(double value, int digits) {
  char buffer[40];
  std::snprintf(buffer, sizeof(buffer), "%.*g", digits, value);
  return buffer;
}

bool SameFpr(double a, double b) { return std::fabs(a - b) <= 1e-9 * std::max(a, b); }

// Attack names in first-seen order of result.results.
std::vector<std::string> AttackNames(const audit::AuditResult& result) {
  std::vector<std::string> names;
  for (const audit::AttackTargetResult& r : result.results) {
    if (std::find(names.begin(), names.end(), r.attack) == names.end()) names.push_back(r.attack);
  }
  return names;
}

// result.targets, then any target that only appears in result.results, so a
// partially filled result still shows all of its rows.
std::vector<int> AllTargets(const audit::AuditResult& result) {
  std::vector<int> targets = result.targets;
  for (const audit::AttackTargetResult& r : result.results) {
    if (std::find(targets.begin(), targets.end(), r.target) == targets.end()) {
      targets.push_back(r.target);
    }
  }
  return targets;
}

const audit::AttackSummary* FindSummary(const audit::AuditResult& result,
                                        std::string_view attack) {
  for (const audit::AttackSummary& s : result.summaries) {
    if (s.attack == attack) return &s;
  }
  return nullptr;
}

// ---------------------------------------------------------------------------
// result.json

Json Number(double value) { return std::isfinite(value) ? Json(value) : Json(nullptr); }

// An interval, or null when there is none (no bootstrap resamples).
Json IntervalJson(const metrics::Interval& interval) {
  if (!std::isfinite(interval.low) || !std::isfinite(interval.high)) return nullptr;
  return Json::array({Number(interval.low), Number(interval.high)});
}

Json SpreadJson(const metrics::Spread& spread) {
  Json j = Json::object();
  j["count"] = spread.count;
  j["mean"] = Number(spread.mean);
  j["stddev"] = Number(spread.stddev);
  j["min"] = Number(spread.min);
  j["max"] = Number(spread.max);
  return j;
}

// The parsed spec: {} when empty, discarded when not valid JSON.
Json ParseSpec(const std::string& spec_json) {
  if (spec_json.find_first_not_of(" \t\r\n") == std::string::npos) return Json::object();
  return Json::parse(spec_json, nullptr, /*allow_exceptions=*/false);
}

Json DpGuaranteeJson(const audit::DpGuarantee& g) {
  return {{"target", g.target},
          {"epsilon", Number(g.epsilon)},
          {"delta", Number(g.delta)},
          {"order", g.order},
          {"noise_multiplier", Number(g.noise_multiplier)},
          {"max_grad_norm", Number(g.max_grad_norm)},
          {"sample_rate", Number(g.sample_rate)},
          {"steps", g.steps}};
}

// The check of `r` in result.dp_checks, or null.
const audit::DpBoundCheck* FindDpCheck(const audit::AuditResult& result,
                                       const audit::AttackTargetResult& r) {
  for (const audit::DpBoundCheck& c : result.dp_checks) {
    if (c.attack == r.attack && c.target == r.target) return &c;
  }
  return nullptr;
}

Json AttackTargetJson(const audit::AttackTargetResult& r) {
  Json j = Json::object();
  j["attack"] = r.attack;
  j["target"] = r.target;
  j["counts"] = {{"members", r.members}, {"non_members", r.non_members}, {"excluded", r.excluded}};
  j["auc"] = Number(r.auc);
  j["auc_ci"] = IntervalJson(r.auc_ci);
  Json tprs = Json::array();
  for (size_t k = 0; k < r.tpr_at_fpr.size(); ++k) {
    const metrics::TprAtFpr& t = r.tpr_at_fpr[k];
    Json entry = Json::object();
    entry["fpr"] = Number(t.fpr);
    entry["resolved"] = t.resolved;
    // An unresolved TPR is not a number at all, and neither is its interval.
    entry["tpr"] = t.resolved ? Number(t.tpr) : Json(nullptr);
    entry["ci"] = t.resolved && k < r.tpr_ci.size() ? IntervalJson(r.tpr_ci[k]) : Json(nullptr);
    tprs.push_back(std::move(entry));
  }
  j["tpr_at_fpr"] = std::move(tprs);
  Json epsilon = Json::object();
  epsilon["value"] = Number(r.epsilon.epsilon);
  epsilon["delta"] = Number(r.epsilon.delta);
  epsilon["threshold"] = Number(r.epsilon.threshold);
  epsilon["fpr_upper"] = Number(r.epsilon.fpr_upper);
  epsilon["fnr_upper"] = Number(r.epsilon.fnr_upper);
  epsilon["selection_points"] = r.epsilon.selection_points;
  epsilon["evaluation_points"] = r.epsilon.evaluation_points;
  j["epsilon"] = std::move(epsilon);
  Json chosen = Json::object();
  for (const auto& [name, value] : r.chosen) chosen[name] = Number(value);
  j["chosen"] = std::move(chosen);
  j["warnings"] = r.warnings;
  return j;
}

Json SummaryJson(const audit::AttackSummary& s, const std::vector<double>& fprs) {
  Json j = Json::object();
  j["attack"] = s.attack;
  j["auc"] = SpreadJson(s.auc);
  Json tprs = Json::array();
  for (size_t k = 0; k < s.tpr_at_fpr.size(); ++k) {
    Json entry = Json::object();
    entry["fpr"] = k < fprs.size() ? Number(fprs[k]) : Json(nullptr);
    entry.update(SpreadJson(s.tpr_at_fpr[k]));
    tprs.push_back(std::move(entry));
  }
  j["tpr_at_fpr"] = std::move(tprs);
  return j;
}

// ---------------------------------------------------------------------------
// summary.md

// An inline code span that shows `text` verbatim: the fence is longer than any
// backtick run inside. In a table cell '|' must still be escaped (GFM).
std::string MdCode(std::string_view text, bool in_table) {
  std::string body;
  size_t run = 0, longest = 0;
  for (char c : text) {
    run = c == '`' ? run + 1 : 0;
    longest = std::max(longest, run);
    if (c == '\n' || c == '\r') {
      body += ' ';
    } else if (c == '|' && in_table) {
      body += "\\|";
    } else {
      body += c;
    }
  }
  const std::string fence(longest + 1, '`');
  const bool pad = !body.empty() && (body.front() == '`' || body.back() == '`');
  return fence + (pad ? " " : "") + body + (pad ? " " : "") + fence;
}

// Plain text that renders as itself: backslash-escape the punctuation that
// Markdown would turn into markup or HTML, and keep it on one line.
std::string MdText(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (c == '\n' || c == '\r') {
      out += ' ';
      continue;
    }
    if (std::string_view("\\`*_[]<>|#").find(c) != std::string_view::npos) out += '\\';
    out += c;
  }
  return out;
}

// " [low, high]", or nothing when there is no interval (no bootstrap
// resamples, or too few points for them).
std::string IntervalText(const metrics::Interval& ci, int decimals) {
  if (!std::isfinite(ci.low) || !std::isfinite(ci.high)) return "";
  return " [" + Fixed(ci.low, decimals) + ", " + Fixed(ci.high, decimals) + "]";
}

std::string PercentLabel(double fpr) {
  char buffer[32];
  std::snprintf(buffer, sizeof(buffer), "%g%%", fpr * 100);
  return buffer;
}

std::string TprCell(const audit::AttackTargetResult& r, double alpha) {
  for (size_t k = 0; k < r.tpr_at_fpr.size(); ++k) {
    const metrics::TprAtFpr& t = r.tpr_at_fpr[k];
    if (!SameFpr(t.fpr, alpha)) continue;
    if (!t.resolved) return "unresolved";
    std::string cell = Fixed(t.tpr, 4);
    if (k < r.tpr_ci.size()) cell += IntervalText(r.tpr_ci[k], 4);
    return cell;
  }
  return "not computed";
}

std::string SpreadText(const metrics::Spread& s, int decimals) {
  return Fixed(s.mean, decimals) + " ± " + Fixed(s.stddev, decimals);
}

void AppendAttackSection(const audit::AuditResult& result, const std::string& attack,
                         std::string& out) {
  std::vector<const audit::AttackTargetResult*> rows;
  for (const audit::AttackTargetResult& r : result.results) {
    if (r.attack == attack) rows.push_back(&r);
  }
  out += "## Attack " + MdCode(attack, false) + "\n\n";
  out += "| Target | Members | Non-members | Excluded | AUC [CI] |";
  for (double alpha : kSummaryFprs) out += " TPR at " + PercentLabel(alpha) + " FPR [CI] |";
  out += " ε lower bound |";
  const bool dp = !result.dp.empty();
  if (dp) out += " DP-SGD accountant ε |";
  out += "\n|---:|---:|---:|---:|---|";
  for (size_t k = 0; k < std::size(kSummaryFprs); ++k) out += "---|";
  out += dp ? "---:|---:|\n" : "---:|\n";
  for (const audit::AttackTargetResult* r : rows) {
    out += "| " + std::to_string(r->target) + " | " + std::to_string(r->members) + " | " +
           std::to_string(r->non_members) + " | " + std::to_string(r->excluded) + " | " +
           Fixed(r->auc, 4) + IntervalText(r->auc_ci, 4) + " |";
    for (double alpha : kSummaryFprs) out += " " + TprCell(*r, alpha) + " |";
    out += " " + Fixed(r->epsilon.epsilon, 3) + " |";
    if (dp) {
      const audit::DpBoundCheck* c = FindDpCheck(result, *r);
      if (c == nullptr) {
        out += " n/a |";
      } else {
        out += " " + (std::isfinite(c->accountant_epsilon) ? Fixed(c->accountant_epsilon, 3)
                                                            : std::string("∞"));
        out += c->exceeded ? " **lower bound above it: error in training or audit** |" : " |";
      }
    }
    out += "\n";
  }

  const audit::AttackSummary* summary = FindSummary(result, attack);
  if (rows.size() > 1) {
    int64_t excluded = 0;
    double eps_sum = 0;
    for (const audit::AttackTargetResult* r : rows) {
      excluded += r->excluded;
      eps_sum += r->epsilon.epsilon;
    }
    // Epsilon has no Spread in AttackSummary; its mean and sample standard
    // deviation are simple enough to take here.
    const double eps_mean = eps_sum / rows.size();
    double eps_ss = 0;
    for (const audit::AttackTargetResult* r : rows) {
      eps_ss += (r->epsilon.epsilon - eps_mean) * (r->epsilon.epsilon - eps_mean);
    }
    const double eps_sd = std::sqrt(eps_ss / (rows.size() - 1));
    out += "| mean ± sd (" + std::to_string(rows.size()) + " targets) | | | " +
           std::to_string(excluded) + " in all | " +
           (summary ? SpreadText(summary->auc, 4) : std::string("n/a")) + " |";
    for (double alpha : kSummaryFprs) {
      std::string cell = "n/a";
      for (size_t k = 0; summary && k < result.fprs.size() && k < summary->tpr_at_fpr.size();
           ++k) {
        if (!SameFpr(result.fprs[k], alpha)) continue;
        const metrics::Spread& s = summary->tpr_at_fpr[k];
        if (s.count == 0) {
          cell = "unresolved";
        } else {
          cell = SpreadText(s, 4);
          if (static_cast<size_t>(s.count) < rows.size()) {
            cell += " (" + std::to_string(s.count) + " of " + std::to_string(rows.size()) +
                    " resolved)";
          }
        }
        break;
      }
      out += " " + cell + " |";
    }
    out += " " + Fixed(eps_mean, 3) + " ± " + Fixed(eps_sd, 3) + " |" + (dp ? " |" : "") + "\n";
  }
  out += "\n";

  bool any_chosen = false;
  for (const audit::AttackTargetResult* r : rows) any_chosen |= !r->chosen.empty();
  if (any_chosen) {
    out += "Tuned parameters:";
    for (const audit::AttackTargetResult* r : rows) {
      if (r->chosen.empty()) continue;
      out += " target " + std::to_string(r->target) + ":";
      for (const auto& [name, value] : r->chosen) {
        out += " " + MdText(name) + " = " + Shortest(value);
      }
      out += ";";
    }
    out.back() = '.';
    out += "\n\n";
  }
  bool any_warning = false;
  for (const audit::AttackTargetResult* r : rows) {
    for (const std::string& w : r->warnings) {
      if (!any_warning) out += "Warnings:\n\n";
      any_warning = true;
      out += "- target " + std::to_string(r->target) + ": " + MdText(w) + "\n";
    }
  }
  if (any_warning) out += "\n";
}

// The range audit's settings (RaMIA): what a "range" and its score are.
void AppendRamiaSection(const audit::RamiaSummary& r, std::string& out) {
  out += "## Ranges (RaMIA)\n\n";
  out += "Each audit point is a range around a centre (" + MdCode(r.range_function, false);
  if (r.range_function == "l2") out += ", radius " + Shortest(r.radius);
  if (r.range_function == "missing_values") {
    out += ", the last " + std::to_string(r.num_missing_feats) + " features missing";
  }
  out += "). A range is a member when it holds a training point of the target: member "
         "ranges are centred on perturbed training points, non-member ranges on perturbed "
         "population points. Each range's score is the mean of its " +
         std::to_string(r.sample_size) + " sampled points' scores after dropping the " +
         std::to_string(r.trimmed_each_end) + " lowest and " +
         std::to_string(r.trimmed_each_end) + " highest (trim " + Shortest(r.trim) +
         "); every figure below is on ranges, each attack named `<attack>@range`.\n\n";
  out += "- Ranges: " + std::to_string(r.ranges) + " (" + std::to_string(r.member_ranges) +
         " members, " + std::to_string(r.non_member_ranges) + " non-members of target 0)\n";
  out += "- Population points compared with: " + std::to_string(r.population_points) + "\n\n";
}

// ---------------------------------------------------------------------------
// DP auditing in one run.

Json DpAuditJson(const audit::DpAuditResult& d) {
  Json j = Json::object();
  j["canary_dataset"] = d.canary_dataset;
  j["training_alg"] = d.training_alg;
  j["canaries"] = d.canaries;
  j["included"] = d.included;
  j["delta"] = Number(d.delta);
  j["beta"] = Number(d.beta);
  Json attacks = Json::array();
  for (const audit::DpAuditAttackResult& a : d.attacks) {
    Json entries = Json::array();
    for (const audit::DpAuditEntry& e : a.entries) {
      entries.push_back({{"k_plus", e.k_plus},
                         {"k_minus", e.k_minus},
                         {"guesses", e.guesses},
                         {"correct", e.correct},
                         {"epsilon", Number(e.epsilon)},
                         {"chosen_after_looking", e.chosen_after_looking}});
    }
    attacks.push_back({{"attack", a.attack}, {"best", a.best}, {"entries", std::move(entries)}});
  }
  j["attacks"] = std::move(attacks);
  j["note"] = d.note;
  return j;
}

void AppendDpAuditSection(const audit::DpAuditResult& d, std::string& out) {
  out += "## DP audit in one run\n\n";
  out += "- Canaries: " + std::to_string(d.canaries) + " (" + MdText(d.canary_dataset) + "), " +
         std::to_string(d.included) + " trained on by the target\n";
  out += "- Training: " + MdText(d.training_alg) + "\n";
  out += "- Bounds at δ = " + Shortest(d.delta) + ", confidence " +
         Shortest((1 - d.beta) * 100) + "%\n\n";
  for (const audit::DpAuditAttackResult& a : d.attacks) {
    out += "### " + MdCode(a.attack, false) + "\n\n";
    out += "| k+ | k- | guesses | correct | ε lower bound |\n";
    out += "|---:|---:|---:|---:|---:|\n";
    for (size_t i = 0; i < a.entries.size(); ++i) {
      const audit::DpAuditEntry& e = a.entries[i];
      std::string eps = Fixed(e.epsilon, 4);
      if (i == a.best && !e.chosen_after_looking) eps = "**" + eps + "** (largest)";
      if (e.chosen_after_looking) eps += " (Privacy Meter's best, chosen after looking)";
      out += "| " + std::to_string(e.k_plus) + " | " + std::to_string(e.k_minus) + " | " +
             std::to_string(e.guesses) + " | " + std::to_string(e.correct) + " | " + eps +
             " |\n";
    }
    out += "\n";
  }
  if (!d.note.empty()) out += MdText(d.note) + "\n\n";
}

// ---------------------------------------------------------------------------
// DUCI (result.duci).

Json DuciJson(const audit::DuciResult& d) {
  Json attacks = Json::array();
  for (const audit::DuciAttackResult& a : d.attacks) {
    Json targets = Json::array();
    for (const audit::DuciTargetEstimate& e : a.targets) {
      targets.push_back({{"target", e.target},
                         {"true_fraction", Number(e.true_fraction)},
                         {"estimate", Number(e.estimate)},
                         {"estimate_clipped", Number(e.estimate_clipped)},
                         {"error", Number(e.error)},
                         {"error_clipped", Number(e.error_clipped)},
                         {"points", e.points},
                         {"excluded", e.excluded},
                         {"predicted_members", e.predicted_members}});
    }
    attacks.push_back({{"attack", a.attack},
                       {"threshold", Number(a.threshold)},
                       {"tpr", Number(a.tpr)},
                       {"fpr", Number(a.fpr)},
                       {"reference_members", a.reference_members},
                       {"reference_non_members", a.reference_non_members},
                       {"signal", a.signal},
                       {"mean_error", Number(a.mean_error)},
                       {"mean_error_clipped", Number(a.mean_error_clipped)},
                       {"targets", std::move(targets)},
                       {"warnings", a.warnings}});
  }
  return {{"candidate_points", d.candidate_points},
          {"references", d.references},
          {"attacks", std::move(attacks)}};
}

std::string NumberCell(double value, int decimals) {
  return std::isfinite(value) ? Fixed(value, decimals) : std::string("n/a");
}

std::string DuciMarkdown(const audit::AuditResult& result) {
  const audit::DuciResult& d = *result.duci;
  std::string out = "# Dataset usage (DUCI) audit summary\n\n";
  out += "- Tool: mia " +
         MdText(result.tool_version.empty() ? "(unknown version)" : result.tool_version) + "\n";
  out += "- Candidate dataset X: " + std::to_string(d.candidate_points) + " points\n";
  out += "- Target models: " + std::to_string(result.targets.size()) + "\n";
  out += "- Reference models: " + std::to_string(d.references.size()) + "\n\n";
  out +=
      "Each target's estimate is the fraction of X it trained on, p̂ = mean over X of "
      "(pred − FPR) / (TPR − FPR), where pred thresholds the attack's score and the "
      "threshold, TPR and FPR were chosen on the reference models (each attacked with the "
      "others as its references; TPR − FPR maximised). \"Estimate\" is p̂ unclipped, "
      "\"clipped\" is p̂ clipped to [0, 1]; the error is |p̂ − true fraction| of the "
      "unclipped p̂. n/a: no signal (TPR ≤ FPR on the references).\n\n";
  for (const audit::DuciAttackResult& a : d.attacks) {
    out += "## " + MdCode(a.attack, false) + "\n\n";
    out += "Threshold " + NumberCell(a.threshold, 4) + ": TPR " + NumberCell(a.tpr, 4) + ", FPR " +
           NumberCell(a.fpr, 4) + " on " + std::to_string(a.reference_members) + " member and " +
           std::to_string(a.reference_non_members) +
           " non-member reference pairs. Mean absolute error " + NumberCell(a.mean_error, 4) +
           " (clipped " + NumberCell(a.mean_error_clipped, 4) + ").\n\n";
    out += "| target | true fraction | estimate | clipped | error |\n";
    out += "|---:|---:|---:|---:|---:|\n";
    for (const audit::DuciTargetEstimate& e : a.targets) {
      out += "| " + std::to_string(e.target) + " | " + NumberCell(e.true_fraction, 4) + " | " +
             NumberCell(e.estimate, 4) + " | " + NumberCell(e.estimate_clipped, 4) + " | " +
             NumberCell(e.error, 4) + " |\n";
    }
    out += "\n";
    for (const std::string& w : a.warnings) out += "- Warning: " + MdText(w) + "\n";
    if (!a.warnings.empty()) out += "\n";
  }
  if (!result.warnings.empty()) {
    out += "## Warnings\n\n";
    for (const std::string& w : result.warnings) out += "- " + MdText(w) + "\n";
    out += "\n";
  }
  out += "## Files\n\n";
  out += "- `result.json`: all figures above, machine-readable (schema mia.result, `duci`)\n";
  out += "- `duci.svg`: estimate (clipped) against the true fraction, per attack\n";
  out += "- `summary.md`: this summary\n";
  out += "- `timing.log`: time spent per stage\n";
  return out;
}

// ---------------------------------------------------------------------------
// Reading result.json back.

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// result.json writes every non-finite number as null.
double Num(const Json& j, const char* key, double if_null = kNaN) {
  if (!j.is_object() || !j.contains(key) || !j[key].is_number()) return if_null;
  return j[key].get<double>();
}

metrics::Interval IntervalOf(const Json& j) {
  metrics::Interval out{kNaN, kNaN};
  if (j.is_array() && j.size() == 2) {
    if (j[0].is_number()) out.low = j[0].get<double>();
    if (j[1].is_number()) out.high = j[1].get<double>();
  }
  return out;
}

metrics::Spread SpreadOf(const Json& j) {
  metrics::Spread s;
  s.count = j.value("count", 0);
  s.mean = Num(j, "mean");
  s.stddev = Num(j, "stddev");
  s.min = Num(j, "min");
  s.max = Num(j, "max");
  return s;
}

audit::PolicyVerdict PolicyOf(const Json& j) {
  audit::PolicyVerdict v;
  v.pass = j.value("verdict", "") == "PASS";
  v.use = j.value("use", "");
  for (const Json& e : j.value("rules", Json::array())) {
    audit::PolicyRuleResult r;
    r.rule = e.value("rule", "");
    r.attack = e.value("attack", "");
    r.target = e.value("target", 0);
    r.value = Num(e, "value");
    r.limit = Num(e, "limit");
    r.pass = e.value("pass", false);
    r.note = e.value("note", "");
    v.rules.push_back(std::move(r));
  }
  return v;
}

// The verdict of the audit's policy: PASS or FAIL, then each rule.
void AppendPolicySection(const audit::PolicyVerdict& v, std::string& out) {
  out += std::string("## Privacy policy: ") + (v.pass ? "PASS" : "FAIL") + "\n\n";
  out += "Judged on the " +
         std::string(v.use == "upper_ci" ? "upper end of each bootstrap interval" : "estimates") +
         ", every target on its own; a value equal to its limit passes.\n\n";
  out += "| rule | attack | target | value | limit | result |\n|---|---|---|---|---|---|\n";
  for (const audit::PolicyRuleResult& r : v.rules) {
    const std::string value = std::isnan(r.value) ? MdText(r.note.empty() ? "-" : r.note)
                                                  : absl::StrFormat("%.6g", r.value);
    out += "| " + MdCode(r.rule, true) + " | " + MdCode(r.attack, true) + " | " +
           std::to_string(r.target) + " | " + value + " | " + absl::StrFormat("%.6g", r.limit) +
           " | " + (r.pass ? "pass" : "**FAIL**") + " |\n";
  }
  out += "\n";
}

Json PolicyJson(const audit::PolicyVerdict& v) {
  Json rules = Json::array();
  for (const audit::PolicyRuleResult& r : v.rules) {
    Json row = {{"rule", r.rule},           {"attack", r.attack},       {"target", r.target},
                {"value", Number(r.value)}, {"limit", Number(r.limit)}, {"pass", r.pass}};
    if (!r.note.empty()) row["note"] = r.note;
    rules.push_back(std::move(row));
  }
  return {{"verdict", v.pass ? "PASS" : "FAIL"},
          {"use", v.use},
          {"targets", "each"},
          {"rules", std::move(rules)}};
}

// ---------------------------------------------------------------------------
// Files.


}  // namespace

std::string ResultJson(const audit::AuditResult& result) {
  Json spec = ParseSpec(result.spec_json);
  // Keep an unparseable spec as text rather than lose it (WriteReport rejects it).
  if (spec.is_discarded()) spec = result.spec_json;
  Json j = Json::object();
  j["schema"] = kSchemaName;
  j["schema_version"] = result.schema_version;
  j["tool_version"] = result.tool_version;
  j["spec"] = spec;
  // Enough to reproduce every interval and bound from the report's signals.
  j["scoring"] = {{"seed", result.seed},
                  {"bootstrap_resamples", result.bootstrap_resamples},
                  {"confidence", Number(result.confidence)}};
  Json fprs = Json::array();
  for (double f : result.fprs) fprs.push_back(Number(f));
  j["fprs"] = std::move(fprs);
  j["targets"] = result.targets;
  Json results = Json::array();
  for (const audit::AttackTargetResult& r : result.results) {
    results.push_back(AttackTargetJson(r));
  }
  j["results"] = std::move(results);
  Json summaries = Json::array();
  for (const audit::AttackSummary& s : result.summaries) {
    summaries.push_back(SummaryJson(s, result.fprs));
  }
  j["summaries"] = std::move(summaries);
  if (result.duci.has_value()) j["duci"] = DuciJson(*result.duci);
  j["warnings"] = result.warnings;
  if (!result.dp.empty()) {
    Json dp = Json::array();
    for (const audit::DpGuarantee& g : result.dp) dp.push_back(DpGuaranteeJson(g));
    j["dp"] = std::move(dp);
    Json checks = Json::array();
    for (const audit::DpBoundCheck& c : result.dp_checks) {
      checks.push_back({{"attack", c.attack},
                        {"target", c.target},
                        {"lower_bound", Number(c.lower_bound)},
                        {"lower_bound_delta", Number(c.lower_bound_delta)},
                        {"accountant_epsilon", Number(c.accountant_epsilon)},
                        {"accountant_delta", Number(c.accountant_delta)},
                        {"exceeded", c.exceeded}});
    }
    j["dp_checks"] = std::move(checks);
  }
  Json timings = Json::array();
  for (const audit::StageTiming& t : result.timings) {
    timings.push_back({{"stage", t.stage}, {"seconds", Number(t.seconds)}});
  }
  j["timings"] = std::move(timings);
  if (result.ramia.has_value()) {
    const audit::RamiaSummary& r = *result.ramia;
    j["ramia"] = {{"range_function", r.range_function},
                  {"sample_size", r.sample_size},
                  {"trim", Number(r.trim)},
                  {"trimmed_each_end", r.trimmed_each_end},
                  {"radius", Number(r.radius)},
                  {"num_missing_feats", r.num_missing_feats},
                  {"ranges", r.ranges},
                  {"member_ranges", r.member_ranges},
                  {"non_member_ranges", r.non_member_ranges},
                  {"population_points", r.population_points}};
  }
  if (result.dp_audit.has_value()) j["dp_audit"] = DpAuditJson(*result.dp_audit);
  if (result.policy.has_value()) j["policy"] = PolicyJson(*result.policy);
  // Names come from users and registries; replace invalid UTF-8 rather than
  // throw (dump's default) so a report is always produced.
  return j.dump(2, ' ', false, Json::error_handler_t::replace) + "\n";
}

absl::StatusOr<audit::AuditResult> ParseResultJson(const std::string& text,
                                                   const std::string& path) {
  const Json j = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || j.value("schema", "") != "mia.result") {
    return absl::DataLossError(absl::StrCat(path, ": not a mia result"));
  }
  audit::AuditResult r;
  try {
    r.schema_version = j.value("schema_version", 0);
    r.tool_version = j.value("tool_version", "");
    if (j.contains("spec")) r.spec_json = j["spec"].dump();
    const Json scoring = j.value("scoring", Json::object());
    if (scoring.is_object()) {
      r.seed = scoring.value("seed", uint64_t{0});
      r.bootstrap_resamples = scoring.value("bootstrap_resamples", 0);
      r.confidence = Num(scoring, "confidence");
    }
    for (const Json& f : j.value("fprs", Json::array())) {
      r.fprs.push_back(f.is_number() ? f.get<double>() : kNaN);
    }
    for (const Json& t : j.value("targets", Json::array())) r.targets.push_back(t.get<int>());
    for (const Json& e : j.value("results", Json::array())) {
      audit::AttackTargetResult a;
      a.attack = e.value("attack", "");
      a.target = e.value("target", 0);
      const Json counts = e.value("counts", Json::object());
      a.members = counts.value("members", int64_t{0});
      a.non_members = counts.value("non_members", int64_t{0});
      a.excluded = counts.value("excluded", int64_t{0});
      a.auc = Num(e, "auc");
      a.auc_ci = IntervalOf(e.value("auc_ci", Json()));
      for (const Json& t : e.value("tpr_at_fpr", Json::array())) {
        metrics::TprAtFpr tpr;
        tpr.fpr = Num(t, "fpr");
        tpr.resolved = t.value("resolved", false);
        tpr.tpr = Num(t, "tpr");
        a.tpr_at_fpr.push_back(tpr);
        a.tpr_ci.push_back(IntervalOf(t.value("ci", Json())));
      }
      const Json eps = e.value("epsilon", Json::object());
      a.epsilon.epsilon = Num(eps, "value");
      a.epsilon.delta = Num(eps, "delta");
      // null is +infinity here: nobody flagged.
      a.epsilon.threshold = Num(eps, "threshold", std::numeric_limits<double>::infinity());
      a.epsilon.fpr_upper = Num(eps, "fpr_upper");
      a.epsilon.fnr_upper = Num(eps, "fnr_upper");
      a.epsilon.selection_points = eps.value("selection_points", int64_t{0});
      a.epsilon.evaluation_points = eps.value("evaluation_points", int64_t{0});
      const Json chosen = e.value("chosen", Json::object());  // items() does not own it
      for (const auto& [name, value] : chosen.items()) {
        a.chosen[name] = value.is_number() ? value.get<double>() : kNaN;
      }
      for (const Json& w : e.value("warnings", Json::array()))
        a.warnings.push_back(w.get<std::string>());
      r.results.push_back(std::move(a));
    }
    for (const Json& e : j.value("summaries", Json::array())) {
      audit::AttackSummary s;
      s.attack = e.value("attack", "");
      s.auc = SpreadOf(e.value("auc", Json::object()));
      for (const Json& t : e.value("tpr_at_fpr", Json::array()))
        s.tpr_at_fpr.push_back(SpreadOf(t));
      r.summaries.push_back(std::move(s));
    }
    for (const Json& w : j.value("warnings", Json::array()))
      r.warnings.push_back(w.get<std::string>());
    for (const Json& t : j.value("timings", Json::array())) {
      r.timings.push_back({t.value("stage", ""), Num(t, "seconds")});
    }
    if (j.contains("ramia") && j["ramia"].is_object()) {
      const Json& e = j["ramia"];
      audit::RamiaSummary s;
      s.range_function = e.value("range_function", "");
      s.sample_size = e.value("sample_size", 0);
      s.trim = Num(e, "trim");
      s.trimmed_each_end = e.value("trimmed_each_end", 0);
      s.radius = Num(e, "radius");
      s.num_missing_feats = e.value("num_missing_feats", 0);
      s.ranges = e.value("ranges", int64_t{0});
      s.member_ranges = e.value("member_ranges", int64_t{0});
      s.non_member_ranges = e.value("non_member_ranges", int64_t{0});
      s.population_points = e.value("population_points", int64_t{0});
      r.ramia = s;
    }
    for (const Json& g : j.value("dp", Json::array())) {
      audit::DpGuarantee d;
      d.target = g.value("target", 0);
      // null is +infinity here: the accountant gave no bound.
      d.epsilon = Num(g, "epsilon", std::numeric_limits<double>::infinity());
      d.delta = Num(g, "delta");
      d.order = g.value("order", 0);
      d.noise_multiplier = Num(g, "noise_multiplier");
      d.max_grad_norm = Num(g, "max_grad_norm");
      d.sample_rate = Num(g, "sample_rate");
      d.steps = g.value("steps", int64_t{0});
      r.dp.push_back(d);
    }
    // Derived from the results and the guarantees (the warnings were read above).
    r.dp_checks = audit::DpBoundChecks(r);
    if (j.contains("dp_audit") && j["dp_audit"].is_object()) {
      const Json& dj = j["dp_audit"];
      audit::DpAuditResult d;
      d.canary_dataset = dj.value("canary_dataset", "");
      d.training_alg = dj.value("training_alg", "");
      d.canaries = dj.value("canaries", int64_t{0});
      d.included = dj.value("included", int64_t{0});
      d.delta = Num(dj, "delta");
      d.beta = Num(dj, "beta");
      for (const Json& a : dj.value("attacks", Json::array())) {
        audit::DpAuditAttackResult attack;
        attack.attack = a.value("attack", "");
        attack.best = a.value("best", size_t{0});
        for (const Json& e : a.value("entries", Json::array())) {
          audit::DpAuditEntry entry;
          entry.k_plus = e.value("k_plus", int64_t{0});
          entry.k_minus = e.value("k_minus", int64_t{0});
          entry.guesses = e.value("guesses", int64_t{0});
          entry.correct = e.value("correct", int64_t{0});
          entry.epsilon = Num(e, "epsilon");
          entry.chosen_after_looking = e.value("chosen_after_looking", false);
          attack.entries.push_back(entry);
        }
        d.attacks.push_back(std::move(attack));
      }
      d.note = dj.value("note", "");
      r.dp_audit = std::move(d);
    }
    if (j.contains("duci") && j["duci"].is_object()) {
      const Json& d = j["duci"];
      audit::DuciResult duci;
      duci.candidate_points = d.value("candidate_points", int64_t{0});
      for (const Json& m : d.value("references", Json::array())) {
        duci.references.push_back(m.get<int>());
      }
      for (const Json& e : d.value("attacks", Json::array())) {
        audit::DuciAttackResult a;
        a.attack = e.value("attack", "");
        a.threshold = Num(e, "threshold");
        a.tpr = Num(e, "tpr");
        a.fpr = Num(e, "fpr");
        a.reference_members = e.value("reference_members", int64_t{0});
        a.reference_non_members = e.value("reference_non_members", int64_t{0});
        a.signal = e.value("signal", false);
        a.mean_error = Num(e, "mean_error");
        a.mean_error_clipped = Num(e, "mean_error_clipped");
        for (const Json& w : e.value("warnings", Json::array())) {
          a.warnings.push_back(w.get<std::string>());
        }
        for (const Json& t : e.value("targets", Json::array())) {
          audit::DuciTargetEstimate est;
          est.target = t.value("target", 0);
          est.true_fraction = Num(t, "true_fraction");
          est.estimate = Num(t, "estimate");
          est.estimate_clipped = Num(t, "estimate_clipped");
          est.error = Num(t, "error");
          est.error_clipped = Num(t, "error_clipped");
          est.points = t.value("points", int64_t{0});
          est.excluded = t.value("excluded", int64_t{0});
          est.predicted_members = t.value("predicted_members", int64_t{0});
          a.targets.push_back(est);
        }
        duci.attacks.push_back(std::move(a));
      }
      r.duci = std::move(duci);
    }
    if (j.contains("policy") && j["policy"].is_object()) r.policy = PolicyOf(j["policy"]);
  } catch (const Json::exception&) {
    return absl::DataLossError(absl::StrCat(path, ": a field has the wrong type"));
  }
  return r;
}

std::string ScoresCsv(const audit::AuditResult& result) {
  const std::vector<std::string> attacks = AttackNames(result);
  const std::vector<int> targets = AllTargets(result);

  // (attack column, target) -> result; the first one wins if repeated.
  std::map<std::pair<size_t, int>, const audit::AttackTargetResult*> by_key;
  size_t points = result.row_ids.size();
  for (const audit::AttackTargetResult& r : result.results) {
    const size_t column = static_cast<size_t>(
        std::find(attacks.begin(), attacks.end(), r.attack) - attacks.begin());
    by_key.emplace(std::make_pair(column, r.target), &r);
    points = std::max(points, r.scores.size());
  }
  for (const std::vector<uint8_t>& m : result.membership) points = std::max(points, m.size());

  std::vector<std::string> header = {"row_id", "target", "member"};
  header.insert(header.end(), attacks.begin(), attacks.end());
  std::string out;
  AppendCsvRecord(header, &out);
  // The rows hold only numbers, which CSV never quotes: written directly.
  for (size_t t = 0; t < targets.size(); ++t) {
    const int target = targets[t];
    const std::vector<uint8_t>* membership =
        t < result.targets.size() && t < result.membership.size() ? &result.membership[t]
                                                                  : nullptr;
    std::vector<const audit::AttackTargetResult*> columns(attacks.size(), nullptr);
    for (size_t c = 0; c < attacks.size(); ++c) {
      const auto it = by_key.find({c, target});
      if (it != by_key.end()) columns[c] = it->second;
    }
    for (size_t i = 0; i < points; ++i) {
      if (i < result.row_ids.size()) out += std::to_string(result.row_ids[i]);
      out += "," + std::to_string(target) + ",";
      if (membership != nullptr && i < membership->size()) out += (*membership)[i] ? "1" : "0";
      for (const audit::AttackTargetResult* r : columns) {
        out += ',';
        // Excluded points (NaN) and missing results stay empty.
        if (r != nullptr && i < r->scores.size() && !std::isnan(r->scores[i])) {
          out += CsvNumber(r->scores[i]);
        }
      }
      out += '\n';
    }
  }
  return out;
}

absl::StatusOr<std::vector<std::string>> ParseScoresHeader(const CsvReader& reader,
                                                           const std::vector<std::string>& fields) {
  const char* const fixed[] = {"row_id", "target", "member"};
  for (size_t i = 0; i < 3; ++i) {
    if (i >= fields.size() || fields[i] != fixed[i]) {
      return reader.FieldError(i, "the header must start with row_id,target,member");
    }
  }
  return std::vector<std::string>(fields.begin() + 3, fields.end());
}

absl::Status ParseScoresRow(const CsvReader& reader, const std::vector<std::string>& fields,
                            size_t attacks, ScoresRow* row) {
  if (fields.size() != attacks + 3) {
    return reader.FieldError(
        std::min(fields.size(), attacks + 3),
        absl::StrCat(fields.size(), " fields where the header has ", attacks + 3));
  }
  if (!absl::SimpleAtoi(fields[0], &row->row_id)) {
    return reader.FieldError(0, "row_id is not an integer");
  }
  if (!absl::SimpleAtoi(fields[1], &row->target)) {
    return reader.FieldError(1, "target is not an integer");
  }
  if (fields[2] != "0" && fields[2] != "1") return reader.FieldError(2, "member is not 0 or 1");
  row->member = fields[2] == "1";
  row->scores.assign(attacks, std::numeric_limits<double>::quiet_NaN());
  for (size_t c = 0; c < attacks; ++c) {
    const std::string& f = fields[3 + c];
    if (!f.empty() && !absl::SimpleAtod(f, &row->scores[c])) {
      return reader.FieldError(3 + c, "the score is not a number");
    }
  }
  return absl::OkStatus();
}

std::string SummaryMarkdown(const audit::AuditResult& result) {
  if (result.duci.has_value()) return DuciMarkdown(result);
  const std::vector<std::string> attacks = AttackNames(result);
  std::string out = "# Membership-inference audit summary\n\n";
  if (result.policy.has_value()) AppendPolicySection(*result.policy, out);
  out += "- Tool: mia " + MdText(result.tool_version.empty() ? "(unknown version)"
                                                               : result.tool_version) +
         "\n";
  out += "- Audit points: " + std::to_string(result.row_ids.size()) + "\n";
  std::string targets;
  for (int t : result.targets) targets += (targets.empty() ? "" : ", ") + std::to_string(t);
  out += "- Target models: " + std::to_string(result.targets.size()) +
         (targets.empty() ? "" : " (" + targets + ")") + "\n";
  std::string attack_list;
  for (const std::string& a : attacks) {
    attack_list += (attack_list.empty() ? "" : ", ") + MdCode(a, false);
  }
  out += "- Attacks: " + (attack_list.empty() ? std::string("none") : attack_list) + "\n\n";
  out += "Members are the positive class. TPR is the true positive rate at a fixed false "
         "positive rate (FPR); bracketed figures are bootstrap confidence intervals. "
         "\"unresolved\" means the audit has too few non-members to measure that FPR "
         "(it needs at least 1 / FPR of them). The ε lower bound is an empirical "
         "differential-privacy lower bound from the attack";
  if (!result.results.empty()) out += " (δ = " + Shortest(result.results.front().epsilon.delta) + ")";
  out += ".";
  if (result.bootstrap_resamples > 0) {
    out += " Intervals: " + std::to_string(result.bootstrap_resamples) + " bootstrap resamples, " +
           Shortest(result.confidence * 100) + "% level.";
  } else {
    out += " No bootstrap resamples were asked for: no intervals.";
  }
  if (result.ramia.has_value()) {
    out += " Scoring seed " + std::to_string(result.seed) + ".\n\n";
    AppendRamiaSection(*result.ramia, out);
  } else {
    out += " Scoring seed " + std::to_string(result.seed) +
           " (`mia score --seed " + std::to_string(result.seed) +
           "` on this report's signals reproduces these figures).\n\n";
  }

  if (!result.dp.empty()) {
    out += "## DP-SGD targets\n\n";
    out += "The RDP accountant's (ε, δ) of each target trained with DP-SGD: an upper bound on "
           "its privacy loss. An empirical ε lower bound above it is an error in training or "
           "audit.\n\n";
    out += "| Target | ε | δ | Noise multiplier σ | Clip norm C | Sample rate q | Steps |\n";
    out += "|---:|---:|---:|---:|---:|---:|---:|\n";
    for (const audit::DpGuarantee& g : result.dp) {
      out += "| " + std::to_string(g.target) + " | " +
             (std::isfinite(g.epsilon) ? Fixed(g.epsilon, 4) : std::string("∞")) + " | " +
             Shortest(g.delta) + " | " + Shortest(g.noise_multiplier) + " | " +
             Shortest(g.max_grad_norm) + " | " + Significant(g.sample_rate, 4) + " | " +
             std::to_string(g.steps) + " |\n";
    }
    out += "\n";
  }
  for (const std::string& attack : attacks) AppendAttackSection(result, attack, out);
  if (result.dp_audit.has_value()) AppendDpAuditSection(*result.dp_audit, out);

  if (!result.warnings.empty()) {
    out += "## Warnings\n\n";
    for (const std::string& w : result.warnings) out += "- " + MdText(w) + "\n";
    out += "\n";
  }
  out += "## Files\n\n";
  out += "- `result.json`: all figures above, machine-readable (schema mia.result)\n";
  out += "- `scores.csv`: the score of every audit point, per target and attack\n";
  out += "- `roc.svg`: ROC curves, linear axes\n";
  out += "- `roc_log.svg`: ROC curves, log-log axes (the low-FPR region)\n";
  if (result.dp_audit.has_value()) {
    out += "- `dp_audit.svg`: the DP audit's ε lower bound against the number of guesses\n";
  }
  out += "- `summary.md`: this summary\n";
  out += "- `report.html`: the whole report as one page (plots, models, exposed points, spec)\n";
  out += "- `timing.log`: time spent per stage\n";
  return out;
}

std::string TimingLog(const audit::AuditResult& result) {
  std::string out;
  double total = 0;
  for (const audit::StageTiming& t : result.timings) {
    // One record per line, two tab-separated fields: keep the name on one field.
    std::string stage = t.stage;
    std::replace_if(
        stage.begin(), stage.end(), [](char c) { return c == '\t' || c == '\n' || c == '\r'; },
        ' ');
    out += stage + "\t" + Fixed(t.seconds, 3) + "\n";
    if (std::isfinite(t.seconds)) total += t.seconds;
  }
  out += "total\t" + Fixed(total, 3) + "\n";
  return out;
}

std::string RocSvg(const audit::AuditResult& result, bool log_axes,
                   const ReportOptions& options) {
  const std::vector<std::string> attacks = AttackNames(result);
  const size_t target_count = AllTargets(result).size();
  const bool capped = target_count > kMaxTargetsPlottedInFull;
  const Axis x_axis = XAxis(log_axes, kLogAxisMin);
  const Axis y_axis = YAxis(log_axes, kLogAxisMin);

  // One color per attack, one dash per target within it: 16 curves (and more)
  // stay tellable apart.
  std::vector<PlotSeries> series;
  for (size_t a = 0; a < attacks.size(); ++a) {
    const std::string& attack = attacks[a];
    size_t plotted = 0;
    for (const audit::AttackTargetResult& r : result.results) {
      if (r.attack != attack) continue;
      if (capped && plotted == kPlottedTargets) break;
      PlotSeries s;
      s.label = absl::StrCat(r.attack, " (target ", r.target, ") AUC ", Fixed(r.auc, 4));
      s.color = SeriesColor(static_cast<int>(a));
      s.dash = SeriesDash(static_cast<int>(plotted));
      ++plotted;
      const std::vector<size_t> kept =
          ThinCurve(r.roc.fpr, r.roc.tpr, options.max_plot_points, x_axis, y_axis);
      std::vector<double> fpr, tpr;
      fpr.reserve(kept.size());
      tpr.reserve(kept.size());
      for (size_t i : kept) {
        fpr.push_back(r.roc.fpr[i]);
        tpr.push_back(r.roc.tpr[i]);
      }
      // Only where resolved: from FPR 1 / #non-members (on the log plot; on
      // the linear one FPR 0 is an operating point and is drawn).
      const double min_fpr =
          log_axes ? std::max(kLogAxisMin, r.roc.negatives > 0
                                               ? 1.0 / static_cast<double>(r.roc.negatives)
                                               : 1.0)
                   : 0.0;
      StepCurve(fpr, tpr, min_fpr, &s.x, &s.y);
      series.push_back(std::move(s));
    }
  }

  PlotSpec spec;
  spec.title = log_axes ? "ROC curves (log-log)" : "ROC curves";
  spec.x_label = "False positive rate";
  spec.y_label = "True positive rate";
  spec.log_axes = log_axes;
  spec.log_min = kLogAxisMin;
  spec.subtitle = absl::StrCat(attacks.size(), attacks.size() == 1 ? " attack, " : " attacks, ",
                               target_count, target_count == 1 ? " target" : " targets");
  if (capped) {
    absl::StrAppend(&spec.subtitle, "; showing the first ", kPlottedTargets, " of ",
                    target_count, " targets per attack");
  }
  if (log_axes) {
    absl::StrAppend(&spec.subtitle,
                    "; each curve from its smallest resolvable FPR (1 / non-members); "
                    "TPR 0 drawn at 1e-5");
  }
  return RenderLinePlot(spec, series);
}

std::string DpAuditSvg(const audit::DpAuditResult& d) {
  std::vector<PlotSeries> series;
  double eps_max = 0;
  for (size_t a = 0; a < d.attacks.size(); ++a) {
    const audit::DpAuditAttackResult& attack = d.attacks[a];
    std::vector<std::pair<int64_t, double>> points;
    for (const audit::DpAuditEntry& e : attack.entries) {
      if (std::isfinite(e.epsilon)) eps_max = std::max(eps_max, e.epsilon);
      if (!e.chosen_after_looking) points.push_back({e.guesses, e.epsilon});
    }
    std::sort(points.begin(), points.end());
    PlotSeries s;
    s.label = attack.attack;
    s.color = SeriesColor(static_cast<int>(a));
    for (const auto& [r, eps] : points) {
      s.x.push_back(static_cast<double>(r));
      s.y.push_back(eps);
    }
    series.push_back(std::move(s));
    // Privacy Meter's best split as a one-point series: a mark, not a line.
    for (const audit::DpAuditEntry& e : attack.entries) {
      if (!e.chosen_after_looking) continue;
      PlotSeries best;
      best.label = attack.attack + " (Privacy Meter's best, chosen after looking)";
      best.color = SeriesColor(static_cast<int>(a));
      best.dash = SeriesDash(1);
      best.x = {static_cast<double>(e.guesses), static_cast<double>(e.guesses)};
      best.y = {0.0, e.epsilon};
      series.push_back(std::move(best));
    }
  }
  PlotSpec spec;
  spec.title = "DP audit in one run: ε lower bound";
  spec.subtitle = absl::StrCat(d.canaries, " canaries (", d.canary_dataset, "), δ = ",
                               Shortest(d.delta), ", confidence ", Shortest((1 - d.beta) * 100),
                               "%");
  spec.x_label = "Guesses r = k+ + k-";
  spec.y_label = "ε lower bound";
  spec.chance_diagonal = false;
  spec.x_max = static_cast<double>(std::max<int64_t>(d.canaries, 1));
  // A multiple of 0.5 above the largest bound: the fifths are exact tenths.
  spec.y_max = eps_max > 0 ? std::ceil(eps_max * 1.05 / 0.5) * 0.5 : 1.0;
  return RenderLinePlot(spec, series);
}

std::string DuciSvg(const audit::AuditResult& result) {
  std::vector<PlotSeries> series;
  if (result.duci.has_value()) {
    const std::vector<audit::DuciAttackResult>& attacks = result.duci->attacks;
    for (size_t a = 0; a < attacks.size(); ++a) {
      std::vector<std::pair<double, double>> points;
      for (const audit::DuciTargetEstimate& e : attacks[a].targets) {
        if (std::isfinite(e.true_fraction) && std::isfinite(e.estimate_clipped)) {
          points.emplace_back(e.true_fraction, e.estimate_clipped);
        }
      }
      std::sort(points.begin(), points.end());
      PlotSeries s;
      s.label = absl::StrCat(attacks[a].attack, " (mean error ",
                             NumberCell(attacks[a].mean_error, 3), ")");
      s.color = SeriesColor(static_cast<int>(a));
      for (const auto& [x, y] : points) {
        s.x.push_back(x);
        s.y.push_back(y);
      }
      series.push_back(std::move(s));
    }
  }
  PlotSpec spec;
  spec.title = "Dataset usage (DUCI): estimate against truth";
  spec.subtitle = "estimates clipped to [0, 1]; the diagonal is a perfect estimate";
  spec.x_label = "True fraction of X trained on";
  spec.y_label = "Estimated fraction";
  return RenderLinePlot(spec, series);
}

absl::Status WriteReport(const audit::AuditResult& result, const std::string& out_dir,
                         const ReportOptions& options) {
  if (out_dir.empty()) return absl::InvalidArgumentError("report output folder path is empty");
  const std::filesystem::path dir(out_dir);

  // Validate before touching the disk, so a bad result leaves no files behind.
  const Json spec = ParseSpec(result.spec_json);
  if (spec.is_discarded() || !spec.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot write ", (dir / "result.json").string(),
                     ": the audit spec (spec_json) is not a JSON object"));
  }

  std::error_code error;
  std::filesystem::create_directories(dir, error);
  if (error) {
    return absl::InternalError(
        absl::StrCat("cannot create report folder ", out_dir, ": ", error.message()));
  }
  if (!std::filesystem::is_directory(dir, error)) {
    return absl::InternalError(
        absl::StrCat("cannot create report folder ", out_dir, ": not a directory"));
  }

  const std::string result_json = ResultJson(result);
  std::vector<std::pair<std::string, std::string>> files;
  files.emplace_back("result.json", result_json);
  if (result.duci.has_value()) {
    files.emplace_back("duci.svg", DuciSvg(result));
  } else {
    files.emplace_back("scores.csv", ScoresCsv(result));
    files.emplace_back("roc.svg", RocSvg(result, /*log_axes=*/false, options));
    files.emplace_back("roc_log.svg", RocSvg(result, /*log_axes=*/true, options));
  }
  files.emplace_back("summary.md", SummaryMarkdown(result));
  files.emplace_back("report.html", ReportHtml(result, result_json, options));
  files.emplace_back("timing.log", TimingLog(result));
  if (result.dp_audit.has_value()) {
    files.emplace_back("dp_audit.svg", DpAuditSvg(*result.dp_audit));
  }
  return mia::WriteFilesAtomically(dir.string(), files);
}

}  // namespace mia::report
