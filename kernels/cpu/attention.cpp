// fp32 cpu causal grouped-query attention, flash-style: the forward keeps only the
// log-sum-exp of each score row; the backward recomputes the probabilities from it.
//
// Each task works on one head's keys (and values) transposed into a (D, T) scratch, so a
// query row's scores s_j = scale * q . k_j come out vectorised along j with no horizontal
// sums. Extra memory per thread: the transposed K (and V) of one kv head and a few length-T
// rows; never a (T, T) matrix.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/fast_exp.h"

namespace mu {
namespace cpu {
namespace {

inline float dot(const float* a, const float* b, int64_t n) {
  float s = 0.0f;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < n; i++) s += a[i] * b[i];
  return s;
}

inline void axpy(float* y, float alpha, const float* x, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; i++) y[i] += alpha * x[i];
}

// Row addressing inside the fused qkv buffer (B, T, n_head + 2*n_kv_head, D).
struct QkvLayout {
  int64_t T, H, KV, D, row;  // row = (H + 2*KV) * D floats per (b, t)
  explicit QkvLayout(const AttentionShape& s)
      : T(s.T), H(s.n_head), KV(s.n_kv_head), D(s.head_dim), row((s.n_head + 2 * s.n_kv_head) * int64_t{s.head_dim}) {}
  int64_t q(int64_t b, int64_t t, int64_t h) const { return (b * T + t) * row + h * D; }
  int64_t k(int64_t b, int64_t t, int64_t kvh) const { return (b * T + t) * row + (H + kvh) * D; }
  int64_t v(int64_t b, int64_t t, int64_t kvh) const { return (b * T + t) * row + (H + KV + kvh) * D; }
  int64_t o(int64_t b, int64_t t, int64_t h) const { return ((b * T + t) * H + h) * D; }  // out / dout
  int64_t l(int64_t b, int64_t h, int64_t t) const { return (b * H + h) * T + t; }        // lse (B, H, T)
};

// Keys per register block in the score loops (four AVX-512 vectors).
constexpr int64_t kJBlock = 64;

// dst (D, Tp) = the D-vectors at src + j*stride for j < T, transposed; columns [T, Tp) are
// zero so the score loops may run whole blocks past T.
void transpose_heads(float* dst, const float* src, int64_t stride, int64_t T, int64_t Tp, int64_t D) {
  for (int64_t d = 0; d < D; d++) std::fill(dst + d * Tp + T, dst + (d + 1) * Tp, 0.0f);
  for (int64_t j = 0; j < T; j++)
    for (int64_t d = 0; d < D; d++) dst[d * Tp + j] = src[j * stride + d];
}

// s[j] = scale * x . mt[:, j] for j < n, from mt = M^T (D, Tp): the scores q . k_j from K^T,
// or dP_j = dout . v_j from V^T (scale 1). A block of kJBlock sums stays in registers while
// d runs. The forward and the backward share it, so recomputed probabilities match the lse.
void row_times_transposed(float* s, const float* x, const float* mt, int64_t Tp, int64_t D, int64_t n, float scale) {
  for (int64_t j0 = 0; j0 < n; j0 += kJBlock) {
    float acc[kJBlock] = {};
    for (int64_t d = 0; d < D; d++) {
      const float xd = x[d];
      const float* md = mt + d * Tp + j0;
#pragma omp simd
      for (int64_t j = 0; j < kJBlock; j++) acc[j] += xd * md[j];
    }
    const int64_t m = std::min(kJBlock, n - j0);
    for (int64_t j = 0; j < m; j++) s[j0 + j] = scale * acc[j];
  }
}

// y += sum_j c[j] * rows[j] for j < n (rows stride apart, each D long), four rows per pass
// over y so y is loaded and stored a quarter as often.
void rows_combination(float* y, const float* c, const float* rows, int64_t stride, int64_t n, int64_t D) {
  int64_t j = 0;
  for (; j + 4 <= n; j += 4) {
    const float c0 = c[j], c1 = c[j + 1], c2 = c[j + 2], c3 = c[j + 3];
    const float* r0 = rows + j * stride;
    const float* r1 = r0 + stride;
    const float* r2 = r1 + stride;
    const float* r3 = r2 + stride;
#pragma omp simd
    for (int64_t d = 0; d < D; d++) y[d] += c0 * r0[d] + c1 * r1[d] + c2 * r2[d] + c3 * r3[d];
  }
  for (; j < n; j++) axpy(y, c[j], rows + j * stride, D);
}

}  // namespace

void attention_forward(Tensor out, Tensor lse, Tensor qkv, const AttentionShape& s) {
  const QkvLayout L(s);
  const int64_t group = s.n_head / s.n_kv_head, T = L.T, D = L.D;
  const float scale = 1.0f / std::sqrt(static_cast<float>(s.head_dim));
  const float* x = qkv.f32();
  float* o = out.f32();
  float* ls = lse.f32();
  const int64_t Tp = (T + kJBlock - 1) / kJBlock * kJBlock;
  const int64_t per_thread = D * Tp + Tp;  // K^T, one score row
  std::vector<float> scratch(static_cast<size_t>(omp_get_max_threads() * per_thread));
  const int64_t tasks = int64_t{s.B} * L.H;  // one (batch, query head) each
#pragma omp parallel for schedule(static)
  for (int64_t task = 0; task < tasks; task++) {
    const int64_t b = task / L.H, h = task % L.H, kvh = h / group;
    float* kt = scratch.data() + omp_get_thread_num() * per_thread;
    float* p = kt + D * Tp;
    transpose_heads(kt, x + L.k(b, 0, kvh), L.row, T, Tp, D);
    for (int64_t t = 0; t < T; t++) {
      const int64_t n = t + 1;  // causal: keys 0..t
      row_times_transposed(p, x + L.q(b, t, h), kt, Tp, D, n, scale);
      float m = p[0];
#pragma omp simd reduction(max : m)
      for (int64_t j = 0; j < n; j++) m = std::max(m, p[j]);
      float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
      for (int64_t j = 0; j < n; j++) {
        p[j] = exp_approx(p[j] - m);
        sum += p[j];
      }
      float* orow = o + L.o(b, t, h);
      std::fill(orow, orow + D, 0.0f);
      rows_combination(orow, p, x + L.v(b, 0, kvh), L.row, n, D);
      const float inv = 1.0f / sum;
      for (int64_t d = 0; d < D; d++) orow[d] *= inv;
      ls[L.l(b, h, t)] = m + std::log(sum);
    }
  }
}

// With P = softmax(S), S = scale * Q K^T (causal), O = P V and dO given:
//   dV = P^T dO,  dP = dO V^T,  dS = P * (dP - D) with D_t = dO_t . O_t,
//   dQ = scale * dS K,  dK = scale * dS^T Q.
// A task owns one (batch, kv head): it walks the group's query heads and writes their dq
// rows, and sums dk and dv over the whole group itself, so no two threads write the same
// row and the sums run in a fixed order (deterministic for any thread count).
void attention_backward(Tensor dqkv, Tensor dout, Tensor out, Tensor lse, Tensor qkv, const AttentionShape& s) {
  const QkvLayout L(s);
  const int64_t group = s.n_head / s.n_kv_head, T = L.T, D = L.D;
  const float scale = 1.0f / std::sqrt(static_cast<float>(s.head_dim));
  const float* x = qkv.f32();
  const float* o = out.f32();
  const float* go = dout.f32();
  const float* ls = lse.f32();
  float* dx = dqkv.f32();
  const int64_t Tp = (T + kJBlock - 1) / kJBlock * kJBlock;
  const int64_t per_thread = 2 * D * Tp + 2 * Tp;  // K^T, V^T, probabilities, dS
  std::vector<float> scratch(static_cast<size_t>(omp_get_max_threads() * per_thread));
  const int64_t tasks = int64_t{s.B} * L.KV;
#pragma omp parallel for schedule(static)
  for (int64_t task = 0; task < tasks; task++) {
    const int64_t b = task / L.KV, kvh = task % L.KV;
    float* kt = scratch.data() + omp_get_thread_num() * per_thread;
    float* vt = kt + D * Tp;
    float* p = vt + D * Tp;
    float* ds = p + Tp;
    transpose_heads(kt, x + L.k(b, 0, kvh), L.row, T, Tp, D);
    transpose_heads(vt, x + L.v(b, 0, kvh), L.row, T, Tp, D);
    for (int64_t j = 0; j < T; j++) {
      std::fill(dx + L.k(b, j, kvh), dx + L.k(b, j, kvh) + D, 0.0f);
      std::fill(dx + L.v(b, j, kvh), dx + L.v(b, j, kvh) + D, 0.0f);
    }
    for (int64_t h = kvh * group; h < (kvh + 1) * group; h++) {
      for (int64_t t = 0; t < T; t++) {
        const int64_t n = t + 1;
        const float* q = x + L.q(b, t, h);
        const float* g = go + L.o(b, t, h);
        const float dt = dot(g, o + L.o(b, t, h), D);
        const float lt = ls[L.l(b, h, t)];
        row_times_transposed(p, q, kt, Tp, D, n, scale);
#pragma omp simd
        for (int64_t j = 0; j < n; j++) p[j] = exp_approx(p[j] - lt);
        row_times_transposed(ds, g, vt, Tp, D, n, 1.0f);  // dP_j = g . v_j
#pragma omp simd
        for (int64_t j = 0; j < n; j++) ds[j] = p[j] * (ds[j] - dt);
        float* dq = dx + L.q(b, t, h);
        std::fill(dq, dq + D, 0.0f);
        rows_combination(dq, ds, x + L.k(b, 0, kvh), L.row, n, D);
        for (int64_t d = 0; d < D; d++) dq[d] *= scale;
        for (int64_t j = 0; j < n; j++) {
          axpy(dx + L.k(b, j, kvh), scale * ds[j], q, D);
          axpy(dx + L.v(b, j, kvh), p[j], g, D);
        }
      }
    }
  }
}

}  // namespace cpu
}  // namespace mu
