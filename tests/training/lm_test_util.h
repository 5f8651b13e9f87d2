// Helpers for the language-model tests: tiny corpora and a GPT-2 checkpoint
// in the Hugging Face layout written from a mia model (safetensors by hand).
// LibTorch header: the LM test binary only.
#ifndef MIA_TESTS_TRAINING_LM_TEST_UTIL_H_
#define MIA_TESTS_TRAINING_LM_TEST_UTIL_H_

#include <cstdint>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "core/common/random.h"
#include "core/models/gpt.h"
#include "core/training/lm_engine.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace mia::training::testing {

// `texts` texts of lengths in [min_len, max_len] over tokens 1..vocab-1 (0
// is bos), each from a small Markov chain so there is something to learn.
inline TokenizedCorpus MarkovCorpus(int64_t texts, int min_len, int max_len, int32_t vocab,
                                    uint64_t seed) {
  Rng rng(seed);
  TokenizedCorpus c;
  c.vocab_size = vocab;
  c.bos_id = 0;
  for (int64_t i = 0; i < texts; ++i) {
    const int len = min_len + static_cast<int>(rng.UniformInt(max_len - min_len + 1));
    std::vector<int32_t> t;
    int32_t prev = 1 + static_cast<int32_t>(rng.UniformInt(vocab - 1));
    for (int j = 0; j < len; ++j) {
      t.push_back(prev);
      prev = rng.Uniform01() < 0.6 ? 1 + (prev * 7 + 3) % (vocab - 1)
                                   : 1 + static_cast<int32_t>(rng.UniformInt(vocab - 1));
    }
    c.tokens.push_back(t);
  }
  return c;
}

inline bool IsConv1d(const std::string& name) {
  return absl::EndsWith(name, "attn.c_attn.weight") || absl::EndsWith(name, "attn.c_proj.weight") ||
         absl::EndsWith(name, "mlp.c_fc.weight") || absl::EndsWith(name, "mlp.c_proj.weight");
}

// Writes `model` (no adapters) as dir/config.json + dir/model.safetensors
// (F32; names without "transformer." when !prefix; Conv1D weights [in, out]).
inline void WriteHfCheckpoint(const models::Gpt& model, const std::string& dir, bool prefix) {
  const models::GptConfig& c = model.config();
  nlohmann::json config = {{"n_layer", c.n_layer},       {"n_head", c.n_head},
                           {"n_embd", c.n_embd},         {"n_positions", c.block_size},
                           {"vocab_size", c.vocab_size}, {"layer_norm_epsilon", c.layer_norm_eps}};
  std::ofstream(dir + "/config.json") << config.dump();
  nlohmann::json header = nlohmann::json::object();
  std::string data;
  for (const models::NamedTensor& t : model.State()) {
    torch::Tensor v = t.value.detach().cpu().to(torch::kFloat32);
    if (IsConv1d(t.name)) v = v.t();
    v = v.contiguous();
    const std::string name = prefix ? t.name : t.name.substr(std::string("transformer.").size());
    const size_t begin = data.size();
    data.append(static_cast<const char*>(v.data_ptr()), v.numel() * sizeof(float));
    header[name] = {
        {"dtype", "F32"}, {"shape", v.sizes().vec()}, {"data_offsets", {begin, data.size()}}};
  }
  const std::string text = header.dump();
  std::string bytes(8, '\0');
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>((text.size() >> (8 * i)) & 0xFF);
  bytes += text + data;
  std::ofstream out(dir + "/model.safetensors", std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good());
}

}  // namespace mia::training::testing

#endif  // MIA_TESTS_TRAINING_LM_TEST_UTIL_H_
