#include "model/layout.h"

namespace mu {

std::vector<ParamInfo> llama_param_infos(const LlamaConfig& c) {
  const int64_t V = c.vocab_size, C = c.hidden_size, L = c.num_hidden_layers, F = c.intermediate_size;
  const int64_t qkv = c.q_dim() + 2 * c.kv_dim();
  std::vector<ParamInfo> p = {
      {"embed", {V, C}, true, false},
      {"layers.attn_norm", {L, C}, false, false},
      {"layers.wqkv", {L, qkv, C}, true, true},
      {"layers.wo", {L, C, c.q_dim()}, true, true},
      {"layers.mlp_norm", {L, C}, false, false},
      {"layers.w_gate_up", {L, 2 * F, C}, true, true},
      {"layers.w_down", {L, C, F}, true, true},
      {"final_norm", {C}, false, false},
  };
  if (!c.tie_word_embeddings) p.push_back({"lm_head", {V, C}, true, false});
  return p;
}

void plan_params(ArenaPlan& plan, const LlamaConfig& c, Region region, DType dtype, const std::string& prefix) {
  for (const auto& p : llama_param_infos(c)) plan.add(prefix + p.name, region, dtype, p.shape);
}

LlamaWeights bind_weights(const Arena& arena, const LlamaConfig& c, const std::string& prefix) {
  LlamaWeights w;
  w.embed = arena.get(prefix + "embed");
  w.attn_norm = arena.get(prefix + "layers.attn_norm");
  w.wqkv = arena.get(prefix + "layers.wqkv");
  w.wo = arena.get(prefix + "layers.wo");
  w.mlp_norm = arena.get(prefix + "layers.mlp_norm");
  w.w_gate_up = arena.get(prefix + "layers.w_gate_up");
  w.w_down = arena.get(prefix + "layers.w_down");
  w.final_norm = arena.get(prefix + "final_norm");
  w.lm_head = c.tie_word_embeddings ? w.embed : arena.get(prefix + "lm_head");
  return w;
}

std::vector<std::pair<std::string, Tensor>> LlamaWeights::named(const LlamaConfig& c) const {
  std::vector<std::pair<std::string, Tensor>> v = {
      {"embed", embed},       {"layers.attn_norm", attn_norm}, {"layers.wqkv", wqkv},
      {"layers.wo", wo},      {"layers.mlp_norm", mlp_norm},   {"layers.w_gate_up", w_gate_up},
      {"layers.w_down", w_down}, {"final_norm", final_norm},
  };
  if (!c.tie_word_embeddings) v.push_back({"lm_head", lm_head});
  return v;
}

std::vector<HfView> hf_views(const LlamaWeights& w, const LlamaConfig& c) {
  const int64_t q = c.q_dim(), kv = c.kv_dim(), F = c.intermediate_size;
  std::vector<HfView> v;
  v.push_back({"model.embed_tokens.weight", w.embed});
  for (int l = 0; l < c.num_hidden_layers; l++) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    Tensor qkv = w.wqkv[l], gu = w.w_gate_up[l];
    v.push_back({p + "input_layernorm.weight", w.attn_norm[l]});
    v.push_back({p + "self_attn.q_proj.weight", qkv.rows(0, q)});
    v.push_back({p + "self_attn.k_proj.weight", qkv.rows(q, kv)});
    v.push_back({p + "self_attn.v_proj.weight", qkv.rows(q + kv, kv)});
    v.push_back({p + "self_attn.o_proj.weight", w.wo[l]});
    v.push_back({p + "post_attention_layernorm.weight", w.mlp_norm[l]});
    v.push_back({p + "mlp.gate_proj.weight", gu.rows(0, F)});
    v.push_back({p + "mlp.up_proj.weight", gu.rows(F, F)});
    v.push_back({p + "mlp.down_proj.weight", w.w_down[l]});
  }
  v.push_back({"model.norm.weight", w.final_norm});
  if (!c.tie_word_embeddings) v.push_back({"lm_head.weight", w.lm_head});
  return v;
}

}  // namespace mu
