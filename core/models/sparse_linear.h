// Linear layers over mostly-zero inputs (binary tabular features): the dense
// product when the input is dense, the sparse kernels of sparse_kernels.h when
// at most kSparseDensity of its entries are nonzero. Both give the same sums
// up to the order of float additions; gradients flow to the weight and bias
// (never to the input, which is data: the sparse path is taken only for an
// input that does not require a gradient, i.e. a model's first layer).
//
// LibTorch header: include only from core/models, core/training and their tests.
#ifndef MIA_CORE_MODELS_SPARSE_LINEAR_H_
#define MIA_CORE_MODELS_SPARSE_LINEAR_H_

#include <torch/torch.h>

#include <vector>

#include "core/models/sparse_kernels.h"

namespace mia::models {

// Inputs with at most this fraction of nonzeros take the sparse path
// (docs/benchmarks.md: where the sparse kernels stop paying on this CPU).
inline constexpr double kSparseDensity = 0.30;

enum class SparseInputMode {
  kAuto,    // sparse when the input qualifies and is sparse enough (default)
  kOff,     // always the dense product
  kAlways,  // sparse whenever the input qualifies, however dense (tests)
};

// Process-wide mode; the previous one is returned.
SparseInputMode SetSparseInputMode(SparseInputMode mode);
SparseInputMode GetSparseInputMode();

// y = x W^T + b for x [B, in] (weight [out, in], bias [out] or undefined).
torch::Tensor LinearMaybeSparse(const torch::Tensor& x, const torch::Tensor& weight,
                                const torch::Tensor& bias);

// y = bias + x @ w for the stacked x [K, B, in], w [K, in, out] and bias
// [K, 1, out] (torch::baddbmm(bias, x, w)).
torch::Tensor StackedLinearMaybeSparse(const torch::Tensor& bias, const torch::Tensor& x,
                                       const torch::Tensor& w);

// The same products for inputs already in CSR form (a trainer that keeps a
// binary dataset compressed): x [rows, in] -> [rows, out], and x[k]
// [rows, in] for each of the K stacked models -> [K, rows, out] (all x[k]
// have the same number of rows). CPU float32 parameters; gradients flow to
// weight and bias when they require them.
torch::Tensor SparseLinear(const sparse::Csr& x, const torch::Tensor& weight,
                           const torch::Tensor& bias);
torch::Tensor StackedSparseLinear(const std::vector<sparse::Csr>& x, const torch::Tensor& bias,
                                  const torch::Tensor& w);

// The weight gradient g^T x [out, in] of y = x W^T + b for x [rows, in]
// in CSR form and g [rows, out] (no autograd).
torch::Tensor SparseWeightGradient(const sparse::Csr& x, const torch::Tensor& g);

// Compresses the row-major [rows, cols] x into `out` when the mode and
// kSparseDensity allow the sparse path for it; false (out unspecified) when
// x should stay dense.
bool CompressIfSparse(const float* x, int64_t rows, int64_t cols, sparse::Csr& out);

// How many products took the sparse path since start (tests, benchmarks).
int64_t SparseProductCount();

}  // namespace mia::models

#endif  // MIA_CORE_MODELS_SPARSE_LINEAR_H_
