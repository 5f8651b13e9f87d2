#include "core/models/sparse_kernels.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define MIA_SPARSE_X86 1
#else
#define MIA_SPARSE_X86 0
#endif

namespace mia::models::sparse {
namespace {

// How many nonzeros the first `done` of `rows` rows may hold: their share of
// max_nnz plus one row of slack, so that a dense input is given up after a
// row or two instead of after max_nnz entries.
inline int64_t Allowance(int64_t max_nnz, int64_t done, int64_t rows, int64_t cols) {
  if (done == rows) return max_nnz;
  return static_cast<int64_t>(static_cast<double>(max_nnz) * static_cast<double>(done) /
                              static_cast<double>(rows)) +
         cols;
}

// Makes room for one more row at count n: a row adds at most `cols` entries
// and a step writes up to 8 slots past the count. Storage grows by doubling
// from what the rows so far needed, never to the worst case up front (a large
// sparse dataset would otherwise commit its dense size).
inline void Reserve(Csr& out, int64_t n, int64_t cols) {
  const size_t need = static_cast<size_t>(n + cols + 8);
  if (out.col.size() >= need) return;
  const size_t grown = std::max(need, 2 * out.col.size());
  out.col.resize(grown);
  out.val.resize(grown);
}

// Gather (see the header) in portable C++.
void GatherPortable(const int64_t* ptr, const int32_t* idx, const float* val, int64_t lists,
                    const float* m, const float* init, int64_t width, float* out) {
  for (int64_t i = 0; i < lists; ++i) {
    float* dst = out + i * width;
    if (init != nullptr) {
      std::memcpy(dst, init, sizeof(float) * width);
    } else {
      std::fill(dst, dst + width, 0.0f);
    }
    for (int64_t k = ptr[i]; k < ptr[i + 1]; ++k) {
      const float v = val[k];
      const float* src = m + static_cast<int64_t>(idx[k]) * width;
      for (int64_t o = 0; o < width; ++o) dst[o] += v * src[o];
    }
  }
}

bool CompressRowsPortable(const float* x, int64_t rows, int64_t cols, int64_t max_nnz, Csr& out) {
  int64_t n = 0;
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = x + r * cols;
    Reserve(out, n, cols);
    for (int64_t c = 0; c < cols; ++c) {
      // Branch-free append: write the slot, advance only for a nonzero.
      out.col[n] = static_cast<int32_t>(c);
      out.val[n] = row[c];
      n += row[c] != 0.0f;
    }
    out.row_ptr[r + 1] = n;
    if (n > Allowance(max_nnz, r + 1, rows, cols)) return false;
  }
  return true;
}

#if MIA_SPARSE_X86
constexpr int64_t kPrefetchAhead = 8;

// NB accumulators of 8 floats: output columns [o, o + 8 * NB) of list i.
template <int NB>
__attribute__((target("avx2,fma"))) inline void GatherBlockAvx2(
    const int64_t begin, const int64_t end, const int32_t* idx, const float* val, const float* m,
    const float* init, int64_t width, int64_t o, float* dst) {
  __m256 acc[NB];
#pragma GCC unroll 8
  for (int b = 0; b < NB; ++b) {
    acc[b] = init != nullptr ? _mm256_loadu_ps(init + o + 8 * b) : _mm256_setzero_ps();
  }
  for (int64_t k = begin; k < end; ++k) {
    const __m256 v = _mm256_set1_ps(val[k]);
    const float* src = m + static_cast<int64_t>(idx[k]) * width + o;
    if (k + kPrefetchAhead < end) {
      // The rows are picked at random from a matrix that lives in L2: fetch
      // a later one's cache lines while this one is summed.
      const char* ahead = reinterpret_cast<const char*>(
          m + static_cast<int64_t>(idx[k + kPrefetchAhead]) * width + o);
#pragma GCC unroll 8
      for (int b = 0; b < (NB + 1) / 2; ++b) _mm_prefetch(ahead + 64 * b, _MM_HINT_T0);
    }
#pragma GCC unroll 8
    for (int b = 0; b < NB; ++b) acc[b] = _mm256_fmadd_ps(v, _mm256_loadu_ps(src + 8 * b), acc[b]);
  }
#pragma GCC unroll 8
  for (int b = 0; b < NB; ++b) _mm256_storeu_ps(dst + o + 8 * b, acc[b]);
}

__attribute__((target("avx2,fma"))) void GatherAvx2(const int64_t* ptr, const int32_t* idx,
                                                    const float* val, int64_t lists, const float* m,
                                                    const float* init, int64_t width, float* out) {
  for (int64_t i = 0; i < lists; ++i) {
    const int64_t begin = ptr[i], end = ptr[i + 1];
    float* dst = out + i * width;
    int64_t o = 0;
    for (; o + 64 <= width; o += 64)
      GatherBlockAvx2<8>(begin, end, idx, val, m, init, width, o, dst);
    if (o + 32 <= width) {
      GatherBlockAvx2<4>(begin, end, idx, val, m, init, width, o, dst);
      o += 32;
    }
    if (o + 16 <= width) {
      GatherBlockAvx2<2>(begin, end, idx, val, m, init, width, o, dst);
      o += 16;
    }
    if (o + 8 <= width) {
      GatherBlockAvx2<1>(begin, end, idx, val, m, init, width, o, dst);
      o += 8;
    }
    for (; o < width; ++o) {  // fewer than 8 columns left
      float acc = init != nullptr ? init[o] : 0.0f;
      for (int64_t k = begin; k < end; ++k) {
        acc = std::fma(val[k], m[static_cast<int64_t>(idx[k]) * width + o], acc);
      }
      dst[o] = acc;
    }
  }
}

// dst[c * dst_stride + r] = src[r * src_stride + c] for an 8 x 8 block.
__attribute__((target("avx2,fma"))) inline void Transpose8x8Avx2(const float* src,
                                                                 int64_t src_stride, float* dst,
                                                                 int64_t dst_stride) {
  const __m256 r0 = _mm256_loadu_ps(src + 0 * src_stride);
  const __m256 r1 = _mm256_loadu_ps(src + 1 * src_stride);
  const __m256 r2 = _mm256_loadu_ps(src + 2 * src_stride);
  const __m256 r3 = _mm256_loadu_ps(src + 3 * src_stride);
  const __m256 r4 = _mm256_loadu_ps(src + 4 * src_stride);
  const __m256 r5 = _mm256_loadu_ps(src + 5 * src_stride);
  const __m256 r6 = _mm256_loadu_ps(src + 6 * src_stride);
  const __m256 r7 = _mm256_loadu_ps(src + 7 * src_stride);
  const __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
  const __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
  const __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
  const __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
  const __m256 u0 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0));
  const __m256 u1 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2));
  const __m256 u2 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0));
  const __m256 u3 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2));
  const __m256 u4 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(1, 0, 1, 0));
  const __m256 u5 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(3, 2, 3, 2));
  const __m256 u6 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(1, 0, 1, 0));
  const __m256 u7 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(3, 2, 3, 2));
  _mm256_storeu_ps(dst + 0 * dst_stride, _mm256_permute2f128_ps(u0, u4, 0x20));
  _mm256_storeu_ps(dst + 1 * dst_stride, _mm256_permute2f128_ps(u1, u5, 0x20));
  _mm256_storeu_ps(dst + 2 * dst_stride, _mm256_permute2f128_ps(u2, u6, 0x20));
  _mm256_storeu_ps(dst + 3 * dst_stride, _mm256_permute2f128_ps(u3, u7, 0x20));
  _mm256_storeu_ps(dst + 4 * dst_stride, _mm256_permute2f128_ps(u0, u4, 0x31));
  _mm256_storeu_ps(dst + 5 * dst_stride, _mm256_permute2f128_ps(u1, u5, 0x31));
  _mm256_storeu_ps(dst + 6 * dst_stride, _mm256_permute2f128_ps(u2, u6, 0x31));
  _mm256_storeu_ps(dst + 7 * dst_stride, _mm256_permute2f128_ps(u3, u7, 0x31));
}

__attribute__((target("avx2,fma"))) void TransposeAvx2(const float* src, int64_t rows, int64_t cols,
                                                       float* dst) {
  const int64_t rows8 = rows / 8 * 8, cols8 = cols / 8 * 8;
  for (int64_t c = 0; c < cols8; c += 8) {
    for (int64_t r = 0; r < rows8; r += 8) {
      Transpose8x8Avx2(src + r * cols + c, cols, dst + c * rows + r, rows);
    }
  }
  for (int64_t r = rows8; r < rows; ++r) {  // leftover rows
    for (int64_t c = 0; c < cols; ++c) dst[c * rows + r] = src[r * cols + c];
  }
  for (int64_t r = 0; r < rows8; ++r) {  // leftover columns
    for (int64_t c = cols8; c < cols; ++c) dst[c * rows + r] = src[r * cols + c];
  }
}

// Left-packing table: for each 8-bit mask, the positions of its set bits
// first, in ascending order.
struct PackTable {
  alignas(32) int32_t lanes[256][8];
  PackTable() {
    for (int mask = 0; mask < 256; ++mask) {
      int n = 0;
      for (int b = 0; b < 8; ++b) {
        if (mask & (1 << b)) lanes[mask][n++] = b;
      }
      for (; n < 8; ++n) lanes[mask][n] = 0;
    }
  }
};

__attribute__((target("avx2,fma,popcnt"))) bool CompressRowsAvx2(const float* x, int64_t rows,
                                                                 int64_t cols, int64_t max_nnz,
                                                                 Csr& out) {
  static const PackTable table;
  const __m256 zero = _mm256_setzero_ps();
  const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  int64_t n = 0;
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = x + r * cols;
    Reserve(out, n, cols);
    int32_t* col = out.col.data();
    float* val = out.val.data();
    int64_t c = 0;
    for (; c + 8 <= cols; c += 8) {
      const __m256 v = _mm256_loadu_ps(row + c);
      // Unordered not-equal: NaN counts as a nonzero, as in the dense product.
      const int mask = _mm256_movemask_ps(_mm256_cmp_ps(v, zero, _CMP_NEQ_UQ));
      const __m256i perm = _mm256_load_si256(reinterpret_cast<const __m256i*>(table.lanes[mask]));
      _mm256_storeu_ps(val + n, _mm256_permutevar8x32_ps(v, perm));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(col + n),
                          _mm256_add_epi32(_mm256_permutevar8x32_epi32(iota, perm),
                                           _mm256_set1_epi32(static_cast<int32_t>(c))));
      n += __builtin_popcount(static_cast<unsigned>(mask));
    }
    for (; c < cols; ++c) {
      col[n] = static_cast<int32_t>(c);
      val[n] = row[c];
      n += row[c] != 0.0f;
    }
    out.row_ptr[r + 1] = n;
    if (n > Allowance(max_nnz, r + 1, rows, cols)) return false;
  }
  return true;
}

std::atomic<bool> g_allow_avx2{true};

bool HaveAvx2() {
  static const bool have = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                           __builtin_cpu_supports("popcnt");
  return have && g_allow_avx2.load(std::memory_order_relaxed);
}
#else
bool HaveAvx2() { return false; }
#endif

}  // namespace

void Gather(const int64_t* ptr, const int32_t* idx, const float* val, int64_t lists, const float* m,
            const float* init, int64_t width, float* out) {
#if MIA_SPARSE_X86
  if (HaveAvx2()) return GatherAvx2(ptr, idx, val, lists, m, init, width, out);
#endif
  GatherPortable(ptr, idx, val, lists, m, init, width, out);
}

bool CompressRows(const float* x, int64_t rows, int64_t cols, int64_t max_nnz, Csr& out) {
  out.rows = rows;
  out.cols = cols;
  out.row_ptr.resize(rows + 1);
  out.row_ptr[0] = 0;
#if MIA_SPARSE_X86
  if (HaveAvx2()) return CompressRowsAvx2(x, rows, cols, max_nnz, out);
#endif
  return CompressRowsPortable(x, rows, cols, max_nnz, out);
}

void ToColumns(const Csr& csr, int64_t base, int64_t* ptr, int32_t* row, float* out_val) {
  const int64_t nnz = csr.nnz();
  std::fill(ptr, ptr + csr.cols + 1, 0);
  const int32_t* col = csr.col.data();
  const float* val = csr.val.data();
  for (int64_t k = 0; k < nnz; ++k) ++ptr[col[k] + 1];
  for (int64_t c = 0; c < csr.cols; ++c) ptr[c + 1] += ptr[c];
  // ptr[c] serves as column c's next free slot, then is shifted back.
  for (int64_t r = 0; r < csr.rows; ++r) {  // rows ascending: each column's rows come out sorted
    for (int64_t k = csr.row_ptr[r]; k < csr.row_ptr[r + 1]; ++k) {
      const int64_t slot = ptr[col[k]]++;
      row[slot] = static_cast<int32_t>(r);
      out_val[slot] = val[k];
    }
  }
  for (int64_t c = csr.cols; c > 0; --c) ptr[c] = ptr[c - 1] + base;
  ptr[0] = base;
}

void ToColumns(const Csr& csr, Csc& out) {
  out.rows = csr.rows;
  out.cols = csr.cols;
  const int64_t nnz = csr.nnz();
  out.col_ptr.resize(csr.cols + 1);
  out.row.resize(nnz);
  out.val.resize(nnz);
  ToColumns(csr, 0, out.col_ptr.data(), out.row.data(), out.val.data());
}

void Clear(int64_t cols, Csr& to) {
  to.rows = 0;
  to.cols = cols;
  to.row_ptr.assign(1, 0);
}

void AppendRow(const Csr& from, int64_t r, Csr& to) {
  const int64_t begin = from.row_ptr[r], end = from.row_ptr[r + 1];
  const int64_t n = to.row_ptr.back();
  if (static_cast<int64_t>(to.col.size()) < n + (end - begin)) {
    const size_t grown = std::max<size_t>(2 * to.col.size(), n + (end - begin));
    to.col.resize(grown);
    to.val.resize(grown);
  }
  std::copy(from.col.begin() + begin, from.col.begin() + end, to.col.begin() + n);
  std::copy(from.val.begin() + begin, from.val.begin() + end, to.val.begin() + n);
  to.row_ptr.push_back(n + (end - begin));
  ++to.rows;
}

void MultiplyRows(const Csr& csr, const float* wt, const float* bias, int64_t out, float* y) {
  Gather(csr.row_ptr.data(), csr.col.data(), csr.val.data(), csr.rows, wt, bias, out, y);
}

void MultiplyColumns(const Csc& csc, const float* g, int64_t out, float* gwt) {
  Gather(csc.col_ptr.data(), csc.row.data(), csc.val.data(), csc.cols, g, nullptr, out, gwt);
}

void Transpose(const float* src, int64_t rows, int64_t cols, float* dst) {
#if MIA_SPARSE_X86
  if (HaveAvx2()) return TransposeAvx2(src, rows, cols, dst);
#endif
  constexpr int64_t kTile = 32;
  for (int64_t r0 = 0; r0 < rows; r0 += kTile) {
    const int64_t r1 = std::min(rows, r0 + kTile);
    for (int64_t c0 = 0; c0 < cols; c0 += kTile) {
      const int64_t c1 = std::min(cols, c0 + kTile);
      for (int64_t r = r0; r < r1; ++r) {
        for (int64_t c = c0; c < c1; ++c) dst[c * rows + r] = src[r * cols + c];
      }
    }
  }
}

bool UsingAvx2() { return HaveAvx2(); }

bool AllowAvx2(bool allowed) {
#if MIA_SPARSE_X86
  return g_allow_avx2.exchange(allowed);
#else
  (void)allowed;
  return false;
#endif
}

}  // namespace mia::models::sparse
