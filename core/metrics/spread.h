// Mean and spread of one figure over several target models.
#ifndef MIA_CORE_METRICS_SPREAD_H_
#define MIA_CORE_METRICS_SPREAD_H_

#include "absl/types/span.h"

namespace mia::metrics {

struct Spread {
  int count = 0;
  double mean = 0;
  double stddev = 0;  // sample standard deviation (n - 1); 0 when count < 2
  double min = 0;
  double max = 0;
};

Spread Summarize(absl::Span<const double> values);

}  // namespace mia::metrics

#endif  // MIA_CORE_METRICS_SPREAD_H_
