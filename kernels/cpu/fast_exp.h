// A branch-free fp32 exp that GCC/Clang vectorize inside `#pragma omp simd` loops (glibc's
// expf is a scalar call there). Softmax, cross-entropy and SiLU spend most of their time in
// exp, so this is where the cpu backend's elementwise speed comes from.
//
// exp(x) = 2^n * exp(r), n = round(x / ln2), r = x - n*ln2 (|r| <= ln2/2, ln2 split in a
// high part exact in fp32 and a low correction, Cody-Waite), exp(r) by its degree-7 Taylor
// polynomial (truncation < 6e-9 relative on |r| <= 0.347). Accuracy: a few fp32 ulp.
// Inputs are clamped to [-87, 88] so 2^n stays a normal float: exp(x < -87) returns
// exp(-87) ~ 1.6e-38 (not 0) and exp(x > 88) returns exp(88); callers use it on
// max-subtracted arguments (<= 0) or where those limits are immaterial.
#pragma once
#include <cstdint>
#include <cstring>

namespace mu {
namespace cpu {

inline float exp_approx(float x) {
  x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
  // Adding 1.5 * 2^23 rounds x/ln2 to the nearest integer in the low mantissa bits.
  const float shifter = 12582912.0f;
  const float t = x * 1.44269504088896341f + shifter;
  const float n = t - shifter;
  const float r = (x - n * 0.693145751953125f) - n * 1.42860682030941723e-6f;  // ln2 = hi + lo
  float p = 1.0f / 5040.0f;
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  int32_t bits;
  std::memcpy(&bits, &t, 4);
  bits = (bits - 0x4B400000 + 127) << 23;  // n + bias into the exponent field
  float scale;
  std::memcpy(&scale, &bits, 4);
  return p * scale;
}

}  // namespace cpu
}  // namespace mu
