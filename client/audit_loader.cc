// `mia audit` from `mia`: finds libmia_audit_command.so and runs the audit
// there, so that LibTorch is loaded by this command only (audit_command.h).
#include <dlfcn.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "client/audit_command.h"
#include "client/commands.h"

namespace mia::client {
namespace {

bool Exists(const std::string& path) { return access(path.c_str(), F_OK) == 0; }

// The running executable's path; "" if /proc is not mounted.
std::string SelfExe() {
  std::vector<char> buf(4096);
  const ssize_t n = readlink("/proc/self/exe", buf.data(), buf.size() - 1);
  if (n <= 0) return "";
  return std::string(buf.data(), static_cast<size_t>(n));
}

}  // namespace

std::string AuditLibraryPath(const std::string& exe) {
  if (const char* env = std::getenv(kAuditLibraryEnv); env != nullptr && *env != '\0') return env;
  const size_t slash = exe.rfind('/');
  // Never a folder relative to the working directory (that would run code
  // from wherever the user happens to be): without the binary's own path,
  // only the installed location.
  const std::string dir = slash == std::string::npos ? "/usr/local/bin" : exe.substr(0, slash);
  const std::vector<std::string> candidates = {dir + "/" + kAuditLibraryName,
                                               dir + "/../lib/mia/" + kAuditLibraryName};
  for (const std::string& c : candidates) {
    if (Exists(c)) return c;
  }
  return candidates.front();
}

int RunAuditCommand(const AuditCommandOptions& options) {
  const std::string path = AuditLibraryPath(SelfExe());
  if (!Exists(path)) {
    std::fprintf(stderr,
                 "mia: error: mia audit needs the training engine: %s not found (install it "
                 "beside mia, or set %s to its path)\n",
                 path.c_str(), kAuditLibraryEnv);
    return kExitNotFound;
  }
  // RTLD_LOCAL: the library's symbols (LibTorch's included) stay out of the
  // global namespace; RTLD_NOW: a missing dependency fails here, with a
  // message, not in the middle of an audit. Never closed: LibTorch's threads
  // and static objects live until exit.
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const char* why = dlerror();
    std::fprintf(stderr, "mia: error: mia audit cannot load the training engine %s: %s\n",
                 path.c_str(), why != nullptr ? why : "unknown error");
    return kExitFailure;
  }
  auto entry = reinterpret_cast<MiaAuditEntryFn>(dlsym(handle, kMiaAuditEntryPoint));
  if (entry == nullptr) {
    std::fprintf(stderr, "mia: error: %s is not mia's training engine (no %s)\n", path.c_str(),
                 kMiaAuditEntryPoint);
    return kExitFailure;
  }
  const MiaAuditArgs args = {kMiaAuditAbiVersion, options.config.c_str(), options.out_dir.c_str(),
                             options.threads, options.quiet ? 1 : 0,
                             options.duci ? 1 : 0};
  // Both sides print to the same stdio streams: flush ours first so the
  // order on a terminal or in a pipe stays the order of events.
  std::fflush(stdout);
  const int code = entry(&args);
  std::fflush(stdout);
  std::fflush(stderr);
  return code;
}

}  // namespace mia::client
