// MakeS3ObjectStore in a build configured with -DMIA_WITH_S3=OFF (no
// libcurl: e.g. a GPU machine that has LibTorch but not Debian's packages,
// bench/gpu_check.sh). Folders still work; an s3:// store answers why not.
#include "absl/status/status.h"
#include "core/storage/object_store.h"

namespace mia::storage {

absl::StatusOr<std::unique_ptr<ObjectStore>> MakeS3ObjectStore(S3Options) {
  return absl::UnimplementedError(
      "artifact_store: this build has no S3 support (configured with -DMIA_WITH_S3=OFF); "
      "use a folder, or a build with libcurl");
}

}  // namespace mia::storage
