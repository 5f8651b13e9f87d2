// Timed driver for the language-model engine: trains the demo-size GPT for a
// fixed number of steps, then computes per-token signals with the
// distribution statistics.
//
//   mia_lm_bench [steps=30] [threads=0] [n_layer=4] [n_embd=128] [block=128] [vocab=2000]
//                [batch=16] [texts=256] [models=1]
//
// models > 1 trains that many models (seeds 1..K, the same texts) in one
// call: on T threads they run in min(T, K) lanes of one thread each, and the
// tokens/s printed are all models' together (every step after the first
// step of any model).
//
// Every text is `block` tokens long (random, so only the timing matters), so
// a step sees batch x block tokens. Prints, for training: tokens/s and the
// achieved GFLOP/s, counting per token
//   6 N + 12 n_layer n_embd T
// (Kaplan et al. / nanoGPT's estimate: N the parameters without the position
// table, the tied head included, times 2 for multiply-add and 3 for forward +
// backward; the second term is the attention scores and their weighted sum,
// which have no parameters), timed from the end of the first step to the end
// of the last (no evaluation, no saving, no warm-up step); beside it the
// machine's sgemm rate (torch::mm of 1024 x 1024 floats, best of 10) in the
// same run. For inference: wall seconds of ComputeTokenSignalsMany with
// stats on `texts` texts (batch 16) and the process's peak RSS during it
// (VmHWM after resetting it through /proc/self/clear_refs).
#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/common/random.h"
#include "core/training/engine.h"
#include "core/training/lm_engine.h"

namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

double SgemmGflops() {
  const torch::Tensor a = torch::randn({1024, 1024}), b = torch::randn({1024, 1024});
  torch::Tensor c = torch::mm(a, b);  // warm-up
  double best = 1e30;
  for (int rep = 0; rep < 10; ++rep) {
    const Clock::time_point start = Clock::now();
    c = torch::mm(a, b);
    best = std::min(best, Seconds(start));
  }
  return 2.0 * 1024.0 * 1024.0 * 1024.0 / best / 1e9;
}

// VmHWM (peak resident set) in MiB; resetting it first when `reset`.
double PeakRssMiB(bool reset) {
  if (reset) std::ofstream("/proc/self/clear_refs") << "5";
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::atof(line.c_str() + 6) / 1024.0;
  }
  return -1;
}

}  // namespace

int main(int argc, char** argv) {
  auto arg = [&](int i, int fallback) { return argc > i ? std::atoi(argv[i]) : fallback; };
  const int steps = arg(1, 30), threads = arg(2, 0), n_layer = arg(3, 4), n_embd = arg(4, 128);
  const int block = arg(5, 128), vocab = arg(6, 2000), batch = arg(7, 16), texts = arg(8, 256);
  const int models = arg(9, 1);
  mia::training::SetComputeThreads(threads);
  const int used_threads = torch::get_num_threads();

  mia::training::TokenizedCorpus corpus;
  corpus.vocab_size = vocab;
  corpus.bos_id = 0;
  mia::Rng rng(1);
  const int train_texts = steps * batch;
  for (int i = 0; i < std::max(train_texts, texts) + 16; ++i) {
    std::vector<int32_t> t(block);
    for (int32_t& id : t) id = 1 + static_cast<int32_t>(rng.UniformInt(vocab - 1));
    corpus.tokens.push_back(std::move(t));
  }
  mia::training::LmSpec spec;
  spec.architecture = "gpt";
  spec.n_layer = n_layer;
  spec.n_head = n_embd / 32;
  spec.n_embd = n_embd;
  spec.block_size = block;
  spec.dropout = 0.1;
  mia::training::LmRecipe recipe;
  recipe.learning_rate = 1e-3;
  recipe.batch_size = batch;
  recipe.epochs = 1;
  std::vector<int64_t> train(train_texts), test;
  for (int i = 0; i < train_texts; ++i) train[i] = i;
  for (int i = 0; i < 16; ++i) test.push_back(train_texts + i);

  const std::string dir =
      (std::filesystem::temp_directory_path() / ("mia_lm_bench." + std::to_string(getpid())))
          .string();
  std::filesystem::create_directories(dir);
  const std::string path = dir + "/model.pt";
  std::vector<std::vector<int64_t>> trains(models, train);
  std::vector<uint64_t> seeds;
  std::vector<std::string> paths;
  for (int k = 0; k < models; ++k) {
    seeds.push_back(k + 1);
    paths.push_back(k == 0 ? path : dir + "/model" + std::to_string(k) + ".pt");
  }

  const double sgemm = SgemmGflops();
  Clock::time_point first_step_done;
  Clock::time_point last_step_done;
  int seen = 0;
  mia::training::TrainContext ctx;
  ctx.device = "cpu";
  ctx.progress = [&](int, int, int, int) {
    if (++seen == 1) first_step_done = Clock::now();
    last_step_done = Clock::now();
  };
  const Clock::time_point start = Clock::now();
  auto reports =
      mia::training::TrainLanguageModels(corpus, spec, recipe, trains, test, seeds, paths, ctx);
  const double total_seconds = Seconds(start);
  if (!reports.ok()) {
    std::fprintf(stderr, "training failed: %s\n", reports.status().ToString().c_str());
    return 1;
  }
  const double C = n_embd, L = n_layer, T = block, V = vocab;
  const double params_no_wpe = V * C + L * (12 * C * C + 13 * C) + 2 * C;
  const double flops_per_token = 6 * params_no_wpe + 12 * L * C * T;
  const double timed_steps = seen - 1;
  const double step_seconds =
      std::chrono::duration<double>(last_step_done - first_step_done).count();
  const double tokens = timed_steps * batch * T;
  std::printf(
      "model: gpt n_layer %d n_head %d n_embd %d block %d vocab %d (%.2fM params without wpe)\n",
      n_layer, spec.n_head, n_embd, block, vocab, params_no_wpe / 1e6);
  std::printf("threads: %d; models: %d; batch %d x %d tokens; %d steps (first untimed)\n",
              used_threads, models, batch, block, seen);
  std::printf(
      "train: %.2f s for %.0f timed steps: %.0f tokens/s, %.2f GFLOP/s "
      "(%.2f MFLOP per token); whole call %.2f s\n",
      step_seconds, timed_steps, tokens / step_seconds,
      tokens * flops_per_token / step_seconds / 1e9, flops_per_token / 1e6, total_seconds);
  std::printf("sgemm 1024^3: %.2f GFLOP/s (achieved/sgemm %.0f%%)\n", sgemm,
              100.0 * tokens * flops_per_token / step_seconds / 1e9 / sgemm);

  std::vector<int64_t> indices(texts);
  for (int i = 0; i < texts; ++i) indices[i] = i;
  const double rss_before = PeakRssMiB(/*reset=*/true);
  const Clock::time_point infer_start = Clock::now();
  int64_t scored = 0;
  absl::Status s =
      mia::training::ComputeTokenSignalsMany({path}, spec, corpus, indices, /*with_stats=*/true, 16,
                                             ctx, [&](int, mia::attacks::TokenSignals signals) {
                                               for (int64_t n : signals.lengths) scored += n;
                                               return absl::OkStatus();
                                             });
  const double infer_seconds = Seconds(infer_start);
  if (!s.ok()) {
    std::fprintf(stderr, "signals failed: %s\n", s.ToString().c_str());
    return 1;
  }
  std::printf(
      "signals (lp, mean, var) of %d texts, batch 16: %.3f s, %.0f tokens/s; "
      "peak RSS %.0f MiB (%.0f MiB at the start)\n",
      texts, infer_seconds, scored / infer_seconds, PeakRssMiB(false), rss_before);
  std::filesystem::remove_all(dir);
  return 0;
}
