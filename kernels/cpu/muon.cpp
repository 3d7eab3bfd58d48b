// fp32 cpu Muon per-matrix ops (kernels/muon.h): the formulas one element at a time, OpenMP over
// 32 x 32 tiles (so the transposed reads and writes stay in cache). Every result is independent
// of the thread count: element-wise work has no reductions, and the reductions (norms, NorMuon
// means) are summed in double in a fixed order.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/muon_cpu.h"

namespace mu {
namespace cpu {
namespace {

constexpr int64_t kTile = 32;
constexpr int64_t kParallelMin = 1 << 15;  // below this many elements a thread fork costs more than it saves

int64_t rows_of(const Tensor& t) { return t.size(t.ndim() - 2); }
int64_t cols_of(const Tensor& t) { return t.size(t.ndim() - 1); }

// Calls f(i, j) for every (i, j) of an (A, B) matrix, tile by tile, tiles spread over threads.
template <class F>
void for_each_tiled(int64_t A, int64_t B, F f) {
  const int64_t tiles_i = (A + kTile - 1) / kTile, tiles_j = (B + kTile - 1) / kTile;
#pragma omp parallel for schedule(static) if (A * B >= kParallelMin)
  for (int64_t t = 0; t < tiles_i * tiles_j; t++) {
    const int64_t i0 = (t / tiles_j) * kTile, j0 = (t % tiles_j) * kTile;
    const int64_t i1 = std::min(A, i0 + kTile), j1 = std::min(B, j0 + kTile);
    for (int64_t i = i0; i < i1; i++)
      for (int64_t j = j0; j < j1; j++) f(i, j);
  }
}

// Grow-only per-thread scratch for NorMuon's per-neuron sums (no allocation once warm).
double* scratch(int64_t n) {
  static thread_local std::vector<double> buf;
  if (static_cast<int64_t>(buf.size()) < n) buf.resize(static_cast<size_t>(n));
  return buf.data();
}

}  // namespace

void muon_momentum(const MuonMomentumParams& p) {
  const int64_t A = rows_of(p.buf), B = cols_of(p.buf);
  float* buf = p.buf.f32();
  const float* grad = p.grad.f32();
  float* out = p.out.f32();
  const float mu = p.mu, gs = p.grad_scale, one_minus_mu = 1.0f - p.mu;
  const bool sgd = p.kind == MomentumKind::Sgd, nesterov = p.nesterov, tr = p.transpose_out;
  for_each_tiled(A, B, [&](int64_t i, int64_t j) {
    const int64_t k = i * B + j;
    const float g = grad[k] * gs;
    float b, u;
    if (sgd) {
      b = mu * buf[k] + g;                // buf = mu*buf + G
      u = nesterov ? g + mu * b : b;      // U = G + mu*buf | buf
    } else {
      b = buf[k] + one_minus_mu * (g - buf[k]);  // buf = buf + (1-mu)*(G - buf)
      u = nesterov ? g + mu * (b - g) : b;       // U = G + mu*(buf - G) | buf
    }
    buf[k] = b;
    out[tr ? j * A + i : k] = u;
  });
}

void frobenius_normalize(Tensor x, double norm_scale, double eps) {
  for (int64_t b = 0; b < x.size(0); b++) {
    Tensor item = x[b];
    const double norm = std::sqrt(cpu::sum_squares(item));
    cpu::scale(item, static_cast<float>(1.0 / (norm * norm_scale + eps)));
  }
}

void normuon_normalize(const NorMuonParams& p) {
  const int64_t m = rows_of(p.o), n = cols_of(p.o);
  float* o = p.o.f32();
  float* S = p.v.f32();
  const int64_t len = p.per_row ? m : n, count = p.per_row ? n : m;  // neurons, entries per neuron
  double* sums = scratch(len);
  // sum of O^2 per neuron (row k, or column k)
  if (p.per_row) {
#pragma omp parallel for schedule(static) if (m * n >= kParallelMin)
    for (int64_t i = 0; i < m; i++) {
      double s = 0.0;
      for (int64_t j = 0; j < n; j++) s += static_cast<double>(o[i * n + j]) * o[i * n + j];
      sums[i] = s;
    }
  } else {
#pragma omp parallel for schedule(static) if (m * n >= kParallelMin)
    for (int64_t j0 = 0; j0 < n; j0 += kTile) {
      const int64_t j1 = std::min(n, j0 + kTile);
      for (int64_t j = j0; j < j1; j++) sums[j] = 0.0;
      for (int64_t i = 0; i < m; i++)
        for (int64_t j = j0; j < j1; j++) sums[j] += static_cast<double>(o[i * n + j]) * o[i * n + j];
    }
  }
  // S = S + (1-beta2)*(v - S); the norms before and after dividing by sqrt(max(S, 1e-10))
  const float one_minus_b2 = 1.0f - p.beta2;
  double old_sq = 0.0, new_sq = 0.0;
  for (int64_t k = 0; k < len; k++) {
    const float v = static_cast<float>(sums[k] / static_cast<double>(count));
    S[k] = S[k] + one_minus_b2 * (v - S[k]);
    const double inv = 1.0 / std::sqrt(std::max(static_cast<double>(S[k]), 1e-10));
    old_sq += sums[k];
    new_sq += sums[k] * inv * inv;
    sums[k] = inv;  // reused: the per-neuron factor
  }
  // rescale so ||O'||_F = ||O||_F; a zero O stays exactly zero (no 0/0)
  const double keep_norm = new_sq > 0.0 ? std::sqrt(old_sq / new_sq) : 0.0;
  const bool per_row = p.per_row;
  for_each_tiled(m, n, [&](int64_t i, int64_t j) {
    o[i * n + j] = static_cast<float>(o[i * n + j] * (sums[per_row ? i : j] * keep_norm));
  });
}

void muon_apply(const MuonApplyParams& p) {
  const int64_t A = rows_of(p.param), B = cols_of(p.param);
  float* w = p.param.f32();
  const float* o = p.o.f32();
  const float step = static_cast<float>(p.lr * p.scale);          // lr * scale
  const float decay = static_cast<float>(p.lr * p.weight_decay);  // lr * wd
  const float keep = static_cast<float>(1.0 - p.lr * p.weight_decay);
  const bool tr = p.o_transposed;
  switch (p.wd_kind) {
    case WeightDecayKind::Decoupled:
      for_each_tiled(A, B, [&](int64_t i, int64_t j) {
        float& wk = w[i * B + j];
        wk = wk * keep;                           // W = W*(1 - lr*wd)
        wk = wk - step * o[tr ? j * A + i : i * B + j];  // W = W - lr*scale*O
      });
      return;
    case WeightDecayKind::Cautious:
      for_each_tiled(A, B, [&](int64_t i, int64_t j) {
        float& wk = w[i * B + j];
        const float ok = o[tr ? j * A + i : i * B + j];
        const float mask = ok * wk >= 0.0f ? 1.0f : 0.0f;  // [O*W >= 0], W before the step
        wk = wk - decay * mask * wk - step * ok;
      });
      return;
    case WeightDecayKind::None:
      for_each_tiled(A, B, [&](int64_t i, int64_t j) { w[i * B + j] -= step * o[tr ? j * A + i : i * B + j]; });
      return;
  }
}

void mirror_lower_blocks(Tensor x, int64_t block) {
  const int64_t batch = x.size(0), m = x.size(1);
  float* base = x.f32();
  for (int64_t b = 0; b < batch; b++) {
    float* a = base + b * m * m;
    for (int64_t i = block; i < m; i++)
      for (int64_t j = 0; j < (i / block) * block; j++) a[i * m + j] = a[j * m + i];  // j / block < i / block
  }
}

}  // namespace cpu
}  // namespace mu
