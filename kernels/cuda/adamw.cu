// Fused AdamW on the GPU: one pass over param (or its fp32 master), grad, m and v.
//
// The arithmetic is the cpu reference's (kernels/cpu/adamw.cpp, torch 1.13's op order), one
// IEEE-rounded operation per torch op: explicit __f*_rn intrinsics keep nvcc from contracting
// a multiply and an add into an FMA where torch rounds twice (and std::fma is __fmaf_rn).
// The scalars are formed on the host in double exactly as the cpu backend forms them, so on
// the same inputs the fp32 results (master, m, v) are bit-identical to the cpu backend's.
//
// adamw_update_master: master is the fp32 parameter the optimizer updates; param (bf16 in
// training) is written from it, rounded once. grad may be bf16 or fp32.
#include <cmath>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_ops.h"

namespace mu {
namespace cuda {
namespace {

constexpr int kThreads = 256;

struct AdamScalars {
  float decay, b1, one_m_b1, b2, one_m_b2, bias2_sqrt, eps, neg_step_size, gs;
};

// The same expressions, in the same precision, as cpu::adamw_update.
AdamScalars scalars(const AdamWHyper& h) {
  const double t = static_cast<double>(h.step);
  const double bias1 = 1.0 - std::pow(h.beta1, t);
  const double bias2 = 1.0 - std::pow(h.beta2, t);
  AdamScalars k;
  k.decay = static_cast<float>(1.0 - h.lr * h.weight_decay);
  k.b1 = static_cast<float>(h.beta1);
  k.one_m_b1 = static_cast<float>(1.0 - h.beta1);
  k.b2 = static_cast<float>(h.beta2);
  k.one_m_b2 = static_cast<float>(1.0 - h.beta2);
  k.bias2_sqrt = static_cast<float>(std::sqrt(bias2));
  k.eps = static_cast<float>(h.eps);
  k.neg_step_size = static_cast<float>(-(h.lr / bias1));
  k.gs = h.grad_scale;
  return k;
}

// MASTER: p comes from and goes to `master` (fp32), and `param` receives it rounded to TP.
// Otherwise p is `param` itself.
template <class TP, class TG, int VEC, bool MASTER>
__global__ void adamw_kernel(TP* param, float* master, const TG* grad, float* m, float* v, AdamScalars k,
                             int64_t nvec) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < nvec; i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t o = i * VEC;
    float p[VEC], g[VEC], mv[VEC], vv[VEC];
    if constexpr (MASTER)
      load_vec<VEC>(master + o, p);
    else
      load_vec<VEC>(param + o, p);
    load_vec<VEC>(grad + o, g);
    load_vec<VEC>(m + o, mv);
    load_vec<VEC>(v + o, vv);
#pragma unroll
    for (int j = 0; j < VEC; j++) {
      const float gi = __fmul_rn(g[j], k.gs);
      const float pi = __fmul_rn(p[j], k.decay);
      const float mi = __fmaf_rn(gi, k.one_m_b1, __fmul_rn(mv[j], k.b1));
      const float vi = __fadd_rn(__fmul_rn(vv[j], k.b2), __fmul_rn(__fmul_rn(k.one_m_b2, gi), gi));
      const float denom = __fadd_rn(__fdiv_rn(__fsqrt_rn(vi), k.bias2_sqrt), k.eps);
      p[j] = __fadd_rn(pi, __fdiv_rn(__fmul_rn(k.neg_step_size, mi), denom));
      mv[j] = mi;
      vv[j] = vi;
    }
    store_vec<VEC>(m + o, mv);
    store_vec<VEC>(v + o, vv);
    if constexpr (MASTER) store_vec<VEC>(master + o, p);
    store_vec<VEC>(param + o, p);
  }
}

template <bool MASTER>
void launch(Tensor param, Tensor master, Tensor grad, Tensor m, Tensor v, const AdamWHyper& h) {
  const int64_t n = param.numel();
  if (n == 0) return;
  const AdamScalars k = scalars(h);
  bool v4 = n % 4 == 0;
  for (const void* p : {param.data, master.data, grad.data, m.data, v.data}) v4 = v4 && aligned_to(p, 16);
  dispatch_float(param.dtype, [&](auto ptag) {
    dispatch_float(grad.dtype, [&](auto gtag) {
      using TP = decltype(ptag);
      using TG = decltype(gtag);
      float* mp = MASTER ? dptr<float>(master) : nullptr;
      if (v4)
        adamw_kernel<TP, TG, 4, MASTER><<<grid_for(n / 4, kThreads), kThreads>>>(
            dptr<TP>(param), mp, dptr<const TG>(grad), dptr<float>(m), dptr<float>(v), k, n / 4);
      else
        adamw_kernel<TP, TG, 1, MASTER><<<grid_for(n, kThreads), kThreads>>>(dptr<TP>(param), mp, dptr<const TG>(grad),
                                                                             dptr<float>(m), dptr<float>(v), k, n);
      MU_CUDA_CHECK_LAUNCH();
    });
  });
}

void check_common(const char* op, const Tensor& param, const Tensor& grad, const Tensor& m, const Tensor& v) {
  check_float_dtype(op, "param", param);
  check_float_dtype(op, "grad", grad);
  MU_CHECK(m.dtype == DType::F32 && v.dtype == DType::F32, "%s: m and v must be F32 on cuda (got %s and %s)", op,
           dtype_name(m.dtype), dtype_name(v.dtype));
}

}  // namespace

void adamw_update(Tensor param, Tensor grad, Tensor m, Tensor v, const AdamWHyper& h) {
  require_device("adamw_update");
  check_common("adamw_update", param, grad, m, v);
  launch<false>(param, Tensor(), grad, m, v, h);
}

void adamw_update_master(Tensor param, Tensor master, Tensor grad, Tensor m, Tensor v, const AdamWHyper& h) {
  require_device("adamw_update_master");
  const char* op = "adamw_update_master";
  check_common(op, param, grad, m, v);
  MU_CHECK(master.dtype == DType::F32, "%s: master must be F32 (got %s)", op, dtype_name(master.dtype));
  launch<true>(param, master, grad, m, v, h);
}

}  // namespace cuda
}  // namespace mu
