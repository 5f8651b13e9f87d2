// Timed driver for the sparse first-layer kernels (core/models/sparse_kernels.h)
// on a Purchase-shaped batch: x [256, 600] binary with a `density` fraction of
// ones, weight 128 x 600. Prints microseconds per call of each kernel and the
// dense product's equivalent GFLOP/s.
//
//   mia_sparse_bench [density=0.165] [rows=256] [in=600] [out=128]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "core/common/random.h"
#include "core/models/sparse_kernels.h"

namespace {

using Clock = std::chrono::steady_clock;

template <typename Fn>
double MicrosPerCall(Fn fn) {
  fn();  // warm-up
  double best = 1e30;
  for (int rep = 0; rep < 7; ++rep) {
    constexpr int kCalls = 200;
    const Clock::time_point start = Clock::now();
    for (int i = 0; i < kCalls; ++i) fn();
    best = std::min(
        best, std::chrono::duration<double, std::micro>(Clock::now() - start).count() / kCalls);
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  namespace sparse = mia::models::sparse;
  const double density = argc > 1 ? std::atof(argv[1]) : 0.165;
  const int64_t rows = argc > 2 ? std::atoll(argv[2]) : 256;
  const int64_t in = argc > 3 ? std::atoll(argv[3]) : 600;
  const int64_t out = argc > 4 ? std::atoll(argv[4]) : 128;
  mia::Rng rng(7);
  std::vector<float> x(rows * in), w(out * in), wt(in * out), g(rows * out), y(rows * out),
      gwt(in * out);
  for (float& v : x) v = rng.Uniform01() < density ? 1.0f : 0.0f;
  for (float& v : w) v = static_cast<float>(rng.Normal());
  for (float& v : g) v = static_cast<float>(rng.Normal());
  sparse::Csr csr;
  sparse::Csc csc;
  sparse::CompressRows(x.data(), rows, in, rows * in, csr);
  sparse::ToColumns(csr, csc);
  const double nnz = static_cast<double>(csr.nnz());
  const double dense_flop = 2.0 * rows * in * out;

  const double compress =
      MicrosPerCall([&] { sparse::CompressRows(x.data(), rows, in, rows * in, csr); });
  const double columns = MicrosPerCall([&] { sparse::ToColumns(csr, csc); });
  const double transpose = MicrosPerCall([&] { sparse::Transpose(w.data(), out, in, wt.data()); });
  const double forward =
      MicrosPerCall([&] { sparse::MultiplyRows(csr, wt.data(), nullptr, out, y.data()); });
  const double backward =
      MicrosPerCall([&] { sparse::MultiplyColumns(csc, g.data(), out, gwt.data()); });

  std::printf("x [%lld, %lld] density %.3f (%.0f nonzeros), out %lld, avx2 %s\n",
              static_cast<long long>(rows), static_cast<long long>(in), nnz / (rows * in), nnz,
              static_cast<long long>(out), sparse::UsingAvx2() ? "yes" : "no");
  std::printf("CompressRows     %8.1f us\n", compress);
  std::printf("ToColumns        %8.1f us\n", columns);
  std::printf("Transpose w      %8.1f us\n", transpose);
  std::printf(
      "MultiplyRows     %8.1f us  (%.1f dense-equivalent GFLOP/s, %.1f cycles/nonzero at 3 GHz)\n",
      forward, dense_flop / forward / 1e3, forward * 3e3 / nnz);
  std::printf("MultiplyColumns  %8.1f us  (%.1f dense-equivalent GFLOP/s)\n", backward,
              dense_flop / backward / 1e3);
  return 0;
}
