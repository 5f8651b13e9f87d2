#include "client/compare_command.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <sstream>
#include <system_error>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/commands.h"
#include "core/report/report.h"
#include "nlohmann/json.hpp"

namespace mia::client {
namespace {

using Json = nlohmann::json;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

bool HasInterval(const metrics::Interval& i) {
  return std::isfinite(i.low) && std::isfinite(i.high);
}

// z with P(|Z| <= z) = level for a standard normal Z, by bisection on erfc.
double NormalZ(double level) {
  if (!(level > 0 && level < 1)) return kNaN;
  const double tail = 1 - level;  // two-sided
  double lo = 0, hi = 40;
  for (int i = 0; i < 200; ++i) {
    const double mid = (lo + hi) / 2;
    // P(|Z| > mid) = erfc(mid / sqrt(2)).
    (std::erfc(mid / std::sqrt(2.0)) > tail ? lo : hi) = mid;
  }
  return (lo + hi) / 2;
}

// One figure of one attack in one audit: its value and interval.
struct Figure {
  double value = kNaN;
  metrics::Interval ci{kNaN, kNaN};
};

std::vector<const audit::AttackTargetResult*> RowsOf(const audit::AuditResult& r,
                                                     const std::string& attack) {
  std::vector<const audit::AttackTargetResult*> rows;
  for (const audit::AttackTargetResult& x : r.results) {
    if (x.attack == attack) rows.push_back(&x);
  }
  return rows;
}

// The figure over the targets: the single target's value and bootstrap
// interval, or the mean over targets with mean +- z sd / sqrt(n). `get`
// returns a target's value (NaN when it has none) and interval.
template <typename Get>
Figure Over(const std::vector<const audit::AttackTargetResult*>& rows, double z, Get get) {
  Figure f;
  if (rows.size() == 1) {
    get(*rows[0], &f.value, &f.ci);
    return f;
  }
  std::vector<double> values;
  for (const audit::AttackTargetResult* r : rows) {
    double v = kNaN;
    metrics::Interval ci{kNaN, kNaN};
    get(*r, &v, &ci);
    if (!std::isnan(v)) values.push_back(v);
  }
  if (values.empty()) return f;
  double sum = 0;
  for (double v : values) sum += v;
  const double mean = sum / static_cast<double>(values.size());
  f.value = mean;
  if (values.size() >= 2 && std::isfinite(z)) {
    double ss = 0;
    for (double v : values) ss += (v - mean) * (v - mean);
    const double sd = std::sqrt(ss / static_cast<double>(values.size() - 1));
    const double half = z * sd / std::sqrt(static_cast<double>(values.size()));
    f.ci = {mean - half, mean + half};
  }
  return f;
}

size_t FprIndex(const audit::AuditResult& r, double fpr) {
  return static_cast<size_t>(std::find(r.fprs.begin(), r.fprs.end(), fpr) - r.fprs.begin());
}

ComparedFigure Compare(const std::string& name, const Figure& a, const Figure& b, double z_a,
                       double z_b, double z, std::optional<double> threshold,
                       const std::string& use) {
  ComparedFigure c;
  c.figure = name;
  c.a = a.value;
  c.b = b.value;
  c.a_ci = a.ci;
  c.b_ci = b.ci;
  c.diff = b.value - a.value;  // NaN when either is
  c.diff_ci = {kNaN, kNaN};
  if (HasInterval(a.ci) && HasInterval(b.ci) && std::isfinite(z_a) && std::isfinite(z_b) &&
      std::isfinite(z) && z_a > 0 && z_b > 0) {
    const double se_a = (a.ci.high - a.ci.low) / (2 * z_a);
    const double se_b = (b.ci.high - b.ci.low) / (2 * z_b);
    const double half = z * std::sqrt(se_a * se_a + se_b * se_b);
    c.diff_ci = {c.diff - half, c.diff + half};
  }
  c.threshold = threshold;
  if (threshold.has_value() && !std::isnan(c.diff)) {
    const double judged = use == "lower_ci" && HasInterval(c.diff_ci) ? c.diff_ci.low : c.diff;
    c.worse = judged > *threshold;
  }
  return c;
}

Json NumberJson(double v) { return std::isfinite(v) ? Json(v) : Json(nullptr); }
Json IntervalJson(const metrics::Interval& i) {
  return HasInterval(i) ? Json::array({i.low, i.high}) : Json(nullptr);
}

std::string Cell(double v) { return std::isnan(v) ? "-" : absl::StrFormat("%.4f", v); }
std::string CiCell(const metrics::Interval& i) {
  return HasInterval(i) ? absl::StrFormat("[%+.4f, %+.4f]", i.low, i.high) : "-";
}

// Reads the result of `source`: a report folder, or an audit on the server
// (audits/ID), whose result.json is downloaded into a temporary folder.
int LoadResult(const std::string& source, const RemoteOptions& remote, const Console& console,
               audit::AuditResult* out) {
  namespace fs = std::filesystem;
  std::error_code ec;
  std::string folder = source;
  fs::path temp;
  if (!fs::is_directory(source, ec) && absl::StartsWith(source, "audits/")) {
    temp = fs::temp_directory_path(ec) /
           absl::StrCat("mia-compare-", ::getpid(), "-", std::hash<std::string>()(source));
    fs::create_directories(temp, ec);
    if (ec) {
      *console.err << "mia: error: " << temp.string() << ": cannot create a temporary folder\n";
      return kExitFailure;
    }
    const int rc = FetchReportFile(remote, source, "result.json", temp.string(), console);
    if (rc != kExitOk) {
      fs::remove_all(temp, ec);
      return rc;
    }
    folder = temp.string();
  }
  const std::string path = (fs::path(folder) / "result.json").string();
  std::ifstream in(path);
  if (!in) {
    *console.err << "mia: error: " << source
                 << ": no result.json there (give a report folder or audits/ID with --server)\n";
    if (!temp.empty()) fs::remove_all(temp, ec);
    return kExitNotFound;
  }
  std::stringstream text;
  text << in.rdbuf();
  absl::StatusOr<audit::AuditResult> parsed =
      report::ParseResultJson(text.str(), temp.empty() ? path : source + "/result.json");
  if (!temp.empty()) fs::remove_all(temp, ec);
  if (!parsed.ok()) {
    *console.err << "mia: error: " << parsed.status().message() << "\n";
    return ExitCodeFor(parsed.status());
  }
  *out = *std::move(parsed);
  return kExitOk;
}

}  // namespace

Comparison CompareResults(const audit::AuditResult& a, const audit::AuditResult& b,
                          const CompareOptions& options) {
  Comparison out;
  const double z_a = NormalZ(a.confidence), z_b = NormalZ(b.confidence);
  std::vector<std::string> order;
  for (const audit::AttackTargetResult& r : a.results) {
    if (std::find(order.begin(), order.end(), r.attack) == order.end()) order.push_back(r.attack);
  }
  for (const std::string& attack : order) {
    const auto rows_a = RowsOf(a, attack);
    const auto rows_b = RowsOf(b, attack);
    if (rows_b.empty()) {
      out.only_in_a.push_back(attack);
      continue;
    }
    ComparedAttack c;
    c.attack = attack;
    c.targets_a = static_cast<int>(rows_a.size());
    c.targets_b = static_cast<int>(rows_b.size());
    auto auc = [](const audit::AttackTargetResult& r, double* v, metrics::Interval* ci) {
      *v = r.auc;
      *ci = r.auc_ci;
    };
    c.figures.push_back(Compare("auc", Over(rows_a, z_a, auc), Over(rows_b, z_b, auc), z_a, z_b,
                                z_a, options.auc_threshold, options.use));
    for (size_t ka = 0; ka < a.fprs.size(); ++ka) {
      const double fpr = a.fprs[ka];
      const size_t kb = FprIndex(b, fpr);
      if (kb >= b.fprs.size()) continue;
      auto tpr_at = [](size_t k) {
        return [k](const audit::AttackTargetResult& r, double* v, metrics::Interval* ci) {
          const bool ok = k < r.tpr_at_fpr.size() && r.tpr_at_fpr[k].resolved;
          *v = ok ? r.tpr_at_fpr[k].tpr : kNaN;
          *ci = ok && k < r.tpr_ci.size() ? r.tpr_ci[k] : metrics::Interval{kNaN, kNaN};
        };
      };
      c.figures.push_back(Compare(absl::StrCat("tpr@", fpr), Over(rows_a, z_a, tpr_at(ka)),
                                  Over(rows_b, z_b, tpr_at(kb)), z_a, z_b, z_a,
                                  options.tpr_threshold, options.use));
    }
    auto eps = [](const audit::AttackTargetResult& r, double* v, metrics::Interval* ci) {
      *v = r.epsilon.epsilon;
      *ci = {kNaN, kNaN};  // a one-sided bound: no interval
    };
    // A single target's epsilon has no interval; the mean over targets does.
    c.figures.push_back(Compare("epsilon", Over(rows_a, z_a, eps), Over(rows_b, z_b, eps), z_a, z_b,
                                z_a, options.epsilon_threshold, options.use));
    for (const ComparedFigure& f : c.figures) out.worse = out.worse || f.worse;
    out.attacks.push_back(std::move(c));
  }
  for (const audit::AttackTargetResult& r : b.results) {
    if (std::find(order.begin(), order.end(), r.attack) == order.end() &&
        std::find(out.only_in_b.begin(), out.only_in_b.end(), r.attack) == out.only_in_b.end()) {
      out.only_in_b.push_back(r.attack);
    }
  }
  return out;
}

int RunCompare(const CompareOptions& options, const RemoteOptions& remote, const Console& console) {
  if (options.use != "estimate" && options.use != "lower_ci") {
    *console.err << "mia: error: --use must be estimate or lower_ci\n";
    return kExitInvalidInput;
  }
  for (const auto& [flag, value] :
       {std::pair<const char*, std::optional<double>>{"--threshold", options.auc_threshold},
        {"--tpr-threshold", options.tpr_threshold},
        {"--epsilon-threshold", options.epsilon_threshold}}) {
    if (value.has_value() && !std::isfinite(*value)) {
      *console.err << "mia: error: " << flag << " must be a finite number\n";
      return kExitInvalidInput;
    }
  }
  audit::AuditResult a, b;
  if (const int rc = LoadResult(options.a, remote, console, &a); rc != kExitOk) return rc;
  if (const int rc = LoadResult(options.b, remote, console, &b); rc != kExitOk) return rc;
  const Comparison c = CompareResults(a, b, options);
  if (c.attacks.empty()) {
    *console.err << "mia: error: the two audits have no attack in common\n";
    return kExitInvalidInput;
  }
  if (options.json) {
    Json attacks = Json::array();
    for (const ComparedAttack& at : c.attacks) {
      Json figures = Json::array();
      for (const ComparedFigure& f : at.figures) {
        figures.push_back({{"figure", f.figure},
                           {"a", NumberJson(f.a)},
                           {"a_ci", IntervalJson(f.a_ci)},
                           {"b", NumberJson(f.b)},
                           {"b_ci", IntervalJson(f.b_ci)},
                           {"diff", NumberJson(f.diff)},
                           {"diff_ci", IntervalJson(f.diff_ci)},
                           {"threshold", f.threshold.has_value() ? Json(*f.threshold) : Json()},
                           {"worse", f.worse}});
      }
      attacks.push_back({{"attack", at.attack},
                         {"targets_a", at.targets_a},
                         {"targets_b", at.targets_b},
                         {"figures", std::move(figures)}});
    }
    const Json j = {{"a", options.a},
                    {"b", options.b},
                    {"use", options.use},
                    {"confidence", NumberJson(a.confidence)},
                    {"attacks", std::move(attacks)},
                    {"only_in_a", c.only_in_a},
                    {"only_in_b", c.only_in_b},
                    {"worse", c.worse}};
    *console.out << j.dump(2, ' ', false, Json::error_handler_t::replace) << "\n";
  } else {
    *console.out << "A: " << options.a << "\nB: " << options.b << "\n";
    for (const ComparedAttack& at : c.attacks) {
      *console.out << "\n"
                   << at.attack
                   << (at.targets_a > 1 || at.targets_b > 1
                           ? absl::StrFormat(" (mean over %d and %d targets)", at.targets_a,
                                             at.targets_b)
                           : "")
                   << "\n";
      *console.out << absl::StrFormat("%-12s %8s %8s %9s %21s %10s  %s\n", "figure", "A", "B",
                                      "B-A", "B-A interval", "threshold", "");
      for (const ComparedFigure& f : at.figures) {
        *console.out << absl::StrFormat(
            "%-12s %8s %8s %9s %21s %10s  %s\n", f.figure, Cell(f.a), Cell(f.b),
            std::isnan(f.diff) ? "-" : absl::StrFormat("%+.4f", f.diff), CiCell(f.diff_ci),
            f.threshold.has_value() ? absl::StrFormat("%g", *f.threshold) : "-",
            f.worse ? "WORSE" : "");
      }
    }
    for (const std::string& x : c.only_in_a) *console.out << "\nonly in A: " << x << "\n";
    for (const std::string& x : c.only_in_b) *console.out << "\nonly in B: " << x << "\n";
    *console.out << "\n"
                 << (c.worse ? "B is worse than A beyond the threshold"
                             : "B is not worse than A beyond the threshold")
                 << (options.use == "lower_ci"
                         ? " (judged on the lower end of the interval of B - A)\n"
                         : " (judged on B - A)\n");
  }
  return c.worse ? kExitPolicyFail : kExitOk;
}

}  // namespace mia::client
