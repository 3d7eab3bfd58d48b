// The cpu references of the ops added with the cuda backend: residual_rmsnorm_forward and
// adamw_update_master, against the unfused ops they stand for, plus their argument checks.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "kernels/adamw.h"
#include "kernels/adamw_master.h"
#include "kernels/elementwise.h"
#include "kernels/residual_rmsnorm.h"
#include "kernels/rmsnorm.h"

using namespace mu;

namespace {

HostTensor uniform(Shape s, std::mt19937& rng, float lo = -1.0f, float hi = 1.0f) {
  HostTensor t = HostTensor::f32(s);
  std::uniform_real_distribution<float> u(lo, hi);
  for (int64_t i = 0; i < t.numel(); i++) t.f32()[i] = u(rng);
  return t;
}

HostTensor clone(const HostTensor& x) {
  HostTensor t = HostTensor::f32(x.shape());
  std::memcpy(t.f32(), x.f32(), x.t().nbytes());
  return t;
}

bool same_bits(const HostTensor& a, const HostTensor& b) {
  return a.numel() == b.numel() && std::memcmp(a.f32(), b.f32(), a.t().nbytes()) == 0;
}

TEST(KernelsFused, ResidualRmsnormIsAddThenRmsnorm) {
  std::mt19937 rng(51);
  const int64_t N = 7, C = 45;
  HostTensor a = uniform({N, C}, rng, -2, 2), b = uniform({N, C}, rng, -2, 2), w = uniform({C}, rng);
  // The unfused path: add, then rmsnorm_forward.
  HostTensor sum = HostTensor::f32({N, C}), want = HostTensor::f32({N, C}), want_r = HostTensor::f32({N});
  add(sum, a, b);
  rmsnorm_forward(want, want_r, sum, w, 1e-5f);
  HostTensor res = HostTensor::f32({N, C}), out = HostTensor::f32({N, C}), r = HostTensor::f32({N});
  residual_rmsnorm_forward(res, out, r, a, b, w, 1e-5f);
  EXPECT_TRUE(same_bits(res, sum));  // the same fp32 operations: bit-identical
  EXPECT_TRUE(same_bits(out, want));
  EXPECT_TRUE(same_bits(r, want_r));
  // In place on the residual stream.
  HostTensor a2 = clone(a);
  residual_rmsnorm_forward(a2, out, r, a2, b, w, 1e-5f);
  EXPECT_TRUE(same_bits(a2, sum));
  EXPECT_TRUE(same_bits(out, want));
}

TEST(KernelsFused, ResidualRmsnormErrors) {
  HostTensor a = HostTensor::f32({4, 8}), b = HostTensor::f32({4, 8}), w = HostTensor::f32({8});
  HostTensor res = HostTensor::f32({4, 8}), out = HostTensor::f32({4, 8}), r = HostTensor::f32({4});
  EXPECT_THROW(residual_rmsnorm_forward(res, out, r, a, HostTensor::f32({4, 9}), w, 1e-5f), Error);
  EXPECT_THROW(residual_rmsnorm_forward(res, out, HostTensor::f32({3}), a, b, w, 1e-5f), Error);
  EXPECT_THROW(residual_rmsnorm_forward(res, a, r, a, b, w, 1e-5f), Error);  // out aliases a
  EXPECT_THROW(residual_rmsnorm_forward(res, out, r, a, b, w, -1.0f), Error);
  EXPECT_THROW(residual_rmsnorm_forward(res, HostTensor(DType::BF16, {4, 8}), r, a, b, w, 1e-5f), Error);
}

TEST(KernelsFused, AdamwMasterIsAdamwOnTheMaster) {
  std::mt19937 rng(52);
  const int64_t n = 333;
  HostTensor master = uniform({n}, rng), m = uniform({n}, rng, -0.01f, 0.01f), v = uniform({n}, rng, 0, 1e-4f);
  HostTensor p_ref = clone(master), m_ref = clone(m), v_ref = clone(v), param = HostTensor::f32({n});
  AdamWHyper h;
  h.lr = 3e-3;
  h.weight_decay = 0.1;
  for (int64_t step = 1; step <= 3; step++) {
    HostTensor g = uniform({n}, rng, -2, 2);
    h.step = step;
    adamw_update(p_ref, g, m_ref, v_ref, h);
    adamw_update_master(param, master, g, m, v, h);
    EXPECT_TRUE(same_bits(master, p_ref)) << "step " << step;
    EXPECT_TRUE(same_bits(param, master)) << "step " << step;
    EXPECT_TRUE(same_bits(m, m_ref) && same_bits(v, v_ref)) << "step " << step;
  }
}

TEST(KernelsFused, AdamwMasterErrors) {
  HostTensor p = HostTensor::f32({8}), g = HostTensor::f32({8}), m = HostTensor::f32({8}), v = HostTensor::f32({8});
  HostTensor master = HostTensor::f32({8});
  AdamWHyper h;
  h.lr = 1e-3;
  EXPECT_THROW(adamw_update_master(p, master, HostTensor::f32({9}), m, v, h), Error);
  EXPECT_THROW(adamw_update_master(p, HostTensor(DType::BF16, {8}), g, m, v, h), Error);  // master must be F32
  EXPECT_THROW(adamw_update_master(p, p, g, m, v, h), Error);                             // param aliases master
  h.step = 0;
  EXPECT_THROW(adamw_update_master(p, master, g, m, v, h), Error);
}

}  // namespace
