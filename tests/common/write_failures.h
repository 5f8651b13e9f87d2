// Write failures for tests. ScopedFileSizeLimit is an injected one that works
// anywhere, without mount privileges:
// while a ScopedFileSizeLimit lives, writing past `bytes` into any file fails
// with EFBIG (SIGXFSZ, which would kill the process, is ignored), as a full
// disk fails with ENOSPC. The limit is the whole process's: keep the scope to
// the one write under test.
#ifndef MIA_TESTS_COMMON_WRITE_FAILURES_H_
#define MIA_TESTS_COMMON_WRITE_FAILURES_H_

#include <sys/mount.h>
#include <sys/resource.h>

#include <csignal>
#include <string>

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

// A real full disk: a tmpfs of `bytes` mounted on `dir` while this lives.
// Needs mount privileges (root in a namespace that allows it); ok() is false
// where it cannot mount, and the test should then skip.
class ScopedTmpfs {
 public:
  ScopedTmpfs(const std::string& dir, size_t bytes) : dir_(dir) {
    const std::string options = "size=" + std::to_string(bytes);
    mounted_ = ::mount("tmpfs", dir_.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, options.c_str()) == 0;
  }
  ~ScopedTmpfs() {
    if (mounted_) ::umount2(dir_.c_str(), MNT_DETACH);
  }
  ScopedTmpfs(const ScopedTmpfs&) = delete;
  ScopedTmpfs& operator=(const ScopedTmpfs&) = delete;

  bool ok() const { return mounted_; }

 private:
  std::string dir_;
  bool mounted_ = false;
};

}  // namespace mia::testutil

#endif  // MIA_TESTS_COMMON_WRITE_FAILURES_H_
