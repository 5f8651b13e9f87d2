// Kernels for a linear layer whose input is mostly zeros (binary tabular
// features such as Purchase-100 and Texas-100: about 1 in 6 entries is 1).
//
// y = x W^T + b costs B * in * out multiply-adds as a dense product; when x is
// kept as its nonzeros (CSR) it costs nnz(x) * out, and the weight gradient
// dW = g^T x likewise. Results equal the dense product up to the order of the
// float additions (each output is the same sum, taken over the nonzero terms
// in ascending column order; dense BLAS also adds the zero terms).
//
// Plain C++ with no LibTorch: testable and benchmarkable on their own. On
// x86-64 CPUs with AVX2 and FMA the kernels use them (chosen at run time);
// elsewhere portable loops give the same sums.
#ifndef MIA_CORE_MODELS_SPARSE_KERNELS_H_
#define MIA_CORE_MODELS_SPARSE_KERNELS_H_

#include <cstdint>
#include <vector>

namespace mia::models::sparse {

// Compressed sparse rows of a [rows, cols] float matrix: the nonzeros of row r
// are cols[row_ptr[r] .. row_ptr[r+1]) (ascending) with values vals[...].
struct Csr {
  int64_t rows = 0;
  int64_t cols = 0;
  std::vector<int64_t> row_ptr;  // rows + 1
  std::vector<int32_t> col;      // nnz (capacity may be larger)
  std::vector<float> val;        // nnz
  int64_t nnz() const { return row_ptr.empty() ? 0 : row_ptr.back(); }
};

// Compressed sparse columns of the same matrix: the nonzeros of column c are
// rows row[col_ptr[c] .. col_ptr[c+1]) (ascending) with values vals[...].
struct Csc {
  int64_t rows = 0;
  int64_t cols = 0;
  std::vector<int64_t> col_ptr;  // cols + 1
  std::vector<int32_t> row;
  std::vector<float> val;
};

// Compresses the row-major [rows, cols] matrix x (entries that compare unequal
// to 0, NaN included) into `out`, reusing its storage. Returns false, leaving
// `out` unspecified, when x has more than max_nnz nonzeros, or as soon as a
// prefix of rows holds more than its share of max_nnz plus one row: the
// caller then takes the dense path without having paid for a full pass.
bool CompressRows(const float* x, int64_t rows, int64_t cols, int64_t max_nnz, Csr& out);

// The same matrix by columns (a counting sort of the CSR entries).
void ToColumns(const Csr& csr, Csc& out);
// The same into caller storage: col_ptr [csr.cols + 1], row and val [nnz];
// offsets start at `base` (several matrices sharing one row/val array).
void ToColumns(const Csr& csr, int64_t base, int64_t* col_ptr, int32_t* row, float* val);

// Appends row `r` of `from` to `to` as its next row (to.rows grows by one;
// to.cols must equal from.cols). For building a batch from a dataset's CSR.
void AppendRow(const Csr& from, int64_t r, Csr& to);
// Starts `to` as an empty [0, cols] matrix, keeping its storage.
void Clear(int64_t cols, Csr& to);

// The one loop behind both products: for i < lists,
//   out[i, :] = init[:] (or 0 when init is null)
//               + sum over k in [ptr[i], ptr[i+1]) of val[k] * m[idx[k], :]
// with m and out row-major, `width` columns. Terms are added in k order.
void Gather(const int64_t* ptr, const int32_t* idx, const float* val, int64_t lists, const float* m,
            const float* init, int64_t width, float* out);

// y[r, :] = bias + sum over nonzeros (c, v) of row r of v * wt[c, :], for the
// row-major wt [csr.cols, out] (the weight transposed) and y [csr.rows, out].
// bias may be null (zeros).
void MultiplyRows(const Csr& csr, const float* wt, const float* bias, int64_t out, float* y);

// gwt[c, :] = sum over nonzeros (r, v) of column c of v * g[r, :], for the
// row-major g [rows, out] and gwt [cols, out]; every row of gwt is written
// (zeros for empty columns). This is the weight gradient (g^T x)^T.
void MultiplyColumns(const Csc& csc, const float* g, int64_t out, float* gwt);

// Row-major transpose: dst [cols, rows] = src [rows, cols]^T.
void Transpose(const float* src, int64_t rows, int64_t cols, float* dst);

// Whether the AVX2/FMA kernels are in use on this CPU.
bool UsingAvx2();
// Allows (default) or forbids the AVX2 kernels, process-wide, so that tests
// can run the portable ones on any CPU. Returns the previous setting.
bool AllowAvx2(bool allowed);

}  // namespace mia::models::sparse

#endif  // MIA_CORE_MODELS_SPARSE_KERNELS_H_
