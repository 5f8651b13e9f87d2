// The tensors of a model archive by name, for the training tests (LibTorch).
#ifndef MIA_TESTS_TRAINING_READ_ARCHIVE_H_
#define MIA_TESTS_TRAINING_READ_ARCHIVE_H_

#include <torch/torch.h>

#include <map>
#include <string>

namespace mia::training::testing {

inline std::map<std::string, torch::Tensor> ReadArchive(const std::string& path) {
  torch::serialize::InputArchive archive;
  archive.load_from(path);
  std::map<std::string, torch::Tensor> out;
  for (const std::string& key : archive.keys()) {
    c10::IValue v;
    if (archive.try_read(key, v) && v.isTensor()) out[key] = v.toTensor();
  }
  return out;
}

}  // namespace mia::training::testing

#endif  // MIA_TESTS_TRAINING_READ_ARCHIVE_H_
