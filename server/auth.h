// Who is calling, and what may they do: the server's one authentication and
// authorization decision, shared by the gRPC API (service.cc) and the web
// dashboard (dashboard.cc). docs/security.md describes the files and roles.
//
// Credentials, tried in this order:
//   1. A bearer token ("authorization: Bearer <token>") whose SHA-256 is
//      listed in the tokens file (--auth_tokens_file). Every listed hash is
//      compared, in constant time (CRYPTO_memcmp), whatever matches.
//   2. A bearer token that is a JWT signed by a key of --auth_jwt_keys (HS256
//      with a shared secret, RS256 with an RSA public key; a PEM file, a
//      secret file or a JWKS). The header's alg must be the key's own (no
//      "none", no HS256 token checked with an RSA key as its secret); exp is
//      required, exp and nbf are checked with a small leeway, iss and aud
//      against --auth_jwt_issuer / --auth_jwt_audience when set. The claims
//      `tenant` and `role` say who the caller is.
//   3. No bearer token: a verified client certificate (mutual TLS) whose
//      subject CN or a SAN is listed under `mtls:` in the tokens file.
// Anything else is UNAUTHENTICATED. Messages never contain a token or a
// hash, and neither does anything this file logs.
//
// gRPC's AuthMetadataProcessor is not used: gRPC 1.51 runs it only for
// secure server credentials (InsecureServerCredentials'
// SetAuthMetadataProcessor asserts), and plaintext servers (tests, a server
// behind a TLS-terminating proxy) need the same check. So every handler calls
// Authorize first, one function for both paths.
//
// Roles: reader (get, list, watch, scores, report files), submitter (also
// create, cancel, delete, upload), admin (all of it, for every tenant).
//
// The tokens file is checked for changes (inode, size, modification time) at
// most once per reload_check_interval; a changed file is parsed again and
// replaces the table only when valid; a bad one is logged (what and where,
// never a hash) and the previous table stays.
//
// Thread-safety: Authenticator is safe from any thread.
#ifndef MIA_SERVER_AUTH_H_
#define MIA_SERVER_AUTH_H_

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "spdlog/logger.h"

namespace mia::server {

enum class Role { kReader = 0, kSubmitter = 1, kAdmin = 2 };

// "reader", "submitter", "admin".
const char* RoleName(Role role);
std::optional<Role> ParseRole(absl::string_view name);

// What a call needs.
enum class Permission {
  kRead,   // get, list, watch, scores, report files: reader and up
  kWrite,  // create, cancel, delete, upload: submitter and up
};

// Per-tenant limits from the tokens file; unset: unlimited.
struct TenantQuota {
  std::optional<int64_t> max_queued_audits;   // PENDING audits of the tenant
  std::optional<int64_t> max_running_audits;  // RUNNING audits of the tenant
  std::optional<int64_t> max_upload_bytes;    // bytes of the tenant's uploads
};

// The caller of one request.
struct Caller {
  // False: the server has no authentication configured; the caller is the
  // empty tenant and may do everything (today's behaviour).
  bool restricted = false;
  std::string tenant;
  Role role = Role::kAdmin;
  // How the caller proved who it is, for logs: "token", "jwt", "mtls" or ""
  // (no auth). Never the credential.
  std::string method;
  TenantQuota quota;

  // Admins (and everyone without auth) see every tenant's resources.
  bool SeesAllTenants() const { return !restricted || role == Role::kAdmin; }
  // Whether a resource of `owner` exists for this caller.
  bool CanSee(absl::string_view owner) const { return SeesAllTenants() || owner == tenant; }
};

// One entry of the tokens file.
struct TokenEntry {
  std::array<uint8_t, 32> sha256{};
  std::string tenant;
  Role role = Role::kReader;
};

struct MtlsEntry {
  std::string identity;  // certificate subject CN or a SAN
  std::string tenant;
  Role role = Role::kReader;
};

// A parsed tokens file.
struct AuthTable {
  std::vector<TokenEntry> tokens;
  std::map<std::string, TenantQuota> tenants;
  std::vector<MtlsEntry> mtls;
};

// Parses the YAML of a tokens file; `where` names it in messages.
// InvalidArgument naming the entry and field ("tokens[2].role: must be
// reader, submitter or admin"), never a hash.
absl::StatusOr<AuthTable> ParseAuthTable(absl::string_view yaml, absl::string_view where);

struct AuthOptions {
  std::string tokens_file;   // --auth_tokens_file
  std::string jwt_keys;      // --auth_jwt_keys: PEM public key, secret file or JWKS
  std::string jwt_issuer;    // --auth_jwt_issuer; empty: not checked
  std::string jwt_audience;  // --auth_jwt_audience; empty: not checked
  // Clock skew allowed for exp and nbf.
  absl::Duration jwt_leeway = absl::Seconds(30);
  // How often the tokens file is checked for changes, at most.
  absl::Duration reload_check_interval = absl::Seconds(1);
};

class JwtVerifier;

class Authenticator {
 public:
  // Reads the files. InvalidArgument naming the flag and file (and the entry
  // and field) when one cannot be read or is not valid. Null logger: none.
  static absl::StatusOr<std::unique_ptr<Authenticator>> Create(
      AuthOptions options, std::shared_ptr<spdlog::logger> logger);
  ~Authenticator();

  // The caller of a request with this "authorization" header value (empty:
  // none) and these identities of its verified client certificate, allowed
  // `permission`: UNAUTHENTICATED without valid credentials,
  // PERMISSION_DENIED when the role does not allow it.
  absl::StatusOr<Caller> Authorize(absl::string_view authorization,
                                   const std::vector<std::string>& peer_identities,
                                   Permission permission);

  // Checks the tokens file now (ignoring the interval): tests.
  void ReloadNow();

 private:
  Authenticator(AuthOptions options, std::shared_ptr<spdlog::logger> logger);
  absl::StatusOr<Caller> Identify(absl::string_view authorization,
                                  const std::vector<std::string>& peer_identities);
  void MaybeReload(bool force);
  std::shared_ptr<const AuthTable> table() const;

  struct FileStamp {
    uint64_t inode = 0;
    int64_t size = -1;
    int64_t mtime_ns = 0;
    bool operator==(const FileStamp& o) const {
      return inode == o.inode && size == o.size && mtime_ns == o.mtime_ns;
    }
  };

  const AuthOptions options_;
  const std::shared_ptr<spdlog::logger> logger_;
  std::unique_ptr<JwtVerifier> jwt_;

  mutable absl::Mutex mu_;
  std::shared_ptr<const AuthTable> table_ ABSL_GUARDED_BY(mu_);
  FileStamp stamp_ ABSL_GUARDED_BY(mu_);
  absl::Time last_check_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
};

// "Bearer <token>" -> the token; nullopt for another scheme or an empty one.
std::optional<absl::string_view> BearerToken(absl::string_view authorization);

}  // namespace mia::server

#endif  // MIA_SERVER_AUTH_H_
