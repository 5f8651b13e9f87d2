#include "server/result_loader.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <optional>
#include <set>
#include <sstream>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "core/audit/dp_guarantee.h"
#include "core/common/csv.h"
#include "core/common/file_util.h"
#include "core/metrics/roc.h"
#include "core/report/report.h"
#include "nlohmann/json.hpp"
#include "server/result_convert.h"
#include "server/spec_convert.h"

namespace mia::server {
namespace {

using Json = nlohmann::json;
namespace fs = std::filesystem;

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

// Fills results[].roc from scores.csv: one exact curve per (attack, target)
// over the points that attack scored.
absl::Status AddRocs(const std::string& path, audit::AuditResult* result) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::OkStatus();  // curves stay empty
  CsvReader reader(&in, path);
  std::vector<std::string> fields;
  absl::StatusOr<bool> read = reader.Next(&fields);
  if (!read.ok()) return read.status();
  if (!*read) return absl::DataLossError(absl::StrCat(path, ": line 1: no header"));
  const absl::StatusOr<std::vector<std::string>> header = report::ParseScoresHeader(reader, fields);
  if (!header.ok()) return header.status();
  const size_t attacks = header->size();
  // (column, target) -> scores and labels of scored points.
  std::map<std::pair<size_t, int>, std::pair<std::vector<double>, std::vector<uint8_t>>> points;
  std::optional<int> first_target;
  report::ScoresRow row;
  while (true) {
    read = reader.Next(&fields);
    if (!read.ok()) return read.status();
    if (!*read) break;
    const absl::Status parsed = report::ParseScoresRow(reader, fields, attacks, &row);
    if (!parsed.ok()) return parsed;
    // Rows come target by target, each listing every audit point once: the
    // first target's rows give the audit points (AuditResult.audit_points).
    if (!first_target.has_value()) first_target = row.target;
    if (row.target == *first_target) result->row_ids.push_back(row.row_id);
    for (size_t c = 0; c < attacks; ++c) {
      if (!std::isfinite(row.scores[c])) continue;  // empty: not scored by this attack
      auto& [scores, members] = points[{c, row.target}];
      scores.push_back(row.scores[c]);
      members.push_back(row.member ? 1 : 0);
    }
  }
  for (audit::AttackTargetResult& r : result->results) {
    for (size_t c = 0; c < attacks; ++c) {
      if ((*header)[c] != r.attack) continue;
      const auto it = points.find({c, r.target});
      if (it == points.end()) break;
      // One class missing: no curve, which ResultToProto leaves empty.
      absl::StatusOr<metrics::RocCurve> roc =
          metrics::ComputeRoc(it->second.first, it->second.second);
      if (roc.ok()) r.roc = *std::move(roc);
      break;
    }
  }
  return absl::OkStatus();
}

std::string ManifestPath(const std::string& report_dir) {
  fs::path dir = fs::path(report_dir).lexically_normal();
  if (!dir.has_filename()) dir = dir.parent_path();  // "report/" names the folder too
  return dir.string() + ".files";
}

}  // namespace

absl::StatusOr<std::vector<std::string>> ReportFileNames(const std::string& report_dir) {
  std::vector<std::string> names;
  std::error_code ec;
  for (const fs::directory_entry& entry : fs::directory_iterator(report_dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.empty() || name[0] == '.' || !entry.is_regular_file(ec) || entry.is_symlink(ec)) {
      continue;
    }
    names.push_back(name);
  }
  if (ec) return absl::DataLossError("the report folder is unreadable");
  std::sort(names.begin(), names.end());
  return names;
}

absl::Status WriteReportManifest(const std::string& report_dir) {
  absl::StatusOr<std::vector<std::string>> names = ReportFileNames(report_dir);
  if (!names.ok()) return names.status();
  std::string text = absl::StrJoin(*names, "\n");
  if (!text.empty()) text += "\n";
  return WriteFileAtomically(ManifestPath(report_dir), text);
}

std::vector<std::string> MissingReportFiles(const std::string& report_dir,
                                            const std::vector<std::string>& present) {
  std::ifstream in(ManifestPath(report_dir));
  if (!in) return {};
  std::stringstream text;
  text << in.rdbuf();
  const std::set<std::string> have(present.begin(), present.end());
  std::set<std::string> missing;
  for (absl::string_view name : absl::StrSplit(text.str(), '\n', absl::SkipEmpty())) {
    if (have.count(std::string(name)) == 0) missing.insert(std::string(name));
  }
  return {missing.begin(), missing.end()};
}

absl::StatusOr<audit::AuditResult> LoadReportResult(const std::string& report_dir) {
  const std::string path = (fs::path(report_dir) / "result.json").string();
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": no result"));
  std::stringstream text;
  text << in.rdbuf();
  const Json j = Json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
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
  } catch (const Json::exception&) {
    return absl::DataLossError(absl::StrCat(path, ": a field has the wrong type"));
  }
  const absl::Status rocs = AddRocs((fs::path(report_dir) / "scores.csv").string(), &r);
  if (!rocs.ok()) return rocs;
  return r;
}

absl::StatusOr<std::shared_ptr<const mia::v1::AuditResult>> ResultCache::Get(
    const std::string& report_dir) {
  {
    absl::MutexLock lock(&mu_);
    const auto it = entries_.find(report_dir);
    if (it != entries_.end()) {
      order_.splice(order_.begin(), order_, it->second.second);
      return it->second.first;
    }
  }
  // Loading reads two files and sorts scores: not under the lock. Two
  // concurrent misses load twice and the second insert wins; both are equal.
  absl::StatusOr<audit::AuditResult> result = LoadReportResult(report_dir);
  if (!result.ok()) return result.status();
  auto proto = std::make_shared<mia::v1::AuditResult>();
  ResultToProto(*result, proto.get());
  std::shared_ptr<const mia::v1::AuditResult> shared = std::move(proto);
  absl::MutexLock lock(&mu_);
  if (entries_.count(report_dir) == 0) {
    order_.push_front(report_dir);
    entries_[report_dir] = {shared, order_.begin()};
    while (entries_.size() > capacity_ && !order_.empty()) {
      entries_.erase(order_.back());
      order_.pop_back();
    }
  }
  return shared;
}

void ResultCache::Erase(const std::string& report_dir) {
  absl::MutexLock lock(&mu_);
  const auto it = entries_.find(report_dir);
  if (it == entries_.end()) return;
  order_.erase(it->second.second);
  entries_.erase(it);
}

}  // namespace mia::server
