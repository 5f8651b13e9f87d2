// The sequence (language-model) attacks of ATTACKS.md, "Sequences": zlib,
// Min-K%, Min-K%++ and the reference loss, and the sequence loss that feeds
// the classifier attacks (LOSS, Attack-P, Attack-R, LiRA, RMIA) on texts.
//
// How an audit of language models calls them. Simplest, with every check and
// metric: stack the per-model TokenSignals (StackTokenSignals), make a
// bundle's arrays (audit::LanguageModelBundleArrays, core/audit/bundle.h),
// load them (audit::BundleFromArrays) and score (audit::ScoreBundle); the
// same arrays written with io::WriteNpz are a bundle `mia score` reads.
// Directly: build the audit points' SignalSet with SequenceSignalSet(tokens)
// (and the population's, for Attack-P and RMIA); set AttackInput.audit /
// .population to them, AttackInput.tokens to the audit TokenSignals and, for
// zlib, AttackInput.compressed_sizes to ZlibCompressedSizes(texts). Every
// registered attack then runs through Attack::Run as for classifiers.
//
// Plain functions on plain data; safe from any thread.
#ifndef MIA_CORE_ATTACKS_SEQUENCE_ATTACKS_H_
#define MIA_CORE_ATTACKS_SEQUENCE_ATTACKS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "core/attacks/attack.h"
#include "core/attacks/token_signals.h"

namespace mia::attacks {

// loss_m(x) = -(1/T) sum_t lp_m(x, t) over the scored positions, summed in
// double, as a [M, N] tensor (one query). A sum above 0 (log-probs rounded
// above 0 within tolerance) gives loss 0, never a negative loss.
SignalTensor SequenceLoss(const TokenSignals& tokens);

// The SignalSet the classifier attacks read on texts: the sequence loss in
// `kinds` (all three by default) as loss, p = exp(-loss) and
// phi = -loss - log(-expm1(-loss)) (ConvertSignal).
SignalSet SequenceSignalSet(const TokenSignals& tokens,
                            absl::Span<const SignalKind> kinds = {
                                SignalKind::kProb, SignalKind::kLogitScaled, SignalKind::kLoss});

// Zl(x): the byte length of zlib's compress2 at level 6 of each text (UTF-8).
absl::StatusOr<std::vector<int64_t>> ZlibCompressedSizes(absl::Span<const std::string> texts);

// n = max(1, floor(k T)) for k in (0, 1]. k T is computed so that a product
// that is an integer in exact decimal arithmetic (0.2 x 5, 0.57 x 100) is not
// floored one below it by binary rounding (0.57 * 100 = 56.99999999999999).
int64_t MinKCount(double k, int64_t length);

// What each attack needs (the registry declares the same).
// Fields: signal, references, in_references, population, min_per_side,
// token_logprobs, token_stats, texts.
inline constexpr AttackNeeds kZlibNeeds{
    SignalKind::kLoss, false, false, false, 1, false, false, true};
inline constexpr AttackNeeds kMinKNeeds{
    SignalKind::kLoss, false, false, false, 1, true, false, false};
inline constexpr AttackNeeds kMinKPlusPlusNeeds{
    SignalKind::kLoss, false, false, false, 1, true, true, false};
inline constexpr AttackNeeds kLmReferenceNeeds{
    SignalKind::kLoss, true, false, false, 1, false, false, false};

// zlib: score = -loss_t(x) / Zl(x). Needs the sequence loss and compressed_sizes.
absl::StatusOr<AttackOutput> ZlibAttack(const AttackInput& input);

// Min-K%: score = mean of the MinKCount(k, T) smallest lp_t(x, t).
absl::StatusOr<AttackOutput> MinKAttack(const AttackInput& input, double k);

// Min-K%++: z_t = (lp_t - mu_t) / sqrt(var_t) (0 where var_t = 0); score =
// mean of the MinKCount(k, T) smallest z_t.
absl::StatusOr<AttackOutput> MinKPlusPlusAttack(const AttackInput& input, double k);

// Reference loss: score = mean over the OUT references r of loss_r(x), minus
// loss_t(x), every point with the same number of OUT references
// (ReferenceSelection; ATTACKS.md, "Corrections"). Points with no OUT
// reference are excluded (NaN). Reads only the loss signal, so it runs on any
// loss, a classifier's too; averaged over queries.
absl::StatusOr<AttackOutput> LmReferenceAttack(const AttackInput& input);

}  // namespace mia::attacks

#endif  // MIA_CORE_ATTACKS_SEQUENCE_ATTACKS_H_
