// The sparse-input linear layer: kernels against plain definitional loops,
// the LibTorch layer against torch::linear / torch::baddbmm (outputs and
// gradients), when it must fall back to the dense product, and training on
// binary tabular data with and without it.
#include <torch/torch.h>

#include <cmath>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "core/common/random.h"
#include "core/models/layers.h"
#include "core/models/registry.h"
#include "core/models/sparse_kernels.h"
#include "core/models/sparse_linear.h"
#include "core/training/engine.h"
#include "gtest/gtest.h"
#include "tests/training/test_data.h"

namespace mia::models {
namespace {

// The kernel tests run twice: with the AVX2 kernels (where the CPU has them)
// and with the portable ones.
class SparseKernelsTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override { previous_ = sparse::AllowAvx2(GetParam()); }
  void TearDown() override { sparse::AllowAvx2(previous_); }

 private:
  bool previous_ = true;
};

INSTANTIATE_TEST_SUITE_P(Kernels, SparseKernelsTest, ::testing::Values(true, false),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? "Avx2WhereAvailable" : "Portable";
                         });

// A [rows, cols] row-major matrix with about `density` nonzeros in N(0, 1).
std::vector<float> SparseMatrix(int64_t rows, int64_t cols, double density, uint64_t seed) {
  Rng rng(seed);
  std::vector<float> m(rows * cols, 0.0f);
  for (float& v : m) {
    if (rng.Uniform01() < density) v = static_cast<float>(rng.Normal());
  }
  return m;
}

std::vector<float> DenseMatrix(int64_t rows, int64_t cols, uint64_t seed) {
  return SparseMatrix(rows, cols, 2.0, seed);
}

TEST_P(SparseKernelsTest, CompressRowsKeepsExactlyTheNonzerosInOrder) {
  const int64_t rows = 13, cols = 37;  // cols not a multiple of 8: the scalar tail runs
  std::vector<float> x = SparseMatrix(rows, cols, 0.3, 1);
  x[5] = -0.0f;                                           // compares equal to 0: dropped
  x[cols + 9] = std::numeric_limits<float>::quiet_NaN();  // unequal to 0: kept
  x[2 * cols + 36] = std::numeric_limits<float>::infinity();
  sparse::Csr csr;
  ASSERT_TRUE(sparse::CompressRows(x.data(), rows, cols, rows * cols, csr));
  EXPECT_EQ(csr.rows, rows);
  EXPECT_EQ(csr.cols, cols);
  int64_t k = 0;
  for (int64_t r = 0; r < rows; ++r) {
    EXPECT_EQ(csr.row_ptr[r], k) << r;
    for (int64_t c = 0; c < cols; ++c) {
      const float v = x[r * cols + c];
      if (v == 0.0f) continue;
      ASSERT_LT(k, csr.nnz());
      EXPECT_EQ(csr.col[k], c) << r;
      if (std::isnan(v)) {
        EXPECT_TRUE(std::isnan(csr.val[k]));
      } else {
        EXPECT_EQ(csr.val[k], v);
      }
      ++k;
    }
  }
  EXPECT_EQ(csr.nnz(), k);
  EXPECT_GT(k, 0);
}

TEST_P(SparseKernelsTest, CompressRowsGivesUpAboveTheLimit) {
  const int64_t rows = 40, cols = 24;
  const std::vector<float> x = SparseMatrix(rows, cols, 0.25, 2);
  int64_t nnz = 0;
  for (float v : x) nnz += v != 0.0f;
  sparse::Csr csr;
  EXPECT_TRUE(sparse::CompressRows(x.data(), rows, cols, nnz, csr));
  EXPECT_EQ(csr.nnz(), nnz);
  EXPECT_FALSE(sparse::CompressRows(x.data(), rows, cols, nnz - 1, csr));
  // A dense matrix against a 30% limit, and storage reused from a larger call.
  const std::vector<float> dense = DenseMatrix(rows, cols, 3);
  EXPECT_FALSE(sparse::CompressRows(dense.data(), rows, cols, rows * cols * 3 / 10, csr));
  EXPECT_TRUE(sparse::CompressRows(x.data(), rows, cols, nnz, csr));
  EXPECT_EQ(csr.nnz(), nnz);
}

TEST_P(SparseKernelsTest, StorageGrowsWithTheNonzerosNotTheLimit) {
  const int64_t rows = 2000, cols = 300;
  const std::vector<float> x = SparseMatrix(rows, cols, 0.01, 9);
  sparse::Csr csr;
  ASSERT_TRUE(sparse::CompressRows(x.data(), rows, cols, rows * cols, csr));
  EXPECT_LT(csr.col.size(), static_cast<size_t>(2 * (csr.nnz() + cols + 8)));
  EXPECT_LT(csr.col.size(), static_cast<size_t>(rows * cols / 10));
}

// A batch assembled row by row from a dataset's CSR is the CSR of the dense
// batch.
TEST_P(SparseKernelsTest, AppendRowBuildsTheBatchOfTheChosenRows) {
  const int64_t rows = 50, cols = 19;
  const std::vector<float> x = SparseMatrix(rows, cols, 0.2, 10);
  sparse::Csr all, batch, want;
  ASSERT_TRUE(sparse::CompressRows(x.data(), rows, cols, rows * cols, all));
  const std::vector<int64_t> chosen = {7, 3, 49, 0, 3, 21};
  std::vector<float> dense;
  for (int64_t r : chosen)
    dense.insert(dense.end(), x.begin() + r * cols, x.begin() + (r + 1) * cols);
  for (int pass = 0; pass < 2; ++pass) {  // the second pass reuses the storage
    sparse::Clear(cols, batch);
    for (int64_t r : chosen) sparse::AppendRow(all, r, batch);
  }
  ASSERT_TRUE(sparse::CompressRows(dense.data(), chosen.size(), cols, dense.size(), want));
  ASSERT_EQ(batch.rows, want.rows);
  ASSERT_EQ(batch.row_ptr, want.row_ptr);
  for (int64_t k = 0; k < want.nnz(); ++k) {
    EXPECT_EQ(batch.col[k], want.col[k]);
    EXPECT_EQ(batch.val[k], want.val[k]);
  }
}

TEST_P(SparseKernelsTest, ToColumnsIsTheSameMatrixByColumns) {
  const int64_t rows = 21, cols = 17;
  const std::vector<float> x = SparseMatrix(rows, cols, 0.2, 4);
  sparse::Csr csr;
  ASSERT_TRUE(sparse::CompressRows(x.data(), rows, cols, rows * cols, csr));
  sparse::Csc csc;
  sparse::ToColumns(csr, csc);
  ASSERT_EQ(csc.col_ptr.size(), static_cast<size_t>(cols + 1));
  int64_t k = 0;
  for (int64_t c = 0; c < cols; ++c) {
    EXPECT_EQ(csc.col_ptr[c], k);
    for (int64_t r = 0; r < rows; ++r) {
      if (x[r * cols + c] == 0.0f) continue;
      EXPECT_EQ(csc.row[k], r);
      EXPECT_EQ(csc.val[k], x[r * cols + c]);
      ++k;
    }
  }
  EXPECT_EQ(csc.col_ptr[cols], k);
}

// Every output width exercises a different mix of the 64/32/16/8-wide blocks
// and the scalar tail.
TEST_P(SparseKernelsTest, ProductsMatchPlainLoopsForEveryWidth) {
  const int64_t rows = 9, cols = 23;
  const std::vector<float> x = SparseMatrix(rows, cols, 0.3, 5);
  sparse::Csr csr;
  ASSERT_TRUE(sparse::CompressRows(x.data(), rows, cols, rows * cols, csr));
  sparse::Csc csc;
  sparse::ToColumns(csr, csc);
  for (int64_t out = 1; out <= 139; ++out) {
    const std::vector<float> wt = DenseMatrix(cols, out, 100 + out);  // W^T [cols, out]
    const std::vector<float> bias = DenseMatrix(1, out, 200 + out);
    const std::vector<float> g = DenseMatrix(rows, out, 300 + out);
    std::vector<float> y(rows * out), gwt(cols * out);
    sparse::MultiplyRows(csr, wt.data(), bias.data(), out, y.data());
    sparse::MultiplyColumns(csc, g.data(), out, gwt.data());
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t o = 0; o < out; ++o) {
        double want = bias[o];
        for (int64_t c = 0; c < cols; ++c) want += double(x[r * cols + c]) * wt[c * out + o];
        ASSERT_NEAR(y[r * out + o], want, 1e-4) << "width " << out;
      }
    }
    for (int64_t c = 0; c < cols; ++c) {
      for (int64_t o = 0; o < out; ++o) {
        double want = 0.0;
        for (int64_t r = 0; r < rows; ++r) want += double(x[r * cols + c]) * g[r * out + o];
        ASSERT_NEAR(gwt[c * out + o], want, 1e-4) << "width " << out;
      }
    }
  }
  // Without a bias the rows start from zero.
  const std::vector<float> wt = DenseMatrix(cols, 5, 7);
  std::vector<float> y(rows * 5);
  sparse::MultiplyRows(csr, wt.data(), nullptr, 5, y.data());
  double want = 0.0;
  for (int64_t c = 0; c < cols; ++c) want += double(x[c]) * wt[c * 5];
  EXPECT_NEAR(y[0], want, 1e-5);
}

TEST_P(SparseKernelsTest, TransposeMovesEveryEntry) {
  const int64_t rows = 45, cols = 70;  // not multiples of the tile
  const std::vector<float> a = DenseMatrix(rows, cols, 8);
  std::vector<float> t(rows * cols);
  sparse::Transpose(a.data(), rows, cols, t.data());
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) ASSERT_EQ(t[c * rows + r], a[r * cols + c]);
  }
}

// Sets the mode for one test and restores the previous one.
class ScopedMode {
 public:
  explicit ScopedMode(SparseInputMode mode) : previous_(SetSparseInputMode(mode)) {}
  ~ScopedMode() { SetSparseInputMode(previous_); }

 private:
  SparseInputMode previous_;
};

// Binary x [rows, cols] with about `density` ones.
torch::Tensor BinaryInput(std::vector<int64_t> shape, double density) {
  return (torch::rand(shape) < density).to(torch::kFloat32);
}

struct Grads {
  torch::Tensor y, weight, bias;
};

// y = layer(x, weight, bias) and the gradients of sum(y * probe).
template <typename LayerFn>
Grads RunLayer(LayerFn layer, const torch::Tensor& x, const torch::Tensor& weight,
               const torch::Tensor& bias, const torch::Tensor& probe) {
  torch::Tensor w = weight.clone().requires_grad_(true);
  torch::Tensor b = bias.defined() ? bias.clone().requires_grad_(true) : torch::Tensor();
  torch::Tensor y = layer(x, w, b);
  (y * probe).sum().backward();
  return {y.detach(), w.grad(), b.defined() ? b.grad() : torch::Tensor()};
}

void ExpectClose(const torch::Tensor& a, const torch::Tensor& b, const std::string& what) {
  ASSERT_TRUE(a.defined()) << what;
  ASSERT_TRUE(b.defined()) << what;
  ASSERT_EQ(a.sizes(), b.sizes()) << what;
  EXPECT_TRUE(torch::allclose(a, b, 1e-4, 1e-4))
      << what << ": max diff " << (a - b).abs().max().item<double>();
}

// The layer run with the dense product (kOff) and with the sparse path
// (kAuto), which must have been taken exactly once.
template <typename LayerFn>
std::pair<Grads, Grads> DenseAndSparse(LayerFn layer, const torch::Tensor& x,
                                       const torch::Tensor& weight, const torch::Tensor& bias,
                                       const torch::Tensor& probe) {
  Grads dense, fast;
  {
    ScopedMode mode(SparseInputMode::kOff);
    dense = RunLayer(layer, x, weight, bias, probe);
  }
  {
    ScopedMode mode(SparseInputMode::kAuto);
    const int64_t before = SparseProductCount();
    fast = RunLayer(layer, x, weight, bias, probe);
    EXPECT_EQ(SparseProductCount(), before + 1) << "the sparse path was not taken";
  }
  return {dense, fast};
}

TEST(SparseLinearTest, MatchesTheDenseProductAndItsGradients) {
  torch::manual_seed(1);
  const torch::Tensor x = BinaryInput({37, 50}, 0.2);
  for (const int64_t out : {75, 128, 3}) {
    const torch::Tensor weight = torch::randn({out, 50});
    const torch::Tensor probe = torch::randn({37, out});
    for (const bool with_bias : {true, false}) {
      const torch::Tensor bias = with_bias ? torch::randn({out}) : torch::Tensor();
      const auto [dense, fast] = DenseAndSparse(LinearMaybeSparse, x, weight, bias, probe);
      ExpectClose(fast.y, torch::linear(x, weight, bias), "output");
      ExpectClose(fast.y, dense.y, "output");
      ExpectClose(fast.weight, dense.weight, "weight gradient");
      if (with_bias) ExpectClose(fast.bias, dense.bias, "bias gradient");
    }
  }
}

TEST(SparseLinearTest, NonBinaryValuesAndNoGradMode) {
  torch::manual_seed(2);
  const torch::Tensor x = torch::randn({20, 30}) * BinaryInput({20, 30}, 0.15);
  const torch::Tensor weight = torch::randn({9, 30}), bias = torch::randn({9});
  ScopedMode mode(SparseInputMode::kAuto);
  const int64_t before = SparseProductCount();
  torch::NoGradGuard no_grad;
  ExpectClose(LinearMaybeSparse(x, weight, bias), torch::linear(x, weight, bias), "output");
  EXPECT_EQ(SparseProductCount(), before + 1);
}

TEST(SparseLinearTest, DenseOrDifferentiableInputsTakeTheDenseProduct) {
  torch::manual_seed(3);
  const torch::Tensor weight = torch::randn({8, 40}), bias = torch::randn({8});
  ScopedMode mode(SparseInputMode::kAuto);
  const int64_t before = SparseProductCount();
  // Half the entries nonzero: above kSparseDensity.
  const torch::Tensor half = BinaryInput({64, 40}, 0.5);
  ExpectClose(LinearMaybeSparse(half, weight, bias), torch::linear(half, weight, bias), "dense");
  // An input that needs its own gradient (a hidden layer) is never compressed.
  torch::Tensor hidden = BinaryInput({16, 40}, 0.1).requires_grad_(true);
  torch::Tensor y = LinearMaybeSparse(hidden, weight, bias);
  y.sum().backward();
  ASSERT_TRUE(hidden.grad().defined());
  ExpectClose(hidden.grad(), weight.sum(0).expand({16, 40}), "input gradient");
  // Double precision and 3-D inputs are left to LibTorch.
  const torch::Tensor x64 = BinaryInput({4, 40}, 0.1).to(torch::kFloat64);
  EXPECT_EQ(LinearMaybeSparse(x64, weight.to(torch::kFloat64), bias.to(torch::kFloat64)).dtype(),
            torch::kFloat64);
  const torch::Tensor x3 = BinaryInput({2, 4, 40}, 0.1);
  ExpectClose(LinearMaybeSparse(x3, weight, bias), torch::linear(x3, weight, bias), "3-D");
  EXPECT_EQ(SparseProductCount(), before);
  // Shape errors stay LibTorch's.
  EXPECT_THROW(LinearMaybeSparse(BinaryInput({4, 39}, 0.1), weight, bias), c10::Error);
}

TEST(SparseLinearTest, NanInputsPropagateAsInTheDenseProduct) {
  torch::Tensor x = BinaryInput({6, 30}, 0.1);
  x[2][4] = std::numeric_limits<float>::quiet_NaN();
  const torch::Tensor weight = torch::randn({5, 30}), bias = torch::randn({5});
  ScopedMode mode(SparseInputMode::kAuto);
  const torch::Tensor y = LinearMaybeSparse(x, weight, bias);
  EXPECT_TRUE(y[2].isnan().all().item<bool>());
  EXPECT_FALSE(y[1].isnan().any().item<bool>());
}

TEST(SparseLinearTest, StackedMatchesBaddbmmAndItsGradients) {
  torch::manual_seed(4);
  const int64_t models = 3, rows = 29, in = 45, out = 70;
  torch::Tensor x = BinaryInput({models, rows, in}, 0.2);
  x[1].narrow(0, 20, rows - 20).zero_();  // model 1's padding rows
  const torch::Tensor weight = torch::randn({models, in, out});
  const torch::Tensor probe = torch::randn({models, rows, out});
  auto stacked = [](const torch::Tensor& xs, const torch::Tensor& w, const torch::Tensor& b) {
    return StackedLinearMaybeSparse(b, xs, w);
  };
  for (const int64_t bias_models : {models, int64_t{1}}) {
    const torch::Tensor bias = torch::randn({bias_models, 1, out});
    const auto [dense, fast] = DenseAndSparse(stacked, x, weight, bias, probe);
    ExpectClose(fast.y, torch::baddbmm(bias, x, weight), "output");
    ExpectClose(fast.weight, dense.weight, "weight gradient");
    ExpectClose(fast.bias, dense.bias, "bias gradient");
  }
}

// A model fed CSR rows gives the logits of its dense forward, alone and
// stacked (padding rows included).
TEST(SparseLinearTest, MlpForwardSparseMatchesForward) {
  torch::manual_seed(5);
  for (const std::vector<int>& hidden : {std::vector<int>{}, std::vector<int>{24, 12}}) {
    training::ModelSpec spec;
    spec.architecture = "mlp";
    spec.hidden = hidden;
    spec.activation = "relu";
    std::vector<std::shared_ptr<Classifier>> models;
    for (uint64_t seed : {1, 2, 3}) {
      auto model = BuildModel(spec, InputSpec{{40}, 5}, seed);
      ASSERT_TRUE(model.ok()) << model.status();
      ASSERT_TRUE((*model)->TakesSparseRows());
      models.push_back(*model);
    }
    const torch::Tensor x = BinaryInput({3, 11, 40}, 0.2);
    std::vector<sparse::Csr> csrs(3);
    for (int64_t k = 0; k < 3; ++k) {
      ASSERT_TRUE(
          sparse::CompressRows(x[k].contiguous().data_ptr<float>(), 11, 40, 11 * 40, csrs[k]));
    }
    torch::NoGradGuard no_grad;
    for (int64_t k = 0; k < 3; ++k) {
      models[k]->eval();
      ExpectClose(models[k]->ForwardSparse(csrs[k]), models[k]->forward(x[k]), "single");
      auto group = WrapSingle(models[k]);
      ExpectClose(group->ForwardSparse({csrs[k]}, {11})[0], models[k]->forward(x[k]), "group");
    }
    auto stacked = FindArchitecture("mlp");
    ASSERT_TRUE(stacked.ok());
    auto group = (*stacked)->stack(models);
    ASSERT_TRUE(group.ok()) << group.status();
    (*group)->eval();
    ASSERT_TRUE((*group)->TakesSparseRows());
    ExpectClose((*group)->ForwardSparse(csrs, {11, 11, 11}), (*group)->Forward(x, {11, 11, 11}),
                "stacked");
    // Wrong widths are an error, not a crash.
    sparse::Csr narrow;
    ASSERT_TRUE(sparse::CompressRows(x[0].narrow(1, 0, 39).contiguous().data_ptr<float>(), 11, 39,
                                     11 * 39, narrow));
    EXPECT_THROW(models[0]->ForwardSparse(narrow), c10::Error);
  }
}

// Training on Purchase-like binary data: the sparse first layer trains the
// same models as the dense one, up to float rounding.
TEST(SparseLinearTest, TrainingMatchesTheDenseProduct) {
  const data::Dataset d = training::testing::BinaryTabular(1500, 120, 6, 0.15, 0.1, 41);
  training::ModelSpec spec;
  spec.architecture = "mlp";
  spec.hidden = {48};
  spec.activation = "tanh";
  training::TrainRecipe recipe;
  recipe.optimizer = "sgd";
  recipe.learning_rate = 0.05;
  recipe.momentum = 0.9;
  recipe.epochs = 5;
  recipe.batch_size = 64;
  const std::string dir = training::testing::TestDir();
  training::TrainContext ctx;
  ctx.device = "cpu";
  const std::vector<std::vector<int64_t>> train = {training::testing::Range(0, 600),
                                                   training::testing::Range(300, 900)};
  const std::vector<int64_t> test = training::testing::Range(1000, 1500);
  for (const bool batched : {false, true}) {
    ctx.allow_batched = batched;
    std::vector<training::ModelReport> dense, fast;
    {
      ScopedMode mode(SparseInputMode::kOff);
      auto r = training::TrainModels(d, spec, recipe, train, test, {5, 6},
                                     {dir + "/d0.pt", dir + "/d1.pt"}, ctx);
      ASSERT_TRUE(r.ok()) << r.status();
      dense = *r;
    }
    {
      ScopedMode mode(SparseInputMode::kAuto);
      const int64_t before = SparseProductCount();
      auto r = training::TrainModels(d, spec, recipe, train, test, {5, 6},
                                     {dir + "/s0.pt", dir + "/s1.pt"}, ctx);
      ASSERT_TRUE(r.ok()) << r.status();
      fast = *r;
      EXPECT_GT(SparseProductCount(), before);
    }
    for (size_t k = 0; k < 2; ++k) {
      EXPECT_EQ(fast[k].batched, batched);
      EXPECT_GT(fast[k].test_accuracy, 0.5) << k;  // it learned (6 classes)
      EXPECT_NEAR(fast[k].train_accuracy, dense[k].train_accuracy, 0.01) << k;
      EXPECT_NEAR(fast[k].test_accuracy, dense[k].test_accuracy, 0.01) << k;
      EXPECT_NEAR(fast[k].test_loss, dense[k].test_loss, 1e-3) << k;
    }
  }
}

// The hand-written forward and backward of an mlp (ManualGradients) against
// autograd: gradients of the same loss, every architecture option.
TEST(ManualGradientsTest, MatchAutograd) {
  torch::manual_seed(6);
  const torch::Tensor x = BinaryInput({33, 40}, 0.2);
  const torch::Tensor labels = torch::randint(0, 5, {33}, torch::kInt64);
  const torch::Tensor weights = torch::rand({33});
  sparse::Csr csr;
  ASSERT_TRUE(sparse::CompressRows(x.contiguous().data_ptr<float>(), 33, 40, 33 * 40, csr));
  struct Case {
    std::vector<int> hidden;
    std::string activation;
    double dropout;
  };
  for (const Case& c : {Case{{}, "tanh", 0.0}, Case{{24}, "tanh", 0.0}, Case{{24, 12}, "relu", 0.0},
                        Case{{16, 8}, "tanh", 0.3}}) {
    training::ModelSpec spec;
    spec.architecture = "mlp";
    spec.hidden = c.hidden;
    spec.activation = c.activation;
    spec.dropout = c.dropout;
    auto model = BuildModel(spec, InputSpec{{40}, 5}, 9);
    ASSERT_TRUE(model.ok()) << model.status();
    Classifier& m = **model;
    m.train(true);
    ASSERT_TRUE(m.HasManualGradients());
    // Autograd on the dense rows, then the manual gradients from the same
    // dropout draws (a generator seeded alike), sparse and dense.
    m.set_dropout_generator(MakeGenerator(77));
    namespace F = torch::nn::functional;
    torch::Tensor loss = (F::cross_entropy(m.forward(x), labels,
                                           F::CrossEntropyFuncOptions().reduction(torch::kNone)) *
                          weights)
                             .sum();
    for (auto& p : m.parameters()) p.mutable_grad() = torch::Tensor();
    loss.backward();
    std::vector<torch::Tensor> reference;
    for (auto& p : m.parameters()) reference.push_back(p.grad().clone());
    for (const bool use_sparse : {true, false}) {
      m.set_dropout_generator(MakeGenerator(77));
      m.ManualGradients(use_sparse ? &csr : nullptr, x, labels, weights);
      const auto params = m.parameters();
      for (size_t i = 0; i < params.size(); ++i) {
        ExpectClose(params[i].grad(), reference[i],
                    "parameter " + std::to_string(i) + (use_sparse ? " sparse" : " dense") +
                        " hidden " + std::to_string(c.hidden.size()) + " " + c.activation);
      }
    }
  }
}

// Training with manual gradients gives the models autograd trains.
TEST(ManualGradientsTest, TrainingMatchesAutograd) {
  const data::Dataset d = training::testing::BinaryTabular(1200, 60, 4, 0.2, 0.1, 43);
  training::ModelSpec spec;
  spec.architecture = "mlp";
  spec.hidden = {32};
  spec.activation = "tanh";
  spec.dropout = 0.1;
  training::TrainRecipe recipe;
  recipe.optimizer = "adam";
  recipe.learning_rate = 0.003;
  recipe.epochs = 3;
  recipe.batch_size = 50;
  training::TrainContext ctx;
  ctx.device = "cpu";
  ctx.allow_batched = false;
  const std::string dir = training::testing::TestDir();
  std::vector<training::ModelReport> reports[2];
  for (const bool manual : {false, true}) {
    const bool previous = SetManualGradients(manual);
    auto r = training::TrainModels(d, spec, recipe, {training::testing::Range(0, 700)},
                                   training::testing::Range(800, 1200), {3},
                                   {dir + (manual ? "/m.pt" : "/a.pt")}, ctx);
    SetManualGradients(previous);
    ASSERT_TRUE(r.ok()) << r.status();
    reports[manual] = *r;
  }
  EXPECT_GT(reports[1][0].test_accuracy, 0.5);
  EXPECT_NEAR(reports[1][0].train_accuracy, reports[0][0].train_accuracy, 0.01);
  EXPECT_NEAR(reports[1][0].test_accuracy, reports[0][0].test_accuracy, 0.01);
  EXPECT_NEAR(reports[1][0].test_loss, reports[0][0].test_loss, 1e-3);
}

}  // namespace
}  // namespace mia::models
