// Helpers shared by the cpu kernel tests: random and filled host tensors, id tensors, an
// element-wise closeness check that reports the first misses, and a thread-count scope.
#pragma once
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "core/tensor.h"

namespace mu::test {

inline const float kNaN = std::numeric_limits<float>::quiet_NaN();

inline HostTensor uniform(Shape s, std::mt19937& rng, float lo = -1.0f, float hi = 1.0f) {
  HostTensor t = HostTensor::f32(s);
  std::uniform_real_distribution<float> u(lo, hi);
  for (int64_t i = 0; i < t.numel(); i++) t.f32()[i] = u(rng);
  return t;
}

inline HostTensor filled(Shape s, float v) {
  HostTensor t = HostTensor::f32(s);
  for (int64_t i = 0; i < t.numel(); i++) t.f32()[i] = v;
  return t;
}

inline HostTensor ids(std::vector<int32_t> v) {
  HostTensor t(DType::I32, {static_cast<int64_t>(v.size())});
  for (size_t i = 0; i < v.size(); i++) t.t().i32()[i] = v[i];
  return t;
}

// |got - want| <= atol + rtol * |want| element-wise; reports the first few misses.
inline void expect_close(const float* got, const std::vector<double>& want, double atol, double rtol, const char* what) {
  int bad = 0;
  for (size_t i = 0; i < want.size(); i++) {
    const double err = std::fabs(got[i] - want[i]);
    if (!(err <= atol + rtol * std::fabs(want[i])) && bad++ < 5)
      ADD_FAILURE() << what << "[" << i << "]: got " << got[i] << ", want " << want[i];
  }
  EXPECT_EQ(bad, 0) << what << ": " << bad << " of " << want.size() << " elements off";
}

// Runs f with the given OpenMP thread count, restoring the previous one.
template <class F>
void with_threads(int n, F f) {
  const int old = omp_get_max_threads();
  omp_set_num_threads(n);
  f();
  omp_set_num_threads(old);
}

}  // namespace mu::test
