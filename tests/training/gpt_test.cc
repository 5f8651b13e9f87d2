// The GPT model, its LoRA adapters, and GPT-2 checkpoints in the Hugging Face
// layout (safetensors parsed by hand, checked against a NumPy forward pass).
#include "core/models/gpt.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/models/safetensors.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/training/lm_test_util.h"
#include "tests/training/test_data.h"

namespace mia::models {
namespace {

using ::testing::HasSubstr;
using training::testing::TestDir;
using training::testing::WriteHfCheckpoint;

GptConfig Tiny() {
  GptConfig c;
  c.n_layer = 2;
  c.n_head = 2;
  c.n_embd = 16;
  c.block_size = 12;
  c.vocab_size = 23;
  return c;
}

torch::Tensor Tokens(int64_t b, int64_t t, int64_t vocab, uint64_t seed) {
  return torch::randint(vocab, {b, t}, torch::make_generator<at::CPUGeneratorImpl>(seed),
                        torch::kInt64);
}

int64_t Count(const GptConfig& c) {
  const int64_t C = c.n_embd;
  return c.vocab_size * C + c.block_size * C + c.n_layer * (12 * C * C + 13 * C) + 2 * C;
}

TEST(GptTest, Gpt2SizesAndParameterCount) {
  // GPT-2 small has 124,439,808 parameters with the head tied (Hugging Face's count).
  GptConfig gpt2 = *Gpt2Size("gpt2");
  EXPECT_EQ(Count(gpt2), 124439808);
  EXPECT_EQ(Gpt2Size("gpt2-medium")->n_layer, 24);
  EXPECT_EQ(Gpt2Size("gpt2-large")->n_embd, 1280);
  EXPECT_EQ(Gpt2Size("gpt2-xl")->n_head, 25);
  EXPECT_EQ(Gpt2Size("gpt2-xl")->block_size, 1024);
  EXPECT_EQ(Gpt2Size("gpt3").status().code(), absl::StatusCode::kInvalidArgument);
  Initializer init(1);
  Gpt model(Tiny(), init);
  int64_t n = 0;
  for (const NamedTensor& t : model.State()) n += t.value.numel();
  EXPECT_EQ(n, Count(Tiny()));
}

TEST(GptTest, ParameterNamesAreHuggingFaces) {
  GptConfig c = Tiny();
  c.n_layer = 1;
  Initializer init(1);
  Gpt model(c, init);
  std::vector<std::string> names;
  for (const NamedTensor& t : model.State()) names.push_back(t.name);
  EXPECT_THAT(names, ::testing::ElementsAre(
                         "transformer.wte.weight", "transformer.wpe.weight",
                         "transformer.h.0.ln_1.weight", "transformer.h.0.ln_1.bias",
                         "transformer.h.0.attn.c_attn.weight", "transformer.h.0.attn.c_attn.bias",
                         "transformer.h.0.attn.c_proj.weight", "transformer.h.0.attn.c_proj.bias",
                         "transformer.h.0.ln_2.weight", "transformer.h.0.ln_2.bias",
                         "transformer.h.0.mlp.c_fc.weight", "transformer.h.0.mlp.c_fc.bias",
                         "transformer.h.0.mlp.c_proj.weight", "transformer.h.0.mlp.c_proj.bias",
                         "transformer.ln_f.weight", "transformer.ln_f.bias"));
  EXPECT_EQ(model.State()[4].value.sizes(), (std::vector<int64_t>{48, 16}));  // [out, in]
  // The shapes the checkpoint reader expects are the model's own.
  Initializer init2(1);
  Gpt two(Tiny(), init2);
  const auto shapes = GptParameterShapes(Tiny());
  const auto state = two.State();
  ASSERT_EQ(shapes.size(), state.size());
  for (size_t i = 0; i < shapes.size(); ++i) {
    EXPECT_EQ(shapes[i].first, state[i].name);
    EXPECT_EQ(shapes[i].second, state[i].value.sizes().vec()) << state[i].name;
  }
}

TEST(GptTest, SameSeedSameWeights) {
  Initializer a(7), b(7), c(8);
  Gpt x(Tiny(), a), y(Tiny(), b), z(Tiny(), c);
  EXPECT_TRUE(torch::equal(x.State()[4].value, y.State()[4].value));
  EXPECT_FALSE(torch::equal(x.State()[4].value, z.State()[4].value));
}

TEST(GptTest, CausalAndPaddingFree) {
  Initializer init(3);
  Gpt model(Tiny(), init);
  model.eval();
  torch::NoGradGuard no_grad;
  const torch::Tensor idx = Tokens(3, 10, 23, 5);
  const torch::Tensor full = model.forward(idx);  // [3, 10, 23]
  ASSERT_EQ(full.sizes(), (std::vector<int64_t>{3, 10, 23}));
  // A prefix's logits do not depend on what follows it.
  const torch::Tensor prefix = model.forward(idx.slice(1, 0, 6));
  EXPECT_TRUE(torch::allclose(prefix, full.slice(1, 0, 6), 1e-5, 1e-6));
  // Changing the last token changes only the last position.
  torch::Tensor other = idx.clone();
  other.index_put_({0, 9}, (idx.index({0, 9}) + 1) % 23);
  const torch::Tensor changed = model.forward(other);
  EXPECT_TRUE(torch::allclose(changed.slice(1, 0, 9), full.slice(1, 0, 9), 1e-5, 1e-6));
  // One text alone equals the same text in a batch.
  EXPECT_TRUE(torch::allclose(model.forward(idx.slice(0, 1, 2)), full.slice(0, 1, 2), 1e-5, 1e-6));
}

TEST(GptTest, DropoutNeedsItsGeneratorAndRepeats) {
  GptConfig c = Tiny();
  c.dropout = 0.2;
  Initializer init(3);
  Gpt model(c, init);
  model.train();
  const torch::Tensor idx = Tokens(2, 8, 23, 5);
  EXPECT_THROW(model.forward(idx), std::exception);
  model.set_dropout_generator(MakeGenerator(9));
  const torch::Tensor first = model.forward(idx);
  model.set_dropout_generator(MakeGenerator(9));
  EXPECT_TRUE(torch::equal(first, model.forward(idx)));
  model.eval();
  EXPECT_FALSE(torch::allclose(first, model.forward(idx)));
}

TEST(GptTest, LoraStartsAtTheBaseAndMergesExactly) {
  Initializer init(3);
  Gpt model(Tiny(), init);
  model.eval();
  torch::NoGradGuard no_grad;
  const torch::Tensor idx = Tokens(2, 9, 23, 5);
  const torch::Tensor base = model.forward(idx);
  LoraConfig lora;
  lora.rank = 4;
  lora.alpha = 8;
  lora.target_modules = {"c_attn", "c_proj"};  // c_proj: attn's and mlp's, as peft
  Initializer lora_init(4);
  ASSERT_TRUE(model.AddLora(lora, lora_init).ok());
  EXPECT_TRUE(torch::equal(model.forward(idx), base));  // B = 0
  std::vector<NamedTensor> adapters = model.LoraState();
  ASSERT_EQ(adapters.size(), 2u * 3 * 2);  // per layer: c_attn, attn.c_proj, mlp.c_proj; A and B
  EXPECT_EQ(adapters[0].name, "transformer.h.0.attn.c_attn.lora_A");
  EXPECT_EQ(adapters[0].value.sizes(), (std::vector<int64_t>{4, 16}));
  EXPECT_EQ(adapters[1].value.sizes(), (std::vector<int64_t>{48, 4}));
  for (const NamedTensor& t : model.State()) {
    const bool adapter = t.name.find(".lora_") != std::string::npos;
    EXPECT_EQ(t.value.requires_grad(), adapter) << t.name;
  }
  for (NamedTensor& t : adapters) {
    if (t.name.find("lora_B") != std::string::npos) t.value.normal_(0, 0.3);
  }
  const torch::Tensor adapted = model.forward(idx);
  EXPECT_FALSE(torch::allclose(adapted, base, 1e-3, 1e-3));
  // Merged: W + (alpha / r) B A in a plain model computes the same.
  Initializer none = Initializer::None();
  Gpt merged(Tiny(), none);
  ASSERT_TRUE(LoadGptState(model.MergedState(), merged).ok());
  merged.eval();
  EXPECT_TRUE(torch::allclose(merged.forward(idx), adapted, 1e-4, 1e-5));
  // And by the definition on one weight.
  const auto state = model.State();
  auto find = [&](const std::vector<NamedTensor>& s, const std::string& name) {
    for (const NamedTensor& t : s) {
      if (t.name == name) return t.value;
    }
    return torch::Tensor();
  };
  const std::string w = "transformer.h.1.mlp.c_proj.";
  const torch::Tensor expect =
      find(state, w + "weight") +
      2.0 * torch::mm(find(state, w + "lora_B"), find(state, w + "lora_A"));
  EXPECT_TRUE(torch::allclose(find(merged.State(), w + "weight"), expect, 1e-6, 1e-6));
  // Unmatched targets are an error, as in peft.
  Gpt other(Tiny(), init);
  lora.target_modules = {"q_proj"};
  EXPECT_EQ(other.AddLora(lora, lora_init).code(), absl::StatusCode::kInvalidArgument);
}

TEST(GptTest, LoraTrainingLeavesTheBaseUntouched) {
  Initializer init(3);
  Gpt model(Tiny(), init);
  LoraConfig lora;
  lora.rank = 2;
  lora.target_modules = {"c_attn", "c_fc"};
  Initializer lora_init(4);
  ASSERT_TRUE(model.AddLora(lora, lora_init).ok());
  std::vector<NamedTensor> before;
  for (const NamedTensor& t : model.State()) before.push_back({t.name, t.value.detach().clone()});
  std::vector<torch::Tensor> trainable;
  for (const torch::Tensor& p : model.parameters()) {
    if (p.requires_grad()) trainable.push_back(p);
  }
  torch::optim::AdamW opt(trainable, torch::optim::AdamWOptions(1e-2).weight_decay(0.1));
  model.train();
  const torch::Tensor idx = Tokens(4, 10, 23, 5);
  for (int step = 0; step < 5; ++step) {
    opt.zero_grad();
    torch::Tensor logits = model.forward(idx.slice(1, 0, 9));
    torch::Tensor loss =
        torch::nn::functional::cross_entropy(logits.flatten(0, 1), idx.slice(1, 1, 10).flatten());
    loss.backward();
    opt.step();
  }
  const std::vector<NamedTensor> after = model.State();
  for (size_t i = 0; i < after.size(); ++i) {
    const bool adapter = after[i].name.find(".lora_") != std::string::npos;
    EXPECT_EQ(torch::equal(after[i].value, before[i].value), !adapter) << after[i].name;
  }
}

// Checkpoints --------------------------------------------------------------

constexpr char kPython[] = "/usr/bin/python3";

bool RunCommand(const std::string& command) {
  const int rc = std::system(command.c_str());
  return rc != -1 && WIFEXITED(rc) && WEXITSTATUS(rc) == 0;
}

std::string ReadBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

class GptCheckpointTest : public ::testing::TestWithParam<std::pair<const char*, int>> {};

// NumPy (python3-numpy) is a test dependency: its absence is a failure, not a skip.
TEST_P(GptCheckpointTest, LogitsMatchANumPyForwardPass) {
  const auto [dtype, prefix] = GetParam();
  const std::string dir = TestDir() + "/ckpt";
  const std::string script = std::string(MIA_SOURCE_DIR) + "/tests/training/gpt2_reference.py";
  ASSERT_TRUE(RunCommand(absl::StrCat(kPython, " ", script, " ", dir, " ", dtype, " ", prefix)))
      << "needs " << kPython << " with numpy (scripts/install-deps.sh)";
  absl::StatusOr<Gpt2Checkpoint> ckpt = ReadGpt2Checkpoint(dir);
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  EXPECT_EQ(ckpt->config.n_layer, 2);
  EXPECT_EQ(ckpt->config.block_size, 12);
  EXPECT_EQ(ckpt->config.vocab_size, 23);
  EXPECT_EQ(ckpt->sha256.size(), 64u);
  Initializer none = Initializer::None();
  Gpt model(ckpt->config, none);
  ASSERT_TRUE(LoadGptState(ckpt->weights, model).ok());
  model.eval();
  const std::string tokens = ReadBytes(dir + "/tokens.bin");
  const std::string logits = ReadBytes(dir + "/logits.bin");
  ASSERT_EQ(tokens.size(), 2u * 10 * 8);
  ASSERT_EQ(logits.size(), 2u * 10 * 23 * 8);
  torch::Tensor idx = torch::from_blob(const_cast<char*>(tokens.data()), {2, 10}, torch::kInt64);
  torch::Tensor expect =
      torch::from_blob(const_cast<char*>(logits.data()), {2, 10, 23}, torch::kFloat64);
  torch::NoGradGuard no_grad;
  const torch::Tensor got = model.forward(idx.clone()).to(torch::kFloat64);
  EXPECT_LT((got - expect).abs().max().item<double>(), 1e-4);
}

INSTANTIATE_TEST_SUITE_P(Dtypes, GptCheckpointTest,
                         ::testing::Values(std::make_pair("F32", 1), std::make_pair("F32", 0),
                                           std::make_pair("F16", 0), std::make_pair("BF16", 1)));

TEST(GptCheckpointErrorsTest, RoundTripAndHostileFiles) {
  const std::string dir = TestDir();
  Initializer init(3);
  Gpt model(Tiny(), init);
  WriteHfCheckpoint(model, dir, false);
  absl::StatusOr<Gpt2Checkpoint> ckpt = ReadGpt2Checkpoint(dir);
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  for (size_t i = 0; i < ckpt->weights.size(); ++i) {
    EXPECT_TRUE(torch::equal(ckpt->weights[i].value, model.State()[i].value))
        << ckpt->weights[i].name;
  }
  const std::string good = ReadBytes(dir + "/model.safetensors");
  auto write = [&](const std::string& bytes) {
    std::ofstream(dir + "/model.safetensors", std::ios::binary | std::ios::trunc) << bytes;
  };
  auto error = [&]() { return ReadGpt2Checkpoint(dir).status(); };
  // Truncated data: the last tensor's offsets run past the end.
  write(good.substr(0, good.size() - 4));
  absl::Status s = error();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("data_offsets"));
  // A header length beyond the file.
  std::string bad = good;
  bad[5] = 1;
  write(bad);
  EXPECT_THAT(error().message(), HasSubstr("header length"));
  // A tensor whose byte count does not match its shape names the tensor and offset.
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<uint8_t>(good[i]);
  nlohmann::json header = nlohmann::json::parse(good.substr(8, n));
  auto rewrite = [&](const nlohmann::json& h) {
    std::string text = h.dump();
    std::string bytes(8, '\0');
    for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>((text.size() >> (8 * i)) & 0xFF);
    write(bytes + text + good.substr(8 + n));
  };
  nlohmann::json h = header;
  h["ln_f.bias"]["shape"] = {17};
  rewrite(h);
  s = error();
  EXPECT_THAT(s.message(), HasSubstr("tensor 'ln_f.bias' at byte offset"));
  // An unsupported dtype of a needed tensor.
  h = header;
  h["ln_f.bias"]["dtype"] = "I32";
  rewrite(h);
  EXPECT_THAT(error().message(), HasSubstr("has dtype I32"));
  // A missing tensor, an unknown one, an untied head.
  h = header;
  h.erase("h.1.mlp.c_fc.bias");
  rewrite(h);
  EXPECT_THAT(error().message(), HasSubstr("'transformer.h.1.mlp.c_fc.bias' is missing"));
  h = header;
  h["h.0.attn.extra"] = header["ln_f.bias"];
  rewrite(h);
  EXPECT_THAT(error().message(), HasSubstr("not part of a GPT-2 model"));
  h = header;
  h["lm_head.weight"] = header["wpe.weight"];
  rewrite(h);
  EXPECT_THAT(error().message(), HasSubstr("lm_head.weight"));
  // Shapes that disagree with config.json.
  h = header;
  h["h.0.attn.c_attn.weight"]["shape"] = {48, 16};  // nn.Linear's layout, not Conv1D's
  rewrite(h);
  EXPECT_THAT(error().message(), HasSubstr("config.json implies [16, 48]"));
  write("");
  EXPECT_EQ(error().code(), absl::StatusCode::kInvalidArgument);
  std::filesystem::remove(dir + "/model.safetensors");
  EXPECT_EQ(error().code(), absl::StatusCode::kNotFound);
}

TEST(GptSafetensorsTest, IndexChecks) {
  auto parse = [](const std::string& json, int64_t data) {
    std::string bytes(8, '\0');
    for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>((json.size() >> (8 * i)) & 0xFF);
    bytes += json + std::string(data, '\0');
    return ParseSafetensorsIndex(bytes, bytes.size(), "x.safetensors");
  };
  absl::StatusOr<SafetensorsIndex> ok = parse(
      R"({"a":{"dtype":"F16","shape":[2,3],"data_offsets":[0,12]},"__metadata__":{"k":"v"}})", 12);
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->tensors.size(), 1u);
  EXPECT_EQ(ok->tensors.at("a").bytes, 12);
  EXPECT_GT(ok->tensors.at("a").begin, 8);
  EXPECT_EQ(ok->tensors.at("a").type, StoredType::kF16);
  EXPECT_THAT(
      parse(R"({"a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,12]}})", 12).status().message(),
      HasSubstr("tensor 'a' at byte offset"));
  EXPECT_THAT(
      parse(R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", 4).status().message(),
      HasSubstr("bad shape"));
  EXPECT_THAT(
      parse(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}})", 4).status().message(),
      HasSubstr("outside the data"));
  EXPECT_THAT(parse(R"({"a":{"dtype":"F32","shape":[1]}})", 4).status().message(),
              HasSubstr("data_offsets"));
  EXPECT_THAT(parse("{not json", 0).status().message(), HasSubstr("not valid JSON"));
  EXPECT_THAT(parse("[1]", 0).status().message(), HasSubstr("not a JSON object"));
  EXPECT_FALSE(ParseSafetensorsIndex("1234", 4, "x").ok());
}

TEST(GptSafetensorsTest, Gpt2Config) {
  absl::StatusOr<Gpt2FileConfig> c = ParseGpt2Config(
      R"({"n_layer":2,"n_head":2,"n_embd":8,"n_ctx":16,"vocab_size":5,"layer_norm_epsilon":1e-6})",
      "config.json");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->n_positions, 16);
  EXPECT_EQ(c->layer_norm_epsilon, 1e-6);
  EXPECT_THAT(ParseGpt2Config(R"({"n_layer":2,"n_head":3,"n_embd":8,"n_ctx":16,"vocab_size":5})",
                              "config.json")
                  .status()
                  .message(),
              HasSubstr("divisible"));
  EXPECT_THAT(ParseGpt2Config(R"({"n_layer":2,"n_head":2,"n_embd":8,"vocab_size":5})", "c.json")
                  .status()
                  .message(),
              HasSubstr("no n_ctx"));
  EXPECT_THAT(
      ParseGpt2Config(R"({"n_layer":0,"n_head":2,"n_embd":8,"n_ctx":4,"vocab_size":5})", "c.json")
          .status()
          .message(),
      HasSubstr("n_layer must be a positive integer"));
}

}  // namespace
}  // namespace mia::models
