// report.html: one self-contained page per report folder (see report.h and
// docs/report-format.md). Every figure in it is taken from the result.json
// document of the same result (ResultJson parsed back), so the page and the
// file cannot disagree: each figure cell carries the value exactly as
// result.json writes it in data-value and shows it rounded. The ROC plots are
// the SVGs of roc.svg and roc_log.svg, inlined. Nothing is loaded from
// anywhere: no scripts, fonts, images or style sheets outside the file.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "core/report/report.h"
#include "core/report/svg_plot.h"
#include "nlohmann/json.hpp"

namespace mia::report {
namespace {

using Json = nlohmann::ordered_json;

std::string Esc(std::string_view text) { return XmlEscape(text); }

// A number as result.json writes it (nlohmann's shortest round trip), or
// "null".
std::string Exact(const Json& value) {
  return value.is_number() ? value.dump() : std::string("null");
}

std::string Rounded(const Json& value, int decimals) {
  if (!value.is_number()) return "n/a";
  char buffer[64];
  std::snprintf(buffer, sizeof(buffer), "%.*f", decimals, value.get<double>());
  return buffer;
}

std::string IntText(const Json& value) { return value.is_number() ? value.dump() : "n/a"; }

// A table cell holding one figure: `field` names it for scripts, data-value
// keeps result.json's exact text, the cell shows it rounded to `decimals`
// (integers whole) and, when given, its interval.
std::string FigureCell(std::string_view field, const Json& value, int decimals,
                       const Json& interval = Json()) {
  std::string shown = decimals < 0 ? IntText(value) : Rounded(value, decimals);
  if (interval.is_array() && interval.size() == 2) {
    absl::StrAppend(&shown, " <span class=\"ci\">[", Rounded(interval[0], decimals), ", ",
                    Rounded(interval[1], decimals), "]</span>");
  }
  return absl::StrCat("<td class=\"num\" data-field=\"", Esc(field), "\" data-value=\"",
                      Esc(Exact(value)), "\">", shown, "</td>");
}

std::string TextCell(std::string_view text) { return absl::StrCat("<td>", Esc(text), "</td>"); }

// "1%", "0.1%": an FPR as a label.
std::string PercentLabel(const Json& fpr) {
  if (!fpr.is_number()) return "n/a";
  char buffer[32];
  std::snprintf(buffer, sizeof(buffer), "%g%%", fpr.get<double>() * 100);
  return buffer;
}

std::string StringOr(const Json& j, const char* key, std::string_view fallback) {
  if (j.is_object() && j.contains(key) && j[key].is_string()) return j[key].get<std::string>();
  return std::string(fallback);
}

// A value of any JSON type as text (the policy's values and limits).
std::string AnyText(const Json& value) {
  if (value.is_string()) return value.get<std::string>();
  if (value.is_null()) return "n/a";
  return value.dump(-1, ' ', false, Json::error_handler_t::replace);
}

// The SVG of a plot for inlining into HTML: the HTML parser gives <svg> its
// namespace, so the xmlns attribute (a URL) is dropped.
std::string InlineSvg(const std::string& svg) {
  return absl::StrReplaceAll(svg, {{" xmlns=\"http://www.w3.org/2000/svg\"", ""}});
}

constexpr char kStyle[] = R"css(
:root { color-scheme: light; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0 auto;
  max-width: 1100px; padding: 1em 2em; color: #1a1a1a; line-height: 1.4; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { font-size: 1.25em; border-bottom: 1px solid #ccc; padding-bottom: 0.2em; margin-top: 1.6em; }
h3 { font-size: 1.05em; }
nav a { margin-right: 0.8em; }
table { border-collapse: collapse; margin: 0.6em 0 1em; font-size: 0.92em; display: block;
  overflow-x: auto; max-width: 100%; }
th, td { border: 1px solid #d0d0d0; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.ci { color: #666; }
.muted { color: #666; }
.verdict { display: inline-block; font-weight: bold; font-size: 1.3em; padding: 0.2em 0.8em;
  border-radius: 4px; }
.verdict.pass { background: #d8f5d8; color: #145214; }
.verdict.fail { background: #fbdada; color: #7a1010; }
tr.fail td { background: #fdf0f0; }
.plots { display: flex; flex-wrap: wrap; gap: 1em; }
.plots svg { max-width: 100%; height: auto; border: 1px solid #e0e0e0; }
pre { background: #f7f7f7; border: 1px solid #e0e0e0; padding: 0.8em; overflow-x: auto;
  font-size: 0.85em; white-space: pre-wrap; word-break: break-all; }
ul.warnings li { margin-bottom: 0.2em; }
@media print {
  body { max-width: none; padding: 0; font-size: 10pt; }
  nav { display: none; }
  table { display: table; overflow: visible; }
  h2 { break-after: avoid; page-break-after: avoid; }
  table, .plots svg, pre { break-inside: avoid; page-break-inside: avoid; }
  .plots { display: block; }
  a { color: inherit; text-decoration: none; }
}
)css";

struct Section {
  const char* id;
  const char* title;
};

void AppendVerdict(const Json& policy, std::string& out) {
  const std::string verdict = StringOr(policy, "verdict", "");
  const bool pass = verdict == "PASS";
  absl::StrAppend(&out, "<section id=\"verdict\"><h2>Verdict</h2>\n<p><span class=\"verdict ",
                  pass ? "pass" : "fail", "\" data-field=\"verdict\">",
                  Esc(verdict.empty() ? "unknown" : verdict), "</span></p>\n");
  const Json rules = policy.contains("rules") ? policy["rules"] : Json::array();
  if (rules.is_array() && !rules.empty()) {
    out += "<table class=\"policy\"><thead><tr><th>Rule</th><th>Attack</th><th>Target</th>"
           "<th>Value</th><th>Limit</th><th>Result</th></tr></thead><tbody>\n";
    for (const Json& rule : rules) {
      const bool ok = rule.is_object() && rule.value("pass", false);
      absl::StrAppend(&out, "<tr class=\"", ok ? "pass" : "fail", "\">",
                      TextCell(StringOr(rule, "rule", "")), TextCell(StringOr(rule, "attack", "")),
                      TextCell(rule.is_object() && rule.contains("target")
                                   ? AnyText(rule["target"])
                                   : std::string("all")),
                      TextCell(rule.is_object() && rule.contains("value") ? AnyText(rule["value"])
                                                                          : "n/a"),
                      TextCell(rule.is_object() && rule.contains("limit") ? AnyText(rule["limit"])
                                                                          : "n/a"),
                      TextCell(ok ? "pass" : "FAIL"), "</tr>\n");
    }
    out += "</tbody></table>\n";
  }
  out += "</section>\n";
}

// Per attack: one row per target, then the spread over targets.
void AppendResults(const Json& j, const std::vector<std::string>& attacks, std::string& out) {
  const Json& fprs = j["fprs"];
  out += "<section id=\"results\"><h2>Results per attack</h2>\n"
         "<p>Members are the positive class; a higher score means \"more likely a member\". "
         "TPR is the true positive rate at a fixed false positive rate (FPR); bracketed figures "
         "are bootstrap confidence intervals. \"unresolved\": too few non-members to measure "
         "that FPR (at least 1 / FPR are needed). &epsilon; is the empirical "
         "differential-privacy lower bound (see the section on &epsilon; bounds).</p>\n";
  for (const std::string& attack : attacks) {
    absl::StrAppend(&out, "<h3>Attack <code>", Esc(attack), "</code></h3>\n",
                    "<table class=\"attack\" data-attack=\"", Esc(attack),
                    "\"><thead><tr><th>Target</th><th>Members</th><th>Non-members</th>"
                    "<th>Excluded</th><th>AUC [CI]</th>");
    for (const Json& f : fprs) absl::StrAppend(&out, "<th>TPR at ", PercentLabel(f), " FPR</th>");
    out += "<th>&epsilon; lower bound</th></tr></thead><tbody>\n";
    for (const Json& r : j["results"]) {
      if (r["attack"] != attack) continue;
      absl::StrAppend(&out, "<tr class=\"result\" data-attack=\"", Esc(attack),
                      "\" data-target=\"", IntText(r["target"]), "\"><td>",
                      IntText(r["target"]), "</td>",
                      FigureCell("members", r["counts"]["members"], -1),
                      FigureCell("non_members", r["counts"]["non_members"], -1),
                      FigureCell("excluded", r["counts"]["excluded"], -1),
                      FigureCell("auc", r["auc"], 4, r["auc_ci"]));
      for (size_t k = 0; k < fprs.size(); ++k) {
        const Json* t = k < r["tpr_at_fpr"].size() ? &r["tpr_at_fpr"][k] : nullptr;
        // data-fpr: the FPR exactly as result.json writes it.
        const std::string fpr = absl::StrCat(" data-fpr=\"", Exact(fprs[k]), "\"");
        if (t == nullptr) {
          absl::StrAppend(&out, "<td data-field=\"tpr\"", fpr, ">not computed</td>");
        } else if (!(*t)["resolved"].get<bool>()) {
          absl::StrAppend(&out, "<td class=\"muted\" data-field=\"tpr\"", fpr,
                          " data-value=\"null\">unresolved</td>");
        } else {
          std::string cell = FigureCell("tpr", (*t)["tpr"], 4, (*t)["ci"]);
          cell.insert(std::string("<td class=\"num\" data-field=\"tpr\"").size(), fpr);
          out += cell;
        }
      }
      absl::StrAppend(&out, FigureCell("epsilon", r["epsilon"]["value"], 3), "</tr>\n");
    }
    out += "</tbody></table>\n";
    // Tuned parameters, when the attack chose any.
    std::string chosen;
    for (const Json& r : j["results"]) {
      if (r["attack"] != attack || r["chosen"].empty()) continue;
      absl::StrAppend(&chosen, chosen.empty() ? "" : "; ", "target ", IntText(r["target"]), ":");
      for (const auto& [name, value] : r["chosen"].items()) {
        absl::StrAppend(&chosen, " ", Esc(name), " = ", Exact(value));
      }
    }
    if (!chosen.empty()) absl::StrAppend(&out, "<p>Tuned parameters: ", chosen, ".</p>\n");
  }
  out += "</section>\n";
}

void AppendSpread(const Json& j, std::string& out) {
  const Json& fprs = j["fprs"];
  out += "<section id=\"spread\"><h2>Spread over targets</h2>\n"
         "<p>Mean, sample standard deviation, minimum and maximum over the target models of "
         "each attack; a TPR counts only the targets where it was resolved.</p>\n"
         "<table class=\"spread\"><thead><tr><th>Attack</th><th>Figure</th><th>Targets</th>"
         "<th>Mean</th><th>SD</th><th>Min</th><th>Max</th></tr></thead><tbody>\n";
  for (const Json& s : j["summaries"]) {
    const std::string attack = s["attack"].get<std::string>();
    // figure: "auc", or "tpr" with data-fpr as result.json writes the FPR.
    auto row = [&](const std::string& figure, const Json& fpr, const Json& spread) {
      const std::string fpr_attribute =
          fpr.is_null() ? "" : absl::StrCat(" data-fpr=\"", Exact(fpr), "\"");
      const std::string label =
          fpr.is_null() ? figure : absl::StrCat("TPR at ", PercentLabel(fpr), " FPR");
      absl::StrAppend(&out, "<tr data-attack=\"", Esc(attack), "\" data-figure=\"", Esc(figure),
                      "\"", fpr_attribute, ">", TextCell(attack), TextCell(label),
                      FigureCell("count", spread["count"], -1));
      if (spread["count"] == 0) {
        // Resolved on no target: result.json's zeros are no figures.
        absl::StrAppend(&out, "<td class=\"muted\" colspan=\"4\">unresolved on every target</td>",
                        "</tr>\n");
        return;
      }
      absl::StrAppend(&out, FigureCell("mean", spread["mean"], 4),
                      FigureCell("stddev", spread["stddev"], 4), FigureCell("min", spread["min"], 4),
                      FigureCell("max", spread["max"], 4), "</tr>\n");
    };
    row("auc", Json(), s["auc"]);
    for (const Json& t : s["tpr_at_fpr"]) row("tpr", t["fpr"], t);
  }
  out += "</tbody></table>\n";
  if (fprs.empty()) out += "<p class=\"muted\">No FPRs were asked for.</p>\n";
  out += "</section>\n";
}

void AppendEpsilon(const Json& j, std::string& out) {
  out += "<section id=\"epsilon\"><h2>&epsilon; bounds</h2>\n"
         "<p>An empirical lower bound on the differential-privacy &epsilon; of the training at "
         "the given &delta;: a threshold on the attack's score is chosen on one half of the audit "
         "points (selection) and its false positive and false negative rates are bounded from "
         "above on the other half (evaluation), at the report's confidence. A value of 0 shows "
         "no measurable leakage.</p>\n"
         "<table class=\"epsilon\"><thead><tr><th>Attack</th><th>Target</th><th>&epsilon;</th>"
         "<th>&delta;</th><th>Threshold</th><th>FPR upper</th><th>FNR upper</th>"
         "<th>Selection points</th><th>Evaluation points</th></tr></thead><tbody>\n";
  for (const Json& r : j["results"]) {
    const Json& e = r["epsilon"];
    absl::StrAppend(&out, "<tr data-attack=\"", Esc(r["attack"].get<std::string>()),
                    "\" data-target=\"", IntText(r["target"]), "\">",
                    TextCell(r["attack"].get<std::string>()), "<td>", IntText(r["target"]),
                    "</td>", FigureCell("value", e["value"], 4), FigureCell("delta", e["delta"], 6),
                    FigureCell("threshold", e["threshold"], 4),
                    FigureCell("fpr_upper", e["fpr_upper"], 4),
                    FigureCell("fnr_upper", e["fnr_upper"], 4),
                    FigureCell("selection_points", e["selection_points"], -1),
                    FigureCell("evaluation_points", e["evaluation_points"], -1), "</tr>\n");
  }
  out += "</tbody></table>\n</section>\n";
}

void AppendModels(const std::string& models_json, std::string& out) {
  out += "<section id=\"models\"><h2>Models</h2>\n";
  const Json models = models_json.empty()
                          ? Json()
                          : Json::parse(models_json, nullptr, /*allow_exceptions=*/false);
  if (!models.is_object() || !models.contains("models") || !models["models"].is_array()) {
    out += "<p class=\"muted\">No models were trained or loaded by this audit (its signals "
           "were given).</p>\n</section>\n";
    return;
  }
  out += "<p>Accuracy and loss of every model on its own training rows and on rows it did not "
         "train on: a large gap (overfitting) is what membership inference exploits.</p>\n"
         "<table class=\"models\"><thead><tr><th>Model</th><th>Role</th><th>Source</th>"
         "<th>Train rows</th><th>Train accuracy</th><th>Test accuracy</th><th>Gap</th>"
         "<th>Train loss</th><th>Test loss</th><th>Seconds</th></tr></thead><tbody>\n";
  for (const Json& m : models["models"]) {
    if (!m.is_object()) continue;
    const Json train = m.value("train_accuracy", Json());
    const Json test = m.value("test_accuracy", Json());
    const Json gap = train.is_number() && test.is_number()
                         ? Json(train.get<double>() - test.get<double>())
                         : Json();
    // The source of a TorchScript model is its path: shown as given (escaped).
    absl::StrAppend(&out, "<tr data-index=\"", IntText(m.value("index", Json())), "\"><td>",
                    IntText(m.value("index", Json())), "</td>",
                    TextCell(StringOr(m, "role", "")), TextCell(StringOr(m, "source", "")),
                    FigureCell("train_rows", m.value("train_rows", Json()), -1),
                    FigureCell("train_accuracy", train, 4), FigureCell("test_accuracy", test, 4),
                    FigureCell("gap", gap, 4),
                    FigureCell("train_loss", m.value("train_loss", Json()), 4),
                    FigureCell("test_loss", m.value("test_loss", Json()), 4),
                    FigureCell("seconds", m.value("seconds", Json()), 2), "</tr>\n");
  }
  out += "</tbody></table>\n</section>\n";
}

void AppendExposed(const audit::AuditResult& result, const std::vector<std::string>& attacks,
                   int top, std::string& out) {
  out += "<section id=\"exposed\"><h2>Most exposed audit points</h2>\n";
  if (result.targets.empty() || top <= 0) {
    out += "<p class=\"muted\">No target model.</p>\n</section>\n";
    return;
  }
  const int target = result.targets[0];
  const std::vector<uint8_t>* membership =
      result.membership.empty() ? nullptr : &result.membership[0];
  absl::StrAppend(&out, "<p>The ", top,
                  " audit points with the highest scores (most likely members) of each attack "
                  "on target ", target,
                  ", by dataset row id, with whether the target trained on them. scores.csv "
                  "holds every point.</p>\n");
  for (const std::string& attack : attacks) {
    const audit::AttackTargetResult* r = nullptr;
    for (const audit::AttackTargetResult& candidate : result.results) {
      if (candidate.attack == attack && candidate.target == target) {
        r = &candidate;
        break;
      }
    }
    if (r == nullptr) continue;
    std::vector<size_t> order;
    for (size_t i = 0; i < r->scores.size(); ++i) {
      if (!std::isnan(r->scores[i])) order.push_back(i);
    }
    const size_t keep = std::min(order.size(), static_cast<size_t>(top));
    // Highest first; ties in audit order, so the page is deterministic.
    std::partial_sort(order.begin(), order.begin() + keep, order.end(), [&](size_t a, size_t b) {
      return r->scores[a] > r->scores[b] || (r->scores[a] == r->scores[b] && a < b);
    });
    absl::StrAppend(&out, "<h3>Attack <code>", Esc(attack), "</code></h3>\n",
                    "<table class=\"exposed\" data-attack=\"", Esc(attack), "\" data-target=\"",
                    target,
                    "\"><thead><tr><th>Rank</th><th>Row id</th><th>Score</th><th>Member</th>"
                    "</tr></thead><tbody>\n");
    for (size_t k = 0; k < keep; ++k) {
      const size_t i = order[k];
      const std::string row_id =
          i < result.row_ids.size() ? std::to_string(result.row_ids[i]) : std::string("n/a");
      const std::string member = membership != nullptr && i < membership->size()
                                     ? ((*membership)[i] ? "yes" : "no")
                                     : "n/a";
      absl::StrAppend(&out, "<tr><td>", k + 1, "</td><td class=\"num\" data-field=\"row_id\">",
                      row_id, "</td>", FigureCell("score", Json(r->scores[i]), 4),
                      "<td data-field=\"member\">", member, "</td></tr>\n");
    }
    out += "</tbody></table>\n";
  }
  out += "</section>\n";
}

void AppendWarnings(const Json& j, std::string& out) {
  std::vector<std::string> items;  // escaped HTML
  for (const Json& w : j["warnings"]) items.push_back(Esc(w.get<std::string>()));
  for (const Json& r : j["results"]) {
    const std::string who =
        absl::StrCat("<code>", Esc(r["attack"].get<std::string>()), "</code>, target ",
                     IntText(r["target"]), ": ");
    const Json& excluded = r["counts"]["excluded"];
    if (excluded.is_number() && excluded.get<double>() > 0) {
      items.push_back(absl::StrCat(who, IntText(excluded),
                                   " audit points excluded (the attack could not score them)"));
    }
    for (const Json& t : r["tpr_at_fpr"]) {
      if (!t["resolved"].get<bool>()) {
        items.push_back(absl::StrCat(who, "TPR at ", PercentLabel(t["fpr"]),
                                     " FPR unresolved (", IntText(r["counts"]["non_members"]),
                                     " non-members; 1 / FPR are needed)"));
      }
    }
    for (const Json& w : r["warnings"]) items.push_back(who + Esc(w.get<std::string>()));
  }
  absl::StrAppend(&out, "<section id=\"warnings\"><h2>Warnings (", items.size(), ")</h2>\n");
  if (items.empty()) {
    out += "<p>None.</p>\n";
  } else {
    out += "<ul class=\"warnings\">\n";
    for (const std::string& item : items) absl::StrAppend(&out, "<li>", item, "</li>\n");
    out += "</ul>\n";
  }
  out += "</section>\n";
}

void AppendTiming(const Json& j, std::string& out) {
  out += "<section id=\"timing\"><h2>Timing</h2>\n";
  if (j["timings"].empty()) {
    out += "<p class=\"muted\">Not recorded (run.time_log is off).</p>\n</section>\n";
    return;
  }
  out += "<table class=\"timing\"><thead><tr><th>Stage</th><th>Seconds</th></tr></thead>"
         "<tbody>\n";
  double total = 0;
  for (const Json& t : j["timings"]) {
    if (t["seconds"].is_number()) total += t["seconds"].get<double>();
    absl::StrAppend(&out, "<tr>", TextCell(t["stage"].get<std::string>()),
                    FigureCell("seconds", t["seconds"], 3), "</tr>\n");
  }
  absl::StrAppend(&out, "<tr><th>total</th>", FigureCell("total", Json(total), 3),
                  "</tr>\n</tbody></table>\n</section>\n");
}

}  // namespace

std::string ReportHtml(const audit::AuditResult& result, const ReportOptions& options) {
  return ReportHtml(result, ResultJson(result), options);
}

std::string ReportHtml(const audit::AuditResult& result, const std::string& result_json,
                       const ReportOptions& options) {
  // The figures from result.json itself (see the file comment).
  Json j = Json::parse(result_json, nullptr, /*allow_exceptions=*/false);
  // Anything but a result.json of this schema: the result's own.
  bool complete = j.is_object();
  for (const char* key : {"scoring", "fprs", "targets", "results", "summaries", "warnings",
                          "timings", "spec"}) {
    complete = complete && j.contains(key);
  }
  if (!complete) j = Json::parse(ResultJson(result));
  std::vector<std::string> attacks;
  for (const Json& r : j["results"]) {
    const std::string a = r["attack"].get<std::string>();
    if (std::find(attacks.begin(), attacks.end(), a) == attacks.end()) attacks.push_back(a);
  }
  const bool has_policy = j.contains("policy") && j["policy"].is_object();

  std::string out;
  out.reserve(64 * 1024);
  out += "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
         "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
         "<title>mia audit report</title>\n<style>";
  out += kStyle;
  out += "</style>\n</head>\n<body>\n<header>\n<h1>Membership-inference audit report</h1>\n";
  std::string target_list;
  for (const Json& t : j["targets"]) absl::StrAppend(&target_list, target_list.empty() ? "" : ", ", t.dump());
  std::string attack_list;
  for (const std::string& a : attacks) {
    absl::StrAppend(&attack_list, attack_list.empty() ? "" : ", ", "<code>", Esc(a), "</code>");
  }
  absl::StrAppend(
      &out, "<p class=\"muted\">mia ",
      Esc(result.tool_version.empty() ? "(unknown version)" : result.tool_version),
      " &middot; <span data-field=\"points\">", result.row_ids.size(),
      "</span> audit points &middot; ", j["targets"].size(), " target model",
      j["targets"].size() == 1 ? "" : "s", target_list.empty() ? "" : " (" + target_list + ")",
      " &middot; attacks: ", attack_list.empty() ? "none" : attack_list, "</p>\n");
  absl::StrAppend(&out, "<p class=\"muted\">Scoring seed ", j["scoring"]["seed"].dump(), ", ",
                  j["scoring"]["bootstrap_resamples"].dump(), " bootstrap resamples at ",
                  Rounded(j["scoring"]["confidence"], 2), " confidence.</p>\n");
  const Section sections[] = {
      {"verdict", "Verdict"},       {"results", "Results"},     {"roc", "ROC curves"},
      {"epsilon", "ε bounds"},      {"spread", "Spread"},       {"models", "Models"},
      {"exposed", "Exposed points"}, {"warnings", "Warnings"},  {"spec", "Spec"},
      {"timing", "Timing"}};
  out += "<nav>";
  for (const Section& s : sections) {
    if (std::string_view(s.id) == "verdict" && !has_policy) continue;
    absl::StrAppend(&out, "<a href=\"#", s.id, "\">", s.title, "</a>");
  }
  out += "</nav>\n</header>\n<main>\n";

  if (has_policy) AppendVerdict(j["policy"], out);
  AppendResults(j, attacks, out);
  absl::StrAppend(&out,
                  "<section id=\"roc\"><h2>ROC curves</h2>\n<div class=\"plots\">\n"
                  "<figure class=\"linear\">",
                  InlineSvg(RocSvg(result, /*log_axes=*/false, options)),
                  "</figure>\n<figure class=\"log\">",
                  InlineSvg(RocSvg(result, /*log_axes=*/true, options)),
                  "</figure>\n</div>\n</section>\n");
  AppendEpsilon(j, out);
  AppendSpread(j, out);
  AppendModels(options.models_json, out);
  AppendExposed(result, attacks, options.html_top_points, out);
  AppendWarnings(j, out);
  absl::StrAppend(&out,
                  "<section id=\"spec\"><h2>Spec</h2>\n<p>The audit's settings as result.json "
                  "records them.</p>\n<pre>",
                  Esc(j["spec"].dump(2, ' ', false, Json::error_handler_t::replace)),
                  "</pre>\n</section>\n");
  AppendTiming(j, out);
  out += "</main>\n<footer><p class=\"muted\">Files of this report: result.json (every figure, "
         "machine-readable), scores.csv (every audit point's score), roc.svg, roc_log.svg, "
         "summary.md, timing.log.</p></footer>\n</body>\n</html>\n";
  return out;
}

}  // namespace mia::report
