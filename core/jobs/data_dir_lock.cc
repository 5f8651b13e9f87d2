#include "core/jobs/data_dir_lock.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace mia::jobs {
namespace {

// The holder as its lock file records it.
std::string HolderText() {
  char host[256] = {};
  if (gethostname(host, sizeof(host) - 1) != 0) host[0] = '\0';
  return absl::StrCat("pid ", getpid(), " on host ", host[0] != '\0' ? host : "(unknown)",
                      ", started ",
                      absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::Now(), absl::UTCTimeZone()));
}

// What another holder recorded (short; the file is ours to read).
std::string ReadHolder(int fd) {
  char buffer[512];
  const ssize_t n = pread(fd, buffer, sizeof(buffer) - 1, 0);
  if (n <= 0) return "";
  return std::string(absl::StripAsciiWhitespace(absl::string_view(buffer, n)));
}

}  // namespace

DataDirLock::DataDirLock(int fd, std::string path, std::string holder)
    : fd_(fd), path_(std::move(path)), holder_(std::move(holder)) {}

DataDirLock::~DataDirLock() { close(fd_); }  // closing the last descriptor unlocks

absl::StatusOr<std::unique_ptr<DataDirLock>> DataDirLock::Acquire(const std::string& data_dir) {
  const std::string path = (std::filesystem::path(data_dir) / kFileName).string();
  const int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    return absl::ErrnoToStatus(errno, absl::StrCat(path, ": cannot open the data dir's lock file"));
  }
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int error = errno;
    if (error != EWOULDBLOCK) {
      close(fd);
      return absl::ErrnoToStatus(error, absl::StrCat(path, ": cannot lock the data dir"));
    }
    std::string holder = ReadHolder(fd);
    close(fd);
    if (holder.empty()) holder = "a process that has not recorded itself yet";
    return absl::FailedPreconditionError(
        absl::StrCat("data_dir ", data_dir, " is in use by another server (", holder,
                     "): it holds ", path, "; one server per data dir"));
  }
  // Best effort: the lock excludes others either way, and a full disk must
  // not keep a server from serving what it already has.
  std::string holder = HolderText();
  const std::string line = holder + "\n";
  if (ftruncate(fd, 0) != 0 ||
      pwrite(fd, line.data(), line.size(), 0) != static_cast<ssize_t>(line.size())) {
    // A refused server then says the holder has not recorded itself.
  }
  return std::unique_ptr<DataDirLock>(new DataDirLock(fd, path, std::move(holder)));
}

}  // namespace mia::jobs
