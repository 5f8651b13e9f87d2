// Model archives: a model's named parameters and buffers in a LibTorch
// archive (torch::serialize::OutputArchive, not a pickle), one tensor per
// name as the single-model Classifier names them. Batched and sequential
// training write the same format, so readers never know how a model was
// trained.
//
// Writes are atomic: the archive is serialized in memory, written to
// `path.tmp.<pid>.<n>` and renamed (WriteFileAtomically).
// Functions are reentrant; concurrent writers need distinct paths.
// LibTorch header: include only from core/training and its tests.
#ifndef MIA_CORE_TRAINING_ARCHIVE_H_
#define MIA_CORE_TRAINING_ARCHIVE_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/models/classifier.h"
#include "core/models/registry.h"
#include "core/training/engine.h"

namespace mia::training {

// Writes `state` (CPU copies of each tensor) to `path` atomically. Errors
// name `path`: ResourceExhausted for a full disk, a quota or a file-size limit
// (the server fails the job and stays up), else as WriteFileAtomically.
absl::Status SaveModelState(const std::vector<models::NamedTensor>& state, const std::string& path);

// Copies the archive's tensors into `model`'s parameters and buffers. NotFound
// for a missing file; InvalidArgument for an unreadable archive, or naming the
// first tensor that is missing, has another shape or type, or is not part of
// the model.
absl::Status LoadModelState(const std::string& path, models::Classifier& model);

// Every tensor of the archive at `path` by name (CPU), in the archive's key
// order. NotFound for a missing file; InvalidArgument for an unreadable one.
// For models that are not a Classifier (core/models/gpt.h), which check names
// and shapes themselves.
absl::StatusOr<std::vector<models::NamedTensor>> ReadModelState(const std::string& path);

// Builds `spec` for `input` and loads `path` into it (on the CPU).
absl::StatusOr<std::shared_ptr<models::Classifier>> LoadModel(const ModelSpec& spec,
                                                              const models::InputSpec& input,
                                                              const std::string& path);

}  // namespace mia::training

#endif  // MIA_CORE_TRAINING_ARCHIVE_H_
