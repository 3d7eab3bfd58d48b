// mu-eval: forward (and backward) dumps of an engine checkpoint on a batch of tokens,
// speaking Hugging Face tensor names so results compare directly with HF/PyTorch.
#include <cstdio>
#include <cstring>

#include "core/cli.h"
#include "core/safetensors.h"
#include "core/transfer.h"
#include "model/checkpoint.h"
#include "model/llama.h"

using namespace mu;

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
  std::vector<float> v(static_cast<size_t>(t.shape.numel()));
  HostTensor h = HostTensor::f32(t.shape);
  f.read_f32("tokens", h);
  std::vector<int32_t> out(v.size());
  for (size_t i = 0; i < out.size(); i++) out[i] = static_cast<int32_t>(h.f32()[i]);
  return out;
}

Device parse_device(const std::string& s) {
  if (s == "cpu") return Device::CPU;
  if (s == "cuda") return Device::CUDA;
  MU_FAIL("--device must be cpu or cuda, got '%s'", s.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  return run_main("mu-eval", [&] {
    std::string model, tokens, out, device = "cpu";
    bool grads = false, params = false;
    Cli cli("mu-eval", "Evaluate an llm.mu checkpoint on a token batch; dump logits, loss, gradients.");
    cli.add_string("model", &model, "FILE", "engine checkpoint (.safetensors)");
    cli.add_string("tokens", &tokens, "FILE", "safetensors with an integer tensor 'tokens' of shape (B, T+1)");
    cli.add_string("out", &out, "FILE", "output safetensors: logits (B,T,V) F32, loss F32 scalar");
    cli.add_flag("grads", &grads, "also write grad.<HF name> for every parameter (gradient of the mean loss)");
    cli.add_flag("params", &params, "also write every parameter as <HF name>");
    cli.add_string("device", &device, "cpu|cuda", "backend to run on");
    if (!cli.parse(argc, argv)) return 0;
    MU_CHECK(!model.empty() && !tokens.empty() && !out.empty(), "--model, --tokens and --out are required (see --help)");
    const Device dev = parse_device(device);
    MU_CHECK(dev == Device::CPU, "--device cuda: the cuda backend is not built yet; use --device cpu");

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

    ArenaPlan plan;
    Llama::plan(plan, cfg, {B, T}, grads);
    Arena arena(plan, dev, dev == Device::CPU ? host_available_bytes() : 0, "lower B or T in the tokens file");
    Llama m(cfg, arena, {B, T}, grads);
    load_checkpoint_weights(model, cfg, m.weights());
    m.set_batch(inputs.data(), targets.data());
    const double loss = m.forward();
    std::fprintf(stderr, "mu-eval: %s B=%d T=%d loss %.6f\n", cfg.summary().c_str(), B, T, loss);

    std::vector<HostTensor> keep;
    SafetensorsWriter w;
    auto add_host = [&](const std::string& name, const Tensor& t, Shape shape) {
      keep.emplace_back(DType::F32, shape);
      std::vector<float> v = to_host_f32(t);
      std::memcpy(keep.back().f32(), v.data(), v.size() * sizeof(float));
      w.add(name, keep.back());
    };
    add_host("logits", m.logits(), m.logits().shape);
    keep.emplace_back(DType::F32, Shape{});
    keep.back().f32()[0] = static_cast<float>(loss);
    w.add("loss", keep.back());
    if (params)
      for (const HfView& v : hf_views(m.weights(), cfg)) add_host(v.hf_name, v.view, v.view.shape);
    if (grads) {
      m.zero_grads();
      m.backward(1.0f / static_cast<float>(static_cast<int64_t>(B) * T));
      for (const HfView& v : hf_views(m.grads(), cfg)) add_host("grad." + v.hf_name, v.view, v.view.shape);
    }
    w.set_metadata("model", model);
    w.write(out);
    std::fprintf(stderr, "mu-eval: wrote %s\n", out.c_str());
    return 0;
  });
}
