// The Llama model: Hugging Face LlamaForCausalLM math (DESIGN.md §3) on the op API, so the
// same code runs on either backend. Parameters, gradients and activations live in an Arena
// planned by Llama::plan(); forward/backward allocate nothing.
#pragma once
#include <functional>
#include <vector>

#include "core/arena.h"
#include "model/config.h"
#include "model/layout.h"

namespace mu {

struct LlamaShape {
  int B = 1;  // sequences per micro-batch
  int T = 1;  // tokens per sequence
};

class Llama {
 public:
  // Adds parameters ("param."), gradients ("grad.", when training) and the activations of a
  // B x T micro-batch ("act.") to the plan. `param_dtype` is F32 on the cpu backend.
  static void plan(ArenaPlan& plan, const LlamaConfig& c, LlamaShape s, bool training, DType param_dtype = DType::F32);

  Llama(const LlamaConfig& c, const Arena& arena, LlamaShape s, bool training);

  const LlamaConfig& config() const { return cfg_; }
  LlamaShape shape() const { return shape_; }
  LlamaWeights& weights() { return w_; }
  LlamaWeights& grads() { return g_; }
  bool training() const { return training_; }

  // HF initialisation (LlamaPreTrainedModel._init_weights): every matrix and the embedding
  // ~ N(0, std^2), norm gains 1. Deterministic in `seed`.
  void init_random(uint64_t seed, double std = 0.02);

  // tokens, targets: host int32 arrays of B*T ids (targets may be null). Copied into the arena;
  // ids are validated against the vocabulary by the ops.
  void set_batch(const int32_t* tokens, const int32_t* targets);

  // Forward pass over the current batch; keeps logits (B, T, V) readable through logits().
  // Returns the mean cross-entropy over B*T positions when targets were given, else 0.
  double forward();
  // After forward(): the gradient of grad_scale * sum(losses) accumulated into grads()
  // (grad_scale = 1/(B*T) for the mean loss; divide further for gradient accumulation).
  // Turns the logits into dlogits in place.
  void backward(float grad_scale);
  // forward() + backward() without keeping logits; the training path. Returns the mean loss.
  double forward_backward(float grad_scale);
  // Called by backward() as soon as layer l's weight gradients are final (l = L-1 down to 0,
  // before the embedding's): data parallel starts that layer's gradient reduction there, so it
  // overlaps the rest of the backward pass. Empty (the default): no calls.
  void set_layer_grads_hook(std::function<void(int)> hook) { layer_hook_ = std::move(hook); }
  void zero_grads();

  Tensor logits() const { return logits_; }  // (B, T, V)
  Tensor losses() const { return losses_; }  // (B*T) per-position losses of the last forward

 private:
  double embed_and_blocks();
  double mean_loss() const;

  LlamaConfig cfg_;
  LlamaShape shape_;
  bool training_;
  bool has_targets_ = false;
  LlamaWeights w_, g_;
  // Saved activations, one entry per layer; shapes in llama.cpp's plan().
  std::vector<int32_t> host_tokens_;  // the batch's ids as set_batch received them
  std::vector<Tensor> res_, ln1_, rstd1_, qkv_, att_, lse_, hmid_, ln2_, rstd2_, gate_up_, act_;
  Tensor tokens_, targets_, lnf_, rstdf_, logits_, losses_, tmp_, rope_cos_, rope_sin_;
  // Backward scratch.
  Tensor dres_, dln_, dqkv_, datt_, dgate_up_, dact_;
  std::function<void(int)> layer_hook_;
};

}  // namespace mu
