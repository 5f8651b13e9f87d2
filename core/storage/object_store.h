// A store of immutable objects named by keys ("models/<sha256>.pt"), shared by
// several servers: a folder on a shared (ReadWriteMany) volume, or an
// S3-compatible bucket. Used by the model cache (core/pipeline/artifact_store.h),
// uploads and reports of mia-server, so that a replica finds what another one
// produced.
//
// Keys are one or more '/'-separated segments of letters, digits, '.', '_',
// '-' and '=' (no empty segment, no "." or "..", at most 1024 bytes, no name
// of a temporary file): anything else is refused with INVALID_ARGUMENT rather
// than escaped, so a key means the same object in every backend.
//
// Readers never see a partial object: Put is atomic (an S3 PUT is; the folder
// backend writes a temporary file and renames it), and Get writes a temporary
// file next to the local path and renames it only once complete, so an
// interrupted download leaves no file behind. Large files are streamed, never
// held in memory.
//
// Errors: NOT_FOUND for a missing key; UNAVAILABLE when the store cannot be
// reached (connection refused, timeouts, HTTP 5xx after retries); the
// message names the key and the HTTP status, never a credential.
//
// Thread-safety: every method may be called from several threads at once.
#ifndef MIA_CORE_STORAGE_OBJECT_STORE_H_
#define MIA_CORE_STORAGE_OBJECT_STORE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace mia::storage {

struct ObjectInfo {
  std::string key;   // relative to the store (no bucket prefix)
  int64_t size = 0;  // bytes
};

class ObjectStore {
 public:
  virtual ~ObjectStore() = default;

  // Uploads the local file `local_path` as `key`, replacing any object there.
  virtual absl::Status Put(const std::string& key, const std::string& local_path) = 0;
  // Downloads `key` to `local_path` (its folder must exist), atomically.
  virtual absl::Status Get(const std::string& key, const std::string& local_path) = 0;
  // The object's size; NOT_FOUND when absent.
  virtual absl::StatusOr<ObjectInfo> Head(const std::string& key) = 0;
  // Every object whose key starts with `prefix` (plain text, not a folder:
  // "reports/ab" lists "reports/abc/x"), sorted by key.
  virtual absl::StatusOr<std::vector<ObjectInfo>> List(const std::string& prefix) = 0;
  // Removes `key`; a missing key is not an error.
  virtual absl::Status Delete(const std::string& key) = 0;
  // Where the store is, for logs and messages: "s3://bucket/prefix" or the
  // folder; never a credential.
  virtual std::string Describe() const = 0;

  // Head without the size: false for NOT_FOUND, other errors returned.
  absl::StatusOr<bool> Exists(const std::string& key);
};

// INVALID_ARGUMENT naming the key's problem (see the rules above).
absl::Status ValidateObjectKey(absl::string_view key);
// The characters of a List prefix: as a key's, but it may be empty and end
// with '/'.
absl::Status ValidateObjectPrefix(absl::string_view prefix);

// "s3://bucket" or "s3://bucket/some/prefix".
struct S3Url {
  std::string bucket;
  std::string prefix;  // no leading or trailing '/'; may be empty
};
// INVALID_ARGUMENT saying what is wrong (scheme, bucket name, prefix).
absl::StatusOr<S3Url> ParseS3Url(absl::string_view url);

// Settings of an S3-compatible store. Credentials come from the environment
// (S3CredentialsFromEnvironment); none: unsigned requests.
struct S3Options {
  std::string endpoint;  // "http://host:port" or "https://host"; path-style URLs
  std::string region = "us-east-1";
  std::string bucket;
  std::string prefix;  // keys are stored as "<prefix>/<key>"
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;
  // Connecting may take this long before the attempt fails.
  int64_t connect_timeout_ms = 10000;
  // A transfer slower than 1 KiB/s for this long fails (a stalled
  // connection); a large file may take as long as it needs otherwise.
  int64_t stall_timeout_ms = 60000;
  // Attempts per request for connection errors, timeouts, HTTP 5xx and 429;
  // waits initial_backoff_ms, then twice as long, and so on.
  int max_attempts = 4;
  int64_t initial_backoff_ms = 200;
};

// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN into
// `options` (unset variables leave the fields empty).
void S3CredentialsFromEnvironment(S3Options* options);

std::unique_ptr<ObjectStore> MakeDirObjectStore(std::string root);
// INVALID_ARGUMENT for an endpoint that is not http(s)://, a bad bucket or
// prefix, or only one of the access key id and the secret.
absl::StatusOr<std::unique_ptr<ObjectStore>> MakeS3ObjectStore(S3Options options);

// The server's --artifact_store: "s3://bucket/prefix" (then `endpoint` is
// required; credentials from the environment) or a folder (created if
// missing). Errors name the settings (artifact_store, s3_endpoint).
absl::StatusOr<std::shared_ptr<ObjectStore>> OpenObjectStore(const std::string& location,
                                                             const std::string& endpoint,
                                                             const std::string& region);

}  // namespace mia::storage

#endif  // MIA_CORE_STORAGE_OBJECT_STORE_H_
