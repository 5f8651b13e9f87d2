#include "core/common/file_util.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <system_error>
#include <thread>

#include "absl/strings/str_cat.h"

namespace mia {
namespace {

absl::Status ErrnoStatus(int err, const std::string& path, const char* what) {
  return FileErrnoStatus(err, path, what);
}

void SyncFolderOf(const std::string& path) {
  const size_t slash = path.rfind('/');
  const std::string folder = slash == std::string::npos ? "." : path.substr(0, slash + 1);
  const int fd = ::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    ::fsync(fd);  // best effort: the data itself is already durable
    ::close(fd);
  }
}

}  // namespace

absl::Status FileErrnoStatus(int err, absl::string_view path, absl::string_view what) {
  const std::string context = absl::StrCat(path, ": cannot ", what);
  // absl::ErrnoToStatus maps errno to canonical codes; three of its choices are
  // overridden where this project promises otherwise: a missing folder on the
  // way is as missing as the file, a read-only store is a precondition (a
  // restart with a writable volume fixes it, not a permission), and a
  // file-size limit is a full disk in all but name.
  switch (err) {
    case ENOTDIR:
      return absl::NotFoundError(absl::StrCat(context, ": ", std::strerror(err)));
    case EROFS:
      return absl::FailedPreconditionError(absl::StrCat(context, ": ", std::strerror(err)));
    case EFBIG:  // RLIMIT_FSIZE, a file system's maximum
      return absl::ResourceExhaustedError(absl::StrCat(context, ": ", std::strerror(err)));
    default:
      return absl::ErrnoToStatus(err, context);
  }
}

bool IsTempFileName(absl::string_view name) {
  // "<path>.tmp.<pid>.<counter>": two runs of digits after ".tmp.".
  const size_t at = name.rfind(".tmp.");
  if (at == absl::string_view::npos || at == 0) return false;
  const absl::string_view rest = name.substr(at + 5);
  const size_t dot = rest.find('.');
  if (dot == absl::string_view::npos) return false;
  const absl::string_view pid = rest.substr(0, dot);
  const absl::string_view counter = rest.substr(dot + 1);
  auto digits = [](absl::string_view s) {
    return !s.empty() &&
           std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
  };
  return digits(pid) && digits(counter);
}

absl::StatusOr<TempSweep> RemoveTempFiles(const std::string& dir) {
  namespace fs = std::filesystem;
  TempSweep sweep;
  std::error_code ec;
  if (!fs::exists(fs::symlink_status(dir, ec))) return sweep;
  fs::recursive_directory_iterator it(dir, fs::directory_options::skip_permission_denied, ec);
  if (ec) return absl::InternalError(absl::StrCat(dir, ": cannot list the folder: ", ec.message()));
  for (const fs::recursive_directory_iterator end; it != end; it.increment(ec)) {
    if (ec) break;  // the rest stays for the next start
    const fs::directory_entry& entry = *it;
    std::error_code file_ec;
    if (!entry.is_regular_file(file_ec) || entry.is_symlink(file_ec)) continue;
    if (!IsTempFileName(entry.path().filename().string())) continue;
    const uintmax_t size = entry.file_size(file_ec);
    if (fs::remove(entry.path(), file_ec) && !file_ec) {
      ++sweep.files;
      sweep.bytes += static_cast<int64_t>(size);
    }
  }
  return sweep;
}

std::string UniqueTempPath(const std::string& path) {
  static std::atomic<uint64_t> counter{0};
  return absl::StrCat(path, ".tmp.", static_cast<long>(::getpid()), ".", counter.fetch_add(1));
}

absl::Status WriteFileAtomically(const std::string& path, absl::string_view contents) {
  const std::string tmp = UniqueTempPath(path);
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoStatus(errno, path, "create a temporary file");
  auto fail = [&](int err, const char* what) {
    ::close(fd);
    ::unlink(tmp.c_str());
    return ErrnoStatus(err, path, what);
  };
  size_t done = 0;
  while (done < contents.size()) {
    const size_t want = std::min<size_t>(contents.size() - done, size_t{1} << 30);
    const ssize_t n = ::write(fd, contents.data() + done, want);
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail(errno, "write");
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) return fail(errno, "sync");
  if (::close(fd) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    return ErrnoStatus(err, path, "close");
  }
  return CommitTempFile(tmp, path);
}

absl::Status WriteFilesAtomically(
    const std::string& folder, const std::vector<std::pair<std::string, std::string>>& files) {
  struct Pending {
    std::string path;
    std::string tmp;
    int fd = -1;
    int sync_errno = 0;
  };
  std::vector<Pending> pending;
  pending.reserve(files.size());
  // Closes and removes every temporary file not yet renamed.
  auto abandon = [&pending](absl::Status status) {
    for (Pending& p : pending) {
      if (p.fd >= 0) ::close(p.fd);
      if (!p.tmp.empty()) ::unlink(p.tmp.c_str());
    }
    return status;
  };
  for (const auto& [name, contents] : files) {
    Pending p;
    p.path = (std::filesystem::path(folder) / name).string();
    p.tmp = UniqueTempPath(p.path);
    p.fd = ::open(p.tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (p.fd < 0) return abandon(ErrnoStatus(errno, p.path, "create a temporary file"));
    pending.push_back(p);
    size_t done = 0;
    while (done < contents.size()) {
      const size_t want = std::min<size_t>(contents.size() - done, size_t{1} << 30);
      const ssize_t n = ::write(pending.back().fd, contents.data() + done, want);
      if (n < 0) {
        if (errno == EINTR) continue;
        return abandon(ErrnoStatus(errno, pending.back().path, "write"));
      }
      done += static_cast<size_t>(n);
    }
  }
  // One thread per file beyond the first; a thread that cannot start leaves
  // its fsync to this one.
  std::vector<std::thread> syncers;
  std::vector<bool> synced(pending.size(), false);
  for (size_t i = 1; i < pending.size(); ++i) {
    try {
      syncers.emplace_back([&pending, i] {
        if (::fsync(pending[i].fd) != 0) pending[i].sync_errno = errno;
      });
      synced[i] = true;
    } catch (const std::system_error&) {
    }
  }
  if (!pending.empty() && ::fsync(pending[0].fd) != 0) pending[0].sync_errno = errno;
  for (std::thread& t : syncers) t.join();
  for (size_t i = 1; i < pending.size(); ++i) {
    if (!synced[i] && ::fsync(pending[i].fd) != 0) pending[i].sync_errno = errno;
  }
  for (Pending& p : pending) {
    if (p.sync_errno != 0) return abandon(ErrnoStatus(p.sync_errno, p.path, "sync"));
    const int rc = ::close(p.fd);
    p.fd = -1;
    if (rc != 0) return abandon(ErrnoStatus(errno, p.path, "close"));
  }
  for (Pending& p : pending) {
    if (std::rename(p.tmp.c_str(), p.path.c_str()) != 0) {
      return abandon(ErrnoStatus(errno, p.path, "rename into place"));
    }
    p.tmp.clear();
  }
  if (!pending.empty()) SyncFolderOf(pending.front().path);
  return absl::OkStatus();
}

absl::Status CommitTempFile(const std::string& temp_path, const std::string& path) {
  if (std::rename(temp_path.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(temp_path.c_str());
    return ErrnoStatus(err, path, "rename into place");
  }
  SyncFolderOf(path);
  return absl::OkStatus();
}

}  // namespace mia
