#include "core/metrics/bootstrap.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <new>
#include <numeric>
#include <system_error>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/types/span.h"
#include "core/common/random.h"
#include "core/common/saturating.h"
#include "core/common/status_macros.h"
#include "core/metrics/roc.h"

namespace mia::metrics {
namespace {

absl::Status ValidateInputs(absl::Span<const double> scores, absl::Span<const uint8_t> members,
                            absl::Span<const double> alphas, const BootstrapOptions& options) {
  MIA_RETURN_IF_ERROR(ValidateScores(scores, members));
  if (options.resamples < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("bootstrap needs at least 1 resample, got ", options.resamples));
  }
  if (!(options.confidence > 0 && options.confidence < 1)) {
    return absl::InvalidArgumentError("bootstrap confidence must lie in (0, 1)");
  }
  for (size_t k = 0; k < alphas.size(); ++k) {
    if (!std::isfinite(alphas[k]) || alphas[k] < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("FPR at index ", k, " must be finite and non-negative"));
    }
  }
  return absl::OkStatus();
}

// q-quantile of `values` (sorted in place) by linear interpolation between
// order statistics at h = (m - 1) q, as numpy's default method.
double Quantile(std::vector<double>& values, double q) {
  std::sort(values.begin(), values.end());
  const double h = static_cast<double>(values.size() - 1) * q;
  const size_t lo = static_cast<size_t>(std::floor(h));
  if (lo + 1 >= values.size()) return values.back();
  const double frac = h - static_cast<double>(lo);
  return values[lo] + frac * (values[lo + 1] - values[lo]);
}

Interval PercentileInterval(std::vector<double>& values, double confidence) {
  Interval out;
  out.low = Quantile(values, (1 - confidence) / 2);
  out.high = Quantile(values, (1 + confidence) / 2);
  return out;
}

// Collects per-replicate figures and turns them into the result; shared by the
// fast and the naive path so that both apply the same rules.
class ReplicateSink {
 public:
  ReplicateSink(size_t alphas, int resamples) : tpr_(alphas) {
    auc_.reserve(static_cast<size_t>(resamples));
    for (auto& v : tpr_) v.reserve(static_cast<size_t>(resamples));
  }

  void AddDegenerate() { ++degenerate_; }
  void Add(double auc, absl::Span<const double> tpr) {
    auc_.push_back(auc);
    for (size_t k = 0; k < tpr_.size(); ++k) tpr_[k].push_back(tpr[k]);
  }

  absl::StatusOr<BootstrapResult> Finish(absl::Span<const double> alphas,
                                         int64_t original_negatives, double confidence) {
    if (auc_.empty()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "every one of the ", degenerate_,
          " bootstrap replicates lacks members or non-members; the sample is too small"));
    }
    BootstrapResult result;
    result.resamples = static_cast<int>(auc_.size());
    result.degenerate = degenerate_;
    result.auc = PercentileInterval(auc_, confidence);
    for (size_t k = 0; k < tpr_.size(); ++k) {
      result.tpr_at_fpr.push_back(PercentileInterval(tpr_[k], confidence));
      // Resolution is a property of the audit, not of one replicate.
      result.tpr_resolved.push_back(FprResolvable(alphas[k], original_negatives));
    }
    return result;
  }

 private:
  std::vector<double> auc_;
  std::vector<std::vector<double>> tpr_;
  int degenerate_ = 0;
};

int64_t CountNegatives(absl::Span<const uint8_t> members) {
  int64_t positives = 0;
  for (uint8_t m : members) positives += m;
  return static_cast<int64_t>(members.size()) - positives;
}

// Largest false-positive count f in [0, negatives] whose rate, formed exactly as
// ComputeRoc forms it (f / negatives in double), is <= alpha. Matching that
// arithmetic keeps the fast path bit-identical to the naive one.
int64_t MaxFalsePositives(double alpha, int64_t negatives) {
  const double n = static_cast<double>(negatives);
  int64_t f = static_cast<int64_t>(std::min(std::floor(alpha * n), n));
  if (f < 0) f = 0;
  while (f < negatives && static_cast<double>(f + 1) / n <= alpha) ++f;
  while (f > 0 && static_cast<double>(f) / n > alpha) --f;
  return f;
}

// The order in which a replicate's draws index the points: by decreasing
// score, ties by increasing index (deterministic). Draw u of a replicate picks
// point order[u]; any fixed bijection gives the same bootstrap distribution,
// and this one lets the fast path count draws by sorted position directly.
std::vector<size_t> DrawOrder(absl::Span<const double> scores) {
  std::vector<size_t> order(scores.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(), [&scores](size_t a, size_t b) {
    return scores[a] > scores[b] || (scores[a] == scores[b] && a < b);
  });
  return order;
}

absl::StatusOr<BootstrapResult> BootstrapCiImpl(absl::Span<const double> scores,
                                                absl::Span<const uint8_t> members,
                                                absl::Span<const double> alphas,
                                                const BootstrapOptions& options) {
  const size_t n = scores.size();

  // Sort once. Everything per replicate is indexed by sorted position, so the
  // per-replicate pass walks memory in order. A replicate draws sorted
  // positions directly (DrawOrder): no lookup of where an index sorts.
  const std::vector<size_t> order = DrawOrder(scores);
  std::vector<uint8_t> sorted_label(n);  // label at sorted position
  std::vector<size_t> group_end;         // exclusive end of each tie group
  for (size_t pos = 0; pos < n; ++pos) {
    sorted_label[pos] = members[order[pos]];
    if (pos + 1 == n || scores[order[pos + 1]] != scores[order[pos]]) {
      group_end.push_back(pos + 1);
    }
  }

  // Alphas visited in increasing order during the sweep; their FP limits are
  // then non-decreasing, so each is settled once, when FP first exceeds it.
  const size_t num_alphas = alphas.size();
  std::vector<size_t> alpha_order(num_alphas);
  std::iota(alpha_order.begin(), alpha_order.end(), size_t{0});
  std::sort(alpha_order.begin(), alpha_order.end(),
            [&alphas](size_t a, size_t b) { return alphas[a] < alphas[b]; });

  // Replicate r's figures, by r: threads fill disjoint slots, and the sink
  // takes them in order of r, so the result does not depend on the threads.
  const int resamples = options.resamples;
  std::vector<double> auc_of(static_cast<size_t>(resamples));
  std::vector<double> tpr_of(static_cast<size_t>(resamples) * num_alphas);
  std::vector<uint8_t> degenerate_of(static_cast<size_t>(resamples), 0);
  std::atomic<bool> cancelled{false};
  std::atomic<int> next_replicate{0};

  // Each thread takes the next replicate not yet taken until none is left, so
  // the work is shared evenly whatever else the cores are doing.
  std::atomic<bool> out_of_memory{false};
  // An exception escaping a std::thread ends the process: a worker that
  // cannot allocate its buffers records it, and the call returns
  // ResourceExhausted once every thread has stopped.
  auto replicates = [&]() {
    // Buffers reused by every replicate of this share: no allocation inside the loop.
    // All zero between replicates: the pass below clears what it reads, so
    // no replicate pays a separate fill of n counts.
    std::vector<uint32_t> multiplicity(n);
    std::vector<int64_t> fp_limit(num_alphas);  // in alpha_order order
    int done = 0;
    for (int r = next_replicate.fetch_add(1); r < resamples;
         r = next_replicate.fetch_add(1), ++done) {
      if (done % 64 == 0 && ((options.cancel != nullptr && options.cancel->load()) ||
                             cancelled.load(std::memory_order_relaxed))) {
        cancelled.store(true, std::memory_order_relaxed);
        return;
      }
      double* tpr = tpr_of.data() + static_cast<size_t>(r) * num_alphas;  // caller's order
      Rng rng(DeriveSeed(options.seed, static_cast<uint64_t>(r)));
      int64_t positives = 0;
      for (size_t i = 0; i < n; ++i) {
        const size_t pos = static_cast<size_t>(rng.UniformInt(n));
        ++multiplicity[pos];
        positives += sorted_label[pos];
      }
      const int64_t negatives = static_cast<int64_t>(n) - positives;
      if (positives == 0 || negatives == 0) {
        degenerate_of[static_cast<size_t>(r)] = 1;
        std::fill(multiplicity.begin(), multiplicity.end(), 0u);
        continue;
      }
      for (size_t j = 0; j < num_alphas; ++j) {
        fp_limit[j] = MaxFalsePositives(alphas[alpha_order[j]], negatives);
      }

      // One pass over the tie groups in decreasing score: twice the Mann-Whitney U
      // (non-members count 2 per member above, 1 per tied member), and for each
      // alpha the TP count just before FP first exceeds its limit.
      int64_t tp = 0;
      int64_t fp = 0;
      int64_t twice_u = 0;
      size_t next_alpha = 0;
      size_t pos = 0;
      for (const size_t end : group_end) {
        // Draws of this group, and of its members; kept in registers and free of
        // label-dependent branches, which random labels would mispredict.
        int64_t group_all = 0;
        int64_t group_pos = 0;
        for (; pos < end; ++pos) {
          const uint32_t count = multiplicity[pos];
          multiplicity[pos] = 0;
          group_all += count;
          group_pos += count * static_cast<uint32_t>(sorted_label[pos]);
        }
        const int64_t group_neg = group_all - group_pos;
        twice_u += group_neg * (2 * tp + group_pos);
        // The loop below rarely runs.
        const int64_t new_fp = fp + group_neg;
        while (next_alpha < num_alphas && new_fp > fp_limit[next_alpha]) {
          tpr[alpha_order[next_alpha]] = static_cast<double>(tp) / static_cast<double>(positives);
          ++next_alpha;
        }
        fp = new_fp;
        tp += group_pos;
      }
      for (; next_alpha < num_alphas; ++next_alpha) tpr[alpha_order[next_alpha]] = 1.0;

      auc_of[static_cast<size_t>(r)] =
          static_cast<double>(twice_u) / static_cast<double>(2 * positives * negatives);
    }
  };

  auto run_replicates = [&]() {
    try {
      replicates();
    } catch (const std::bad_alloc&) {
      out_of_memory.store(true);
      cancelled.store(true, std::memory_order_relaxed);  // the others stop early
    }
  };

  int threads = options.threads > 0
                    ? options.threads
                    : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  // A thread per 16 replicates at least: fewer are not worth starting one.
  threads = std::max(1, std::min(threads, (resamples + 15) / 16));
  std::vector<std::thread> workers;
  workers.reserve(static_cast<size_t>(threads - 1));
  for (int t = 1; t < threads; ++t) {
    // A thread that cannot start leaves its share to the others (and the
    // started ones are joined below: a bad_alloc here must not skip that).
    try {
      workers.emplace_back(run_replicates);
    } catch (const std::system_error&) {
      break;
    } catch (const std::bad_alloc&) {
      break;
    }
  }
  run_replicates();
  for (std::thread& w : workers) w.join();
  if (out_of_memory.load()) {
    return absl::ResourceExhaustedError(
        absl::StrCat("bootstrap: out of memory for the buffers of ", n, " points per replicate"));
  }
  if (cancelled.load()) return absl::CancelledError("bootstrap cancelled");

  ReplicateSink sink(num_alphas, resamples);
  for (int r = 0; r < resamples; ++r) {
    if (degenerate_of[static_cast<size_t>(r)] != 0) {
      sink.AddDegenerate();
    } else {
      sink.Add(
          auc_of[static_cast<size_t>(r)],
          absl::MakeConstSpan(tpr_of.data() + static_cast<size_t>(r) * num_alphas, num_alphas));
    }
  }
  return sink.Finish(alphas, CountNegatives(members), options.confidence);
}

}  // namespace

absl::StatusOr<BootstrapResult> BootstrapCi(absl::Span<const double> scores,
                                            absl::Span<const uint8_t> members,
                                            absl::Span<const double> alphas,
                                            const BootstrapOptions& options) {
  MIA_RETURN_IF_ERROR(ValidateInputs(scores, members, alphas, options));
  try {
    return BootstrapCiImpl(scores, members, alphas, options);
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError(absl::StrCat("bootstrap: out of memory for ", scores.size(),
                                                     " points and ", options.resamples,
                                                     " replicates"));
  }
}

uint64_t BootstrapPeakBytes(uint64_t points, int resamples, size_t fprs, int threads) {
  if (resamples < 1) return 0;
  const auto add = &SaturatingAdd;
  const auto mul = &SaturatingMul;
  const uint64_t cores = std::max(1u, std::thread::hardware_concurrency());
  uint64_t workers = threads > 0 ? static_cast<uint64_t>(threads) : cores;
  // BootstrapCi starts a thread per 16 replicates at most.
  workers = std::max<uint64_t>(1, std::min<uint64_t>(workers, (resamples + 15) / 16));
  // order (8), label by position (1), tie group ends (8).
  const uint64_t tables = mul(points, 17);
  const uint64_t counts = mul(mul(points, 4), workers);
  const uint64_t replicates =
      mul(static_cast<uint64_t>(resamples), add(17, mul(16, static_cast<uint64_t>(fprs))));
  return add(add(tables, counts), replicates);
}

absl::StatusOr<BootstrapResult> BootstrapCiNaive(absl::Span<const double> scores,
                                                 absl::Span<const uint8_t> members,
                                                 absl::Span<const double> alphas,
                                                 const BootstrapOptions& options) {
  MIA_RETURN_IF_ERROR(ValidateInputs(scores, members, alphas, options));
  const size_t n = scores.size();
  ReplicateSink sink(alphas.size(), options.resamples);
  std::vector<double> resampled_scores(n);
  std::vector<uint8_t> resampled_members(n);
  std::vector<double> tpr(alphas.size());
  const std::vector<size_t> order = DrawOrder(scores);
  for (int r = 0; r < options.resamples; ++r) {
    // The same draws as BootstrapCi, in the same order.
    Rng rng(DeriveSeed(options.seed, static_cast<uint64_t>(r)));
    int64_t positives = 0;
    for (size_t i = 0; i < n; ++i) {
      const size_t idx = order[static_cast<size_t>(rng.UniformInt(n))];
      resampled_scores[i] = scores[idx];
      resampled_members[i] = members[idx];
      positives += members[idx];
    }
    if (positives == 0 || positives == static_cast<int64_t>(n)) {
      sink.AddDegenerate();
      continue;
    }
    MIA_ASSIGN_OR_RETURN(const RocCurve roc, ComputeRoc(resampled_scores, resampled_members));
    MIA_ASSIGN_OR_RETURN(const double auc, Auc(resampled_scores, resampled_members));
    const std::vector<TprAtFpr> at = TprAtFprs(roc, alphas);
    for (size_t k = 0; k < at.size(); ++k) tpr[k] = at[k].tpr;
    sink.Add(auc, tpr);
  }
  return sink.Finish(alphas, CountNegatives(members), options.confidence);
}

}  // namespace mia::metrics
