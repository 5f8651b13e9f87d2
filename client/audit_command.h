// `mia audit --config FILE.yaml`: the whole audit locally (no server), with a
// progress bar per stage. Separate from commands.h so that the torch-free
// commands do not depend on the training engine's headers.
#ifndef MIA_CLIENT_AUDIT_COMMAND_H_
#define MIA_CLIENT_AUDIT_COMMAND_H_

#include <string>

namespace mia::client {

struct AuditCommandOptions {
  std::string config;      // YAML file
  std::string out_dir;     // report folder; default run.log_dir/audit.report_log
  int threads = -1;        // overrides run.threads when >= 0
  bool quiet = false;
};

int RunAudit(const AuditCommandOptions& options);

}  // namespace mia::client

#endif  // MIA_CLIENT_AUDIT_COMMAND_H_
