// fp32 cpu softmax cross-entropy: loss = logsumexp(z) - z[target], max-subtracted. The sum of
// exponentials runs in fp32 over blocks of 256 (vectorised) and in double across blocks.
#include <algorithm>
#include <cmath>

#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/fast_exp.h"

namespace mu {
namespace cpu {
namespace {

void check_targets(const char* op, const int32_t* tgt, int64_t n, int64_t V) {
  for (int64_t i = 0; i < n; i++)
    MU_CHECK(tgt[i] >= 0 && tgt[i] < V, "%s: target %d at position %lld is outside the vocabulary [0, %lld)", op,
             tgt[i], static_cast<long long>(i), static_cast<long long>(V));
}

inline float row_max(const float* z, int64_t V) {
  float m = z[0];
#pragma omp simd reduction(max : m)
  for (int64_t j = 0; j < V; j++) m = std::max(m, z[j]);
  return m;
}

// sum_j exp(z_j - m); when e is not null it also receives the exponentials (e may equal z).
inline double sum_exp(const float* z, float* e, int64_t V, float m) {
  constexpr int64_t kBlock = 256;
  double total = 0.0;
  for (int64_t j0 = 0; j0 < V; j0 += kBlock) {
    const int64_t j1 = std::min(V, j0 + kBlock);
    float s = 0.0f;
    if (e) {
#pragma omp simd reduction(+ : s)
      for (int64_t j = j0; j < j1; j++) {
        e[j] = exp_approx(z[j] - m);
        s += e[j];
      }
    } else {
#pragma omp simd reduction(+ : s)
      for (int64_t j = j0; j < j1; j++) s += exp_approx(z[j] - m);
    }
    total += s;
  }
  return total;
}

}  // namespace

void cross_entropy_forward(Tensor losses, Tensor logits, Tensor targets) {
  const int64_t N = logits.size(0), V = logits.size(1);
  const int32_t* tgt = targets.i32();
  check_targets("cross_entropy_forward", tgt, N, V);
  const float* z = logits.f32();
  float* loss = losses.f32();
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < N; n++) {
    const float* zr = z + n * V;
    const float m = row_max(zr, V);
    const double s = sum_exp(zr, nullptr, V, m);
    loss[n] = static_cast<float>(std::log(s) + m - zr[tgt[n]]);
  }
}

void cross_entropy_forward_backward(Tensor losses, Tensor logits_inout, Tensor targets, float grad_scale) {
  const int64_t N = logits_inout.size(0), V = logits_inout.size(1);
  const int32_t* tgt = targets.i32();
  check_targets("cross_entropy_forward_backward", tgt, N, V);
  float* z = logits_inout.f32();
  float* loss = losses.f32();
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < N; n++) {
    float* zr = z + n * V;
    const float zt = zr[tgt[n]];
    const float m = row_max(zr, V);
    // One exp per logit: keep exp(z - max) in place, then scale it into the softmax.
    const double s = sum_exp(zr, zr, V, m);
    loss[n] = static_cast<float>(std::log(s) + m - zt);
    const float k = static_cast<float>(grad_scale / s);
#pragma omp simd
    for (int64_t j = 0; j < V; j++) zr[j] *= k;
    zr[tgt[n]] -= grad_scale;
  }
}

}  // namespace cpu
}  // namespace mu
