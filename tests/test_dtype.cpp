// bf16 and f16 conversions against values worked out by hand from the IEEE layouts.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "core/dtype.h"
#include "core/tensor.h"

using namespace mu;

TEST(Dtype, Bf16RoundsToNearestEven) {
  // 1 + 2^-8 lies exactly halfway between bf16 1.0 and 1 + 2^-7: ties go to the even (1.0).
  EXPECT_EQ(f32_to_bf16(1.0f + std::ldexp(1.0f, -8)).bits, 0x3f80);
  // 1 + 3*2^-8 is halfway between 1+2^-7 (odd mantissa) and 1+2^-6: rounds up to even.
  EXPECT_EQ(f32_to_bf16(1.0f + 3 * std::ldexp(1.0f, -8)).bits, 0x3f82);
  // just above halfway rounds up
  EXPECT_EQ(f32_to_bf16(1.0f + std::ldexp(1.0f, -8) + std::ldexp(1.0f, -20)).bits, 0x3f81);
  EXPECT_EQ(bf16_to_f32(f32_to_bf16(-2.5f)), -2.5f);
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(std::numeric_limits<float>::quiet_NaN()))));
  EXPECT_TRUE(std::isinf(bf16_to_f32(f32_to_bf16(std::numeric_limits<float>::infinity()))));
  // the largest float rounds to infinity in bf16 (its mantissa rounds up past the top)
  EXPECT_TRUE(std::isinf(bf16_to_f32(f32_to_bf16(std::numeric_limits<float>::max()))));
}

TEST(Dtype, F16RoundTripAndSubnormals) {
  EXPECT_EQ(f32_to_f16(1.0f), 0x3c00);
  EXPECT_EQ(f32_to_f16(-2.0f), 0xc000);
  EXPECT_EQ(f32_to_f16(65504.0f), 0x7bff);
  EXPECT_EQ(f32_to_f16(1e6f), 0x7c00);
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -24)), 0x0001);  // smallest subnormal
  EXPECT_EQ(f16_to_f32(0x0001), std::ldexp(1.0f, -24));
  EXPECT_EQ(f16_to_f32(0x3555), 0.333251953125f);
  for (uint32_t h = 0; h < 0x7c00; h++) {  // every finite positive half survives the trip
    ASSERT_EQ(f32_to_f16(f16_to_f32(static_cast<uint16_t>(h))), h);
  }
}

TEST(Dtype, NamesRoundTrip) {
  for (DType t : {DType::F32, DType::BF16, DType::F16, DType::F64, DType::I32, DType::I64, DType::U16,
                  DType::U32, DType::U8}) {
    DType back;
    ASSERT_TRUE(dtype_from_name(dtype_name(t), &back));
    EXPECT_EQ(back, t);
  }
  DType x;
  EXPECT_FALSE(dtype_from_name("F8_E4M3", &x));
}

TEST(Tensor, ViewsAndRows) {
  HostTensor h = HostTensor::f32({3, 4});
  for (int i = 0; i < 12; i++) h.f32()[i] = static_cast<float>(i);
  Tensor r = h.t().rows(1, 2);
  EXPECT_EQ(r.shape, Shape({2, 4}));
  EXPECT_EQ(r.f32()[0], 4.0f);
  EXPECT_EQ(h.t()[2].f32()[3], 11.0f);
  EXPECT_THROW(h.t().view({5, 2}), Error);
  EXPECT_THROW(h.t().rows(2, 2), Error);
  EXPECT_THROW(h.t().bf(), Error);
}
