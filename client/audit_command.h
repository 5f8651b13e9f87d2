// `mia audit --config FILE.yaml`: the whole audit locally (no server), with a
// progress bar per stage. Separate from commands.h so that the torch-free
// commands do not depend on the training engine.
//
// The command trains models, so it needs LibTorch, which costs every other
// command 0.7 s and 170 MB to load. It is therefore built into a library of
// its own, libmia_audit_command.so (audit_command.cc), which `mia` opens only
// when `mia audit` runs (RunAuditCommand, audit_loader.cc). The two meet at
// one extern "C" function taking plain C data.
#ifndef MIA_CLIENT_AUDIT_COMMAND_H_
#define MIA_CLIENT_AUDIT_COMMAND_H_

#include <string>

namespace mia::client {

struct AuditCommandOptions {
  std::string config;   // YAML file
  std::string out_dir;  // report folder; default run.log_dir/audit.report_log
  int threads = -1;     // overrides run.threads when >= 0
  bool quiet = false;
  // `mia duci`: run the file as a DUCI audit (audit.duci's defaults when it
  // has no audit.duci), as Privacy Meter's run_duci.py runs a config.
  bool duci = false;
};

// Runs the audit in this process (libmia_audit_command.so only).
int RunAudit(const AuditCommandOptions& options);

// The library's file name, and the environment variable that overrides
// where `mia` looks for it (tests, unusual installs).
inline constexpr char kAuditLibraryName[] = "libmia_audit_command.so";
inline constexpr char kAuditLibraryEnv[] = "MIA_AUDIT_LIBRARY";

// Where `mia` looks for the library: $MIA_AUDIT_LIBRARY when set; else next
// to the executable `exe` (the build tree), else in ../lib/mia/ beside it
// (an install: /usr/local/bin/mia, /usr/local/lib/mia/). The first
// candidate that exists, or the first one when none does.
std::string AuditLibraryPath(const std::string& exe);

// Opens the library and runs the audit there; when the library is missing or
// does not load, a clear error on stderr and a non-zero exit code.
int RunAuditCommand(const AuditCommandOptions& options);

}  // namespace mia::client

extern "C" {

// The entry point's arguments. Plain C data, versioned, so that a library
// from another build is refused instead of misread.
struct MiaAuditArgs {
  int abi_version;      // kMiaAuditAbiVersion
  const char* config;   // never null
  const char* out_dir;  // "" for the config's default
  int threads;          // -1: the config's run.threads
  int quiet;            // non-zero: no progress bars
  int duci;             // non-zero: `mia duci`
};

// Bump on any change to MiaAuditArgs or to the entry point's meaning.
inline constexpr int kMiaAuditAbiVersion = 2;
inline constexpr char kMiaAuditEntryPoint[] = "mia_audit_command_main";

// The library's one exported function: RunAudit on `args`; a process exit code.
// Default visibility: the library is built with hidden visibility.
__attribute__((visibility("default"))) int mia_audit_command_main(const MiaAuditArgs* args);
using MiaAuditEntryFn = int (*)(const MiaAuditArgs*);

}  // extern "C"

#endif  // MIA_CLIENT_AUDIT_COMMAND_H_
