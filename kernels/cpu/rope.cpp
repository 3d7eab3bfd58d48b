// fp32 cpu RoPE, HF "rotate_half" convention: the rotation pairs x[i] with x[i + D/2].
#include "kernels/cpu/cpu_ops.h"

namespace mu {
namespace cpu {
namespace {

// Rotates the first n_rot heads of every (b, t) row by +angle (sign = 1) or -angle (-1).
void rotate(Tensor qkv, int n_rot, Tensor cos, Tensor sin, float sign) {
  const int64_t B = qkv.size(0), T = qkv.size(1), H = qkv.size(2), D = qkv.size(3), half = D / 2;
  float* x = qkv.f32();
  const float* ct = cos.f32();
  const float* st = sin.f32();
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t b = 0; b < B; b++)
    for (int64_t t = 0; t < T; t++) {
      const float* c = ct + t * half;
      const float* s = st + t * half;
      for (int64_t h = 0; h < n_rot; h++) {
        float* v = x + ((b * T + t) * H + h) * D;
        for (int64_t i = 0; i < half; i++) {
          const float x1 = v[i], x2 = v[i + half], si = sign * s[i];
          v[i] = x1 * c[i] - x2 * si;
          v[i + half] = x2 * c[i] + x1 * si;
        }
      }
    }
}

}  // namespace

void rope_forward(Tensor qkv, int n_rot_heads, Tensor cos, Tensor sin) { rotate(qkv, n_rot_heads, cos, sin, 1.0f); }

// The forward is an orthogonal rotation per pair, so its transpose (the gradient map) is
// the rotation by the negative angle.
void rope_backward(Tensor dqkv, int n_rot_heads, Tensor cos, Tensor sin) {
  rotate(dqkv, n_rot_heads, cos, sin, -1.0f);
}

}  // namespace cpu
}  // namespace mu
