// The engine's parameter layout. Per-layer tensors are stacked as (L, ...) so same-shape
// matrices form strided batches (Muon orthogonalizes them together). Within a layer the
// projections keep Hugging Face's (out_features, in_features) orientation, fused by rows:
//   layers.wqkv      (L, (H + 2*Hkv)*D, C)  rows: q_proj | k_proj | v_proj
//   layers.w_gate_up (L, 2F, C)             rows: gate_proj | up_proj
// so every HF tensor is one contiguous row range and loads without permutation.
#pragma once
#include <string>
#include <vector>

#include "core/arena.h"
#include "model/config.h"

namespace mu {

struct ParamInfo {
  std::string name;  // engine name, e.g. "layers.wqkv"
  Shape shape;
  bool weight_decay;   // 2-D matrices (per layer) decay; norm gains do not
  bool hidden_matrix;  // routed to Muon: q, k, v, o, gate, up, down
};

// All parameters in layout order (the order of the flat weights/grads buffers).
std::vector<ParamInfo> llama_param_infos(const LlamaConfig& c);

// Adds every parameter as "<prefix><name>" to the plan.
void plan_params(ArenaPlan& plan, const LlamaConfig& c, Region region, DType dtype, const std::string& prefix);

struct LlamaWeights {
  Tensor embed;       // (V, C)
  Tensor attn_norm;   // (L, C)
  Tensor wqkv;        // (L, (H + 2*Hkv)*D, C)
  Tensor wo;          // (L, C, H*D)
  Tensor mlp_norm;    // (L, C)
  Tensor w_gate_up;   // (L, 2F, C)
  Tensor w_down;      // (L, C, F)
  Tensor final_norm;  // (C)
  Tensor lm_head;     // (V, C); when tied, the same memory as embed

  // Every distinct parameter tensor with its engine name, in layout order (lm_head only if untied).
  std::vector<std::pair<std::string, Tensor>> named(const LlamaConfig& c) const;
};

LlamaWeights bind_weights(const Arena& arena, const LlamaConfig& c, const std::string& prefix);

// One Hugging Face tensor as a view into the engine layout (same shape and orientation as HF).
struct HfView {
  std::string hf_name;  // e.g. "model.layers.3.self_attn.k_proj.weight"
  Tensor view;
};
// Every HF parameter of the model, in HF order; tied models have no lm_head.weight.
std::vector<HfView> hf_views(const LlamaWeights& w, const LlamaConfig& c);

}  // namespace mu
