#include "tools/lib_eval.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <numeric>

#include "core/cuda_check.h"
#include "core/fileio.h"
#include "core/rng.h"
#include "core/safetensors.h"
#include "core/transfer.h"
#include "model/checkpoint.h"
#include "model/llama.h"
#include "train/dataloader.h"
#include "train/shards.h"

namespace mu {

Device parse_device(const std::string& s) {
  if (s == "cpu") return Device::CPU;
  if (s == "cuda") {
    MU_CHECK(cuda_device_count() > 0, "--device cuda: no CUDA device is usable here (no GPU or no driver); use --device cpu");
    return Device::CUDA;
  }
  MU_FAIL("--device must be cpu or cuda, got '%s'", s.c_str());
}

namespace {

// The (B, T+1) integer tensor "tokens" of a safetensors file, as int32.
std::vector<int32_t> read_tokens(const std::string& path, int* B, int* T1) {
  SafetensorsFile f(path);
  MU_CHECK(f.has("tokens"), "%s: no tensor named 'tokens'", path.c_str());
  const StTensorInfo& t = f.get("tokens");
  MU_CHECK(t.dtype == DType::I32 || t.dtype == DType::I64 || t.dtype == DType::U16 || t.dtype == DType::U32,
           "%s: tensor 'tokens' has dtype %s; expected an integer type (I32, I64, U16, U32)", path.c_str(),
           dtype_name(t.dtype));
  MU_CHECK(t.shape.ndim == 2 && t.shape[0] >= 1 && t.shape[1] >= 2,
           "%s: tensor 'tokens' has shape %s; expected (B, T+1) with B >= 1 and T >= 1", path.c_str(),
           t.shape.str().c_str());
  *B = static_cast<int>(t.shape[0]);
  *T1 = static_cast<int>(t.shape[1]);
  // Integers up to 2^24 are exact in float32; larger ids are rejected below by the vocab check
  // only if they lose precision, so read the raw values for the wide types instead.
  std::vector<int32_t> out(static_cast<size_t>(t.shape.numel()));
  for (size_t i = 0; i < out.size(); i++) {
    int64_t v = 0;
    switch (t.dtype) {
      case DType::I32: { int32_t x; std::memcpy(&x, static_cast<const char*>(t.data) + 4 * i, 4); v = x; break; }
      case DType::I64: { int64_t x; std::memcpy(&x, static_cast<const char*>(t.data) + 8 * i, 8); v = x; break; }
      case DType::U16: { uint16_t x; std::memcpy(&x, static_cast<const char*>(t.data) + 2 * i, 2); v = x; break; }
      default: { uint32_t x; std::memcpy(&x, static_cast<const char*>(t.data) + 4 * i, 4); v = x; break; }
    }
    MU_CHECK(v >= INT32_MIN && v <= INT32_MAX, "%s: tokens[%zu] = %lld does not fit a token id", path.c_str(), i,
             static_cast<long long>(v));
    out[i] = static_cast<int32_t>(v);
  }
  return out;
}

struct LoadedModel {
  LlamaConfig cfg;
  std::unique_ptr<Arena> arena;
  std::unique_ptr<Llama> model;
};

LoadedModel load_model(const std::string& path, int B, int T, bool training, Device dev) {
  LoadedModel m;
  m.cfg = checkpoint_config(path);
  ArenaPlan plan;
  // cuda: bf16 weights and activations (the values are rounded from the checkpoint's).
  Llama::plan(plan, m.cfg, {B, T}, training, dev == Device::CUDA ? DType::BF16 : DType::F32);
  size_t budget = host_available_bytes(), total = 0;
  if (dev == Device::CUDA) cuda_mem_info(&budget, &total);
  m.arena = std::make_unique<Arena>(plan, dev, budget, "lower the batch size or sequence length");
  m.model = std::make_unique<Llama>(m.cfg, *m.arena, LlamaShape{B, T}, training);
  load_checkpoint_weights(path, m.cfg, m.model->weights());
  return m;
}

}  // namespace

void eval_dump(const std::string& model, const std::string& tokens, const std::string& out, bool grads, bool params,
               Device dev) {
  // The writer replaces --out whole: naming an input would lose it.
  MU_CHECK(!same_file(out, model), "--out %s is the same file as --model %s; give another --out", out.c_str(),
           model.c_str());
  MU_CHECK(!same_file(out, tokens), "--out %s is the same file as --tokens %s; give another --out", out.c_str(),
           tokens.c_str());
  LlamaConfig cfg = checkpoint_config(model);
  int B, T1;
  std::vector<int32_t> tok = read_tokens(tokens, &B, &T1);
  const int T = T1 - 1;
  for (size_t i = 0; i < tok.size(); i++)
    MU_CHECK(tok[i] >= 0 && tok[i] < cfg.vocab_size, "%s: tokens[%zu, %zu] = %d is outside the vocabulary [0, %d)",
             tokens.c_str(), i / T1, i % T1, tok[i], cfg.vocab_size);
  std::vector<int32_t> inputs, targets;
  for (int b = 0; b < B; b++)
    for (int t = 0; t < T; t++) {
      inputs.push_back(tok[static_cast<size_t>(b) * T1 + t]);
      targets.push_back(tok[static_cast<size_t>(b) * T1 + t + 1]);
    }
  LoadedModel lm = load_model(model, B, T, grads, dev);
  Llama& m = *lm.model;
  m.set_batch(inputs.data(), targets.data());
  const double loss = m.forward();
  std::fprintf(stderr, "mu-eval: %s B=%d T=%d loss %.6f\n", cfg.summary().c_str(), B, T, loss);

  std::vector<HostTensor> keep;  // the writer holds pointers until write()
  SafetensorsWriter w;
  auto add_host = [&](const std::string& name, const Tensor& t) {
    keep.emplace_back(DType::F32, t.shape);
    std::vector<float> v = to_host_f32(t);
    std::memcpy(keep.back().f32(), v.data(), v.size() * sizeof(float));
    w.add(name, keep.back());
  };
  add_host("logits", m.logits());
  keep.emplace_back(DType::F32, Shape{});
  keep.back().f32()[0] = static_cast<float>(loss);
  w.add("loss", keep.back());
  if (params)
    for (const HfView& v : hf_views(m.weights(), cfg)) add_host(v.hf_name, v.view);
  if (grads) {
    m.zero_grads();
    m.backward(1.0f / static_cast<float>(static_cast<int64_t>(B) * T));
    for (const HfView& v : hf_views(m.grads(), cfg)) add_host("grad." + v.hf_name, v.view);
  }
  w.set_metadata("model", model);
  w.write(out);
  std::fprintf(stderr, "mu-eval: wrote %s\n", out.c_str());
}

DataEvalResult eval_data(const std::string& model, const std::string& glob, int B, int T, int64_t max_batches,
                         Device dev) {
  LlamaConfig cfg = checkpoint_config(model);
  if (T > cfg.max_position_embeddings)
    std::fprintf(stderr, "mu-eval: warning: --seq-len %d exceeds max_position_embeddings %d\n", T,
                 cfg.max_position_embeddings);
  ShardSet data(glob, cfg.vocab_size);
  DataLoader loader(data, LoaderConfig{B, T, false, 0});
  int64_t n = loader.batches_per_epoch();
  if (max_batches > 0) n = std::min(n, max_batches);
  LoadedModel lm = load_model(model, B, T, false, dev);
  std::vector<int32_t> in(static_cast<size_t>(B) * T), tg(in.size());
  DataEvalResult r;
  double loss_sum = 0;
  int64_t correct = 0;
  for (int64_t i = 0; i < n; i++) {
    loader.next(in.data(), tg.data());
    lm.model->set_batch(in.data(), tg.data());
    loss_sum += lm.model->forward();
    std::vector<float> logits = to_host_f32(lm.model->logits());
    const int V = cfg.vocab_size;
    for (size_t p = 0; p < in.size(); p++) {
      const float* row = logits.data() + p * V;
      correct += (std::max_element(row, row + V) - row) == tg[p];
    }
    if ((i + 1) % 10 == 0 || i + 1 == n)
      std::fprintf(stderr, "\rmu-eval: %lld/%lld batches, loss %.4f", static_cast<long long>(i + 1),
                   static_cast<long long>(n), loss_sum / (i + 1));
  }
  std::fprintf(stderr, "\n");
  r.tokens = n * static_cast<int64_t>(B) * T;
  r.loss = loss_sum / static_cast<double>(n);
  r.accuracy = static_cast<double>(correct) / static_cast<double>(r.tokens);
  return r;
}

std::string sample_text(const std::string& model, const SampleOptions& s, Device dev) {
  // Options, then the model, then the first byte on stdout: a failed run prints no prompt.
  MU_CHECK(s.max_new_tokens > 0, "--max-new-tokens must be positive");
  MU_CHECK(std::isfinite(s.temperature) && s.temperature >= 0, "--temperature must be a finite number >= 0, got %g",
           s.temperature);
  MU_CHECK(s.top_k >= 0, "--top-k must be >= 0");
  MU_CHECK(s.context >= 0, "--context must be >= 0 (0: the model's max_position_embeddings, capped at 1024), got %d",
           s.context);
  MU_CHECK(!s.prompt.empty(), "--prompt must not be empty");
  LlamaConfig cfg = checkpoint_config(model);
  // Prompt bytes are fed as token ids: right only for a byte-vocabulary model. Any other
  // vocabulary needs its own tokenizer, which --sample does not have.
  MU_CHECK(cfg.vocab_size == 256,
           "%s: --sample uses the byte tokenizer (token id = byte value, vocab_size 256) but the model's vocab_size "
           "is %d; export it with mu-convert --to-hf and sample with transformers", model.c_str(), cfg.vocab_size);
  if (s.context > cfg.max_position_embeddings)
    std::fprintf(stderr, "mu-eval: warning: --context %d exceeds max_position_embeddings %d\n", s.context,
                 cfg.max_position_embeddings);
  std::vector<int32_t> ctx;
  for (unsigned char ch : s.prompt) ctx.push_back(ch);
  int window = s.context > 0 ? s.context : std::min(cfg.max_position_embeddings, 1024);
  // Only as long as needed: the prompt plus what we generate, within the window.
  window = static_cast<int>(std::min<int64_t>(window, static_cast<int64_t>(ctx.size()) + s.max_new_tokens));
  LoadedModel lm = load_model(model, 1, window, false, dev);
  std::fputs(s.prompt.c_str(), stdout);
  Rng rng(s.seed);
  std::string out;
  std::vector<int32_t> buf(static_cast<size_t>(window));
  std::vector<std::pair<float, int>> cand;
  for (int i = 0; i < s.max_new_tokens; i++) {
    // The last `window` tokens, zero-padded on the right: causal attention means the padding
    // never influences the position we read.
    const size_t start = ctx.size() > static_cast<size_t>(window) ? ctx.size() - window : 0;
    const int len = static_cast<int>(ctx.size() - start);
    std::fill(buf.begin(), buf.end(), 0);
    std::copy(ctx.begin() + start, ctx.end(), buf.begin());
    lm.model->set_batch(buf.data(), nullptr);
    lm.model->forward();
    std::vector<float> logits = to_host_f32(lm.model->logits());
    const float* row = logits.data() + static_cast<size_t>(len - 1) * cfg.vocab_size;
    int next;
    if (s.temperature == 0) {
      next = static_cast<int>(std::max_element(row, row + 256) - row);
    } else {
      cand.clear();
      for (int v = 0; v < 256; v++) cand.push_back({row[v], v});  // byte ids only
      const int k = s.top_k > 0 ? std::min(s.top_k, 256) : 256;
      std::partial_sort(cand.begin(), cand.begin() + k, cand.end(), std::greater<>());
      cand.resize(k);
      const double mx = cand[0].first;
      std::vector<double> p(k);
      double z = 0;
      for (int j = 0; j < k; j++) z += p[j] = std::exp((cand[j].first - mx) / s.temperature);
      double u = rng.uniform() * z;
      int j = 0;
      while (j < k - 1 && (u -= p[j]) > 0) j++;
      next = cand[j].second;
    }
    ctx.push_back(next);
    out.push_back(static_cast<char>(next));
    std::fputc(next, stdout);
    std::fflush(stdout);
  }
  std::fputc('\n', stdout);
  return out;
}

}  // namespace mu
