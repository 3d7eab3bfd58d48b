// Element types, their sizes and names (safetensors spellings), and bf16/f16 <-> f32
// conversion. bf16 rounding is round-to-nearest-even, NaN stays NaN (quiet).
#pragma once
#include <cstdint>
#include <cstring>
#include <string>

namespace mu {

enum class DType : uint8_t { F32, BF16, F16, F64, I32, I64, U16, U32, U8 };

size_t dtype_size(DType t);
const char* dtype_name(DType t);                 // "F32", "BF16", ... (safetensors names)
bool dtype_from_name(const std::string& s, DType* out);  // false when unknown

// ---- bf16: the top 16 bits of an IEEE float32 -----------------------------------------
struct bf16 {
  uint16_t bits;
};

inline float bf16_to_f32(bf16 h) {
  uint32_t u = static_cast<uint32_t>(h.bits) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

inline bf16 f32_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return bf16{static_cast<uint16_t>((u >> 16) | 0x0040u)};  // NaN: keep quiet
  // round to nearest, ties to even: add 0x7fff plus the lowest kept bit, then truncate.
  uint32_t lsb = (u >> 16) & 1u;
  u += 0x7fffu + lsb;
  return bf16{static_cast<uint16_t>(u >> 16)};
}

// ---- f16 (IEEE half), only read from HF checkpoints and written on export -------------
float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);  // round to nearest even

// Convert n elements of type `src_t` at src into float32 at dst (integers by value).
void convert_to_f32(float* dst, const void* src, DType src_t, size_t n);
// Convert n float32 values into `dst_t` (F32, BF16, F16, F64 only).
void convert_from_f32(void* dst, DType dst_t, const float* src, size_t n);

}  // namespace mu
