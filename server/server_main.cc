// mia-server: the membership-inference audit service (mia.v1.AuditService).
//
//   mia-server --data_dir=/var/lib/mia --data_roots=/srv/datasets --metrics_port=9090
//
// Settings: flags > MIA_* environment variables > YAML file (--config or
// MIA_CONFIG) > defaults; see server/server_config.h for every key. The
// effective configuration is logged at start (JSON lines on stdout), with
// "tls": off, tls or mtls (tls_cert_file, tls_key_file, tls_client_ca_file;
// paths only, never the files' contents).
// SIGTERM or SIGINT drains: readiness goes NOT_SERVING, no new audits, watch
// streams end, running jobs checkpoint and go back to PENDING, the gRPC
// server stops; the process exits within drain_timeout_seconds. A second
// signal exits at once (the store is durable; the next start resumes).
// --help lists the settings and --version prints the version; both exit 0.
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/reflection.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/match.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "core/common/version.h"
#include "nlohmann/json.hpp"
#include "server/audit_server.h"
#include "server/json_log.h"
#include "server/server_config.h"

extern char** environ;

namespace {

const mia::server::ServerConfig kDefaults;

// The setting keys given as flags on the command line ("--workers=2",
// "--workers 2", "--enable_reflection", "--noenable_reflection"). This absl
// version keeps CommandLineFlag::IsSpecifiedOnCommandLine private, and a flag
// set to its default value must still win over the environment.
std::set<std::string> FlagsOnCommandLine(int argc, char** argv) {
  std::vector<std::string> keys = mia::server::ServerConfigKeys();
  keys.push_back("config");
  const std::set<std::string> known(keys.begin(), keys.end());
  std::set<std::string> given;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--") break;
    if (arg.size() < 2 || arg[0] != '-') continue;
    arg = arg.substr(arg[1] == '-' ? 2 : 1);
    std::string name = arg.substr(0, arg.find('='));
    if (known.count(name) == 0 && name.rfind("no", 0) == 0 && known.count(name.substr(2)) > 0) {
      name = name.substr(2);
    }
    if (known.count(name) > 0) given.insert(name);
  }
  return given;
}

constexpr char kUsage[] =
    "mia-server: the membership-inference audit service (gRPC mia.v1.AuditService)";

// The server's settings are the flags of this file; abseil's and gRPC's own
// flags are not settings of mia-server.
bool IsSettingFile(absl::string_view file) { return absl::EndsWith(file, "server_main.cc"); }

std::string VersionLine() { return std::string("mia-server ") + MIA_VERSION + "\n"; }

// --help. Abseil's own matches flags to a file named after the program
// (none here: "No flags matched.") and exits 1, where help asked for is no
// error.
void PrintHelp() {
  std::printf("%s\n\nUsage: mia-server [--KEY=VALUE ...]\n\n", kUsage);
  std::printf(
      "Every KEY is also the environment variable MIA_<KEY in upper case> and a key of the\n"
      "YAML file given with --config; flags > environment > file > defaults.\n\n");
  std::vector<const absl::CommandLineFlag*> flags;
  for (const auto& [name, flag] : absl::GetAllFlags()) {
    if (IsSettingFile(flag->Filename())) flags.push_back(flag);
  }
  std::sort(flags.begin(), flags.end(),
            [](const absl::CommandLineFlag* a, const absl::CommandLineFlag* b) {
              return a->Name() < b->Name();
            });
  for (const absl::CommandLineFlag* flag : flags) {
    const std::string value = flag->DefaultValue();
    std::printf("  --%s (%s)\n      default: %s\n", std::string(flag->Name()).c_str(),
                flag->Help().c_str(), value.empty() ? "\"\"" : value.c_str());
  }
  std::printf("  --help     this text\n  --version  the version\n");
}

}  // namespace

// Flag defaults mirror ServerConfig's so that --help shows them; only flags
// given on the command line override the other sources.
ABSL_FLAG(std::string, config, "", "YAML config file (keys as these flags); also MIA_CONFIG");
ABSL_FLAG(std::string, listen_address, kDefaults.listen_address, "gRPC address, host:port");
ABSL_FLAG(std::string, tls_cert_file, kDefaults.tls_cert_file,
          "PEM certificate chain of the gRPC port; with tls_key_file turns TLS on");
ABSL_FLAG(std::string, tls_key_file, kDefaults.tls_key_file,
          "PEM private key of tls_cert_file (unencrypted)");
ABSL_FLAG(std::string, tls_client_ca_file, kDefaults.tls_client_ca_file,
          "PEM root CA(s) client certificates must chain to: mutual TLS (needs tls_cert_file)");
ABSL_FLAG(std::string, auth_tokens_file, kDefaults.auth_tokens_file,
          "YAML file of token SHA-256 hashes with their tenant and role (also tenants' quotas and "
          "mTLS identities); reloaded when it changes; turns authentication on");
ABSL_FLAG(std::string, auth_jwt_keys, kDefaults.auth_jwt_keys,
          "JWT keys: a PEM RSA public key (RS256), a file with an HS256 secret, or a JWKS; turns "
          "authentication on");
ABSL_FLAG(std::string, auth_jwt_issuer, kDefaults.auth_jwt_issuer,
          "the iss claim JWTs must carry (empty: not checked)");
ABSL_FLAG(std::string, auth_jwt_audience, kDefaults.auth_jwt_audience,
          "the aud claim JWTs must carry (empty: not checked)");
ABSL_FLAG(std::string, data_dir, kDefaults.data_dir,
          "folder for jobs.db, job reports, uploads and the model cache");
ABSL_FLAG(std::string, store, kDefaults.store,
          "job store: postgresql://user:password@host:port/db for replicas sharing one "
          "PostgreSQL (also MIA_STORE); default: SQLite at <data_dir>/jobs.db");
ABSL_FLAG(std::vector<std::string>, data_roots, kDefaults.data_roots,
          "comma-separated folders that DataRef.server_path may point into");
ABSL_FLAG(std::string, artifact_store, kDefaults.artifact_store,
          "store shared by replicas for models, uploads and reports: s3://BUCKET/PREFIX or a "
          "folder on a shared volume (empty: data_dir only)");
ABSL_FLAG(std::string, s3_endpoint, kDefaults.s3_endpoint,
          "S3 endpoint of an s3:// artifact_store, http(s)://host[:port] (credentials from "
          "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN)");
ABSL_FLAG(std::string, s3_region, kDefaults.s3_region, "region S3 requests are signed for");
ABSL_FLAG(int, workers, kDefaults.workers, "worker threads that run jobs");
ABSL_FLAG(int, queue_capacity, kDefaults.queue_capacity,
          "most queued jobs; beyond it CreateAudit is RESOURCE_EXHAUSTED");
ABSL_FLAG(int, max_concurrent_jobs, kDefaults.max_concurrent_jobs,
          "most jobs running at once (0: as many as workers)");
ABSL_FLAG(int, threads_per_job, kDefaults.threads_per_job,
          "compute threads per job (0: cores divided among workers)");
ABSL_FLAG(int, max_watchers, kDefaults.max_watchers, "most WatchAudit streams open at once");
ABSL_FLAG(int64_t, max_message_bytes, kDefaults.max_message_bytes,
          "largest gRPC message received or sent");
ABSL_FLAG(int64_t, max_upload_bytes, kDefaults.max_upload_bytes, "largest artifact upload");
ABSL_FLAG(int64_t, memory_budget_bytes, kDefaults.memory_budget_bytes,
          "most memory one audit may be estimated to need; larger ones are refused "
          "(0: 80% of the machine's or container's memory)");
ABSL_FLAG(int64_t, max_bundle_array_bytes, kDefaults.max_bundle_array_bytes,
          "largest decoded array of a signals bundle");
ABSL_FLAG(int64_t, max_bundle_total_bytes, kDefaults.max_bundle_total_bytes,
          "largest decoded signals bundle, all arrays together");
ABSL_FLAG(double, heartbeat_seconds, kDefaults.heartbeat_seconds,
          "heartbeat interval of idle watch streams");
ABSL_FLAG(int, metrics_port, kDefaults.metrics_port,
          "HTTP port of Prometheus /metrics and the web dashboard (0: off)");
ABSL_FLAG(std::string, metrics_address, kDefaults.metrics_address,
          "address the metrics endpoint binds to (default: the host of listen_address)");
ABSL_FLAG(bool, dashboard, kDefaults.dashboard,
          "serve the read-only web dashboard on the metrics port");
ABSL_FLAG(bool, enable_reflection, kDefaults.enable_reflection, "serve gRPC server reflection");
ABSL_FLAG(double, drain_timeout_seconds, kDefaults.drain_timeout_seconds,
          "most seconds a SIGTERM drain may take");
ABSL_FLAG(std::string, log_level, kDefaults.log_level,
          "trace, debug, info, warn, error, critical or off");
ABSL_FLAG(std::string, replica_id, kDefaults.replica_id,
          "this replica's id on a shared store (default: <hostname>-<pid>)");
ABSL_FLAG(double, cluster_lease_seconds, kDefaults.cluster_lease_seconds,
          "seconds a replica's claim lasts without renewal (shared store)");
ABSL_FLAG(int, unit_workers, kDefaults.unit_workers,
          "threads that train units of any audit (shared store)");

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(kUsage);
  // For abseil's other help flags (--helpon, --helpmatch): this file's flags
  // and the version.
  absl::FlagsUsageConfig usage;
  usage.contains_help_flags = IsSettingFile;
  usage.contains_helpshort_flags = IsSettingFile;
  usage.version_string = VersionLine;
  absl::SetFlagsUsageConfig(usage);
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--") break;
    if (arg == "--help" || arg == "-help" || arg == "-h" || arg == "--helpfull" ||
        arg == "--helpshort") {
      PrintHelp();
      return 0;
    }
    if (arg == "--version" || arg == "-version") {
      std::fputs(VersionLine().c_str(), stdout);
      return 0;
    }
  }
  absl::ParseCommandLine(argc, argv);

  mia::server::ConfigSources sources;
  for (const std::string& key : FlagsOnCommandLine(argc, argv)) {
    const absl::CommandLineFlag* flag = absl::FindCommandLineFlag(key);
    if (flag != nullptr) sources.flags[key] = flag->CurrentValue();
  }
  sources.env = mia::server::EnvironmentMap(environ);
  const absl::StatusOr<mia::server::ServerConfig> config = mia::server::LoadServerConfig(sources);
  if (!config.ok()) {
    auto logger = mia::server::MakeJsonLogger("mia-server", "info");
    mia::server::Log(logger.get(), spdlog::level::critical, "bad configuration",
                     {{"error", std::string(config.status().message())}});
    return 2;
  }
  auto logger = mia::server::MakeJsonLogger("mia-server", config->log_level);
  mia::server::Log(
      logger.get(), spdlog::level::info, "configuration",
      {{"config", nlohmann::ordered_json::parse(mia::server::ServerConfigJson(*config))},
       {"tls", mia::server::TlsMode(*config)}});

  // Signals are taken by this thread alone (sigwait): blocked here before any
  // other thread exists, so every thread inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  mia::server::AuditServerOptions options;
  options.config = *config;
  options.logger = logger;
  absl::StatusOr<std::unique_ptr<mia::server::AuditServer>> server =
      mia::server::AuditServer::Start(options);
  if (!server.ok()) {
    mia::server::Log(logger.get(), spdlog::level::critical, "cannot start",
                     {{"error", std::string(server.status().message())}});
    return 1;
  }

  int signal_number = 0;
  sigwait(&signals, &signal_number);
  const absl::Time deadline = absl::Now() + absl::Seconds(config->drain_timeout_seconds);
  mia::server::Log(logger.get(), spdlog::level::info, "signal",
                   {{"signal", signal_number == SIGTERM ? "SIGTERM" : "SIGINT"}});
  // A second signal means "now": the store is durable, the next start resumes.
  std::thread([signals, logger]() mutable {
    int again = 0;
    sigwait(&signals, &again);
    mia::server::Log(logger.get(), spdlog::level::warn, "second signal: exiting now");
    logger->flush();
    std::_Exit(1);
  }).detach();

  const absl::Status drained = (*server)->Drain(deadline);
  if (!drained.ok()) {
    // Jobs still running past the deadline resume at the next start.
    mia::server::Log(logger.get(), spdlog::level::warn, "drain deadline passed; exiting",
                     {{"error", std::string(drained.message())}});
    logger->flush();
    std::_Exit(1);
  }
  server->reset();
  mia::server::Log(logger.get(), spdlog::level::info, "stopped");
  logger->flush();
  return 0;
}
