// The fp32 cpu backend: plain C++ (OpenMP where it pays). Each function has the signature
// of its public entry (kernels/<op>.h) and is called only by that entry, after it has
// validated shapes, dtypes (F32, token ids I32) and devices; these functions check nothing
// except data-dependent conditions (token ids, targets).
#pragma once
#include "core/tensor.h"
#include "kernels/attention.h"
#include "kernels/matmul.h"
#include "kernels/rope.h"

namespace mu {
namespace cpu {

void matmul(const MatmulParams& p);

void embedding_forward(Tensor out, Tensor tokens, Tensor table);
void embedding_backward(Tensor dtable, Tensor tokens, Tensor dout);

void rmsnorm_forward(Tensor out, Tensor rstd, Tensor x, Tensor weight, float eps);
void rmsnorm_backward(Tensor dx, Tensor dweight, Tensor dout, Tensor x, Tensor weight, Tensor rstd);

void rope_forward(Tensor qkv, int n_rot_heads, Tensor cos, Tensor sin);
void rope_backward(Tensor dqkv, int n_rot_heads, Tensor cos, Tensor sin);

void attention_forward(Tensor out, Tensor lse, Tensor qkv, const AttentionShape& s);
void attention_backward(Tensor dqkv, Tensor dout, Tensor out, Tensor lse, Tensor qkv, const AttentionShape& s);

void swiglu_forward(Tensor out, Tensor gate_up);
void swiglu_backward(Tensor dgate_up, Tensor dout, Tensor gate_up);

void cross_entropy_forward(Tensor losses, Tensor logits, Tensor targets);
void cross_entropy_forward_backward(Tensor losses, Tensor logits_inout, Tensor targets, float grad_scale);

void add(Tensor out, Tensor a, Tensor b);
void accumulate(Tensor dst, Tensor src);
void scale(Tensor t, float s);
void fill(Tensor t, float v);
void fill_uniform(Tensor t, uint64_t seed, float lo, float hi);
void copy(Tensor dst, Tensor src);
double sum_squares(Tensor t);

}  // namespace cpu
}  // namespace mu
