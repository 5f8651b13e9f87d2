// One server per data dir: a DataDirLock holds an exclusive flock(2) on
// <data_dir>/LOCK for as long as it lives. Two servers on one data dir would
// each requeue the jobs the other runs (a RUNNING job looks orphaned to a
// starting server), so a second one must refuse to start, and say who holds
// the folder.
//
// The file records its holder ("pid 123 on host web-1, started
// 2024-05-01T12:00:00Z") so the refusal can name it. The file stays after the
// holder exits: only the kernel's lock counts, so a crash never leaves a stale
// lock behind (the kernel releases it with the last descriptor), and removing
// the file would let two processes lock two different inodes.
//
// flock (not fcntl) locks belong to the open file description, so two
// holders in one process exclude each other too (tests start servers
// in-process). On a network filesystem flock may not exclude hosts; use one
// data dir per replica there (deploy/README.md).
//
// Thread-safety: Acquire may be called from any thread; a DataDirLock is
// immutable.
#ifndef MIA_CORE_JOBS_DATA_DIR_LOCK_H_
#define MIA_CORE_JOBS_DATA_DIR_LOCK_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace mia::jobs {

class DataDirLock {
 public:
  // The lock file's name inside the data dir.
  static constexpr char kFileName[] = "LOCK";

  // Locks `data_dir`/LOCK (creating it; the folder must exist) without
  // waiting and records this process as the holder. FailedPrecondition
  // naming the file and its holder when another holder has it; the system
  // error (absl::ErrnoToStatus, naming the file) when it cannot be created or
  // locked.
  static absl::StatusOr<std::unique_ptr<DataDirLock>> Acquire(const std::string& data_dir);

  // Releases the lock (the file stays).
  ~DataDirLock();
  DataDirLock(const DataDirLock&) = delete;
  DataDirLock& operator=(const DataDirLock&) = delete;

  // The lock file.
  const std::string& path() const { return path_; }
  // What the file records about this holder.
  const std::string& holder() const { return holder_; }

 private:
  DataDirLock(int fd, std::string path, std::string holder);

  const int fd_;
  const std::string path_;
  const std::string holder_;
};

}  // namespace mia::jobs

#endif  // MIA_CORE_JOBS_DATA_DIR_LOCK_H_
