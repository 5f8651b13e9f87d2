// Atomic file writes shared by every module that persists something (reports,
// npz bundles, model archives, job artifacts): readers see either the old file
// or the complete new one, never a partial file.
//
// Thread-safe: temporary names are unique per process and call.
#ifndef MIA_CORE_COMMON_FILE_UTIL_H_
#define MIA_CORE_COMMON_FILE_UTIL_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace mia {

// A fresh temporary path next to `path` (same folder, so a rename is atomic):
// "<path>.tmp.<pid>.<counter>". Unique across threads and processes.
std::string UniqueTempPath(const std::string& path);

// Writes `contents` to a temporary file next to `path`, fsyncs it, renames it
// over `path` and fsyncs the folder. Errors name `path` and what failed:
// NotFound when the folder does not exist, ResourceExhausted when the disk is
// full (ENOSPC, EDQUOT) or a file-size limit is hit (EFBIG), Internal
// otherwise. The temporary file never survives a failure.
absl::Status WriteFileAtomically(const std::string& path, absl::string_view contents);

// WriteFileAtomically for several files of one folder, each (name, contents)
// with `name` a plain file name: all are written to temporary files, synced
// together (the fsyncs run at once, so the file system can commit them in
// one journal transaction), renamed into place, and the folder is synced
// once. On an error no temporary file is left; files renamed before it stay.
absl::Status WriteFilesAtomically(
    const std::string& folder,
    const std::vector<std::pair<std::string, std::string>>& files);

// Renames a finished temporary file over `path` and fsyncs the folder (for
// writers such as LibTorch archives that produce the file themselves).
absl::Status CommitTempFile(const std::string& temp_path, const std::string& path);

// The canonical status for a failed system call on `path` (errno `err`):
// "<path>: cannot <what>: <reason>", coded by absl::ErrnoToStatus (EACCES
// PermissionDenied, ENOENT NotFound, ENOSPC and EMFILE ResourceExhausted, EIO
// Unknown, ...) except ENOTDIR NotFound, EROFS FailedPrecondition (a read-only
// store) and EFBIG ResourceExhausted (a file-size limit). Never
// InvalidArgument for a disk or permission problem.
absl::Status FileErrnoStatus(int err, absl::string_view path, absl::string_view what);

// True for a name UniqueTempPath makes: "<anything>.tmp.<digits>.<digits>".
bool IsTempFileName(absl::string_view name);

// What RemoveTempFiles removed.
struct TempSweep {
  int64_t files = 0;
  int64_t bytes = 0;
};

// Removes every regular file under `dir` (recursively; links are not
// followed) whose name IsTempFileName: the leftovers of writers killed before
// they could rename or unlink them (kill -9, a crash, a power cut), which
// would otherwise fill the disk. Only for a folder no other process writes
// to, before this process writes to it: a temporary being written now would
// be removed too (names carry a pid, but a container's server is often pid 1
// at every start, so the pid cannot tell a stale file from a live one).
// A missing `dir` is an empty sweep; files that cannot be removed are left
// and skipped. Internal only when `dir` cannot be listed.
absl::StatusOr<TempSweep> RemoveTempFiles(const std::string& dir);

}  // namespace mia

#endif  // MIA_CORE_COMMON_FILE_UTIL_H_
