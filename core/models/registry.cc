#include "core/models/registry.h"

#include <cmath>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace mia::models {
namespace {

// Checks that hold for every architecture; the builders check the rest.
absl::Status ValidateCommon(const ModelSpec& spec, const InputSpec& input) {
  if (!(spec.dropout >= 0.0 && spec.dropout < 1.0)) {
    return absl::InvalidArgumentError("spec.dropout must be in [0, 1)");
  }
  if (input.num_classes < 2) {
    return absl::InvalidArgumentError("num_classes must be at least 2");
  }
  if (input.sample_shape.empty()) {
    return absl::InvalidArgumentError("sample_shape is empty");
  }
  for (int64_t d : input.sample_shape) {
    if (d <= 0) return absl::InvalidArgumentError("sample_shape has a non-positive dimension");
  }
  return absl::OkStatus();
}

}  // namespace

const std::vector<Architecture>& Architectures() {
  static const std::vector<Architecture>* const kTable = new std::vector<Architecture>{
      {"mlp", "fully connected: hidden widths, tanh|relu, dropout; batched with bmm", &BuildMlp,
       &StackMlps},
      {"cnn", "2 conv (32, 64 x width) + 128 FC; batched with grouped convolutions", &BuildCnn,
       &StackCnns},
      {"alexnet", "AlexNet for small images: 5 conv + 3 FC", &BuildAlexNet, nullptr},
      {"wrn", "Wide ResNet depth 6n+4, widening `width`, pre-activation blocks", &BuildWideResNet,
       nullptr},
      {"vgg16", "VGG-16 as torchvision (no batch norm): 13 conv + 3 FC, 7x7 pooled", &BuildVgg16,
       nullptr},
  };
  return *kTable;
}

absl::StatusOr<const Architecture*> FindArchitecture(const std::string& name) {
  std::vector<std::string> names;
  for (const Architecture& arch : Architectures()) {
    if (name == arch.name) return &arch;
    names.push_back(arch.name);
  }
  return absl::InvalidArgumentError(absl::StrCat("spec.architecture: unknown architecture '", name,
                                                 "' (known: ", absl::StrJoin(names, ", "), ")"));
}

namespace {

absl::StatusOr<std::shared_ptr<Classifier>> Build(const ModelSpec& spec, const InputSpec& input,
                                                  Initializer& init) {
  auto arch = FindArchitecture(spec.architecture);
  if (!arch.ok()) return arch.status();
  absl::Status common = ValidateCommon(spec, input);
  if (!common.ok()) return common;
  return (*arch)->build(spec, input, init);
}

}  // namespace

absl::StatusOr<std::shared_ptr<Classifier>> BuildModel(const ModelSpec& spec,
                                                       const InputSpec& input, uint64_t init_seed) {
  Initializer init(init_seed);
  return Build(spec, input, init);
}

absl::StatusOr<std::shared_ptr<Classifier>> BuildModelForLoading(const ModelSpec& spec,
                                                                 const InputSpec& input) {
  Initializer init = Initializer::None();
  return Build(spec, input, init);
}

}  // namespace mia::models
