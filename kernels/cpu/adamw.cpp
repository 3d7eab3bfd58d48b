// fp32 cpu AdamW, in torch's order of operations (torch 1.13, torch/optim/adamw.py,
// _single_tensor_adamw): each in-place torch op below is one rounding to float here.
//   param.mul_(1 - lr*wd)
//   exp_avg.mul_(beta1).add_(grad, alpha=1-beta1)
//   exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1-beta2)
//   denom = (exp_avg_sq.sqrt() / sqrt(1-beta2^t)).add_(eps)
//   param.addcdiv_(exp_avg, denom, value=-lr/(1-beta1^t))
// The Python-float scalars are computed in double and enter the float kernels rounded to float.
// torch's vectorised add_ with alpha is a fused multiply-add (aten/src/ATen/native/ufunc/add.h),
// so the m update uses std::fma. On the oracle's AdamW case this reproduces torch 1.13 fp32
// (AVX2 build) bit for bit over five steps.
#include <cmath>

#include "kernels/cpu/adamw_cpu.h"

// Each statement below is one torch op with its own rounding: the compiler must not fuse
// a multiply and an add across them (GCC contracts by default in gnu++ mode).
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

namespace mu {
namespace cpu {

void adamw_update(Tensor param, Tensor grad, Tensor m, Tensor v, const AdamWHyper& h) {
  const int64_t n = param.numel();
  float* p = param.f32();
  const float* g = grad.f32();
  float* mp = m.f32();
  float* vp = v.f32();

  const double t = static_cast<double>(h.step);
  const double bias1 = 1.0 - std::pow(h.beta1, t);
  const double bias2 = 1.0 - std::pow(h.beta2, t);
  const float decay = static_cast<float>(1.0 - h.lr * h.weight_decay);
  const float b1 = static_cast<float>(h.beta1), one_m_b1 = static_cast<float>(1.0 - h.beta1);
  const float b2 = static_cast<float>(h.beta2), one_m_b2 = static_cast<float>(1.0 - h.beta2);
  const float bias2_sqrt = static_cast<float>(std::sqrt(bias2));
  const float eps = static_cast<float>(h.eps);
  const float neg_step_size = static_cast<float>(-(h.lr / bias1));
  const float gs = h.grad_scale;

#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; i++) {
    const float gi = g[i] * gs;  // exact when gs == 1
    const float pi = p[i] * decay;
    // add_(grad, alpha=1-b1) on m*b1: fmadd(grad, 1-b1, m*b1)
    const float mi = std::fma(gi, one_m_b1, mp[i] * b1);
    const float vi = vp[i] * b2 + one_m_b2 * gi * gi;  // addcmul: v + (value*g)*g
    const float denom = std::sqrt(vi) / bias2_sqrt + eps;
    mp[i] = mi;
    vp[i] = vi;
    p[i] = pi + neg_step_size * mi / denom;  // addcdiv: p + (value*m)/denom
  }
}

}  // namespace cpu
}  // namespace mu
