#include "core/models/sparse_linear.h"

#include <atomic>
#include <cstdint>
#include <vector>

#include "core/models/sparse_kernels.h"

namespace mia::models {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

std::atomic<int> g_mode{static_cast<int>(SparseInputMode::kAuto)};
std::atomic<int64_t> g_sparse_products{0};

// Whether x and the parameters allow the sparse path at all: CPU float32
// tensors of matching shapes, and an input that is data (no gradient).
bool Qualifies(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias,
               int64_t x_dim, int64_t in_dim) {
  if (GetSparseInputMode() == SparseInputMode::kOff) return false;
  if (!x.defined() || !weight.defined() || x.dim() != x_dim || weight.dim() != x_dim) return false;
  if (!x.device().is_cpu() || !weight.device().is_cpu()) return false;
  if (x.scalar_type() != torch::kFloat32 || weight.scalar_type() != torch::kFloat32) return false;
  if (x.requires_grad() || x.numel() == 0) return false;
  if (x.size(x_dim - 1) != weight.size(in_dim)) return false;
  if (bias.defined() && (!bias.device().is_cpu() || bias.scalar_type() != torch::kFloat32)) {
    return false;
  }
  return true;
}

// How many nonzeros of a [rows, cols] input still take the sparse path.
int64_t MaxNonzeros(int64_t rows, int64_t cols) {
  if (GetSparseInputMode() == SparseInputMode::kAlways) return rows * cols;
  return static_cast<int64_t>(kSparseDensity * static_cast<double>(rows * cols));
}

// The columns of the CSR matrices x[0..models) as tensors that an autograd
// node keeps until its backward pass: col_ptr [models, cols + 1] (absolute
// offsets into row and val), row [nnz] int32, val [nnz].
void SaveColumns(AutogradContext* ctx, const sparse::Csr* x, int64_t models) {
  int64_t total = 0;
  for (int64_t k = 0; k < models; ++k) total += x[k].nnz();
  const int64_t cols = x[0].cols;
  torch::Tensor col_ptr = torch::empty({models, cols + 1}, torch::kInt64);
  torch::Tensor row = torch::empty({total}, torch::kInt32);
  torch::Tensor val = torch::empty({total}, torch::kFloat32);
  int64_t base = 0;
  for (int64_t k = 0; k < models; ++k) {
    sparse::ToColumns(x[k], base, col_ptr.data_ptr<int64_t>() + k * (cols + 1),
                      row.data_ptr<int32_t>() + base, val.data_ptr<float>() + base);
    base += x[k].nnz();
  }
  ctx->saved_data["col_ptr"] = col_ptr;
  ctx->saved_data["row"] = row;
  ctx->saved_data["val"] = val;
}

// The weight gradient of model k: gwt [cols, out] from g [rows, out].
void WeightGradient(AutogradContext* ctx, int64_t k, const float* g, int64_t out, float* gwt) {
  const torch::Tensor col_ptr = ctx->saved_data["col_ptr"].toTensor();
  const torch::Tensor row = ctx->saved_data["row"].toTensor();
  const torch::Tensor val = ctx->saved_data["val"].toTensor();
  const int64_t cols = col_ptr.size(1) - 1;
  sparse::Gather(col_ptr.data_ptr<int64_t>() + k * (cols + 1), row.data_ptr<int32_t>(),
                 val.data_ptr<float>(), cols, g, nullptr, out, gwt);
}

// y [rows, out] = x W^T + b from the CSR of x and weight [out, in].
torch::Tensor MultiplySingle(const sparse::Csr& csr, const torch::Tensor& weight,
                             const torch::Tensor& bias) {
  const int64_t out = weight.size(0), in = weight.size(1);
  const torch::Tensor w = weight.contiguous();
  torch::Tensor wt = torch::empty({in, out}, torch::kFloat32);
  sparse::Transpose(w.data_ptr<float>(), out, in, wt.data_ptr<float>());
  const torch::Tensor b = bias.defined() ? bias.contiguous() : torch::Tensor();
  torch::Tensor y = torch::empty({csr.rows, out}, torch::kFloat32);
  sparse::MultiplyRows(csr, wt.data_ptr<float>(), b.defined() ? b.data_ptr<float>() : nullptr, out,
                       y.data_ptr<float>());
  return y;
}

// y [K, rows, out] = bias + x @ w from the CSRs of x[k] and w [K, in, out].
torch::Tensor MultiplyStacked(const sparse::Csr* csrs, const torch::Tensor& weight,
                              const torch::Tensor& bias) {
  const int64_t models = weight.size(0), in = weight.size(1), out = weight.size(2);
  const torch::Tensor w = weight.contiguous();
  const torch::Tensor b =
      bias.defined() ? bias.expand({models, 1, out}).contiguous() : torch::Tensor();
  const int64_t rows = csrs[0].rows;
  torch::Tensor y = torch::empty({models, rows, out}, torch::kFloat32);
  for (int64_t k = 0; k < models; ++k) {
    sparse::MultiplyRows(csrs[k], w.data_ptr<float>() + k * in * out,
                         b.defined() ? b.data_ptr<float>() + k * out : nullptr, out,
                         y.data_ptr<float>() + k * rows * out);
  }
  return y;
}

class SparseLinearFn : public torch::autograd::Function<SparseLinearFn> {
 public:
  // The bias is optional: autograd takes an undefined tensor argument for one
  // that has a device.
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& weight,
                               const c10::optional<torch::Tensor>& bias, const sparse::Csr* x) {
    SaveColumns(ctx, x, 1);
    ctx->saved_data["has_bias"] = bias.has_value();
    return MultiplySingle(*x, weight, bias.value_or(torch::Tensor()));
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const torch::Tensor col_ptr = ctx->saved_data["col_ptr"].toTensor();
    const int64_t in = col_ptr.size(1) - 1;
    if (!grads[0].defined()) return {torch::Tensor(), torch::Tensor(), torch::Tensor()};
    const torch::Tensor g = grads[0].contiguous();  // [rows, out]
    const int64_t out = g.size(1);
    torch::Tensor gwt = torch::empty({in, out}, torch::kFloat32);
    WeightGradient(ctx, 0, g.data_ptr<float>(), out, gwt.data_ptr<float>());
    torch::Tensor gw = torch::empty({out, in}, torch::kFloat32);
    sparse::Transpose(gwt.data_ptr<float>(), in, out, gw.data_ptr<float>());
    torch::Tensor gb = ctx->saved_data["has_bias"].toBool() ? g.sum(0) : torch::Tensor();
    return {gw, gb, torch::Tensor()};
  }
};

class StackedSparseLinearFn : public torch::autograd::Function<StackedSparseLinearFn> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& bias,
                               const torch::Tensor& weight, const sparse::Csr* x) {
    // x[k] for k < K (K = weight.size(0)).
    SaveColumns(ctx, x, weight.size(0));
    ctx->saved_data["bias_sizes"] = bias.sizes();
    return MultiplyStacked(x, weight, bias);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const torch::Tensor col_ptr = ctx->saved_data["col_ptr"].toTensor();
    const int64_t models = col_ptr.size(0), in = col_ptr.size(1) - 1;
    if (!grads[0].defined()) return {torch::Tensor(), torch::Tensor(), torch::Tensor()};
    const torch::Tensor g = grads[0].contiguous();  // [K, rows, out]
    const int64_t rows = g.size(1), out = g.size(2);
    torch::Tensor gw = torch::empty({models, in, out}, torch::kFloat32);
    for (int64_t k = 0; k < models; ++k) {
      WeightGradient(ctx, k, g.data_ptr<float>() + k * rows * out, out,
                     gw.data_ptr<float>() + k * in * out);
    }
    // The bias may have been broadcast ([1, 1, out] or [K, 1, out]).
    const std::vector<int64_t> bias_sizes = ctx->saved_data["bias_sizes"].toIntVector();
    torch::Tensor gb = g.sum(1, /*keepdim=*/true);  // [K, 1, out]
    if (!bias_sizes.empty() && bias_sizes[0] == 1 && models != 1) gb = gb.sum(0, true);
    if (!bias_sizes.empty()) gb = gb.view(bias_sizes);
    return {gb, gw, torch::Tensor()};
  }
};

bool NeedsGrad(const torch::Tensor& a, const torch::Tensor& b) {
  return torch::GradMode::is_enabled() &&
         ((a.defined() && a.requires_grad()) || (b.defined() && b.requires_grad()));
}

}  // namespace

SparseInputMode SetSparseInputMode(SparseInputMode mode) {
  return static_cast<SparseInputMode>(g_mode.exchange(static_cast<int>(mode)));
}

SparseInputMode GetSparseInputMode() { return static_cast<SparseInputMode>(g_mode.load()); }

int64_t SparseProductCount() { return g_sparse_products.load(); }

torch::Tensor SparseLinear(const sparse::Csr& x, const torch::Tensor& weight,
                           const torch::Tensor& bias) {
  TORCH_CHECK(weight.dim() == 2 && weight.size(1) == x.cols, "sparse linear: weight must be [out, ",
              x.cols, "]");
  TORCH_CHECK(weight.device().is_cpu() && weight.scalar_type() == torch::kFloat32,
              "sparse linear: CPU float32 parameters only");
  ++g_sparse_products;
  if (NeedsGrad(weight, bias)) {
    const c10::optional<torch::Tensor> b =
        bias.defined() ? c10::optional<torch::Tensor>(bias) : c10::nullopt;
    return SparseLinearFn::apply(weight, b, &x);
  }
  torch::NoGradGuard no_grad;
  return MultiplySingle(x, weight, bias);
}

torch::Tensor StackedSparseLinear(const std::vector<sparse::Csr>& x, const torch::Tensor& bias,
                                  const torch::Tensor& w) {
  TORCH_CHECK(w.dim() == 3 && static_cast<int64_t>(x.size()) >= w.size(0) && w.size(1) == x[0].cols,
              "stacked sparse linear: w must be [K, ", x[0].cols, ", out] for K inputs");
  TORCH_CHECK(bias.dim() == 3 && bias.size(1) == 1 && bias.size(2) == w.size(2) &&
                  (bias.size(0) == 1 || bias.size(0) == w.size(0)),
              "stacked sparse linear: bias must be [K or 1, 1, out]");
  TORCH_CHECK(w.device().is_cpu() && w.scalar_type() == torch::kFloat32,
              "stacked sparse linear: CPU float32 parameters only");
  for (int64_t k = 1; k < w.size(0); ++k) {
    TORCH_CHECK(x[k].rows == x[0].rows && x[k].cols == x[0].cols,
                "stacked sparse linear: the models' inputs differ in shape");
  }
  ++g_sparse_products;
  if (NeedsGrad(bias, w)) return StackedSparseLinearFn::apply(bias, w, x.data());
  torch::NoGradGuard no_grad;
  return MultiplyStacked(x.data(), w, bias);
}

torch::Tensor SparseWeightGradient(const sparse::Csr& x, const torch::Tensor& g) {
  TORCH_CHECK(g.dim() == 2 && g.size(0) == x.rows && g.device().is_cpu() &&
                  g.scalar_type() == torch::kFloat32,
              "sparse weight gradient: g must be CPU float32 [", x.rows, ", out]");
  const torch::Tensor gc = g.contiguous();
  const int64_t out = gc.size(1);
  thread_local sparse::Csc csc;
  sparse::ToColumns(x, csc);
  torch::Tensor gwt = torch::empty({x.cols, out}, torch::kFloat32);
  sparse::MultiplyColumns(csc, gc.data_ptr<float>(), out, gwt.data_ptr<float>());
  torch::Tensor gw = torch::empty({out, x.cols}, torch::kFloat32);
  sparse::Transpose(gwt.data_ptr<float>(), x.cols, out, gw.data_ptr<float>());
  return gw;
}

bool CompressIfSparse(const float* x, int64_t rows, int64_t cols, sparse::Csr& out) {
  if (GetSparseInputMode() == SparseInputMode::kOff) return false;
  return sparse::CompressRows(x, rows, cols, MaxNonzeros(rows, cols), out);
}

torch::Tensor LinearMaybeSparse(const torch::Tensor& x, const torch::Tensor& weight,
                                const torch::Tensor& bias) {
  if (!Qualifies(x, weight, bias, 2, 1) || (bias.defined() && bias.numel() != weight.size(0))) {
    return torch::linear(x, weight, bias);
  }
  thread_local sparse::Csr csr;
  const torch::Tensor xc = x.contiguous();
  const int64_t rows = xc.size(0), cols = xc.size(1);
  if (!CompressIfSparse(xc.data_ptr<float>(), rows, cols, csr)) {
    return torch::linear(x, weight, bias);
  }
  return SparseLinear(csr, weight, bias);
}

torch::Tensor StackedLinearMaybeSparse(const torch::Tensor& bias, const torch::Tensor& x,
                                       const torch::Tensor& w) {
  if (!Qualifies(x, w, bias, 3, 1) || x.size(0) != w.size(0) || !bias.defined() ||
      bias.dim() != 3 || bias.size(1) != 1 || bias.size(2) != w.size(2) ||
      (bias.size(0) != 1 && bias.size(0) != w.size(0))) {
    return torch::baddbmm(bias, x, w);
  }
  const torch::Tensor xc = x.contiguous();
  const int64_t models = xc.size(0), rows = xc.size(1), cols = xc.size(2);
  thread_local std::vector<sparse::Csr> csrs;
  if (static_cast<int64_t>(csrs.size()) < models) csrs.resize(models);
  for (int64_t k = 0; k < models; ++k) {
    if (!CompressIfSparse(xc.data_ptr<float>() + k * rows * cols, rows, cols, csrs[k])) {
      return torch::baddbmm(bias, x, w);
    }
  }
  return StackedSparseLinear(csrs, bias, w);
}

}  // namespace mia::models
