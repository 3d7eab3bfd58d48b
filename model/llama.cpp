#include "model/llama.h"

#include <cmath>

#include "core/rng.h"
#include "core/transfer.h"
#include "kernels/attention.h"
#include "kernels/cross_entropy.h"
#include "kernels/elementwise.h"
#include "kernels/embedding.h"
#include "kernels/matmul.h"
#include "kernels/rmsnorm.h"
#include "kernels/rope.h"
#include "kernels/scratch.h"
#include "kernels/swiglu.h"

namespace mu {

namespace {

std::string layer_name(const char* what, int l) { return std::string("act.") + what + "." + std::to_string(l); }

// y (M, N) = x (M, K) @ W^T (+ res), W (N, K): a linear layer without bias.
void linear(Tensor y, Tensor x, Tensor w, Tensor res = Tensor()) {
  MatmulParams p;
  p.out = y;
  p.a = x;
  p.b = w;
  p.trans_b = true;
  if (!res.empty()) {
    p.c = res;
    p.beta = 1.0f;
  }
  matmul(p);
}
// y = res + x @ W^T, the forward's residual adds. On cuda cuBLASLt adds res in its epilogue
// (beta = 1 reading c = res): no separate pass over (N, C), and one bf16 rounding instead of
// two. The cpu GEMM would first copy res into y (a pass of its own, and the sum in another
// order), so there it stays a GEMM into tmp and an add, as its recorded results were made.
// The plan decides: it gives F32 (cpu) models a tmp and bf16 (cuda) ones none.
void linear_residual(Tensor y, Tensor x, Tensor w, Tensor res, Tensor tmp) {
  if (!tmp.empty()) {
    linear(tmp, x, w);
    add(y, res, tmp);
    return;
  }
  linear(y, x, w, res);
}
// dx (M, K) = dy (M, N) @ W (N, K)
void linear_dx(Tensor dx, Tensor dy, Tensor w) {
  MatmulParams p;
  p.out = dx;
  p.a = dy;
  p.b = w;
  matmul(p);
}
// dW (N, K) += dy^T (N, M) @ x (M, K)
void linear_dw(Tensor dw, Tensor dy, Tensor x) {
  MatmulParams p;
  p.out = dw;
  p.a = dy;
  p.b = x;
  p.trans_a = true;
  p.beta = 1.0f;
  matmul(p);
}

RopeParams rope_params(const LlamaConfig& c) {
  RopeParams r;
  r.head_dim = c.head_dim;
  r.theta = c.rope_theta;
  r.scaling_type = c.rope_scaling.type;
  r.factor = c.rope_scaling.factor;
  r.low_freq_factor = c.rope_scaling.low_freq_factor;
  r.high_freq_factor = c.rope_scaling.high_freq_factor;
  r.original_max_position = c.rope_scaling.original_max_position_embeddings;
  return r;
}

}  // namespace

void Llama::plan(ArenaPlan& plan, const LlamaConfig& c, LlamaShape s, bool training, DType param_dtype) {
  MU_CHECK(s.B > 0 && s.T > 0, "batch shape must be positive (B=%d, T=%d)", s.B, s.T);
  const int64_t N = static_cast<int64_t>(s.B) * s.T, C = c.hidden_size, F = c.intermediate_size;
  const int64_t H = c.num_attention_heads, qkv = c.q_dim() + 2 * c.kv_dim(), V = c.vocab_size;
  const DType act = param_dtype;
  plan_params(plan, c, Region::Weights, param_dtype, "param.");
  if (training) plan_params(plan, c, Region::Grads, param_dtype, "grad.");
  const Region A = Region::Activations;
  plan.add("act.tokens", A, DType::I32, {N});
  plan.add("act.targets", A, DType::I32, {N});
  plan.add("act.rope_cos", A, DType::F32, {s.T, c.head_dim / 2});
  plan.add("act.rope_sin", A, DType::F32, {s.T, c.head_dim / 2});
  for (int l = 0; l <= c.num_hidden_layers; l++) plan.add(layer_name("res", l), A, act, {N, C});  // residual stream
  for (int l = 0; l < c.num_hidden_layers; l++) {
    plan.add(layer_name("ln1", l), A, act, {N, C});
    plan.add(layer_name("rstd1", l), A, DType::F32, {N});
    plan.add(layer_name("qkv", l), A, act, {N, qkv});  // after RoPE
    plan.add(layer_name("att", l), A, act, {N, c.q_dim()});
    plan.add(layer_name("lse", l), A, DType::F32, {s.B, H, s.T});
    plan.add(layer_name("hmid", l), A, act, {N, C});  // residual after attention
    plan.add(layer_name("ln2", l), A, act, {N, C});
    plan.add(layer_name("rstd2", l), A, DType::F32, {N});
    plan.add(layer_name("gate_up", l), A, act, {N, 2 * F});
    plan.add(layer_name("act", l), A, act, {N, F});
  }
  plan.add("act.lnf", A, act, {N, C});
  plan.add("act.rstdf", A, DType::F32, {N});
  plan.add("act.logits", A, act, {N, V});
  plan.add("act.losses", A, DType::F32, {N});
  // The projection before its residual add: only the cpu (F32) path has one (linear_residual;
  // bf16 means cuda, where the add rides on the GEMM).
  if (act == DType::F32) plan.add("act.tmp", A, act, {N, C});
  if (training) {
    const Region W = Region::Workspace;
    plan.add("bwd.dres", W, act, {N, C});
    plan.add("bwd.dln", W, act, {N, C});
    plan.add("bwd.dqkv", W, act, {N, qkv});
    plan.add("bwd.datt", W, act, {N, c.q_dim()});
    plan.add("bwd.dgate_up", W, act, {N, 2 * F});
    plan.add("bwd.dact", W, act, {N, F});
    // the device scratch of the backward's ops (kernels/scratch.h)
    plan.need_scratch(scratch_bytes_rmsnorm_backward(N, C));
    plan.need_scratch(scratch_bytes_attention_backward(
        AttentionShape{s.B, s.T, c.num_attention_heads, c.num_key_value_heads, c.head_dim}));
    plan.need_scratch(scratch_bytes_embedding_backward(N, C));
  }
}

Llama::Llama(const LlamaConfig& c, const Arena& arena, LlamaShape s, bool training)
    : cfg_(c), shape_(s), training_(training) {
  w_ = bind_weights(arena, c, "param.");
  if (training) g_ = bind_weights(arena, c, "grad.");
  tokens_ = arena.get("act.tokens");
  targets_ = arena.get("act.targets");
  for (int l = 0; l <= c.num_hidden_layers; l++) res_.push_back(arena.get(layer_name("res", l)));
  for (int l = 0; l < c.num_hidden_layers; l++) {
    ln1_.push_back(arena.get(layer_name("ln1", l)));
    rstd1_.push_back(arena.get(layer_name("rstd1", l)));
    qkv_.push_back(arena.get(layer_name("qkv", l)));
    att_.push_back(arena.get(layer_name("att", l)));
    lse_.push_back(arena.get(layer_name("lse", l)));
    hmid_.push_back(arena.get(layer_name("hmid", l)));
    ln2_.push_back(arena.get(layer_name("ln2", l)));
    rstd2_.push_back(arena.get(layer_name("rstd2", l)));
    gate_up_.push_back(arena.get(layer_name("gate_up", l)));
    act_.push_back(arena.get(layer_name("act", l)));
  }
  lnf_ = arena.get("act.lnf");
  rstdf_ = arena.get("act.rstdf");
  logits_ = arena.get("act.logits").view({s.B, s.T, c.vocab_size});
  losses_ = arena.get("act.losses");
  if (arena.has("act.tmp")) tmp_ = arena.get("act.tmp");
  rope_cos_ = arena.get("act.rope_cos");
  rope_sin_ = arena.get("act.rope_sin");
  // RoPE tables are computed once on the host (double precision) for positions 0..T-1.
  HostTensor cos_h = HostTensor::f32(rope_cos_.shape), sin_h = HostTensor::f32(rope_sin_.shape);
  rope_tables(cos_h, sin_h, rope_params(c));
  copy_from_host(rope_cos_, cos_h.f32());
  copy_from_host(rope_sin_, sin_h.f32());
  if (training) {
    dres_ = arena.get("bwd.dres");
    dln_ = arena.get("bwd.dln");
    dqkv_ = arena.get("bwd.dqkv");
    datt_ = arena.get("bwd.datt");
    dgate_up_ = arena.get("bwd.dgate_up");
    dact_ = arena.get("bwd.dact");
  }
}

void Llama::init_random(uint64_t seed, double std) {
  Rng rng(seed);
  for (const auto& [name, t] : w_.named(cfg_)) {
    std::vector<float> host(static_cast<size_t>(t.numel()));
    const bool is_norm = name.find("norm") != std::string::npos;
    for (float& x : host) x = is_norm ? 1.0f : static_cast<float>(rng.normal() * std);
    if (t.dtype == DType::F32) {
      copy_from_host(t, host.data());
    } else {
      std::vector<char> raw(t.nbytes());
      convert_from_f32(raw.data(), t.dtype, host.data(), host.size());
      copy_from_host(t, raw.data());
    }
  }
}

void Llama::set_batch(const int32_t* tokens, const int32_t* targets) {
  copy_from_host(tokens_, tokens);
  // Kept for the embedding backward, which buckets the ids on the host (kernels/embedding.h).
  host_tokens_.assign(tokens, tokens + tokens_.numel());
  has_targets_ = targets != nullptr;
  if (targets) copy_from_host(targets_, targets);
}

double Llama::embed_and_blocks() {
  const LlamaConfig& c = cfg_;
  const float eps = static_cast<float>(c.rms_norm_eps);
  const AttentionShape as{shape_.B, shape_.T, c.num_attention_heads, c.num_key_value_heads, c.head_dim};
  const int heads_total = c.num_attention_heads + 2 * c.num_key_value_heads;
  embedding_forward(res_[0], tokens_, w_.embed);
  for (int l = 0; l < c.num_hidden_layers; l++) {
    // attention block: hmid = res + o_proj(attn(rope(qkv(rmsnorm(res)))))
    rmsnorm_forward(ln1_[l], rstd1_[l], res_[l], w_.attn_norm[l], eps);
    linear(qkv_[l], ln1_[l], w_.wqkv[l]);
    Tensor qkv4 = qkv_[l].view({shape_.B, shape_.T, heads_total, c.head_dim});
    rope_forward(qkv4, c.num_attention_heads + c.num_key_value_heads, rope_cos_, rope_sin_);
    attention_forward(att_[l].view({shape_.B, shape_.T, c.num_attention_heads, c.head_dim}), lse_[l], qkv4, as);
    linear_residual(hmid_[l], att_[l], w_.wo[l], res_[l], tmp_);
    // MLP block: res' = hmid + down(silu(gate(n)) * up(n)), n = rmsnorm(hmid)
    rmsnorm_forward(ln2_[l], rstd2_[l], hmid_[l], w_.mlp_norm[l], eps);
    linear(gate_up_[l], ln2_[l], w_.w_gate_up[l]);
    swiglu_forward(act_[l], gate_up_[l]);
    linear_residual(res_[l + 1], act_[l], w_.w_down[l], hmid_[l], tmp_);
  }
  rmsnorm_forward(lnf_, rstdf_, res_[c.num_hidden_layers], w_.final_norm, eps);
  const int64_t N = static_cast<int64_t>(shape_.B) * shape_.T;
  linear(logits_.view({N, c.vocab_size}), lnf_, w_.lm_head);
  return 0.0;
}

double Llama::mean_loss() const {
  std::vector<float> l = to_host_f32(losses_);
  double s = 0;
  for (float x : l) s += x;
  return s / static_cast<double>(l.size());
}

double Llama::forward() {
  embed_and_blocks();
  if (!has_targets_) return 0.0;
  const int64_t N = static_cast<int64_t>(shape_.B) * shape_.T;
  cross_entropy_forward(losses_, logits_.view({N, cfg_.vocab_size}), targets_);
  return mean_loss();
}

void Llama::backward(float grad_scale) {
  MU_CHECK(training_, "backward() on a model planned without gradients");
  MU_CHECK(has_targets_, "backward() needs targets in set_batch()");
  const LlamaConfig& c = cfg_;
  const int64_t N = static_cast<int64_t>(shape_.B) * shape_.T;
  const AttentionShape as{shape_.B, shape_.T, c.num_attention_heads, c.num_key_value_heads, c.head_dim};
  const int heads_total = c.num_attention_heads + 2 * c.num_key_value_heads;
  // Head: logits become dlogits = grad_scale * (softmax - onehot) in place.
  Tensor dlogits = logits_.view({N, c.vocab_size});
  cross_entropy_forward_backward(losses_, dlogits, targets_, grad_scale);
  linear_dx(dln_, dlogits, w_.lm_head);
  linear_dw(g_.lm_head, dlogits, lnf_);  // tied: g_.lm_head is g_.embed
  fill(dres_, 0.0f);
  rmsnorm_backward(dres_, g_.final_norm, dln_, res_[c.num_hidden_layers], w_.final_norm, rstdf_);
  for (int l = c.num_hidden_layers - 1; l >= 0; l--) {
    // MLP block; dres holds d(res[l+1]) and becomes d(hmid).
    linear_dx(dact_, dres_, w_.w_down[l]);
    linear_dw(g_.w_down[l], dres_, act_[l]);
    swiglu_backward(dgate_up_, dact_, gate_up_[l]);
    linear_dx(dln_, dgate_up_, w_.w_gate_up[l]);
    linear_dw(g_.w_gate_up[l], dgate_up_, ln2_[l]);
    rmsnorm_backward(dres_, g_.mlp_norm[l], dln_, hmid_[l], w_.mlp_norm[l], rstd2_[l]);
    // Attention block; dres becomes d(res[l]).
    linear_dx(datt_, dres_, w_.wo[l]);
    linear_dw(g_.wo[l], dres_, att_[l]);
    Tensor qkv4 = qkv_[l].view({shape_.B, shape_.T, heads_total, c.head_dim});
    Tensor dqkv4 = dqkv_.view(qkv4.shape);
    attention_backward(dqkv4, datt_.view({shape_.B, shape_.T, c.num_attention_heads, c.head_dim}),
                       att_[l].view({shape_.B, shape_.T, c.num_attention_heads, c.head_dim}), lse_[l], qkv4, as);
    rope_backward(dqkv4, c.num_attention_heads + c.num_key_value_heads, rope_cos_, rope_sin_);
    linear_dx(dln_, dqkv_, w_.wqkv[l]);
    linear_dw(g_.wqkv[l], dqkv_, ln1_[l]);
    rmsnorm_backward(dres_, g_.attn_norm[l], dln_, res_[l], w_.attn_norm[l], rstd1_[l]);
    if (layer_hook_) layer_hook_(l);
  }
  embedding_backward(g_.embed, tokens_, dres_, host_tokens_.data());
}

double Llama::forward_backward(float grad_scale) {
  embed_and_blocks();
  backward(grad_scale);
  return mean_loss();
}

void Llama::zero_grads() {
  MU_CHECK(training_, "zero_grads() on a model planned without gradients");
  for (const auto& [name, t] : g_.named(cfg_)) fill(t, 0.0f);
}

}  // namespace mu
