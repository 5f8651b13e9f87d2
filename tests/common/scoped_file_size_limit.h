// An injected write failure that works anywhere, without mount privileges:
// while a ScopedFileSizeLimit lives, writing past `bytes` into any file fails
// with EFBIG (SIGXFSZ, which would kill the process, is ignored), as a full
// disk fails with ENOSPC. The limit is the whole process's: keep the scope to
// the one write under test.
#ifndef MIA_TESTS_COMMON_SCOPED_FILE_SIZE_LIMIT_H_
#define MIA_TESTS_COMMON_SCOPED_FILE_SIZE_LIMIT_H_

#include <sys/resource.h>

#include <csignal>

namespace mia::testutil {

class ScopedFileSizeLimit {
 public:
  explicit ScopedFileSizeLimit(rlim_t bytes) {
    old_handler_ = std::signal(SIGXFSZ, SIG_IGN);
    ok_ = ::getrlimit(RLIMIT_FSIZE, &old_) == 0;
    if (ok_) {
      struct rlimit limit = old_;
      limit.rlim_cur = bytes;
      ok_ = ::setrlimit(RLIMIT_FSIZE, &limit) == 0;
    }
  }
  ~ScopedFileSizeLimit() {
    if (ok_) ::setrlimit(RLIMIT_FSIZE, &old_);
    std::signal(SIGXFSZ, old_handler_);
  }
  ScopedFileSizeLimit(const ScopedFileSizeLimit&) = delete;
  ScopedFileSizeLimit& operator=(const ScopedFileSizeLimit&) = delete;

  // False when the limit could not be set (the test should then fail).
  bool ok() const { return ok_; }

 private:
  struct rlimit old_ {};
  void (*old_handler_)(int) = SIG_DFL;
  bool ok_ = false;
};

}  // namespace mia::testutil

#endif  // MIA_TESTS_COMMON_SCOPED_FILE_SIZE_LIMIT_H_
