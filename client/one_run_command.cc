// `mia one-run-bound`: the epsilon lower bound of a DP audit in one run
// (core/metrics/one_run_audit.h) from counts the user brings.
#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_format.h"
#include "client/commands.h"
#include "core/metrics/one_run_audit.h"

namespace mia::client {
namespace {

// The shortest of %.15g and %.17g that reads back as the same double, so that
// 1e-05 prints as 1e-05 and any other value exactly.
std::string Number(double x) {
  std::string s = absl::StrFormat("%.15g", x);
  if (std::strtod(s.c_str(), nullptr) != x) s = absl::StrFormat("%.17g", x);
  return s;
}

}  // namespace

int RunOneRunBound(const OneRunBoundOptions& options) {
  const absl::StatusOr<double> eps =
      metrics::OneRunEpsilonLowerBound(options.counts, options.bound);
  if (!eps.ok()) {
    // Core's message starts with the parameter's name, which is the flag's.
    std::fprintf(stderr, "mia: error: --%s\n", std::string(eps.status().message()).c_str());
    return ExitCodeFor(eps.status());
  }
  const metrics::OneRunCounts& c = options.counts;
  if (options.json) {
    std::printf(
        "{\"epsilon\": %.6f, \"canaries\": %lld, \"guesses\": %lld, \"correct\": %lld, "
        "\"delta\": %s, \"beta\": %s}\n",
        *eps, static_cast<long long>(c.canaries), static_cast<long long>(c.guesses),
        static_cast<long long>(c.correct), Number(options.bound.delta).c_str(),
        Number(options.bound.beta).c_str());
    return kExitOk;
  }
  std::printf("epsilon lower bound (one run): %.6f\n", *eps);
  std::printf("  %lld canaries, %lld guesses, %lld right; delta %s, confidence %s%%\n",
              static_cast<long long>(c.canaries), static_cast<long long>(c.guesses),
              static_cast<long long>(c.correct), Number(options.bound.delta).c_str(),
              Number(100 * (1 - options.bound.beta)).c_str());
  if (*eps == 0) {
    std::printf("  0: the guesses do not beat chance at this confidence\n");
  }
  return kExitOk;
}

}  // namespace mia::client
