// Architectures by name: a table from registry name to builder, so adding an
// architecture is one row, and the pipeline names architectures in configs.
//
// Builders validate the spec against the input (InvalidArgument naming the
// field) and initialize weights from the given Initializer only. The table is
// constant; every function here is safe from any thread.
// LibTorch header: include only from core/models, core/training and their tests.
#ifndef MIA_CORE_MODELS_REGISTRY_H_
#define MIA_CORE_MODELS_REGISTRY_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/models/classifier.h"
#include "core/models/layers.h"
#include "core/models/model_spec.h"

namespace mia::models {

// What a model is built for.
struct InputSpec {
  std::vector<int64_t> sample_shape;  // {D} tabular, {C, H, W} images
  int64_t num_classes = 0;
};

using BuildFn = absl::StatusOr<std::shared_ptr<Classifier>> (*)(const ModelSpec& spec,
                                                                const InputSpec& input,
                                                                Initializer& init);
// Stacks K freshly built models (same spec and input) into one group whose
// model k starts with exactly model k's weights.
using StackFn = absl::StatusOr<std::shared_ptr<ModelGroup>> (*)(
    const std::vector<std::shared_ptr<Classifier>>& models);

struct Architecture {
  const char* name;     // registry name, as in ModelSpec::architecture
  const char* summary;  // one line for docs and --help
  BuildFn build;
  StackFn stack;  // nullptr: no batched form; models train one after another
};

// Every architecture, in a stable order.
const std::vector<Architecture>& Architectures();

// The architecture named `name`; InvalidArgument naming spec.architecture.
absl::StatusOr<const Architecture*> FindArchitecture(const std::string& name);

// Builds `spec` for `input`, weights drawn from Rng(init_seed).
absl::StatusOr<std::shared_ptr<Classifier>> BuildModel(const ModelSpec& spec,
                                                       const InputSpec& input, uint64_t init_seed);
// Builds `spec` for `input` with zero weights, to load an archive into.
absl::StatusOr<std::shared_ptr<Classifier>> BuildModelForLoading(const ModelSpec& spec,
                                                                 const InputSpec& input);

// The builders, one per architecture file.
absl::StatusOr<std::shared_ptr<Classifier>> BuildMlp(const ModelSpec& spec, const InputSpec& input,
                                                     Initializer& init);
absl::StatusOr<std::shared_ptr<ModelGroup>> StackMlps(
    const std::vector<std::shared_ptr<Classifier>>& models);
absl::StatusOr<std::shared_ptr<Classifier>> BuildCnn(const ModelSpec& spec, const InputSpec& input,
                                                     Initializer& init);
absl::StatusOr<std::shared_ptr<ModelGroup>> StackCnns(
    const std::vector<std::shared_ptr<Classifier>>& models);
absl::StatusOr<std::shared_ptr<Classifier>> BuildAlexNet(const ModelSpec& spec,
                                                         const InputSpec& input, Initializer& init);
absl::StatusOr<std::shared_ptr<Classifier>> BuildWideResNet(const ModelSpec& spec,
                                                            const InputSpec& input,
                                                            Initializer& init);
absl::StatusOr<std::shared_ptr<Classifier>> BuildVgg16(const ModelSpec& spec,
                                                       const InputSpec& input, Initializer& init);

}  // namespace mia::models

#endif  // MIA_CORE_MODELS_REGISTRY_H_
