// core/models: shapes, registry errors, seeded initialization, and the
// stacked forms against their single models; core/training's optimizer
// against torch::optim and the learning-rate schedule.
#include <torch/torch.h>

#include <cmath>
#include <memory>
#include <vector>

#include "core/models/layers.h"
#include "core/models/registry.h"
#include "core/pipeline/memory_estimate.h"
#include "core/training/optimizer.h"
#include "core/training/recipe.h"
#include "core/training/torch_error.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace mia::models {
namespace {

using ::testing::HasSubstr;

std::shared_ptr<Classifier> Build(const ModelSpec& spec, std::vector<int64_t> shape,
                                  int64_t classes, uint64_t seed = 1) {
  auto model = BuildModel(spec, InputSpec{shape, classes}, seed);
  EXPECT_TRUE(model.ok()) << model.status();
  return model.ok() ? *model : nullptr;
}

int64_t ParameterCount(const Classifier& model) {
  int64_t n = 0;
  for (const auto& p : model.parameters()) n += p.numel();
  return n;
}

// The server's torch-free estimate (core/pipeline/memory_estimate.h) counts
// exactly the parameters the builders create.
TEST(ModelsTest, TorchFreeParameterCountMatchesTheBuiltModels) {
  struct Case {
    ModelSpec spec;
    std::vector<int64_t> shape;
    int64_t classes;
  };
  std::vector<Case> cases;
  auto spec = [](const std::string& name, std::vector<int> hidden, int width, int depth) {
    ModelSpec s;
    s.architecture = name;
    s.hidden = std::move(hidden);
    s.width = width;
    s.depth = depth;
    return s;
  };
  cases.push_back({spec("mlp", {128}, 1, 28), {600}, 100});
  cases.push_back({spec("mlp", {}, 1, 28), {20}, 3});
  cases.push_back({spec("mlp", {32, 16}, 1, 28), {1, 28, 28}, 10});
  cases.push_back({spec("cnn", {}, 1, 28), {3, 32, 32}, 10});
  cases.push_back({spec("cnn", {}, 2, 28), {1, 28, 28}, 10});
  cases.push_back({spec("alexnet", {}, 1, 28), {3, 32, 32}, 100});
  cases.push_back({spec("wrn", {}, 1, 10), {3, 32, 32}, 10});
  cases.push_back({spec("wrn", {}, 2, 16), {3, 16, 16}, 100});
  cases.push_back({spec("vgg16", {}, 1, 28), {1, 40, 36}, 7});
  for (const Case& c : cases) {
    const std::shared_ptr<Classifier> model = Build(c.spec, c.shape, c.classes);
    ASSERT_NE(model, nullptr) << c.spec.architecture;
    const absl::StatusOr<uint64_t> estimated = pipeline::ParameterCount(c.spec, c.shape, c.classes);
    ASSERT_TRUE(estimated.ok()) << estimated.status();
    EXPECT_EQ(*estimated, static_cast<uint64_t>(ParameterCount(*model)))
        << c.spec.architecture << " width " << c.spec.width << " depth " << c.spec.depth;
  }
}

TEST(ModelsTest, MlpGivesLogitsOfTheRightShape) {
  ModelSpec spec;
  spec.architecture = "mlp";
  spec.hidden = {32, 16};
  auto model = Build(spec, {20}, 4);
  ASSERT_NE(model, nullptr);
  model->eval();
  EXPECT_EQ(model->forward(torch::randn({3, 20})).sizes(), (std::vector<int64_t>{3, 4}));
  EXPECT_EQ(ParameterCount(*model), 20 * 32 + 32 + 32 * 16 + 16 + 16 * 4 + 4);
}

TEST(ModelsTest, CnnGivesLogitsOfTheRightShape) {
  ModelSpec spec;
  spec.architecture = "cnn";
  spec.width = 1;
  auto model = Build(spec, {1, 8, 8}, 4);
  ASSERT_NE(model, nullptr);
  model->eval();
  EXPECT_EQ(model->forward(torch::rand({5, 1, 8, 8})).sizes(), (std::vector<int64_t>{5, 4}));
  // conv1 1->32, conv2 32->64, fc 64*2*2->128, classifier 128->4.
  EXPECT_EQ(ParameterCount(*model), 32 * 9 + 32 + 64 * 32 * 9 + 64 + 256 * 128 + 128 + 128 * 4 + 4);
}

TEST(ModelsTest, AlexNetGivesLogitsOfTheRightShape) {
  ModelSpec spec;
  spec.architecture = "alexnet";
  spec.dropout = 0.5;
  auto model = Build(spec, {3, 32, 32}, 10);
  ASSERT_NE(model, nullptr);
  model->eval();
  EXPECT_EQ(model->forward(torch::rand({2, 3, 32, 32})).sizes(), (std::vector<int64_t>{2, 10}));
}

TEST(ModelsTest, WideResNet28x1GivesLogitsOfTheRightShape) {
  ModelSpec spec;
  spec.architecture = "wrn";
  spec.depth = 28;
  spec.width = 1;
  auto model = Build(spec, {3, 32, 32}, 10);
  ASSERT_NE(model, nullptr);
  model->eval();
  EXPECT_EQ(model->forward(torch::rand({2, 3, 32, 32})).sizes(), (std::vector<int64_t>{2, 10}));
  // The published size of WRN-28-1 (0.37M parameters) with 10 classes.
  EXPECT_NEAR(static_cast<double>(ParameterCount(*model)), 0.37e6, 0.01e6);
  // The statistics of 25 batch norms (2 per block x 12, 1 final) are state.
  int buffers = 0;
  for (const NamedTensor& t : model->State()) buffers += t.buffer ? 1 : 0;
  EXPECT_EQ(buffers, 25 * 3);  // running_mean, running_var, num_batches_tracked per BN
}

TEST(ModelsTest, WideResNet28x10HasThePublishedSize) {
  ModelSpec spec;
  spec.architecture = "wrn";
  spec.depth = 28;
  spec.width = 10;
  auto model = Build(spec, {3, 32, 32}, 10);
  ASSERT_NE(model, nullptr);
  EXPECT_NEAR(static_cast<double>(ParameterCount(*model)), 36.5e6, 0.1e6);
}

// torchvision's vgg16 (Privacy Meter's), with 10 classes instead of 1000.
TEST(ModelsTest, Vgg16GivesLogitsOfTheRightShapeAndTorchvisionsSize) {
  ModelSpec spec;
  spec.architecture = "vgg16";
  spec.dropout = 0.5;
  auto model = Build(spec, {3, 32, 32}, 10);
  ASSERT_NE(model, nullptr);
  model->eval();
  EXPECT_EQ(model->forward(torch::rand({2, 3, 32, 32})).sizes(), (std::vector<int64_t>{2, 10}));
  // 13 convs with bias (14,714,688), fc 512*7*7->4096->4096->10.
  EXPECT_EQ(ParameterCount(*model),
            14714688 + (25088 * 4096 + 4096) + (4096 * 4096 + 4096) + (4096 * 10 + 10));
  // torchvision's vgg16 with 1000 classes has 138,357,544 parameters.
  EXPECT_EQ(ParameterCount(*model) - (4096 * 10 + 10) + (4096 * 1000 + 1000), 138357544);
  // No batch norm: nothing but parameters.
  for (const NamedTensor& t : model->State()) EXPECT_FALSE(t.buffer) << t.name;
  // torchvision's initialization: zero biases, FC weights with std 0.01.
  for (const auto& item : model->named_parameters()) {
    if (item.key().find("bias") != std::string::npos) {
      EXPECT_EQ(item.value().abs().max().item<float>(), 0.0f) << item.key();
    }
  }
  const torch::Tensor fc2 = model->named_parameters()["fc2.weight"];
  EXPECT_NEAR(fc2.std().item<double>(), 0.01, 0.0005);
  const torch::Tensor conv = model->named_parameters()["conv5_3.weight"];
  EXPECT_NEAR(conv.std().item<double>(), std::sqrt(2.0 / (512 * 9)), 0.001);
}

TEST(ModelsTest, Vgg16RefusesTabularRowsAndSmallImages) {
  ModelSpec spec;
  spec.architecture = "vgg16";
  auto tabular = BuildModel(spec, InputSpec{{600}, 100}, 1);
  EXPECT_EQ(tabular.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(tabular.status().message(), HasSubstr("vgg16 needs images shaped {C, H, W}"));
  auto small = BuildModel(spec, InputSpec{{1, 28, 28}, 10}, 1);
  EXPECT_EQ(small.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(small.status().message(), HasSubstr("at least 32x32"));
}

TEST(ModelsTest, RegistryListsEveryArchitecture) {
  std::vector<std::string> names;
  for (const Architecture& a : Architectures()) names.push_back(a.name);
  EXPECT_THAT(names, ::testing::ElementsAre("mlp", "cnn", "alexnet", "wrn", "vgg16"));
  EXPECT_NE((*FindArchitecture("mlp"))->stack, nullptr);
  EXPECT_NE((*FindArchitecture("cnn"))->stack, nullptr);
  EXPECT_EQ((*FindArchitecture("wrn"))->stack, nullptr);
}

TEST(ModelsTest, InvalidSpecsNameTheField) {
  const InputSpec tabular{{20}, 4};
  const InputSpec image{{3, 32, 32}, 10};
  ModelSpec spec;
  spec.architecture = "resnet";
  auto s = BuildModel(spec, tabular, 0).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("spec.architecture"));

  spec.architecture = "cnn";
  s = BuildModel(spec, tabular, 0).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("sample_shape"));

  spec.architecture = "wrn";
  spec.depth = 27;
  s = BuildModel(spec, image, 0).status();
  EXPECT_THAT(s.message(), HasSubstr("spec.depth"));

  spec = ModelSpec();
  spec.activation = "sigmoid";
  s = BuildModel(spec, tabular, 0).status();
  EXPECT_THAT(s.message(), HasSubstr("spec.activation"));

  spec = ModelSpec();
  spec.hidden = {0};
  EXPECT_THAT(BuildModel(spec, tabular, 0).status().message(), HasSubstr("spec.hidden"));

  spec = ModelSpec();
  spec.dropout = 1.0;
  EXPECT_THAT(BuildModel(spec, tabular, 0).status().message(), HasSubstr("spec.dropout"));
}

TEST(ModelsTest, InitializationIsSeededAndIndependentOfGlobalState) {
  ModelSpec spec;
  spec.architecture = "cnn";
  spec.width = 1;
  auto a = Build(spec, {1, 8, 8}, 4, 42);
  torch::manual_seed(123);  // must not matter
  torch::rand({100});
  auto b = Build(spec, {1, 8, 8}, 4, 42);
  auto c = Build(spec, {1, 8, 8}, 4, 43);
  const auto sa = a->State(), sb = b->State(), sc = c->State();
  ASSERT_EQ(sa.size(), sb.size());
  bool any_different = false;
  for (size_t i = 0; i < sa.size(); ++i) {
    EXPECT_EQ(sa[i].name, sb[i].name);
    EXPECT_TRUE(torch::equal(sa[i].value, sb[i].value)) << sa[i].name;
    any_different = any_different || !torch::equal(sa[i].value, sc[i].value);
  }
  EXPECT_TRUE(any_different);
}

// Stacked forward of K models equals each model's own forward.
void ExpectStackMatchesSingles(const ModelSpec& spec, std::vector<int64_t> shape) {
  const auto* arch = *FindArchitecture(spec.architecture);
  std::vector<std::shared_ptr<Classifier>> singles;
  for (uint64_t seed : {1, 2, 3}) singles.push_back(Build(spec, shape, 4, seed));
  auto group = arch->stack(singles);
  ASSERT_TRUE(group.ok()) << group.status();
  (*group)->eval();
  std::vector<int64_t> xshape = {3, 6};
  xshape.insert(xshape.end(), shape.begin(), shape.end());
  torch::NoGradGuard no_grad;
  const torch::Tensor x = torch::rand(xshape);
  const torch::Tensor stacked = (*group)->Forward(x, {6, 6, 6});  // [3, 6, 4]
  for (int k = 0; k < 3; ++k) {
    singles[k]->eval();
    EXPECT_TRUE(torch::allclose(stacked[k], singles[k]->forward(x[k]), 1e-5, 1e-5)) << k;
    // The unstacked state is the single model's state.
    const auto state = (*group)->ModelState(k);
    const auto expected = singles[k]->State();
    ASSERT_EQ(state.size(), expected.size());
    for (size_t i = 0; i < state.size(); ++i) {
      EXPECT_EQ(state[i].name, expected[i].name);
      EXPECT_TRUE(torch::equal(state[i].value, expected[i].value)) << state[i].name;
    }
  }
}

TEST(ModelsTest, StackedMlpMatchesSingleModels) {
  ModelSpec spec;
  spec.hidden = {16, 8};
  spec.activation = "relu";
  ExpectStackMatchesSingles(spec, {10});
}

TEST(ModelsTest, StackedCnnMatchesSingleModels) {
  ModelSpec spec;
  spec.architecture = "cnn";
  spec.width = 1;
  ExpectStackMatchesSingles(spec, {2, 8, 8});
}

}  // namespace
}  // namespace mia::models

namespace mia::training {
namespace {

// GroupOptimizer with K = 1 follows torch::optim step for step.
void ExpectMatchesTorchOptimizer(const TrainRecipe& recipe, torch::optim::Optimizer& reference,
                                 torch::Tensor ours, torch::Tensor theirs) {
  auto optimizer = GroupOptimizer::Create(recipe, {ours}, 1, false);
  ASSERT_TRUE(optimizer.ok()) << optimizer.status();
  for (int step = 0; step < 5; ++step) {
    const torch::Tensor target = torch::full({4, 3}, static_cast<float>(step));
    for (torch::Tensor* p : {&ours, &theirs}) {
      torch::Tensor loss = (*p - target).pow(3).sum();
      loss.backward();
    }
    (*optimizer)->Step({recipe.learning_rate}, {true});
    reference.step();
    (*optimizer)->ZeroGrad();
    reference.zero_grad();
  }
  EXPECT_TRUE(torch::allclose(ours, theirs, 1e-5, 1e-6)) << recipe.optimizer;
}

TEST(OptimizerTest, MatchesTorchOptim) {
  const torch::Tensor init = torch::linspace(-1, 1, 12).view({4, 3});
  {
    TrainRecipe r;
    r.optimizer = "sgd";
    r.learning_rate = 0.01;
    r.momentum = 0.9;
    r.nesterov = true;
    r.weight_decay = 0.1;
    torch::Tensor ours = init.clone().requires_grad_(), theirs = init.clone().requires_grad_();
    torch::optim::SGD ref(
        {theirs}, torch::optim::SGDOptions(0.01).momentum(0.9).nesterov(true).weight_decay(0.1));
    ExpectMatchesTorchOptimizer(r, ref, ours, theirs);
  }
  {  // momentum only, and plain SGD
    TrainRecipe r;
    r.optimizer = "sgd";
    r.learning_rate = 0.02;
    r.momentum = 0.8;
    torch::Tensor ours = init.clone().requires_grad_(), theirs = init.clone().requires_grad_();
    torch::optim::SGD ref({theirs}, torch::optim::SGDOptions(0.02).momentum(0.8));
    ExpectMatchesTorchOptimizer(r, ref, ours, theirs);
    r.momentum = 0;
    ours = init.clone().requires_grad_();
    theirs = init.clone().requires_grad_();
    torch::optim::SGD plain({theirs}, torch::optim::SGDOptions(0.02));
    ExpectMatchesTorchOptimizer(r, plain, ours, theirs);
  }
  {
    TrainRecipe r;
    r.optimizer = "adam";
    r.learning_rate = 0.01;
    r.weight_decay = 0.1;
    torch::Tensor ours = init.clone().requires_grad_(), theirs = init.clone().requires_grad_();
    torch::optim::Adam ref({theirs}, torch::optim::AdamOptions(0.01).weight_decay(0.1));
    ExpectMatchesTorchOptimizer(r, ref, ours, theirs);
  }
  {
    TrainRecipe r;
    r.optimizer = "adamw";
    r.learning_rate = 0.01;
    r.weight_decay = 0.1;
    torch::Tensor ours = init.clone().requires_grad_(), theirs = init.clone().requires_grad_();
    torch::optim::AdamW ref({theirs}, torch::optim::AdamWOptions(0.01).weight_decay(0.1));
    ExpectMatchesTorchOptimizer(r, ref, ours, theirs);
  }
}

TEST(OptimizerTest, InactiveModelsAreNotTouched) {
  TrainRecipe r;
  r.optimizer = "adamw";
  r.weight_decay = 0.5;
  torch::Tensor p = torch::ones({2, 3}).requires_grad_();
  auto optimizer = GroupOptimizer::Create(r, {p}, 2, true);
  ASSERT_TRUE(optimizer.ok());
  p.sum().backward();
  (*optimizer)->Step({0.1, 0.1}, {true, false});
  EXPECT_FALSE(torch::equal(p[0], torch::ones({3})));
  EXPECT_TRUE(torch::equal(p[1], torch::ones({3})));
}

TEST(ScheduleTest, WarmupThenConstantOrCosine) {
  TrainRecipe r;
  r.learning_rate = 0.1;
  r.epochs = 10;
  r.warmup_epochs = 2;
  // 5 steps per epoch: warm-up over steps 0..9 reaches the rate at step 9.
  EXPECT_DOUBLE_EQ(LearningRate(r, 0, 5), 0.01);
  EXPECT_DOUBLE_EQ(LearningRate(r, 9, 5), 0.1);
  EXPECT_EQ(LearningRate(r, 30, 5), 0.1);  // the configured rate, no hidden factor
  r.schedule = "cosine";
  EXPECT_DOUBLE_EQ(LearningRate(r, 10, 5), 0.1);
  EXPECT_NEAR(LearningRate(r, 30, 5), 0.05, 1e-12);  // halfway through the decay
  EXPECT_LT(LearningRate(r, 49, 5), 0.001);
}

TEST(TorchErrorTest, MasksFractionalNumbersAndKeepsOneLine) {
  EXPECT_EQ(SanitizeTorchMessage("mat1 and mat2 shapes cannot be multiplied (2x20 and 10x4)\n"
                                 "Exception raised from ..."),
            "mat1 and mat2 shapes cannot be multiplied (2x20 and 10x4)");
  EXPECT_EQ(SanitizeTorchMessage("value 0.25 and 1e-3 at dim 2"), "value <num> and <num> at dim 2");
}

}  // namespace
}  // namespace mia::training
