#include "core/training/archive.h"

#include <cstdio>
#include <filesystem>
#include <new>
#include <set>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/common/file_util.h"
#include "core/common/status_macros.h"

namespace mia::training {
namespace {

std::string ShapeString(const torch::Tensor& t) {
  return absl::StrCat("[", absl::StrJoin(t.sizes().vec(), ", "), "]");
}

}  // namespace

absl::Status SaveModelState(const std::vector<models::NamedTensor>& state,
                            const std::string& path) {
  // The archive is built in memory and written by WriteFileAtomically, not by
  // save_to(file): LibTorch's file writer throws c10::Error from its
  // destructor when a write failed (a full disk), which during the unwinding
  // of the first error calls std::terminate and takes the whole server down.
  // Writing to memory cannot fail that way, and the file write is then ours:
  // checked, with the errno mapped to a status (RESOURCE_EXHAUSTED for a full
  // disk) that names the file.
  std::string bytes;
  try {
    torch::serialize::OutputArchive archive;
    for (const models::NamedTensor& t : state) {
      // A fresh contiguous CPU copy: a stacked model's slice is a view into
      // all K models' storage, which would otherwise be written whole.
      torch::Tensor copy = t.value.detach().to(torch::kCPU).clone(at::MemoryFormat::Contiguous);
      archive.write(t.name, copy, t.buffer);
    }
    archive.save_to([&bytes](const void* data, size_t size) -> size_t {
      bytes.append(static_cast<const char*>(data), size);
      return size;
    });
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError(
        absl::StrCat("model archive ", path, ": out of memory while serializing"));
  } catch (const std::exception& e) {
    // what() is not echoed: LibTorch messages may quote tensor contents.
    return absl::InternalError(
        absl::StrCat("model archive ", path, ": cannot serialize the model"));
  }
  return WriteFileAtomically(path, bytes);
}

namespace {

// Reads the archive at `path` onto the CPU.
absl::Status OpenArchive(const std::string& path, torch::serialize::InputArchive* archive) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    return absl::NotFoundError(absl::StrCat("model archive not found: ", path));
  }
  try {
    archive->load_from(path, torch::Device(torch::kCPU));
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(
        "model archive ", path, " is not a readable LibTorch archive (truncated or corrupt?)"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status LoadModelState(const std::string& path, models::Classifier& model) {
  torch::serialize::InputArchive archive;
  MIA_RETURN_IF_ERROR(OpenArchive(path, &archive));
  std::set<std::string> names;
  torch::NoGradGuard no_grad;
  for (const models::NamedTensor& t : model.State()) {
    names.insert(t.name);
    c10::IValue value;
    if (!archive.try_read(t.name, value) || !value.isTensor()) {
      return absl::InvalidArgumentError(
          absl::StrCat("model archive ", path, ": tensor '", t.name, "' is missing"));
    }
    const torch::Tensor stored = value.toTensor();
    if (stored.sizes() != t.value.sizes()) {
      return absl::InvalidArgumentError(absl::StrCat("model archive ", path, ": tensor '", t.name,
                                                     "' has shape ", ShapeString(stored),
                                                     ", the model expects ", ShapeString(t.value)));
    }
    if (stored.scalar_type() != t.value.scalar_type()) {
      return absl::InvalidArgumentError(
          absl::StrCat("model archive ", path, ": tensor '", t.name, "' has type ",
                       c10::toString(stored.scalar_type()), ", the model expects ",
                       c10::toString(t.value.scalar_type())));
    }
    torch::Tensor target = t.value;
    target.copy_(stored);
  }
  for (const std::string& key : archive.keys()) {
    c10::IValue value;
    // The archive's module also carries non-tensor attributes (e.g. its
    // training flag); only tensors count.
    if (names.count(key) == 0 && archive.try_read(key, value) && value.isTensor()) {
      return absl::InvalidArgumentError(absl::StrCat("model archive ", path, ": tensor '", key,
                                                     "' is not part of this model (another "
                                                     "architecture or spec?)"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<models::NamedTensor>> ReadModelState(const std::string& path) {
  torch::serialize::InputArchive archive;
  MIA_RETURN_IF_ERROR(OpenArchive(path, &archive));
  std::vector<models::NamedTensor> out;
  for (const std::string& key : archive.keys()) {
    c10::IValue value;
    // Non-tensor attributes of the archive's module (its training flag) are skipped.
    if (archive.try_read(key, value) && value.isTensor()) {
      out.push_back({key, value.toTensor(), false});
    }
  }
  return out;
}

absl::StatusOr<std::shared_ptr<models::Classifier>> LoadModel(const ModelSpec& spec,
                                                              const models::InputSpec& input,
                                                              const std::string& path) {
  auto model = models::BuildModelForLoading(spec, input);
  if (!model.ok()) return model.status();
  absl::Status loaded = LoadModelState(path, **model);
  if (!loaded.ok()) return loaded;
  return model;
}

}  // namespace mia::training
