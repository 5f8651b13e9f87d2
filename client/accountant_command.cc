// `mia accountant`: the DP-SGD accountant (ATTACKS.md, "DP-SGD and its
// accountant") from the command line. Every rule on the values lives in
// core/metrics/rdp_accountant; this file maps its field names onto flags.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"
#include "client/commands.h"
#include "core/metrics/rdp_accountant.h"

namespace mia::client {
namespace {

// The accountant's field names (the prefix of its InvalidArgument messages)
// and the flags that set them.
constexpr std::pair<absl::string_view, absl::string_view> kFlagOfField[] = {
    {"sample_rate", "--sample-rate"},
    {"noise_multiplier", "--noise-multiplier"},
    {"target_epsilon", "--target-epsilon"},
    {"steps", "--steps"},
    {"epochs", "--epochs"},
    {"delta", "--delta"},
    {"conversion", "--conversion"}};

// Prints the status with its field renamed to the flag; returns its exit code.
int FlagError(const absl::Status& status) {
  std::string message(status.message());
  for (const auto& [field, flag] : kFlagOfField) {
    if (absl::StartsWith(message, absl::StrCat(field, ":"))) {
      message = absl::StrCat(flag, message.substr(field.size()));
      break;
    }
  }
  std::fprintf(stderr, "mia: error: %s\n", message.c_str());
  return ExitCodeFor(status);
}

int UsageError(absl::string_view message) {
  std::fprintf(stderr, "mia: error: %s\n", std::string(message).c_str());
  return kExitInvalidInput;
}

// The shortest decimal that reads back as x; JSON's null for inf and NaN.
std::string JsonNumber(double x) {
  if (!std::isfinite(x)) return "null";
  if (x == std::trunc(x) && std::fabs(x) < 1e15) return absl::StrFormat("%.0f", x);
  for (int digits = 1; digits < 17; ++digits) {
    std::string text = absl::StrFormat("%.*g", digits, x);
    if (std::strtod(text.c_str(), nullptr) == x) return text;
  }
  return absl::StrFormat("%.17g", x);
}

}  // namespace

int RunAccountant(const AccountantOptions& options) {
  if (options.steps.has_value() == options.epochs.has_value()) {
    return UsageError("give --steps or --epochs (with --sample-rate), one of them");
  }
  if (options.noise_multiplier.has_value() == options.target_epsilon.has_value()) {
    return UsageError("give --noise-multiplier, or --target-epsilon to solve for it, one of them");
  }
  const absl::StatusOr<metrics::RdpConversion> conversion =
      metrics::ParseRdpConversion(options.conversion);
  if (!conversion.ok()) return FlagError(conversion.status());

  metrics::DpSgdAccounting run;
  run.sample_rate = options.sample_rate;
  run.delta = options.delta;
  run.conversion = *conversion;
  if (options.epochs.has_value()) {
    const absl::StatusOr<int64_t> steps = metrics::StepsForEpochs(*options.epochs, run.sample_rate);
    if (!steps.ok()) return FlagError(steps.status());
    run.steps = *steps;
  } else {
    run.steps = *options.steps;
  }
  if (options.target_epsilon.has_value()) {
    const absl::StatusOr<double> sigma =
        metrics::NoiseMultiplierForEpsilon(run, *options.target_epsilon);
    if (!sigma.ok()) return FlagError(sigma.status());
    run.noise_multiplier = *sigma;
  } else {
    run.noise_multiplier = *options.noise_multiplier;
  }
  const absl::StatusOr<metrics::DpSgdEpsilon> eps = metrics::ComputeDpSgdEpsilon(run);
  if (!eps.ok()) return FlagError(eps.status());

  const std::string conversion_name(metrics::RdpConversionName(run.conversion));
  if (options.json) {
    std::string json = absl::StrCat("{\"sample_rate\": ", JsonNumber(run.sample_rate),
                                    ", \"noise_multiplier\": ", JsonNumber(run.noise_multiplier),
                                    ", \"steps\": ", run.steps);
    if (options.epochs.has_value()) {
      absl::StrAppend(&json, ", \"epochs\": ", JsonNumber(*options.epochs));
    }
    if (options.target_epsilon.has_value()) {
      absl::StrAppend(&json, ", \"target_epsilon\": ", JsonNumber(*options.target_epsilon));
    }
    absl::StrAppend(&json, ", \"delta\": ", JsonNumber(run.delta), ", \"conversion\": \"",
                    conversion_name, "\", \"epsilon\": ", JsonNumber(eps->epsilon),
                    ", \"order\": ", eps->order, "}\n");
    std::fputs(json.c_str(), stdout);
    return kExitOk;
  }
  std::printf("%-18s %.6g\n", "sample rate", run.sample_rate);
  if (options.target_epsilon.has_value()) {
    std::printf("%-18s %.6g (solved for epsilon <= %g, to %g relative)\n", "noise multiplier",
                run.noise_multiplier, *options.target_epsilon, metrics::kNoiseMultiplierTolerance);
  } else {
    std::printf("%-18s %.6g\n", "noise multiplier", run.noise_multiplier);
  }
  if (options.epochs.has_value()) {
    std::printf("%-18s %lld (%g epochs)\n", "steps", static_cast<long long>(run.steps),
                *options.epochs);
  } else {
    std::printf("%-18s %lld\n", "steps", static_cast<long long>(run.steps));
  }
  std::printf("%-18s %g\n", "delta", run.delta);
  std::printf("%-18s %s\n", "conversion", conversion_name.c_str());
  std::printf("%-18s %.4f\n", "epsilon", eps->epsilon);
  std::printf("%-18s %d\n", "order", eps->order);
  return kExitOk;
}

}  // namespace mia::client
