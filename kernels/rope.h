// Rotary position embedding, Hugging Face "rotate_half" (half-split) convention, applied
// in place to the q and k heads of a fused qkv buffer.
#pragma once
#include <string>

#include "core/tensor.h"

namespace mu {

struct RopeParams {
  int head_dim = 0;          // D (even)
  double theta = 10000.0;    // rope_theta
  std::string scaling_type;  // "" (none) or "llama3"
  // llama3 scaling (transformers' _compute_llama3_parameters)
  double factor = 1, low_freq_factor = 1, high_freq_factor = 4;
  int original_max_position = 8192;
};

// cos, sin: (T, D/2) F32 on the cpu, =. Row t holds position t. Computed in double:
// inv_freq[i] = theta^(-2i/D), then the llama3 rule when asked for.
void rope_tables(Tensor cos, Tensor sin, const RopeParams& p);

// qkv: (B, T, n_heads_total, D). The first n_rot_heads heads (the q heads, then the k heads)
// are rotated in place: for i < D/2, (x1, x2) = (x[i], x[i+D/2]) becomes
// (x1*cos - x2*sin, x2*cos + x1*sin). cos, sin: (T_table, D/2) with T_table >= T; rows
// [0, T) are used.
void rope_forward(Tensor qkv, int n_rot_heads, Tensor cos, Tensor sin);
// The gradient: dqkv (same layout) rotated in place by the negative angle.
void rope_backward(Tensor dqkv, int n_rot_heads, Tensor cos, Tensor sin);

}  // namespace mu
