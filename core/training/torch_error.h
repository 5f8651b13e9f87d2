// Turns an exception thrown inside LibTorch into an Internal status. The
// message keeps the first line of LibTorch's text (operator, shapes, dtypes;
// no backtrace) with every decimal number masked, so a status never carries
// tensor contents even if some LibTorch message were to print values.
#ifndef MIA_CORE_TRAINING_TORCH_ERROR_H_
#define MIA_CORE_TRAINING_TORCH_ERROR_H_

#include <exception>
#include <string>

#include "absl/status/status.h"

namespace mia::training {

// Internal("LibTorch failure while <phase>: <sanitized message>").
absl::Status TorchFailure(const std::string& phase, const std::exception& e);

// The sanitizing step alone: the first line, at most 300 characters, with
// numbers that have a fractional part or exponent replaced by "<num>".
std::string SanitizeTorchMessage(const std::string& message);

}  // namespace mia::training

#endif  // MIA_CORE_TRAINING_TORCH_ERROR_H_
