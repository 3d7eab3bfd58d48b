// The element-wise and per-matrix pieces of a Muon step (optim/muon.h runs them; the
// orthogonalization itself is batched matmul, kernels/matmul.h). Each op works on one
// logical matrix W (A, B) = (out features, in features), or on a batch of them, and reads
// as the formulas of issue 5 / DESIGN.md §6:
//   muon_momentum        buf and U from the gradient (sgd | ema, Nesterov on/off), U written
//                        straight into the orthogonalization workspace (transposed when tall)
//   frobenius_normalize  X = X / (||X||_F * scale + eps), per batch item, the sum in fp32 or wider
//   normuon_normalize    NorMuon: per-neuron second moment, norm-preserving rescale
//   muon_apply           weight decay (decoupled | cautious | none) and W -= lr * scale * O
//   mirror_lower_blocks  completes a symmetric product computed block by block above the
//                        diagonal (optim/orthogonalize.cpp)
#pragma once
#include <cstdint>

#include "core/tensor.h"

namespace mu {

enum class MomentumKind : uint8_t { Sgd, Ema };
enum class WeightDecayKind : uint8_t { Decoupled, Cautious, None };

struct MuonMomentumParams {
  Tensor buf;   // (A, B) momentum buffer, updated in place
  Tensor grad;  // (A, B) read only; multiplied by grad_scale first (G = grad * grad_scale)
  Tensor out;   // U: (A, B), or (B, A) when transpose_out
  MomentumKind kind = MomentumKind::Sgd;
  float mu = 0.95f;  // momentum coefficient
  bool nesterov = true;
  bool transpose_out = false;
  float grad_scale = 1.0f;  // the global-norm clipping factor
};
// sgd: buf = mu*buf + G;            U = G + mu*buf (Nesterov) or U = buf
// ema: buf = buf + (1-mu)*(G - buf); U = G + mu*(buf - G) (Nesterov) or U = buf
void muon_momentum(const MuonMomentumParams& p);

// x: (batch, m, n); each item X_i = X_i / (||X_i||_F * norm_scale + eps). The norm is summed in
// double on the cpu (fp32 or wider on any backend: this is the "normalise in fp32" step that
// precedes a bf16 cast on the GPU).
void frobenius_normalize(Tensor x, double norm_scale, double eps);

struct NorMuonParams {
  Tensor o;  // (m, n) orthogonalized update, rescaled in place
  Tensor v;  // second moment S: m entries when per_row (one per row), else n (one per column)
  float beta2 = 0.95f;
  bool per_row = true;
};
// v_k = mean(O^2) over row k (per_row) or column k; S = S + (1-beta2)*(v - S);
// O' = O / sqrt(max(S, 1e-10)) along that axis; O'' = O' * ||O||_F / ||O'||_F, and O'' = 0
// when ||O'||_F == 0 (an all-zero gradient gives a zero update, not NaN).
void normuon_normalize(const NorMuonParams& p);

struct MuonApplyParams {
  Tensor param;  // W (A, B), updated in place
  Tensor o;      // O (A, B), or (B, A) when o_transposed
  bool o_transposed = false;
  double lr = 0.0;     // the Muon group's scheduled LR
  double scale = 1.0;  // the shape-dependent LR scale (--muon-lr-scale)
  double weight_decay = 0.0;
  WeightDecayKind wd_kind = WeightDecayKind::Decoupled;
};
// decoupled: W = W*(1 - lr*wd), then W = W - lr*scale*O
// cautious:  W = W - lr*wd*[O*W >= 0]*W - lr*scale*O   (the mask from W before the step)
// none:      W = W - lr*scale*O
void muon_apply(const MuonApplyParams& p);

// x: (batch, m, m) symmetric matrices of which only the blocks on and above the diagonal of a
// grid of `block` x `block` blocks hold values (the last block row and column may be narrower).
// Writes every block below the diagonal as the transpose of its mirror: x[i][j] = x[j][i]
// wherever i / block > j / block. The diagonal blocks are left as they are. F32 on the cpu,
// F32 or BF16 on cuda (an exact copy either way).
void mirror_lower_blocks(Tensor x, int64_t block);

}  // namespace mu
