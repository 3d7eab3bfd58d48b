// fp32 cpu RMSNorm (HF LlamaRMSNorm): y = x * r * w with r = 1/sqrt(mean(x^2) + eps).
#include <cmath>

#include "kernels/cpu/cpu_ops.h"

namespace mu {
namespace cpu {

void rmsnorm_forward(Tensor out, Tensor rstd, Tensor x, Tensor weight, float eps) {
  const int64_t N = x.size(0), C = x.size(1);
  const float* xp = x.f32();
  const float* w = weight.f32();
  float* y = out.f32();
  float* rs = rstd.f32();
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < N; n++) {
    const float* xr = xp + n * C;
    double ss = 0.0;  // double: the mean of C squares without cancellation worries
#pragma omp simd reduction(+ : ss)
    for (int64_t c = 0; c < C; c++) ss += static_cast<double>(xr[c]) * xr[c];
    const float r = static_cast<float>(1.0 / std::sqrt(ss / C + eps));
    rs[n] = r;
    float* yr = y + n * C;
    for (int64_t c = 0; c < C; c++) yr[c] = xr[c] * r * w[c];
  }
}

// With g = dout and u = x*r (the normalised row):
//   dx_c = r * (g_c w_c - u_c * mean_j(g_j w_j u_j)),   dw_c = sum_n g_nc u_nc.
void rmsnorm_backward(Tensor dx, Tensor dweight, Tensor dout, Tensor x, Tensor weight, Tensor rstd) {
  const int64_t N = x.size(0), C = x.size(1);
  const float* xp = x.f32();
  const float* w = weight.f32();
  const float* g = dout.f32();
  const float* rs = rstd.f32();
  float* dxp = dx.f32();
  float* dw = dweight.f32();
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < N; n++) {
    const float* xr = xp + n * C;
    const float* gr = g + n * C;
    const float r = rs[n];
    double dot = 0.0;  // sum_j g_j w_j u_j
#pragma omp simd reduction(+ : dot)
    for (int64_t c = 0; c < C; c++) dot += static_cast<double>(gr[c]) * w[c] * (xr[c] * r);
    const float m = static_cast<float>(dot / C);
    float* dxr = dxp + n * C;
    for (int64_t c = 0; c < C; c++) dxr[c] += r * (gr[c] * w[c] - xr[c] * r * m);
  }
  // dweight: threads own channel blocks and sum rows in order (deterministic for any
  // thread count; no atomics).
  constexpr int64_t kBlock = 64;
  const int64_t nblocks = (C + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static)
  for (int64_t blk = 0; blk < nblocks; blk++) {
    const int64_t c0 = blk * kBlock, c1 = c0 + kBlock < C ? c0 + kBlock : C;
    float acc[kBlock] = {};
    for (int64_t n = 0; n < N; n++) {
      const float* xr = xp + n * C;
      const float* gr = g + n * C;
      const float r = rs[n];
      for (int64_t c = c0; c < c1; c++) acc[c - c0] += gr[c] * xr[c] * r;
    }
    for (int64_t c = c0; c < c1; c++) dw[c] += acc[c - c0];
  }
}

}  // namespace cpu
}  // namespace mu
