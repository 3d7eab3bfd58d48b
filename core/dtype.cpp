#include "core/dtype.h"

#include <cmath>

#include "core/error.h"

namespace mu {

namespace {
struct DTypeInfo {
  DType t;
  const char* name;
  size_t size;
};
constexpr DTypeInfo kInfo[] = {
    {DType::F32, "F32", 4}, {DType::BF16, "BF16", 2}, {DType::F16, "F16", 2},
    {DType::F64, "F64", 8}, {DType::I32, "I32", 4},   {DType::I64, "I64", 8},
    {DType::U16, "U16", 2}, {DType::U32, "U32", 4},   {DType::U8, "U8", 1},
};
}  // namespace

size_t dtype_size(DType t) { return kInfo[static_cast<int>(t)].size; }
const char* dtype_name(DType t) { return kInfo[static_cast<int>(t)].name; }

bool dtype_from_name(const std::string& s, DType* out) {
  for (const auto& i : kInfo)
    if (s == i.name) {
      *out = i.t;
      return true;
    }
  return false;
}

float f16_to_f32(uint16_t h) {
  uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  uint32_t u;
  if (exp == 0) {
    if (mant == 0) {
      u = sign;
    } else {  // subnormal: value = mant * 2^-24
      float f = std::ldexp(static_cast<float>(mant), -24);
      return sign ? -f : f;
    }
  } else if (exp == 31) {
    u = sign | 0x7f800000u | (mant << 13);
  } else {
    u = sign | ((exp + 112) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

uint16_t f32_to_f16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
  uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return sign | 0x7e00u;            // NaN
  if (a >= 0x477ff000u) return sign | 0x7c00u;           // overflow (>= 65520) -> inf
  if (a < 0x38800000u) {                                  // below the smallest normal (2^-14)
    // subnormal: value / 2^-24 rounded to nearest even
    float af;
    std::memcpy(&af, &a, 4);
    float scaled = af * 16777216.0f;  // exact (power of two)
    float r = std::nearbyint(scaled);  // default rounding mode: ties to even
    return sign | static_cast<uint16_t>(r);
  }
  uint32_t lsb = (a >> 13) & 1u;
  a += 0xfffu + lsb;
  return sign | static_cast<uint16_t>(((a >> 13) - (112u << 10)) & 0x7fffu);
}

void convert_to_f32(float* dst, const void* src, DType t, size_t n) {
  switch (t) {
    case DType::F32: std::memcpy(dst, src, n * 4); return;
    case DType::BF16: {
      const bf16* s = static_cast<const bf16*>(src);
      for (size_t i = 0; i < n; i++) dst[i] = bf16_to_f32(s[i]);
      return;
    }
    case DType::F16: {
      const uint16_t* s = static_cast<const uint16_t*>(src);
      for (size_t i = 0; i < n; i++) dst[i] = f16_to_f32(s[i]);
      return;
    }
    case DType::F64: {
      const double* s = static_cast<const double*>(src);
      for (size_t i = 0; i < n; i++) dst[i] = static_cast<float>(s[i]);
      return;
    }
    case DType::I32: {
      const int32_t* s = static_cast<const int32_t*>(src);
      for (size_t i = 0; i < n; i++) dst[i] = static_cast<float>(s[i]);
      return;
    }
    case DType::I64: {
      const int64_t* s = static_cast<const int64_t*>(src);
      for (size_t i = 0; i < n; i++) dst[i] = static_cast<float>(s[i]);
      return;
    }
    case DType::U16: {
      const uint16_t* s = static_cast<const uint16_t*>(src);
      for (size_t i = 0; i < n; i++) dst[i] = static_cast<float>(s[i]);
      return;
    }
    case DType::U32: {
      const uint32_t* s = static_cast<const uint32_t*>(src);
      for (size_t i = 0; i < n; i++) dst[i] = static_cast<float>(s[i]);
      return;
    }
    case DType::U8: {
      const uint8_t* s = static_cast<const uint8_t*>(src);
      for (size_t i = 0; i < n; i++) dst[i] = static_cast<float>(s[i]);
      return;
    }
  }
}

void convert_from_f32(void* dst, DType t, const float* src, size_t n) {
  switch (t) {
    case DType::F32: std::memcpy(dst, src, n * 4); return;
    case DType::BF16: {
      bf16* d = static_cast<bf16*>(dst);
      for (size_t i = 0; i < n; i++) d[i] = f32_to_bf16(src[i]);
      return;
    }
    case DType::F16: {
      uint16_t* d = static_cast<uint16_t*>(dst);
      for (size_t i = 0; i < n; i++) d[i] = f32_to_f16(src[i]);
      return;
    }
    case DType::F64: {
      double* d = static_cast<double*>(dst);
      for (size_t i = 0; i < n; i++) d[i] = src[i];
      return;
    }
    default: MU_FAIL("convert_from_f32: cannot convert float32 to %s", dtype_name(t));
  }
}

}  // namespace mu
