#include "core/training/torch_error.h"

#include <cctype>

#include "absl/strings/str_cat.h"

namespace mia::training {

std::string SanitizeTorchMessage(const std::string& message) {
  std::string line = message.substr(0, message.find('\n'));
  std::string out;
  size_t i = 0;
  while (i < line.size() && out.size() < 300) {
    const bool starts_number = std::isdigit(static_cast<unsigned char>(line[i])) &&
                               (i == 0 || !std::isalnum(static_cast<unsigned char>(line[i - 1])));
    if (!starts_number) {
      out += line[i++];
      continue;
    }
    // A numeric token: digits, '.', exponent. Integers (shapes, dims) stay.
    size_t j = i;
    bool fractional = false;
    while (j < line.size()) {
      const char c = line[j];
      if (std::isdigit(static_cast<unsigned char>(c))) {
        ++j;
      } else if (c == '.' && j + 1 < line.size() &&
                 std::isdigit(static_cast<unsigned char>(line[j + 1]))) {
        fractional = true;
        ++j;
      } else if ((c == 'e' || c == 'E') && j + 1 < line.size() &&
                 (std::isdigit(static_cast<unsigned char>(line[j + 1])) || line[j + 1] == '-' ||
                  line[j + 1] == '+')) {
        fractional = true;
        j += 2;
      } else {
        break;
      }
    }
    out += fractional ? std::string("<num>") : line.substr(i, j - i);
    i = j;
  }
  return out;
}

absl::Status TorchFailure(const std::string& phase, const std::exception& e) {
  return absl::InternalError(
      absl::StrCat("LibTorch failure while ", phase, ": ", SanitizeTorchMessage(e.what())));
}

}  // namespace mia::training
