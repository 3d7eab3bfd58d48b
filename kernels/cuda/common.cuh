// Device helpers shared by the kernels in kernels/cuda/: fp32 <-> storage conversion,
// vector loads/stores of 1, 4 or 8 elements (bf16 or fp32), warp and block reductions, and
// the launch arithmetic. Included by .cu files only.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "core/cuda_check.h"
#include "core/tensor.h"
#include "kernels/cuda/runtime.h"

namespace mu {
namespace cuda {

using bf16_t = __nv_bfloat16;
static_assert(sizeof(bf16_t) == sizeof(mu::bf16), "mu::bf16 and __nv_bfloat16 must share a layout");

// ---- host-side launch arithmetic --------------------------------------------------------

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
inline int64_t round_up(int64_t a, int64_t b) { return ceil_div(a, b) * b; }
inline bool aligned_to(const void* p, size_t bytes) { return reinterpret_cast<uintptr_t>(p) % bytes == 0; }

// Blocks for a grid-stride loop over `work` items of `threads` each: enough to fill the
// device several times over, never more than the work needs.
inline unsigned grid_for(int64_t work, int threads) {
  const int64_t want = ceil_div(work, threads);
  const int64_t cap = static_cast<int64_t>(device_info().sm_count) * 32;
  const int64_t g = want < cap ? want : cap;
  return static_cast<unsigned>(g > 0 ? g : 1);
}

// The cuda backend's floating dtypes: F32 or BF16, named in the error.
inline void check_float_dtype(const char* op, const char* what, const Tensor& t) {
  MU_CHECK(t.dtype == DType::F32 || t.dtype == DType::BF16, "%s: %s has dtype %s; the cuda backend takes F32 or BF16",
           op, what, dtype_name(t.dtype));
}
inline void check_on_cuda(const char* op, const char* what, const Tensor& t) {
  MU_CHECK(t.device == Device::CUDA, "%s: %s is a %s tensor, expected cuda", op, what, device_name(t.device));
}

// Calls f(T{}) with T = float or bf16_t for a tensor of dtype F32 or BF16.
template <class F>
inline void dispatch_float(DType t, F&& f) {
  if (t == DType::BF16)
    f(bf16_t{});
  else
    f(float{});
}

// Typed device pointers from a Tensor (the entry checked the dtype).
template <class T>
inline T* dptr(const Tensor& t) {
  return static_cast<T*>(t.data);
}

// ---- element conversion ------------------------------------------------------------------

__device__ __forceinline__ float to_f32(float x) { return x; }
__device__ __forceinline__ float to_f32(bf16_t x) { return __bfloat162float(x); }

template <class T>
__device__ __forceinline__ T from_f32(float x);
template <>
__device__ __forceinline__ float from_f32<float>(float x) {
  return x;
}
template <>
__device__ __forceinline__ bf16_t from_f32<bf16_t>(float x) {
  return __float2bfloat16_rn(x);
}

// The value a float becomes when stored as T (bf16: rounded to nearest even).
template <class T>
__device__ __forceinline__ float round_to(float x) {
  return to_f32(from_f32<T>(x));
}

// ---- vector loads and stores: VEC consecutive elements, VEC in {1, 4, 8} -------------------
// The pointer must be aligned to VEC elements (launchers check before choosing VEC > 1).

template <int VEC>
__device__ __forceinline__ void load_vec(const float* p, float (&f)[VEC]) {
  static_assert(VEC == 1 || VEC == 4 || VEC == 8, "VEC must be 1, 4 or 8");
  if constexpr (VEC == 1) {
    f[0] = p[0];
  } else {
#pragma unroll
    for (int i = 0; i < VEC; i += 4) {
      const float4 v = *reinterpret_cast<const float4*>(p + i);
      f[i] = v.x;
      f[i + 1] = v.y;
      f[i + 2] = v.z;
      f[i + 3] = v.w;
    }
  }
}

template <int VEC>
__device__ __forceinline__ void load_vec(const bf16_t* p, float (&f)[VEC]) {
  static_assert(VEC == 1 || VEC == 4 || VEC == 8, "VEC must be 1, 4 or 8");
  if constexpr (VEC == 1) {
    f[0] = __bfloat162float(p[0]);
  } else if constexpr (VEC == 4) {
    const uint2 u = *reinterpret_cast<const uint2*>(p);
    const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&u);
#pragma unroll
    for (int i = 0; i < 2; i++) {
      const float2 t = __bfloat1622float2(h[i]);
      f[2 * i] = t.x;
      f[2 * i + 1] = t.y;
    }
  } else {
    const uint4 u = *reinterpret_cast<const uint4*>(p);
    const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&u);
#pragma unroll
    for (int i = 0; i < 4; i++) {
      const float2 t = __bfloat1622float2(h[i]);
      f[2 * i] = t.x;
      f[2 * i + 1] = t.y;
    }
  }
}

template <int VEC>
__device__ __forceinline__ void store_vec(float* p, const float (&f)[VEC]) {
  static_assert(VEC == 1 || VEC == 4 || VEC == 8, "VEC must be 1, 4 or 8");
  if constexpr (VEC == 1) {
    p[0] = f[0];
  } else {
#pragma unroll
    for (int i = 0; i < VEC; i += 4)
      *reinterpret_cast<float4*>(p + i) = make_float4(f[i], f[i + 1], f[i + 2], f[i + 3]);
  }
}

template <int VEC>
__device__ __forceinline__ void store_vec(bf16_t* p, const float (&f)[VEC]) {
  static_assert(VEC == 1 || VEC == 4 || VEC == 8, "VEC must be 1, 4 or 8");
  if constexpr (VEC == 1) {
    p[0] = __float2bfloat16_rn(f[0]);
  } else if constexpr (VEC == 4) {
    uint2 u;
    __nv_bfloat162* h = reinterpret_cast<__nv_bfloat162*>(&u);
    h[0] = __floats2bfloat162_rn(f[0], f[1]);
    h[1] = __floats2bfloat162_rn(f[2], f[3]);
    *reinterpret_cast<uint2*>(p) = u;
  } else {
    uint4 u;
    __nv_bfloat162* h = reinterpret_cast<__nv_bfloat162*>(&u);
#pragma unroll
    for (int i = 0; i < 4; i++) h[i] = __floats2bfloat162_rn(f[2 * i], f[2 * i + 1]);
    *reinterpret_cast<uint4*>(p) = u;
  }
}

// A small parameter vector (norm gains) whose dtype is known only at run time: these are
// read once per thread, so a uniform branch costs nothing.
template <int VEC>
__device__ __forceinline__ void load_vec_any(const void* p, bool is_bf16, int64_t i, float (&f)[VEC]) {
  if (is_bf16)
    load_vec<VEC>(static_cast<const bf16_t*>(p) + i, f);
  else
    load_vec<VEC>(static_cast<const float*>(p) + i, f);
}

// ---- reductions ----------------------------------------------------------------------------
// All reductions combine in a fixed order: results are bitwise reproducible run to run.

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__device__ __forceinline__ double warp_sum(double v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// The sum over the block, returned to every thread. blockDim.x must be a multiple of 32;
// `smem` holds at least 32 values. Safe to call repeatedly with the same smem.
template <class T>
__device__ __forceinline__ T block_sum(T v, T* smem) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
  v = warp_sum(v);
  __syncthreads();  // the previous call's readers are done with smem
  if (lane == 0) smem[warp] = v;
  __syncthreads();
  v = lane < nwarps ? smem[lane] : T(0);
  return warp_sum(v);
}

}  // namespace cuda
}  // namespace mu
