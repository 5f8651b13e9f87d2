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
  absl::StatusOr<audit::AuditResult> parsed = report::ParseResultJson(text.str(), path);
  if (!parsed.ok()) return parsed.status();
  audit::AuditResult r = *std::move(parsed);
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
