// Small element-wise ops the model and optimizer need on whole tensors.
#pragma once
#include <cstdint>
#include <vector>

#include "core/tensor.h"

namespace mu {

void add(Tensor out, Tensor a, Tensor b);  // out = a + b (out may alias a or b); same shapes
void accumulate(Tensor dst, Tensor src);   // dst += src; same shapes
void scale(Tensor t, float s);             // t *= s
void fill(Tensor t, float v);              // t = v
// t[i] = uniform_at(seed, i, lo, hi) (kernels/uniform_hash.h): pseudo-random, uniform on
// [lo, hi] (hi only by rounding), the same bits on every backend; for inputs that must not be
// constant (benchmarks, tests).
void fill_uniform(Tensor t, uint64_t seed, float lo, float hi);
// dst = src: same numel and dtype (any dtype; shapes may differ, e.g. a flattened view).
void copy(Tensor dst, Tensor src);
// sum of t^2, accumulated in double in a fixed order (independent of the thread count).
double sum_squares(Tensor t);
// The sum over all of ts (one device: F32 or BF16 on cuda, F32 on the cpu; empty tensors add
// 0). On cuda, one host wait in all instead of one per tensor: every tensor's partial sums,
// then one pass.
double sum_squares(const std::vector<Tensor>& ts);

}  // namespace mu
