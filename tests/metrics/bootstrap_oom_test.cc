// BootstrapCi when memory runs out inside a worker thread. A std::bad_alloc
// escaping a std::thread would end the process (std::terminate); the call
// must instead return ResourceExhausted. Its own executable: it replaces the
// global operator new to fail the allocations of a chosen size made off the
// main thread.
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "core/common/random.h"
#include "core/metrics/bootstrap.h"
#include "gtest/gtest.h"

namespace {

// Allocations of exactly this many bytes off the main thread fail while it
// is not zero.
std::atomic<size_t> g_fail_size{0};
std::thread::id g_main_thread;

void* Allocate(size_t size) {
  const size_t fail = g_fail_size.load(std::memory_order_relaxed);
  if (fail != 0 && size == fail && std::this_thread::get_id() != g_main_thread) {
    throw std::bad_alloc();
  }
  void* p = std::malloc(size == 0 ? 1 : size);
  if (p == nullptr) throw std::bad_alloc();
  return p;
}

}  // namespace

void* operator new(size_t size) { return Allocate(size); }
void* operator new[](size_t size) { return Allocate(size); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }
void operator delete[](void* p, size_t) noexcept { std::free(p); }

namespace mia::metrics {
namespace {

TEST(BootstrapOutOfMemory, WorkerThreadFailureIsResourceExhausted) {
  g_main_thread = std::this_thread::get_id();
  // 7,777 points: a worker's per-replicate counts are 7,777 uint32 values.
  const size_t n = 7777;
  Rng rng(3);
  std::vector<double> scores(n);
  std::vector<uint8_t> members(n);
  for (size_t i = 0; i < n; ++i) {
    members[i] = i % 3 == 0 ? 1 : 0;
    scores[i] = rng.Normal() + members[i];
  }
  BootstrapOptions options;
  options.resamples = 200;
  options.threads = 4;
  const std::vector<double> alphas = {0.01, 0.1};
  g_fail_size = n * sizeof(uint32_t);
  const absl::StatusOr<BootstrapResult> failed = BootstrapCi(scores, members, alphas, options);
  g_fail_size = 0;
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.status().code(), absl::StatusCode::kResourceExhausted) << failed.status();
  EXPECT_NE(failed.status().message().find("out of memory"), absl::string_view::npos)
      << failed.status();
  // With memory again, the same call succeeds, and equals one thread's result.
  const absl::StatusOr<BootstrapResult> ok = BootstrapCi(scores, members, alphas, options);
  ASSERT_TRUE(ok.ok()) << ok.status();
  options.threads = 1;
  const absl::StatusOr<BootstrapResult> serial = BootstrapCi(scores, members, alphas, options);
  ASSERT_TRUE(serial.ok()) << serial.status();
  EXPECT_EQ(ok->auc.low, serial->auc.low);
  EXPECT_EQ(ok->auc.high, serial->auc.high);
}

}  // namespace
}  // namespace mia::metrics
