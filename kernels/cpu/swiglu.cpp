// fp32 cpu SwiGLU (HF LlamaMLP act_fn(gate) * up with act_fn = silu).
#include <cmath>

#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/fast_exp.h"

namespace mu {
namespace cpu {
namespace {

inline float sigmoid(float x) { return 1.0f / (1.0f + exp_approx(-x)); }

}  // namespace

void swiglu_forward(Tensor out, Tensor gate_up) {
  const int64_t N = out.size(0), F = out.size(1);
  const float* gu = gate_up.f32();
  float* o = out.f32();
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < N; n++) {
    const float* g = gu + n * 2 * F;
    const float* u = g + F;
    float* y = o + n * F;
#pragma omp simd
    for (int64_t i = 0; i < F; i++) y[i] = g[i] * sigmoid(g[i]) * u[i];
  }
}

// d/dg [g s(g)] = s(g) (1 + g (1 - s(g))) with s the logistic sigmoid.
void swiglu_backward(Tensor dgate_up, Tensor dout, Tensor gate_up) {
  const int64_t N = dout.size(0), F = dout.size(1);
  const float* gu = gate_up.f32();
  const float* dy = dout.f32();
  float* dgu = dgate_up.f32();
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < N; n++) {
    const float* g = gu + n * 2 * F;
    const float* u = g + F;
    const float* d = dy + n * F;
    float* dg = dgu + n * 2 * F;
    float* du = dg + F;
#pragma omp simd
    for (int64_t i = 0; i < F; i++) {
      const float s = sigmoid(g[i]);
      du[i] = d[i] * g[i] * s;
      dg[i] = d[i] * u[i] * s * (1.0f + g[i] * (1.0f - s));
    }
  }
}

}  // namespace cpu
}  // namespace mu
