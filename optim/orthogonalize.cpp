#include "optim/orthogonalize.h"

#include <algorithm>
#include <cmath>

#include "core/transfer.h"
#include "kernels/elementwise.h"
#include "kernels/matmul.h"
#include "kernels/muon.h"

namespace mu {
namespace {

// Keller Jordan's quintic: maximal slope at zero while staying in about [0.68, 1.14] on (0, 1]
// after 5 steps (KellerJordan/Muon muon.py; the same constants in torch.optim.Muon).
constexpr QuinticCoeffs kNs5 = {3.4445, -4.7750, 2.0315};

// Polar Express for 5 iterations, safety factor 1.02 (the values used by modded-nanogpt and
// given in issue 5). Repeating the last tuple converges: its fixed point p(x) = x sits at
// x = 1.0354 with |p'(x)| = 0.72, so extra steps tighten the singular values around ~1.035.
constexpr QuinticCoeffs kPolarExpress[] = {
    {8.156554524902461, -22.48329292557795, 15.878769915207462},
    {4.042929935166739, -2.808917465908714, 0.5000178451051316},
    {3.8916678022926607, -2.772484153217685, 0.5060648178503393},
    {3.285753657755655, -2.3681294933425376, 0.46449024233003106},
    {2.3465413258596377, -1.7097828382687081, 0.42323551169305323},
};
constexpr int kPolarExpressSteps = sizeof(kPolarExpress) / sizeof(kPolarExpress[0]);

}  // namespace

OrthoKind parse_ortho(const std::string& s) {
  if (s == "ns5") return OrthoKind::Ns5;
  if (s == "polar_express") return OrthoKind::PolarExpress;
  MU_FAIL("unknown orthogonalizer '%s' (expected one of: ns5, polar_express)", s.c_str());
}

const char* ortho_name(OrthoKind k) {
  switch (k) {
    case OrthoKind::Ns5: return "ns5";
    case OrthoKind::PolarExpress: return "polar_express";
  }
  MU_FAIL("ortho_name: invalid OrthoKind %d", static_cast<int>(k));
}

std::vector<QuinticCoeffs> ortho_coefficients(OrthoKind k, int steps) {
  MU_CHECK(steps >= 1 && steps <= 100, "orthogonalize: %d steps, expected 1 to 100", steps);
  std::vector<QuinticCoeffs> out;
  for (int t = 0; t < steps; t++)
    out.push_back(k == OrthoKind::Ns5 ? kNs5 : kPolarExpress[std::min(t, kPolarExpressSteps - 1)]);
  return out;
}

OrthoNormalisation ortho_normalisation(OrthoKind k) {
  return k == OrthoKind::Ns5 ? OrthoNormalisation{1.0, 1e-7} : OrthoNormalisation{1.02, 1e-6};
}

namespace {

// The (batch, rows, cols) view of t's memory from element `offset` on.
Tensor view_at(const Tensor& t, int64_t offset, Shape s) {
  return Tensor(static_cast<char*>(t.data) + offset * static_cast<int64_t>(dtype_size(t.dtype)), t.dtype, t.device, s);
}

}  // namespace

void symmetric_product(Tensor out, Tensor x, float alpha, float beta, Tensor c, int blocks) {
  MU_CHECK(x.ndim() == 3 && out.ndim() == 3, "symmetric_product: x %s and out %s must be (batch, rows, cols)",
           x.str().c_str(), out.str().c_str());
  const int64_t batch = x.size(0), m = x.size(1), k = x.size(2);
  check_shape("symmetric_product", "out", out, Shape{batch, m, m});
  MU_CHECK(blocks >= 1, "symmetric_product: %d blocks, must be >= 1", blocks);
  if (!c.empty()) {  // the block views below are cut from c unchecked
    check_shape("symmetric_product", "c", c, Shape{batch, m, m});
    MU_CHECK(c.dtype == out.dtype && c.device == out.device, "symmetric_product: c is %s, expected out's %s",
             c.str().c_str(), out.str().c_str());
  }
  // Block rows: a multiple of 8, so that every block starts as aligned as the matrix does (16
  // bytes of bf16 when m is a multiple of 8, what cuBLASLt's fast kernels want); the last block
  // is narrower. One block covering everything is the whole product (one GEMM, no mirror).
  const int64_t hb = blocks == 1 ? m : std::min(m, ((m + blocks - 1) / blocks + 7) / 8 * 8);
  for (int64_t i0 = 0; i0 < m; i0 += hb)
    for (int64_t j0 = i0; j0 < m; j0 += hb) {  // block (i, j) = X_i X_j^T, rows i0.., columns j0..
      const int64_t hi = std::min(hb, m - i0), hj = std::min(hb, m - j0);
      MatmulParams p;
      p.out = view_at(out, i0 * m + j0, Shape{batch, hi, hj});
      p.ld_out = m;
      p.stride_out = m * m;
      p.a = view_at(x, i0 * k, Shape{batch, hi, k});
      p.stride_a = m * k;
      p.b = view_at(x, j0 * k, Shape{batch, hj, k});
      p.stride_b = m * k;
      p.trans_b = true;
      p.alpha = alpha;
      p.beta = beta;
      if (!c.empty()) p.c = view_at(c, i0 * m + j0, Shape{batch, hi, hj});
      p.batch = batch;
      matmul(p);
    }
  if (hb < m) mirror_lower_blocks(out, hb);
}

int default_symmetric_blocks(int64_t m) { return m >= kSymmetricMinRows ? 2 : 1; }

void orthogonalize(Tensor x, const OrthoWorkspace& ws, OrthoKind kind, int steps, int symmetric_blocks) {
  MU_CHECK(x.ndim() == 3, "orthogonalize: x is %s, expected (batch, m, n)", x.str().c_str());
  const int64_t batch = x.size(0), m = x.size(1), n = x.size(2);
  MU_CHECK(m <= n, "orthogonalize: x is %s; the caller transposes tall matrices so that m <= n", x.str().c_str());
  MU_CHECK(x.dtype == DType::F32, "orthogonalize: x is %s, expected F32", x.str().c_str());
  MU_CHECK(symmetric_blocks >= 0, "orthogonalize: symmetric_blocks is %d (0 chooses, 1 is whole GEMMs)",
           symmetric_blocks);
  const bool low = ws.gram.dtype == DType::BF16;
  check_shape("orthogonalize", "workspace x2", ws.x2, x.shape);
  check_shape("orthogonalize", "workspace gram", ws.gram, Shape{batch, m, m});
  check_shape("orthogonalize", "workspace poly", ws.poly, Shape{batch, m, m});
  const DType wdt = low ? DType::BF16 : DType::F32;
  MU_CHECK(ws.x2.dtype == wdt && ws.poly.dtype == wdt,
           "orthogonalize: workspace x2 %s and poly %s must share gram's dtype %s", ws.x2.str().c_str(),
           ws.poly.str().c_str(), dtype_name(wdt));
  if (low) {
    MU_CHECK(x.device == Device::CUDA, "orthogonalize: the bf16 iteration runs on cuda only (x is %s)",
             x.str().c_str());
    check_shape("orthogonalize", "workspace xb", ws.xb, x.shape);
    MU_CHECK(ws.xb.dtype == DType::BF16, "orthogonalize: workspace xb is %s, expected BF16", ws.xb.str().c_str());
  }

  const OrthoNormalisation norm = ortho_normalisation(kind);
  frobenius_normalize(x, norm.norm_scale, norm.eps);  // X = X / (||X||_F * s + eps), in fp32

  Tensor cur = x, next = ws.x2;
  if (low) {
    copy(ws.xb, x);  // rounded once to bf16 (nearest even)
    cur = ws.xb;
  }
  const int blocks = symmetric_blocks > 0 ? symmetric_blocks : default_symmetric_blocks(m);
  for (const QuinticCoeffs& q : ortho_coefficients(kind, steps)) {
    symmetric_product(ws.gram, cur, 1.0f, 0.0f, Tensor(), blocks);  // A' = X X^T
    // B' = b A' + c A'A', with A'A' = A' A'^T (A' is symmetric)
    symmetric_product(ws.poly, ws.gram, static_cast<float>(q.c), static_cast<float>(q.b), ws.gram, blocks);
    MatmulParams comb;  // X = a X + B' X, into the other buffer
    comb.out = next;
    comb.a = ws.poly;
    comb.b = cur;
    comb.alpha = 1.0f;
    comb.beta = static_cast<float>(q.a);
    comb.c = cur;
    comb.batch = batch;
    matmul(comb);
    std::swap(cur, next);
  }
  if (cur.data != x.data) copy(x, cur);  // an odd number of steps ends in the workspace; bf16 -> fp32
}

double orthogonality_error(Tensor x, Tensor gram) {
  MU_CHECK(x.ndim() == 2 && x.size(0) <= x.size(1), "orthogonality_error: x is %s, expected a wide (m, n) matrix",
           x.str().c_str());
  const int64_t m = x.size(0);
  check_shape("orthogonality_error", "gram", gram, Shape{m, m});
  MatmulParams g;
  g.out = gram;
  g.a = x;
  g.b = x;
  g.trans_b = true;
  matmul(g);
  const std::vector<float> h = to_host_f32(gram);
  double sq = 0.0;
  for (int64_t i = 0; i < m; i++)
    for (int64_t j = 0; j < m; j++) {
      const double d = h[static_cast<size_t>(i * m + j)] - (i == j ? 1.0 : 0.0);
      sq += d * d;
    }
  return std::sqrt(sq / static_cast<double>(m));
}

}  // namespace mu
