// The remote commands of the `mia` CLI: talk to a mia server over gRPC
// (mia.v1.AuditService, proto/mia/v1/audit.proto). main.cc parses flags into
// these option structs; each command returns a process exit code
// (client/commands.h) and writes results to Console::out, progress and errors
// to Console::err, so tests run the commands in-process and read both.
//
// Every unary call has a deadline (RemoteOptions::timeout_seconds). Streams
// (WatchAudit, GetReportFile, UploadArtifact) last as long as the job or the
// file needs and have none; a watch that breaks after it started (a drain, a
// restart, a rolling update) reconnects with backoff from the last version
// seen, for up to RemoteOptions::reconnect_timeout_seconds.
//
// Each call creates its own channel; the commands share no state and may run
// from any thread, each with its own Console.
#ifndef MIA_CLIENT_REMOTE_COMMANDS_H_
#define MIA_CLIENT_REMOTE_COMMANDS_H_

#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

namespace mia::client {

// Used when neither --server nor MIA_SERVER says otherwise.
inline constexpr char kDefaultServerAddress[] = "127.0.0.1:50051";

// Where output goes.
struct Console {
  std::ostream* out = nullptr;  // what a script reads: names, tables, CSV, ids
  std::ostream* err = nullptr;  // progress, notes, warnings and errors
  bool tty = false;             // `err` is a terminal: redraw progress bars in place
};

// Settings every remote command shares.
struct RemoteOptions {
  std::string server = kDefaultServerAddress;  // host:port of the mia server
  double timeout_seconds = 30;                 // deadline of each unary call
  // How long a watch whose stream broke after it had started (CANCELLED or
  // UNAVAILABLE: a drain, a restart, a rolling update) keeps reconnecting
  // without seeing progress before it gives up with kExitUnavailable; 0
  // never reconnects.
  double reconnect_timeout_seconds = 300;
  // Seconds before the first reconnection; doubles on each further one, up
  // to 15.
  double reconnect_backoff_seconds = 1;

  // TLS (docs/service.md). All unset: plaintext (insecure channel
  // credentials), as a server without TLS expects.
  bool tls = false;      // TLS, the server verified against the system's root CAs
  std::string tls_ca;    // PEM root CA(s) to verify the server with; implies TLS
  std::string tls_cert;  // PEM client certificate (mutual TLS); with tls_key; implies TLS
  std::string tls_key;   // its private key (unencrypted)
  // The name the server's certificate must carry when it differs from the
  // host in `server` (e.g. connecting by IP or through a port-forward); also
  // sent as the authority. Only with TLS.
  std::string tls_server_name;

  // Authentication (docs/security.md): sent on every call as
  // "authorization: Bearer <token>", over TLS or plaintext. `token` wins over
  // `token_file` (whose content, surrounding whitespace dropped, is the
  // token). Never printed.
  std::string token;       // --token or MIA_TOKEN
  std::string token_file;  // --token-file

  // TLS is on: `tls`, or any file above set.
  bool UsesTls() const { return tls || !tls_ca.empty() || !tls_cert.empty() || !tls_key.empty(); }
};

struct SubmitOptions {
  std::string job_file;             // audit config or bundle job (docs/service.md)
  bool follow = false;              // watch until it ends, then print the summary
  std::string request_id;           // idempotency key; empty: none
  std::vector<std::string> labels;  // "key=value" each
  int priority = 0;                 // scheduling priority, [-100, 100]
  // A policy file (the keys of audit.policy, as `mia score --policy`): sent
  // as the job's policy (bundle.policy or audit.policy, which the job file
  // must then leave unset); with `follow`, exit kExitPolicyFail on FAIL.
  std::string policy_file;
};

// `mia submit`: uploads the job file's upload:FILE references, creates the
// audit and prints its name on `out`; with `follow`, then as RunWatch.
int RunSubmit(const RemoteOptions& remote, const SubmitOptions& options, const Console& console);

// `mia get NAME`: one audit, as text or (json) as the API's JSON. For a
// SUCCEEDED audit, a warning names report files missing on the server.
int RunGet(const RemoteOptions& remote, const std::string& name, bool json, const Console& console);

struct ListOptions {
  std::string state;       // "", or a state name (any case): pending, running, ...
  int page_size = 0;       // 0: the server's default
  std::string page_token;  // start from this page
  bool all = false;        // follow next_page_token to the end
  bool json = false;       // one JSON object instead of the table
};

// `mia list`: a table of audits, oldest first; with `json` one object,
// {"audits": [...], "next_page_token": "..."}, every field present.
int RunList(const RemoteOptions& remote, const ListOptions& options, const Console& console);

// `mia watch NAME`: progress bars until the audit ends, then the summary
// table; with `json` one JSON line per snapshot on `out` instead. Exit 0 only
// when it SUCCEEDED (kExitPolicyFail when its policy says FAIL);
// kExitAuditFailed for FAILED or CANCELLED;
// kExitUnavailable when reconnecting gave up.
int RunWatch(const RemoteOptions& remote, const std::string& name, int64_t from_version, bool json,
             const Console& console);

// `mia cancel NAME` / `mia delete NAME`.
int RunCancel(const RemoteOptions& remote, const std::string& name, const Console& console);
int RunDelete(const RemoteOptions& remote, const std::string& name, const Console& console);

struct ScoresOptions {
  std::string name;
  std::optional<int> target;  // only this target's rows
  int page_size = 0;          // rows per request; 0: the server's default
  std::string out;            // CSV file (written atomically); empty: `out` stream
};

// `mia scores NAME`: every page of per-example scores as CSV in the format of
// the report's scores.csv (docs/report-format.md).
int RunScores(const RemoteOptions& remote, const ScoresOptions& options, const Console& console);

// `mia report NAME --out DIR`: downloads every report file into out_dir
// (created if missing), each checked against its SHA-256 and written
// atomically. Files the report had but the server lost are named, and the
// exit code is then kExitNotFound.
int RunReport(const RemoteOptions& remote, const std::string& name, const std::string& out_dir,
              const Console& console);

// `mia upload FILE`: uploads a file and prints its artifact id on `out`.
// Downloads one report file of a SUCCEEDED audit into `dir`, checked as
// `mia report` checks every file (for `mia compare`). An exit code.
int FetchReportFile(const RemoteOptions& remote, const std::string& name, const std::string& file,
                    const std::string& dir, const Console& console);

int RunUpload(const RemoteOptions& remote, const std::string& file, const Console& console);

}  // namespace mia::client

#endif  // MIA_CLIENT_REMOTE_COMMANDS_H_
