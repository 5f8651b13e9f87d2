// What a model is: an architecture by registry name with its parameters.
// Torch-free plain data, so that configs (core/pipeline), artifact keys and
// the trainer's interface (core/training/engine.h) share one definition
// without any of them depending on LibTorch or on the trainer.
#ifndef MIA_CORE_MODELS_MODEL_SPEC_H_
#define MIA_CORE_MODELS_MODEL_SPEC_H_

#include <string>
#include <vector>

namespace mia::models {

struct ModelSpec {
  std::string architecture = "mlp";  // mlp | cnn | alexnet | wrn | vgg16 (core/models/registry.h)
  std::vector<int> hidden = {128};   // mlp: hidden layer widths
  std::string activation = "tanh";   // mlp: tanh | relu
  int depth = 28;                    // wrn: depth (6n + 4)
  int width = 2;                     // wrn: widening factor k (1, 2, 10); cnn: channel multiplier
  double dropout = 0.0;              // mlp / alexnet / wrn / vgg16 dropout probability
};

}  // namespace mia::models

#endif  // MIA_CORE_MODELS_MODEL_SPEC_H_
