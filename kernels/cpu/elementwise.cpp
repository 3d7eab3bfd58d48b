// fp32 cpu element-wise ops over whole tensors.
#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/cpu/cpu_ops.h"
#include "kernels/uniform_hash.h"

namespace mu {
namespace cpu {

void add(Tensor out, Tensor a, Tensor b) {
  const int64_t n = out.numel();
  float* o = out.f32();
  const float* x = a.f32();
  const float* y = b.f32();
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; i++) o[i] = x[i] + y[i];
}

void accumulate(Tensor dst, Tensor src) {
  const int64_t n = dst.numel();
  float* d = dst.f32();
  const float* s = src.f32();
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; i++) d[i] += s[i];
}

void scale(Tensor t, float s) {
  const int64_t n = t.numel();
  float* p = t.f32();
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; i++) p[i] *= s;
}

void fill(Tensor t, float v) {
  float* p = t.f32();
  std::fill(p, p + t.numel(), v);
}

void fill_uniform(Tensor t, uint64_t seed, float lo, float hi) {
  float* p = t.f32();
  const int64_t n = t.numel();
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; i++) p[i] = uniform_at(seed, i, lo, hi);
}

void copy(Tensor dst, Tensor src) {
  if (dst.data != src.data) std::memmove(dst.data, src.data, dst.nbytes());
}

// Fixed-size chunks summed in index order: the result does not depend on the thread count.
double sum_squares(Tensor t) {
  constexpr int64_t kChunk = 1 << 14;
  const int64_t n = t.numel();
  const float* p = t.f32();
  const int64_t nchunks = (n + kChunk - 1) / kChunk;
  std::vector<double> partial(static_cast<size_t>(nchunks));
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < nchunks; c++) {
    const int64_t lo = c * kChunk, hi = std::min(n, lo + kChunk);
    double s = 0.0;
#pragma omp simd reduction(+ : s)
    for (int64_t i = lo; i < hi; i++) s += static_cast<double>(p[i]) * p[i];
    partial[c] = s;
  }
  double total = 0.0;
  for (double s : partial) total += s;
  return total;
}

}  // namespace cpu
}  // namespace mu
