// Atomic file writes shared by every module that persists something (reports,
// npz bundles, model archives, job artifacts): readers see either the old file
// or the complete new one, never a partial file.
//
// Thread-safe: temporary names are unique per process and call.
#ifndef MIA_CORE_COMMON_FILE_UTIL_H_
#define MIA_CORE_COMMON_FILE_UTIL_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace mia {

// A fresh temporary path next to `path` (same folder, so a rename is atomic):
// "<path>.tmp.<pid>.<counter>". Unique across threads and processes.
std::string UniqueTempPath(const std::string& path);

// Writes `contents` to a temporary file next to `path`, fsyncs it, renames it
// over `path` and fsyncs the folder. Errors name `path` and what failed:
// NotFound when the folder does not exist, ResourceExhausted when the disk is
// full, Internal otherwise. The temporary file never survives a failure.
absl::Status WriteFileAtomically(const std::string& path, absl::string_view contents);

// Renames a finished temporary file over `path` and fsyncs the folder (for
// writers such as LibTorch archives that produce the file themselves).
absl::Status CommitTempFile(const std::string& temp_path, const std::string& path);

}  // namespace mia

#endif  // MIA_CORE_COMMON_FILE_UTIL_H_
