#include "core/pipeline/artifact_store.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <cmath>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "core/common/sha256.h"
#include "core/common/status_macros.h"
#include "core/pipeline/config.h"
#include "core/storage/object_store.h"
#include "nlohmann/json.hpp"

namespace mia::pipeline {

std::string DpReportJson(const training::ModelReport::Dp& dp) {
  auto num = [](double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(); };
  return nlohmann::json{{"epsilon", num(dp.epsilon)},
          {"delta", dp.delta},
          {"order", dp.order},
          {"noise_multiplier", dp.noise_multiplier},
          {"max_grad_norm", dp.max_grad_norm},
          {"sample_rate", dp.sample_rate},
          {"steps", dp.steps}}
      .dump();
}

std::string ModelKeyMaterial::Json() const {
  nlohmann::json j = {{"version", "mia-model-v1"},
                      {"dataset", dataset_fingerprint},
                      {"train", nlohmann::json::parse(lm_train_json.empty()
                                                          ? TrainingJson(spec, recipe)
                                                          : lm_train_json)},
                      {"rows", rows_sha256},
                      {"seed", seed}};
  if (!scope.empty()) j["scope"] = scope;  // keys of unscoped models stay as they were
  return j.dump();  // nlohmann sorts object keys: canonical
}

std::string ModelKeyMaterial::Key() const { return Sha256Hex(Json()); }

std::string RowsSha256(const std::vector<int64_t>& rows) {
  Sha256 h;
  for (int64_t r : rows) {
    char b[8];
    for (int k = 0; k < 8; ++k)
      b[k] = static_cast<char>((static_cast<uint64_t>(r) >> (8 * k)) & 0xFF);
    h.Update(absl::string_view(b, 8));
  }
  return h.HexDigest();
}

absl::Status ArtifactStore::Init() const {
  std::error_code ec;
  for (const char* sub : {"models", "signals"}) {
    std::filesystem::create_directories(std::filesystem::path(root_) / sub, ec);
    if (ec) {
      return absl::InternalError(
          absl::StrCat(root_, "/", sub, ": cannot create folder: ", ec.message()));
    }
  }
  return absl::OkStatus();
}

std::string ArtifactStore::ModelPath(const std::string& key) const {
  return absl::StrCat(root_, "/models/", key, ".pt");
}
std::string ArtifactStore::ModelMetaPath(const std::string& key) const {
  return absl::StrCat(root_, "/models/", key, ".json");
}
std::string ArtifactStore::SignalsPath(const std::string& key) const {
  return absl::StrCat(root_, "/signals/", key, ".npy");
}

namespace {

bool MetaMatches(const std::string& meta_path, const ModelKeyMaterial& material) {
  std::ifstream in(meta_path);
  if (!in) return false;
  nlohmann::json meta = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  return meta.is_object() && meta.contains("key_material") && meta["key_material"].is_string() &&
         meta["key_material"] == material.Json();
}

}  // namespace

bool ArtifactStore::HasModel(const ModelKeyMaterial& material) const {
  const std::string key = material.Key();
  std::error_code ec;
  if (std::filesystem::is_regular_file(ModelPath(key), ec) &&
      MetaMatches(ModelMetaPath(key), material)) {
    return true;
  }
  return FetchModel(material);
}

absl::StatusOr<std::string> ArtifactStore::RemoteKey(const std::string& path) const {
  const std::string rel =
      std::filesystem::path(path).lexically_relative(root_).lexically_normal().generic_string();
  if (rel.empty() || rel == "." || rel.rfind("..", 0) == 0) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": not under the artifact folder"));
  }
  return rel;
}

bool ArtifactStore::FetchModel(const ModelKeyMaterial& material) const {
  if (remote_ == nullptr) return false;
  if (!Init().ok()) return false;
  const std::string key = material.Key();
  // The metadata first, to a temporary name: it says whether the entry is
  // this model; it becomes visible locally only after the model file.
  const std::string meta_tmp = UniqueTempPath(ModelMetaPath(key));
  if (!remote_->Get(absl::StrCat("models/", key, ".json"), meta_tmp).ok()) return false;
  if (!MetaMatches(meta_tmp, material) ||
      !remote_->Get(absl::StrCat("models/", key, ".pt"), ModelPath(key)).ok()) {
    std::remove(meta_tmp.c_str());
    return false;
  }
  return CommitTempFile(meta_tmp, ModelMetaPath(key)).ok();
}

absl::Status ArtifactStore::FetchFile(const std::string& path) const {
  if (remote_ == nullptr) return absl::OkStatus();
  MIA_ASSIGN_OR_RETURN(const std::string key, RemoteKey(path));
  std::error_code ec;
  if (std::filesystem::exists(path, ec)) return absl::OkStatus();
  std::filesystem::create_directories(std::filesystem::path(path).parent_path(), ec);
  const absl::Status got = remote_->Get(key, path);
  if (absl::IsNotFound(got)) return absl::OkStatus();
  return got;
}

absl::Status ArtifactStore::PublishFile(const std::string& path) const {
  if (remote_ == nullptr) return absl::OkStatus();
  MIA_ASSIGN_OR_RETURN(const std::string key, RemoteKey(path));
  return remote_->Put(key, path);
}

absl::Status ArtifactStore::CommitModel(const ModelKeyMaterial& material,
                                        const training::ModelReport& report) const {
  nlohmann::json meta = {{"key", material.Key()},
                         {"key_material", material.Json()},
                         {"report",
                          {{"train_accuracy", report.train_accuracy},
                           {"train_loss", report.train_loss},
                           {"test_accuracy", report.test_accuracy},
                           {"test_loss", report.test_loss},
                           {"seconds", report.seconds},
                           {"batched", report.batched}}}};
  if (report.dp.enabled) meta["report"]["dp"] = nlohmann::json::parse(DpReportJson(report.dp));
  const std::string key = material.Key();
  MIA_RETURN_IF_ERROR(WriteFileAtomically(ModelMetaPath(key), meta.dump(2)));
  if (remote_ == nullptr) return absl::OkStatus();
  // The model before its metadata: a reader that finds the metadata finds
  // the model.
  MIA_RETURN_IF_ERROR(remote_->Put(absl::StrCat("models/", key, ".pt"), ModelPath(key)));
  return remote_->Put(absl::StrCat("models/", key, ".json"), ModelMetaPath(key));
}

absl::StatusOr<training::ModelReport> ArtifactStore::ReadReport(
    const ModelKeyMaterial& material) const {
  std::ifstream in(ModelMetaPath(material.Key()));
  nlohmann::json meta = nlohmann::json::parse(in, nullptr, false);
  if (!meta.is_object() || !meta.contains("report") || !meta["report"].is_object()) {
    return absl::DataLossError(
        absl::StrCat(ModelMetaPath(material.Key()), ": metadata is unreadable"));
  }
  const nlohmann::json& r = meta["report"];
  training::ModelReport report;
  auto num = [&](const char* k) {
    return r.contains(k) && r[k].is_number() ? r[k].get<double>() : std::nan("");
  };
  report.train_accuracy = num("train_accuracy");
  report.train_loss = num("train_loss");
  report.test_accuracy = num("test_accuracy");
  report.test_loss = num("test_loss");
  report.seconds = num("seconds");
  report.batched = r.contains("batched") && r["batched"].is_boolean() && r["batched"].get<bool>();
  if (r.contains("dp") && r["dp"].is_object()) {
    const nlohmann::json& d = r["dp"];
    auto dnum = [&](const char* k) {
      // Infinity is written as null.
      return d.contains(k) && d[k].is_number() ? d[k].get<double>()
                                               : std::numeric_limits<double>::infinity();
    };
    report.dp.enabled = true;
    report.dp.epsilon = dnum("epsilon");
    report.dp.delta = dnum("delta");
    report.dp.order = d.value("order", 0);
    report.dp.noise_multiplier = dnum("noise_multiplier");
    report.dp.max_grad_norm = dnum("max_grad_norm");
    report.dp.sample_rate = dnum("sample_rate");
    report.dp.steps = d.value("steps", int64_t{0});
  }
  return report;
}

}  // namespace mia::pipeline
