// Orthogonalizers for Muon: Newton-Schulz 5 (Keller Jordan's quintic) and Polar Express
// (Amsel, Persson, Musco, Gower, arXiv 2505.16932). Both run the same odd quintic step
//   A' = X X^T;  B' = b A' + c A' A';  X = a X + B' X
// on a batch of wide matrices X (m <= n; the caller transposes tall ones), as three batched
// matmuls per step (kernels/matmul.h, so the cuda backend gets strided-batched GEMMs), after a
// Frobenius normalisation done in fp32 or wider (kernels/muon.h frobenius_normalize).
#pragma once
#include <string>
#include <vector>

#include "core/tensor.h"

namespace mu {

enum class OrthoKind : uint8_t { Ns5, PolarExpress };

OrthoKind parse_ortho(const std::string& s);  // "ns5" | "polar_express"
const char* ortho_name(OrthoKind k);

struct QuinticCoeffs {
  double a, b, c;
};

// The (a, b, c) of each of `steps` iterations (steps >= 1):
//   ns5: (3.4445, -4.7750, 2.0315) every step.
//   polar_express: modded-nanogpt's five tuples (computed for 5 iterations with a 2% safety
//   factor, KellerJordan/modded-nanogpt train_gpt.py); fewer steps use the first `steps`
//   tuples, more steps repeat the last tuple, the rule of the Polar Express reference code
//   (NoahAmsel/PolarExpress polar_express.py: coeffs[:steps] + repeat(coeffs[-1])).
std::vector<QuinticCoeffs> ortho_coefficients(OrthoKind k, int steps);

// X is first divided by ||X||_F * norm_scale + eps:
//   ns5 1 and 1e-7 (Keller Jordan's Muon); polar_express 1.02 and 1e-6 (modded-nanogpt).
struct OrthoNormalisation {
  double norm_scale, eps;
};
OrthoNormalisation ortho_normalisation(OrthoKind k);

// Scratch for a batch of `batch` (m, n) matrices, contiguous. Its dtype picks the precision:
//   F32 (both backends): x2, gram, poly F32; xb unused;
//   BF16 (cuda only, the fast path): x2, gram, poly and xb BF16. X is normalised in fp32, then
//   rounded to bf16 (xb) and iterated with bf16 operands and fp32 accumulation (cuBLASLt
//   strided-batched), as Keller Jordan's Muon runs its iteration in bf16; the result is
//   written back to x in fp32.
struct OrthoWorkspace {
  Tensor x2;    // (batch, m, n): the next iterate (ping-pong with x, or with xb)
  Tensor gram;  // (batch, m, m): A' = X X^T
  Tensor poly;  // (batch, m, m): B' = b A' + c A'A'
  Tensor xb;    // (batch, m, n) BF16: the rounded iterate (BF16 workspaces only)
};

// The products X X^T and A'A' = A' A'^T are symmetric. cuBLASLt has no symmetric (SYRK-like)
// bf16 product, so from kSymmetricMinRows rows on they are computed as GEMMs of the blocks on
// and above the diagonal of a 2 x 2 grid (3 of 4 blocks), the fourth block copied transposed
// (mirror_lower_blocks): 3.5 m^2 n + 1.5 m^3 FLOPs per step instead of 4 m^2 n + 2 m^3. Below
// that the smaller GEMMs and the extra launches would cost more than they save (a guess until
// mu-bench --muon measures both on a GPU). The FLOP accounting of mu-bench stays the issue's
// 4 m^2 n + 2 m^3.
constexpr int64_t kSymmetricMinRows = 1024;

// Orthogonalizes every item of x (batch, m, n) F32, m <= n, in place: normalise, then `steps`
// quintic iterations. The workspace tensors must have matching shapes. `symmetric_blocks`
// splits the symmetric products into that many block rows (1: whole GEMMs); 0 chooses
// default_symmetric_blocks(m).
int default_symmetric_blocks(int64_t m);  // 2 from kSymmetricMinRows rows on, else 1
void orthogonalize(Tensor x, const OrthoWorkspace& ws, OrthoKind kind, int steps, int symmetric_blocks = 0);

// out = alpha * X X^T + beta * c for every item: X (batch, m, k), out (batch, m, m) and c (out's
// shape; empty when beta == 0; it may be X's own memory) of one dtype. With blocks > 1, GEMMs
// of the blocks on and above the diagonal of a grid of ceil(m / blocks) rows rounded up to a
// multiple of 8 (fewer blocks when that covers m sooner; whole when one block would), then
// the mirror copy: c must then be symmetric (only its blocks on and above the diagonal are read).
void symmetric_product(Tensor out, Tensor x, float alpha, float beta, Tensor c, int blocks);

// ||X X^T - I||_F / sqrt(m) of one (m, n) matrix, m <= n (0 for an exactly semi-orthogonal
// X); `gram` is (m, m) scratch. Copies m*m floats to the host: for diagnostics only.
double orthogonality_error(Tensor x, Tensor gram);

}  // namespace mu
