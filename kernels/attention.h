// Causal grouped-query attention with a flash-style contract: the forward saves the
// log-sum-exp of each score row instead of the probabilities, and the backward recomputes them.
#pragma once
#include "core/tensor.h"

namespace mu {

// n_head % n_kv_head == 0; query head h reads kv head h / (n_head / n_kv_head).
struct AttentionShape {
  int B = 0, T = 0, n_head = 0, n_kv_head = 0, head_dim = 0;
};

// qkv: (B, T, n_head + 2*n_kv_head, D): heads [0, n_head) are q, then n_kv_head k heads,
//      then n_kv_head v heads.
// out: (B, T, n_head, D) =.  lse: (B, n_head, T) F32 = natural log of sum_j exp(scale * q.k_j).
// scale = 1/sqrt(D); position t attends to positions 0..t.
void attention_forward(Tensor out, Tensor lse, Tensor qkv, const AttentionShape& s);
// dqkv: (B, T, n_head + 2*n_kv_head, D) = (dq, dk, dv all written; dk and dv sum over the
// query heads of their group). dout, out: (B, T, n_head, D); lse, qkv as in the forward.
void attention_backward(Tensor dqkv, Tensor dout, Tensor out, Tensor lse, Tensor qkv, const AttentionShape& s);

}  // namespace mu
