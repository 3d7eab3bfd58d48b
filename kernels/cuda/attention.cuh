// Shared pieces of the flash-attention kernels (attention_fwd.cu, attention_bwd.cu): the
// parameter block, cp.async tile loads into padded shared memory, and warp-level tensor-core
// products through ldmatrix + mma.sync.m16n8k16 (bf16 in, fp32 accumulate; sm_80 and later).
//
// Fragment layouts (PTX ISA, "Matrix fragments for mma.m16n8k16"), g = lane / 4, q = lane % 4:
//   A (16 x 16, row-major): a[0] = (g, 2q..2q+1), a[1] = (g+8, 2q..), a[2] = (g, 8+2q..), a[3] = (g+8, 8+2q..)
//   B (16 x 8, k x n):      b[0] = (k 2q..2q+1, n g), b[1] = (k 8+2q.., n g)
//   C (16 x 8, fp32):       c[0..1] = (g, 2q..2q+1), c[2..3] = (g+8, 2q..2q+1)
// Two C tiles side by side (16 x 16) are therefore exactly an A fragment once packed to bf16
// (c_to_a), which is how P = softmax(S) feeds P @ V without leaving registers.
#pragma once
#include <initializer_list>

#include "kernels/attention.h"
#include "kernels/cuda/common.cuh"

namespace mu {
namespace cuda {
namespace attn {

constexpr int kWarps = 4;
constexpr int kThreads = 32 * kWarps;
constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

struct Params {
  const bf16_t* qkv;   // (B, T, H + 2*Hkv, D)
  bf16_t* out;         // (B, T, H, D)            forward output; backward: read
  float* lse;          // (B, H, T)               forward output; backward: read
  const bf16_t* dout;  // (B, T, H, D)            backward
  bf16_t* dqkv;        // (B, T, H + 2*Hkv, D)    backward output
  float* delta;        // (B, H, T)               backward scratch: rowsum(dout * out)
  int B, T, H, Hkv, D, group;
  int64_t qkv_row;   // elements from position t to t+1 in qkv / dqkv: (H + 2*Hkv) * D
  int64_t out_row;   // ... in out / dout: H * D
  float scale;       // 1/sqrt(D)
  float scale_log2;  // scale * log2(e): softmax in base 2 (exp2 is one instruction)
};

// Shared-memory row stride in elements: 16 bytes of padding per row, so the 8 row addresses
// of one ldmatrix 8x8 matrix fall in 8 different 16-byte bank groups (no conflicts).
template <int kD>
constexpr int smem_stride() {
  return kD + 8;
}

#ifndef MU_CUDA_EMU
__device__ __forceinline__ uint32_t smem_addr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// 16-byte global -> shared copy; when !valid the destination is zero-filled and nothing is read.
__device__ __forceinline__ void cp_async16(void* dst, const void* src, bool valid) {
  const int n = valid ? 16 : 0;
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(dst)), "l"(src), "r"(n) : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
__device__ __forceinline__ void cp_async_wait_all() { asm volatile("cp.async.wait_group 0;\n" ::: "memory"); }

__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const bf16_t* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(p))
               : "memory");
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const bf16_t* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(p))
               : "memory");
}

// d += a @ b for one 16 x 8 tile.
__device__ __forceinline__ void mma(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

#else
// The CUDA emulator (kernels/cuda/emu/) carries out these instructions with the fragment
// layouts of the PTX ISA; cp.async copies land at the wait, as late as the device may.
__device__ __forceinline__ void cp_async16(void* dst, const void* src, bool valid) {
  ::mu_emu::cp_async16(dst, src, valid);
}
__device__ __forceinline__ void cp_async_commit() { ::mu_emu::cp_async_commit(); }
__device__ __forceinline__ void cp_async_wait_all() { ::mu_emu::cp_async_wait_all(); }
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const bf16_t* p) { ::mu_emu::ldmatrix_x4(r, p, false); }
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const bf16_t* p) {
  ::mu_emu::ldmatrix_x4(r, p, true);
}
__device__ __forceinline__ void mma(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  ::mu_emu::mma_m16n8k16_bf16(d, a, b0, b1);
}
#endif

// Rows [0, kRows) x columns [0, kD) of a tile whose row r lives at g + r*row_stride. Rows
// >= rows_valid (past the sequence end) and columns >= D (head-dim padding) become zeros.
template <int kD, int kRows>
__device__ __forceinline__ void load_tile(bf16_t* s, const bf16_t* g, int64_t row_stride, int rows_valid, int D) {
  constexpr int kChunks = kD / 8;  // 16-byte chunks per row
#pragma unroll
  for (int i = threadIdx.x; i < kRows * kChunks; i += kThreads) {
    const int r = i / kChunks, c = (i % kChunks) * 8;
    const bool ok = r < rows_valid && c < D;
    cp_async16(s + r * smem_stride<kD>() + c, ok ? g + r * row_stride + c : g, ok);
  }
}

// Two floats as a bf16 pair (the lower column in the low half, as the fragments expect).
__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
  __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<uint32_t*>(&v);
}

// A fragment of the 16 x 16 block at rows r0.., columns k0.. of a row-major smem tile.
// ldmatrix matrices: lanes 0-7 rows 0-7 / cols 0-7, 8-15 rows 8-15 / cols 0-7,
// 16-23 rows 0-7 / cols 8-15, 24-31 rows 8-15 / cols 8-15 -> a[0..3].
__device__ __forceinline__ void ldsm_a(uint32_t (&a)[4], const bf16_t* s, int stride, int r0, int k0, int lane) {
  ldmatrix_x4(a, s + (r0 + (lane & 15)) * stride + k0 + ((lane >> 4) << 3));
}

// B fragments for two n-tiles (n0.., n0+8..) x 16 k, from a smem tile stored [n][k] (the
// product's B transposed, e.g. K for S = Q K^T): b[0..1] for n-tile n0, b[2..3] for n0+8.
// Matrix i = lane / 8 covers n rows n0 + (i/2)*8 .. +7, k columns k0 + (i%2)*8 .. +7.
__device__ __forceinline__ void ldsm_b_nk(uint32_t (&b)[4], const bf16_t* s, int stride, int n0, int k0, int lane) {
  ldmatrix_x4(b, s + (n0 + (lane & 7) + ((lane >> 4) << 3)) * stride + k0 + (((lane >> 3) & 1) << 3));
}

// The same two B fragments from a smem tile stored [k][n] (B itself, e.g. V for O = P V),
// through the transposing load. Matrix i covers k rows k0 + (i%2)*8 .., n columns n0 + (i/2)*8 ..
__device__ __forceinline__ void ldsm_b_kn(uint32_t (&b)[4], const bf16_t* s, int stride, int k0, int n0, int lane) {
  ldmatrix_x4_trans(b, s + (k0 + (lane & 7) + (((lane >> 3) & 1) << 3)) * stride + n0 + ((lane >> 4) << 3));
}

// C tiles c0 (columns 0-7) and c1 (columns 8-15) of a 16 x 16 block as an A fragment.
__device__ __forceinline__ void c_to_a(uint32_t (&a)[4], const float (&c0)[4], const float (&c1)[4]) {
  a[0] = pack_bf16(c0[0], c0[1]);
  a[1] = pack_bf16(c0[2], c0[3]);
  a[2] = pack_bf16(c1[0], c1[1]);
  a[3] = pack_bf16(c1[2], c1[3]);
}

// Entry checks shared by forward and backward: BF16, 16-byte aligned, head_dim % 8 == 0 and
// <= 128, grid limits, an sm_80+ device. (attention_fwd.cu)
void check_attention_support(const char* op, const AttentionShape& s, std::initializer_list<const Tensor*> ts);
// Sizes, strides and scales from the shape; pointers left null. (attention_fwd.cu)
Params make_params(const AttentionShape& s);

// Opt a kernel into `smem` bytes of dynamic shared memory and launch it.
template <class Kernel>
void launch(Kernel kernel, dim3 grid, size_t smem, const Params& p, const char* what, cudaStream_t stream = 0) {
  const DeviceInfo& dev = device_info();
  MU_CHECK(smem <= dev.smem_optin_bytes, "%s: needs %zu bytes of shared memory per block, device %s allows %zu", what,
           smem, dev.name.c_str(), dev.smem_optin_bytes);
  MU_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)));
  kernel<<<grid, kThreads, smem, stream>>>(p);
  MU_CUDA_CHECK_LAUNCH();
}

}  // namespace attn
}  // namespace cuda
}  // namespace mu
