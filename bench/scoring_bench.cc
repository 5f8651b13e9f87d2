// Timed driver for the scoring core: one case per process, so the reported
// peak RSS belongs to that case alone. Run all cases with bench/run.sh.
//
//   mia_bench rmia      RMIA offline with a tuned on the grid: N = 50,000 audit
//                       points, Z = 10,000 population points, 10 models.
//   mia_bench rmia-online   the same, online.
//   mia_bench lira      LiRA online, N = 50,000, 64 references (65 models).
//   mia_bench bootstrap 1,000 bootstrap resamples over N = 50,000 (AUC and
//                       TPR at 6 FPRs).
//
// Prints one line: case, best and median wall seconds over --reps repetitions
// of the measured call (inputs are built once, outside the timing), and the
// process's peak RSS in MB.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "core/attacks/lira.h"
#include "core/attacks/rmia.h"
#include "core/common/random.h"
#include "core/metrics/bootstrap.h"
#include "core/metrics/roc.h"

namespace {

using Clock = std::chrono::steady_clock;

double PeakRssMb() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss / 1024.0;  // ru_maxrss is in KiB on Linux
}

// A balanced membership game of `models` models: prob signals for N audit and
// Z population points, members' signals raised.
struct Game {
  mia::attacks::SignalSet audit, population;
  std::vector<uint8_t> keep;
};

Game MakeGame(int models, int64_t n, int64_t z, uint64_t seed) {
  mia::Rng rng(seed);
  Game g;
  g.keep.assign(static_cast<size_t>(models) * n, 0);
  std::vector<int> order(models);
  for (int64_t i = 0; i < n; ++i) {
    for (int m = 0; m < models; ++m) order[m] = m;
    for (int m = models - 1; m > 0; --m) std::swap(order[m], order[rng.UniformInt(m + 1)]);
    for (int k = 0; k < models / 2; ++k) g.keep[static_cast<size_t>(order[k]) * n + i] = 1;
  }
  auto fill = [&](mia::attacks::SignalTensor* t, int64_t points, bool audit) {
    t->models = models;
    t->points = points;
    t->queries = 1;
    t->values.resize(static_cast<size_t>(models) * points);
    std::vector<double> difficulty(points);
    for (auto& d : difficulty) d = 2.0 + 1.5 * rng.Normal();
    for (int m = 0; m < models; ++m) {
      for (int64_t i = 0; i < points; ++i) {
        double phi = difficulty[i] + 0.6 * rng.Normal();
        if (audit && g.keep[static_cast<size_t>(m) * points + i]) phi += 1.0;
        t->values[static_cast<size_t>(m) * points + i] = 1.0 / (1.0 + std::exp(-phi));
      }
    }
  };
  fill(&g.audit.prob, n, true);
  fill(&g.population.prob, z, false);
  return g;
}

int Run(const std::string& name, int reps, const std::function<void()>& fn) {
  std::vector<double> seconds;
  for (int r = 0; r < reps; ++r) {
    const Clock::time_point start = Clock::now();
    fn();
    seconds.push_back(std::chrono::duration<double>(Clock::now() - start).count());
  }
  std::sort(seconds.begin(), seconds.end());
  std::printf("%-12s best %.4f s  median %.4f s  (%d reps)  peak RSS %.1f MB\n", name.c_str(),
              seconds.front(), seconds[seconds.size() / 2], reps, PeakRssMb());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: mia_bench rmia|rmia-online|lira|bootstrap [reps]\n");
    return 2;
  }
  const std::string which = argv[1];
  const int reps = argc > 2 ? std::max(1, std::atoi(argv[2])) : 5;
  if (which == "rmia" || which == "rmia-online") {
    Game g = MakeGame(10, 50000, 10000, 1);
    mia::attacks::AttackInput in{&g.audit, &g.population, g.keep, 0, {1, 2, 3, 4, 5, 6, 7, 8, 9}};
    mia::attacks::RmiaOptions o;
    o.online = which == "rmia-online";
    double checksum = 0;
    const int rc = Run(which, reps, [&] {
      auto out = mia::attacks::RmiaAttack(in, o);
      if (!out.ok()) std::abort();
      checksum += out->scores[0];
      if (!o.online && reps == 1) std::fprintf(stderr, "a = %.1f\n", out->chosen.at("a"));
    });
    return checksum < 0 ? 1 : rc;
  }
  if (which == "lira") {
    Game g = MakeGame(65, 50000, 1, 2);
    g.audit.logit_scaled = mia::attacks::ConvertSignal(
        g.audit.prob, mia::attacks::SignalKind::kProb, mia::attacks::SignalKind::kLogitScaled);
    g.audit.prob = {};
    std::vector<int> refs;
    for (int m = 1; m < 65; ++m) refs.push_back(m);
    mia::attacks::AttackInput in{&g.audit, nullptr, g.keep, 0, refs};
    return Run(which, reps, [&] {
      auto out = mia::attacks::LiraAttack(in, mia::attacks::LiraOptions{});
      if (!out.ok()) std::abort();
    });
  }
  if (which == "bootstrap") {
    mia::Rng rng(3);
    const int64_t n = 50000;
    std::vector<double> scores(n);
    std::vector<uint8_t> members(n);
    for (int64_t i = 0; i < n; ++i) {
      members[i] = static_cast<uint8_t>(rng.UniformInt(2));
      scores[i] = rng.Normal() + (members[i] ? 0.5 : 0.0);
    }
    mia::metrics::BootstrapOptions o;
    o.resamples = 1000;
    return Run(which, reps, [&] {
      auto out = mia::metrics::BootstrapCi(scores, members, mia::metrics::DefaultFprs(), o);
      if (!out.ok()) std::abort();
    });
  }
  std::fprintf(stderr, "unknown case '%s'\n", which.c_str());
  return 2;
}
