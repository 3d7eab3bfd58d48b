// The cuda backend: bf16 storage, fp32 accumulation, hand-written kernels plus cuBLASLt.
// Each function has the signature of its public entry (kernels/<op>.h) and is called only by
// that entry, after it validated shapes, devices and the dtypes both backends share (token
// ids I32, lse/rstd/losses F32). These functions check what only the cuda path constrains
// (which dtypes, alignment, head dims) and data-dependent conditions (token ids, targets).
//
// Dtypes: activations and weights are BF16 (the training path) or F32 (every memory-bound
// kernel accepts both, which lets tests separate kernel logic from bf16 rounding); attention
// is BF16 only (tensor-core mma); matmul takes BF16 or F32 operands.
// Plain C++ (no CUDA headers): the entries in kernels/<op>.cpp include it.
#pragma once
#include <vector>

#include "core/tensor.h"
#include "kernels/adamw.h"
#include "kernels/attention.h"
#include "kernels/matmul.h"
#include "kernels/muon.h"

namespace mu {
namespace cuda {

void matmul(const MatmulParams& p);

void embedding_forward(Tensor out, Tensor tokens, Tensor table);
void embedding_backward(Tensor dtable, Tensor tokens, Tensor dout, const int32_t* host_tokens = nullptr);
// The backward in its two halves, so mu-bench can time the device's share alone: the host
// bucketing of N ids (validated against V), then the plan's upload and the kernels (dtable
// and dout must match the prepared N and V). embedding_backward runs both.
void embedding_backward_prepare(const int32_t* host_tokens, int64_t N, int64_t V);
void embedding_backward_prepared(Tensor dtable, Tensor dout);

void rmsnorm_forward(Tensor out, Tensor rstd, Tensor x, Tensor weight, float eps);
void rmsnorm_backward(Tensor dx, Tensor dweight, Tensor dout, Tensor x, Tensor weight, Tensor rstd);
void residual_rmsnorm_forward(Tensor res_out, Tensor out, Tensor rstd, Tensor a, Tensor b, Tensor weight, float eps);

void rope_forward(Tensor qkv, int n_rot_heads, Tensor cos, Tensor sin);
void rope_backward(Tensor dqkv, int n_rot_heads, Tensor cos, Tensor sin);

// rows_per_cta: query rows per block of the forward kernel, 64 or 128 (attention_fwd.cu);
// 0 is kAttentionForwardRows. mu-bench and gpu_attention run both.
constexpr int kAttentionForwardRows = 64;
void attention_forward(Tensor out, Tensor lse, Tensor qkv, const AttentionShape& s, int rows_per_cta = 0);
// dq_rows_per_cta: query rows per block of the dQ kernel (attention_bwd.cu), 64, or 128 at head
// dims up to 64; 0 is kAttentionDqRows. overlap: the dQ kernel runs beside the dK/dV kernel on
// the side stream (runtime.h); false runs them one after the other. Same bits either way.
constexpr int kAttentionDqRows = 64;
void attention_backward(Tensor dqkv, Tensor dout, Tensor out, Tensor lse, Tensor qkv, const AttentionShape& s,
                        int dq_rows_per_cta = 0, bool overlap = true);

void swiglu_forward(Tensor out, Tensor gate_up);
void swiglu_backward(Tensor dgate_up, Tensor dout, Tensor gate_up);

void cross_entropy_forward(Tensor losses, Tensor logits, Tensor targets);
void cross_entropy_forward_backward(Tensor losses, Tensor logits_inout, Tensor targets, float grad_scale);

void add(Tensor out, Tensor a, Tensor b);
void accumulate(Tensor dst, Tensor src);
void scale(Tensor t, float s);
void fill(Tensor t, float v);
void fill_uniform(Tensor t, uint64_t seed, float lo, float hi);  // F32 or BF16 (rounded)
// Either side may be on the cpu (cudaMemcpy); F32 <-> BF16 conversions are done on the
// device when both are cuda tensors, through a host staging buffer otherwise.
void copy(Tensor dst, Tensor src);
double sum_squares(Tensor t);
double sum_squares(const std::vector<Tensor>& ts);

void adamw_update(Tensor param, Tensor grad, Tensor m, Tensor v, const AdamWHyper& h);
void adamw_update_master(Tensor param, Tensor master, Tensor grad, Tensor m, Tensor v, const AdamWHyper& h);

// Muon (kernels/muon.cu): buf, out, x, o, v are F32 (fp32 state and workspace); grad and
// param F32 or BF16. Deterministic (double reductions in a fixed order), no host syncs.
void muon_momentum(const MuonMomentumParams& p);
void frobenius_normalize(Tensor x, double norm_scale, double eps);
void normuon_normalize(const NorMuonParams& p);
void muon_apply(const MuonApplyParams& p);
void mirror_lower_blocks(Tensor x, int64_t block);  // F32 or BF16

// ---- for mu-bench only ------------------------------------------------------------------
// dst = src over `bytes` bytes with a plain 16-byte-per-thread copy kernel (no cudaMemcpy):
// the bandwidth a hand-written streaming kernel can reach. Both 16-byte aligned device
// pointers; bytes a multiple of 16.
void bench_copy_kernel(void* dst, const void* src, size_t bytes);

}  // namespace cuda
}  // namespace mu
