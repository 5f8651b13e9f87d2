// The settings of mia-server and where they come from. Every setting has one
// key ("workers") used by all sources:
//   - a command-line flag of the same name (--workers=2),
//   - an environment variable MIA_<KEY in upper case> (MIA_WORKERS=2),
//   - a key of the YAML config file (workers: 2),
//   - the default below.
// The first source that sets a key wins, in that order. Flags are read only
// in server_main.cc, which hands them here as text, so this file stays free
// of flag machinery (and of torch and gRPC) and is testable on its own.
//
// Free functions and plain structs; safe from any thread.
#ifndef MIA_SERVER_SERVER_CONFIG_H_
#define MIA_SERVER_SERVER_CONFIG_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace mia::server {

struct ServerConfig {
  // Where gRPC listens, "host:port". Port 0 picks a free port (tests).
  std::string listen_address = "127.0.0.1:50051";
  // TLS on the gRPC port (the health service included; the metrics port stays
  // plain HTTP). PEM files, both or neither; neither: plaintext. Paths only
  // are logged, never the contents.
  std::string tls_cert_file;  // certificate chain, server certificate first
  std::string tls_key_file;   // its private key (unencrypted)
  // Root CA(s) that client certificates must chain to; set: mutual TLS (a
  // client without such a certificate is refused). Needs the two above.
  std::string tls_client_ca_file;
  // Authentication and tenants (server/auth.h, docs/security.md); either of
  // the first two turns it on. Off: no credentials are asked for and every
  // caller sees every audit (the local default). Paths only are logged.
  std::string auth_tokens_file;   // YAML: token hashes, tenants' quotas, mTLS identities
  std::string auth_jwt_keys;      // PEM public key (RS256), secret file (HS256) or JWKS
  std::string auth_jwt_issuer;    // the iss JWTs must carry; empty: not checked
  std::string auth_jwt_audience;  // an aud JWTs must carry; empty: not checked
  // Everything the server persists: jobs.db (SQLite), jobs/<id>/ (reports),
  // artifacts/<sha256> (uploads) and cache/ (models shared by jobs).
  std::string data_dir = "mia-data";
  // Where jobs are stored. Empty (the default): SQLite at <data_dir>/jobs.db,
  // one server per data dir. "postgresql://user:password@host:port/db?..."
  // (or "postgres://"): PostgreSQL, shared by several replicas (also their
  // work queue); the password is never logged (the start-up log shows
  // "postgresql://user@host:port/db"). Anything else: the path of an SQLite
  // file.
  std::string store;
  // Folders a DataRef.server_path may point into; empty: only uploads can be
  // referenced. As text (flag, environment): comma-separated.
  std::vector<std::string> data_roots;
  // The artifact store shared by replicas (core/storage/object_store.h):
  // "s3://BUCKET/PREFIX" (an S3-compatible bucket at s3_endpoint; credentials
  // from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN, never
  // logged) or a folder on a shared (ReadWriteMany) volume. Models, signals,
  // uploads and reports are put there and fetched from there (data_dir keeps
  // the local copies). Empty: data_dir only.
  std::string artifact_store;
  // The S3 endpoint, "http(s)://host[:port]" (path-style requests); required
  // with an s3:// artifact_store.
  std::string s3_endpoint;
  // The region requests are signed for (SigV4).
  std::string s3_region = "us-east-1";
  // Worker threads that run jobs; one per accelerator, 1 on a CPU machine.
  int workers = 1;
  // Most jobs waiting in the queue; CreateAudit beyond it is
  // RESOURCE_EXHAUSTED.
  int queue_capacity = 256;
  // Most jobs running at once; 0: as many as `workers`. Caps the workers.
  int max_concurrent_jobs = 0;
  // Compute threads per job; 0: the machine's cores divided among workers.
  int threads_per_job = 0;
  // Most WatchAudit streams open at once; more are RESOURCE_EXHAUSTED.
  int max_watchers = 2048;
  // Largest gRPC message the server receives or sends, in bytes.
  int64_t max_message_bytes = 4 << 20;
  // Largest artifact UploadArtifact accepts, in bytes.
  int64_t max_upload_bytes = int64_t{1} << 30;
  // Most memory one audit may be estimated to need, in bytes: CreateAudit
  // refuses a larger estimate (the decoded bundle and its signals, or the
  // data, the models in training and their logits) with RESOURCE_EXHAUSTED
  // before the job is queued. 0: 80% of the smaller of the machine's memory
  // and its cgroup (container) limit.
  int64_t memory_budget_bytes = 0;
  // Largest decoded array of a signals bundle, and of all its arrays, in
  // bytes; checked from the headers before anything is decoded.
  int64_t max_bundle_array_bytes = int64_t{8} << 30;
  int64_t max_bundle_total_bytes = int64_t{16} << 30;
  // Seconds between heartbeats on a watch stream while nothing changes.
  double heartbeat_seconds = 10;
  // Port of the HTTP endpoint: Prometheus /metrics and the read-only web
  // dashboard (server/dashboard.h); 0 turns it off.
  int metrics_port = 0;
  // Address the HTTP endpoint binds to; empty: the host of listen_address,
  // so a server kept on loopback does not publish its metrics everywhere.
  std::string metrics_address;
  // Serve the web dashboard on the metrics port beside /metrics (read-only:
  // audits, progress, reports). Without auth it shows every audit to anyone
  // who reaches the port; false leaves only /metrics.
  bool dashboard = true;
  // Serve gRPC server reflection (grpc.reflection.v1alpha); off by default
  // because it tells any caller the whole API.
  bool enable_reflection = false;
  // Seconds SIGTERM may take: jobs checkpoint, watch streams end, the server
  // stops; past it the process exits anyway (the store is durable).
  double drain_timeout_seconds = 30;
  // spdlog level: trace, debug, info, warn, error, critical, off.
  std::string log_level = "info";
  // Replicas on a shared store (PostgreSQL): this replica's id in the shared
  // queue's leases, unique among live replicas; empty: <hostname>-<pid>.
  std::string replica_id;
  // Seconds a replica's claim on an audit or unit lasts without renewal
  // (renewed every third of it): how soon a dead replica's work moves on.
  double cluster_lease_seconds = 30;
  // Threads per replica that train units of any audit (models of audits held
  // by other replicas), besides the workers.
  int unit_workers = 1;
  // The YAML file read, if any (from --config or MIA_CONFIG; not a file key).
  std::string config_file;
};

// Where Load reads settings from.
struct ConfigSources {
  // Flags given on the command line, key -> value as text (absl's
  // CommandLineFlag::CurrentValue()); flags left at their defaults are absent.
  std::map<std::string, std::string> flags;
  // The environment, name -> value (all of it; only MIA_<KEY> names are read,
  // other MIA_ variables are ignored because tests and tools set their own).
  std::map<std::string, std::string> env;
};

// The keys every source understands, in the order of ServerConfig.
const std::vector<std::string>& ServerConfigKeys();

// Builds the configuration: defaults, then the YAML file (path from the
// `config` flag, else MIA_CONFIG; none: no file), then the environment, then
// the flags. InvalidArgument naming the source and key for a value that does
// not parse or is out of range, an unknown YAML key, or a YAML file that is
// not a mapping; NotFound when the named file does not exist.
absl::StatusOr<ServerConfig> LoadServerConfig(const ConfigSources& sources);

// Range checks of a finished configuration (Load runs them), including the
// TLS files: cert and key both or neither, a client CA only with them, each
// file readable and PEM of the right kind. InvalidArgument naming the key.
absl::Status ValidateServerConfig(const ServerConfig& config);

// How the gRPC port is secured: "off" (plaintext), "tls", or "mtls" (client
// certificates required).
std::string TlsMode(const ServerConfig& config);

// The contents of the PEM file `path` set for `key` ("tls_cert_file", ...):
// InvalidArgument naming the key and path (never the contents) when it cannot
// be read or holds no PEM block of the kind the key needs.
absl::StatusOr<std::string> ReadTlsFile(const std::string& key, const std::string& path);

// Whether authentication is configured (auth_tokens_file or auth_jwt_keys).
bool AuthEnabled(const ServerConfig& config);

// Whether listen_address may be reached from other hosts: anything but a
// loopback address (127.0.0.0/8, ::1, localhost) or a unix socket.
bool ListensBeyondLoopback(const ServerConfig& config);

// The host the metrics endpoint binds: metrics_address, or when that is empty
// the host of listen_address ("[::1]:50051" gives "::1"; a unix: socket gives
// 127.0.0.1).
std::string MetricsHost(const ServerConfig& config);

// The configuration as one JSON object (every key), for the start-up log.
std::string ServerConfigJson(const ServerConfig& config);

// name -> value of a POSIX environment block (e.g. `environ`).
std::map<std::string, std::string> EnvironmentMap(char** environ_block);

}  // namespace mia::server

#endif  // MIA_SERVER_SERVER_CONFIG_H_
