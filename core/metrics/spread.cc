#include "core/metrics/spread.h"

#include <algorithm>
#include <cmath>

#include "absl/types/span.h"

namespace mia::metrics {

Spread Summarize(absl::Span<const double> values) {
  Spread out;
  if (values.empty()) return out;
  out.count = static_cast<int>(values.size());
  out.min = values[0];
  out.max = values[0];
  double sum = 0;
  for (double v : values) {
    sum += v;
    out.min = std::min(out.min, v);
    out.max = std::max(out.max, v);
  }
  out.mean = sum / static_cast<double>(values.size());
  if (values.size() >= 2) {
    // Two passes (mean first) avoid the cancellation of the sum-of-squares form.
    double squares = 0;
    for (double v : values) squares += (v - out.mean) * (v - out.mean);
    out.stddev = std::sqrt(squares / static_cast<double>(values.size() - 1));
  }
  return out;
}

}  // namespace mia::metrics
