// Trained models and their signals as files under one root, keyed by what
// determines them, so that a rerun or another audit reuses them instead of
// retraining. An entry counts as present only when its metadata file exists
// and records exactly the key material asked for: a cache is validated by its
// key, never by a count or a shape.
//
// Layout: ROOT/models/<key>.pt (LibTorch archive), ROOT/models/<key>.json
// (key material and training report), ROOT/signals/<key>.npy (logits).
// Files are written atomically (temporary file, then rename), metadata last.
//
// Shared cache: with a remote ObjectStore (the server's --artifact_store, a
// shared folder or an S3 bucket) the same layout is mirrored there under the
// same keys ("models/<key>.pt", "models/<key>.json", "signals/<key>.npy"). A
// model missing locally whose remote metadata records the same key material
// is downloaded (model file, then metadata) instead of retrained; a committed
// model is uploaded (model file first, metadata last), so no reader of the
// remote store sees an entry without its model. Keys are content addresses:
// two replicas committing the same model write identical objects. Signals are
// entries of their own (FetchFile / PublishFile), each one object.
//
// Thread-safety: distinct keys may be written concurrently; the object holds
// no mutable state (the remote store is thread-safe).
#ifndef MIA_CORE_PIPELINE_ARTIFACT_STORE_H_
#define MIA_CORE_PIPELINE_ARTIFACT_STORE_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/common/file_util.h"
#include "core/training/engine.h"

namespace mia::storage {
class ObjectStore;
}  // namespace mia::storage

namespace mia::pipeline {

// What determines a trained model: the data, the architecture, the recipe,
// the exact training rows and the seed.
struct ModelKeyMaterial {
  std::string dataset_fingerprint;
  training::ModelSpec spec;
  training::TrainRecipe recipe;
  // A language model's training JSON (LmTrainingJson plus the tokenizer's
  // and checkpoint's hashes); when set it stands for spec and recipe.
  std::string lm_train_json;
  std::string rows_sha256;  // SHA-256 of the sorted training row ids (int64 LE)
  uint64_t seed = 0;
  std::string scope;  // RunConfig::cache_scope; in the key only when set
  std::string Json() const;      // canonical JSON of all of the above
  std::string Key() const;       // SHA-256 hex of Json()
};

// SHA-256 hex of row ids as int64 little-endian.
std::string RowsSha256(const std::vector<int64_t>& rows);

class ArtifactStore {
 public:
  // `remote` may be null: a local cache only.
  explicit ArtifactStore(std::string root, std::shared_ptr<storage::ObjectStore> remote = nullptr)
      : root_(std::move(root)), remote_(std::move(remote)) {}

  absl::Status Init() const;  // creates ROOT/models and ROOT/signals

  std::string ModelPath(const std::string& key) const;
  std::string ModelMetaPath(const std::string& key) const;
  std::string SignalsPath(const std::string& key) const;

  // True when the model and its metadata exist and the metadata's key
  // material equals `material` (a mismatch, e.g. a truncated or foreign file,
  // counts as absent and is retrained). Absent locally, the remote store's
  // entry is downloaded when its metadata matches; a remote store that cannot
  // be read counts as absent too (the model is retrained, never wrong).
  bool HasModel(const ModelKeyMaterial& material) const;
  // Writes the metadata (key material + report) once the model file is in
  // place, then uploads both to the remote store (model first): an upload
  // error (UNAVAILABLE when the store is down) is returned, so that the work
  // is retried rather than left unshared.
  absl::Status CommitModel(const ModelKeyMaterial& material,
                           const training::ModelReport& report) const;
  // A file under the root (a signals cache entry): FetchFile downloads it
  // from the remote store when it is missing locally (absent remotely too:
  // OK, nothing fetched); PublishFile uploads it. Both do nothing without a
  // remote store; INVALID_ARGUMENT for a path outside the root.
  absl::Status FetchFile(const std::string& path) const;
  absl::Status PublishFile(const std::string& path) const;
  // The training report recorded when the model was committed.
  absl::StatusOr<training::ModelReport> ReadReport(const ModelKeyMaterial& material) const;

 private:
  // The object key of a path under root_.
  absl::StatusOr<std::string> RemoteKey(const std::string& path) const;
  // Downloads the model and then its metadata when the remote metadata
  // records `material`; false when absent, different or unreadable.
  bool FetchModel(const ModelKeyMaterial& material) const;

  std::string root_;
  std::shared_ptr<storage::ObjectStore> remote_;
};

// A DP-SGD model's accountant record (ModelReport::Dp) as a JSON object's
// text: epsilon (null when infinite), delta, order, noise_multiplier,
// max_grad_norm, sample_rate, steps. The model's metadata and models.json
// hold it under "dp".
std::string DpReportJson(const training::ModelReport::Dp& dp);

}  // namespace mia::pipeline

#endif  // MIA_CORE_PIPELINE_ARTIFACT_STORE_H_
