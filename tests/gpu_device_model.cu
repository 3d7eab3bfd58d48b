// What the kernels assume of the device, tested where they run: warp shuffles, block
// barriers, ldmatrix and mma.sync fragment layouts (through the helpers attention.cuh gives
// the flash-attention kernels), and the launch checks. Compiled by nvcc for a GPU (label
// gpu) and, rewritten, for the CUDA emulator (label emu), so the emulator is held to the
// same expectations the hardware is. The tests that end with an emulator-only diagnosis
// (a stuck block, __trap, a racy read) are marked so.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <string>
#include <random>
#include <vector>

#include "kernels/cuda/attention.cuh"
#include "tests/gpu_test_util.h"

using namespace mu;
using namespace mu::cuda;
using namespace mu::gputest;

namespace {

class GpuDeviceModel : public GpuTest {};

// ---- warp shuffles ------------------------------------------------------------------------

constexpr int kShuffles = 6;

__global__ void shuffle_kernel(int* out, double* out64) {
  const int t = threadIdx.x, lane = t & 31;
  const int v = 1000 * (t >> 5) + lane;
  int* o = out + kShuffles * t;
  o[0] = __shfl_xor_sync(0xffffffffu, v, 5);
  o[1] = __shfl_sync(0xffffffffu, v, 7, 8);
  o[2] = __shfl_down_sync(0xffffffffu, v, 3, 16);
  o[3] = __shfl_up_sync(0xffffffffu, v, 2);
  o[4] = __shfl_xor_sync(0xffffffffu, v, 9, 8);  // reaches an earlier 8-lane segment, or a later one
  o[5] = lane < 16 ? __shfl_xor_sync(0x0000ffffu, v, 1) : -1;  // half the warp, its own mask
  out64[t] = __shfl_down_sync(0xffffffffu, 0.5 + v, 1);  // 64-bit values move whole
}

TEST_F(GpuDeviceModel, ShufflesFollowTheProgrammingGuide) {
  const int n = 64;
  DevTensor d(DType::I32, {kShuffles * n}), d64(DType::F32, {2 * n});  // F32 x 2: the doubles' bytes
  d.poison();
  d64.poison();
  shuffle_kernel<<<1, n>>>(static_cast<int*>(d.t().data), static_cast<double*>(d64.t().data));
  ASSERT_EQ(cudaGetLastError(), cudaSuccess);
  std::vector<int32_t> got(kShuffles * n);
  std::vector<double> got64(n);
  copy_to_host(got.data(), d.t());
  copy_to_host(got64.data(), d64.t());
  for (int t = 0; t < n; t++) {
    const int w = 1000 * (t >> 5), l = t & 31;
    const int* g = got.data() + kShuffles * t;
    // xor: lane ^ 5; idx: lane 7 of each 8-lane segment; down 3 within 16-lane segments
    // (past the segment: own value); up 2 (below lane 0: own value).
    EXPECT_EQ(g[0], w + (l ^ 5)) << "xor, thread " << t;
    EXPECT_EQ(g[1], w + (l & ~7) + 7) << "idx width 8, thread " << t;
    EXPECT_EQ(g[2], w + ((l % 16) + 3 < 16 ? l + 3 : l)) << "down width 16, thread " << t;
    EXPECT_EQ(g[3], w + (l >= 2 ? l - 2 : l)) << "up, thread " << t;
    // xor width 8: an earlier segment may be read, a later one gives the lane's own value
    EXPECT_EQ(g[4], w + ((l ^ 9) < (l & ~7) + 8 ? (l ^ 9) : l)) << "xor 9 width 8, thread " << t;
    EXPECT_EQ(g[5], l < 16 ? w + (l ^ 1) : -1) << "xor under mask 0xffff, thread " << t;
    EXPECT_EQ(got64[t], 0.5 + w + (l + 1 < 32 ? l + 1 : l)) << "64-bit down, thread " << t;
  }
}

// ---- block barrier ------------------------------------------------------------------------

__global__ void rotate_kernel(float* out) {
  __shared__ float s[256];
  s[threadIdx.x] = static_cast<float>(threadIdx.x);
  __syncthreads();
  out[threadIdx.x] = s[(threadIdx.x + 1) % blockDim.x];
}

TEST_F(GpuDeviceModel, BarrierPublishesSharedMemory) {
  DevTensor d(DType::F32, {256});
  d.poison();
  rotate_kernel<<<1, 256>>>(static_cast<float*>(d.t().data));
  ASSERT_EQ(cudaGetLastError(), cudaSuccess);
  const std::vector<float> got = d.download();
  for (int t = 0; t < 256; t++) EXPECT_EQ(got[t], static_cast<float>((t + 1) % 256)) << "thread " << t;
}

// ---- ldmatrix and mma.sync ----------------------------------------------------------------
// One warp. A is 16 x 16 row-major; Bt holds B (16 k x 8 n) stored [n][k], as K is for
// S = Q K^T. The fragments are built two ways: from global memory by the PTX ISA's
// formulas (g = lane / 4, q = lane % 4), and by the kernels' ldmatrix helpers from a padded
// shared tile; both must agree, and mma must give A B.

__device__ uint32_t pair(const bf16_t* p) {
  return static_cast<uint32_t>(reinterpret_cast<const uint16_t*>(p)[0]) |
         static_cast<uint32_t>(reinterpret_cast<const uint16_t*>(p)[1]) << 16;
}

// frag: per lane, kFrag words: a[0..3] by formula, a[0..3] by ldsm_a, b[0..3] (n-tiles 0 and
// 1) by ldsm_b_nk, the same by ldsm_b_kn from a [k][n] copy, and b[0..3] by formula.
// d: per lane the 4 accumulators of D = A B for n-tile 0.
constexpr int kFrag = 20;
__global__ void fragment_kernel(const bf16_t* A, const bf16_t* Bt, uint32_t* frag, float* d) {
  extern __shared__ __align__(16) unsigned char smem[];
  constexpr int kStride = 24;  // 16 + 8 elements: the kernels' padded row
  bf16_t* sa = reinterpret_cast<bf16_t*>(smem);
  bf16_t* sb = sa + 16 * kStride;  // [n][k], 16 n rows: two n-tiles
  bf16_t* sk = sb + 16 * kStride;  // [k][n], B itself, 16 n columns
  const int lane = threadIdx.x, g = lane / 4, q = lane % 4;
  for (int i = lane; i < 16 * 16; i += 32) {
    const int r = i / 16, c = i % 16;
    sa[r * kStride + c] = A[r * 16 + c];
    sb[r * kStride + c] = Bt[r * 16 + c];
    sk[r * kStride + c] = Bt[c * 16 + r];  // (k = r, n = c)
  }
  __syncthreads();
  uint32_t a[4], la[4], b[4], lb[4], lk[4];
  a[0] = pair(A + g * 16 + 2 * q);
  a[1] = pair(A + (g + 8) * 16 + 2 * q);
  a[2] = pair(A + g * 16 + 8 + 2 * q);
  a[3] = pair(A + (g + 8) * 16 + 8 + 2 * q);
  b[0] = pair(Bt + g * 16 + 2 * q);  // n-tile 0: (k 2q..2q+1, n g)
  b[1] = pair(Bt + g * 16 + 8 + 2 * q);
  b[2] = pair(Bt + (8 + g) * 16 + 2 * q);  // n-tile 1: n 8 + g
  b[3] = pair(Bt + (8 + g) * 16 + 8 + 2 * q);
  attn::ldsm_a(la, sa, kStride, 0, 0, lane);
  attn::ldsm_b_nk(lb, sb, kStride, 0, 0, lane);
  attn::ldsm_b_kn(lk, sk, kStride, 0, 0, lane);
  uint32_t* f = frag + lane * kFrag;
  for (int i = 0; i < 4; i++) f[i] = a[i], f[4 + i] = la[i], f[8 + i] = lb[i], f[12 + i] = lk[i], f[16 + i] = b[i];
  float acc[4] = {0.5f, -0.25f, 1.0f, 2.0f};  // C, accumulated into
  attn::mma(acc, a, b[0], b[1]);
  for (int i = 0; i < 4; i++) d[lane * 4 + i] = acc[i];
}

TEST_F(GpuDeviceModel, LdmatrixAndMmaFollowThePtxFragmentLayouts) {
  std::mt19937 rng(7);
  const std::vector<float> a = rounded_if(random_vec(256, rng), DType::BF16);
  const std::vector<float> bt = rounded_if(random_vec(256, rng), DType::BF16);  // [n][k], two n-tiles
  DevTensor dA(DType::BF16, {16, 16}), dB(DType::BF16, {16, 16}), dfrag(DType::I32, {32 * kFrag}), dd(DType::F32, {128});
  dA.upload(a);
  dB.upload(bt);
  dfrag.poison();
  dd.poison();
  const size_t smem = 3 * 16 * 24 * sizeof(bf16_t);
  fragment_kernel<<<1, 32, smem>>>(static_cast<const bf16_t*>(dA.t().data), static_cast<const bf16_t*>(dB.t().data),
                                   static_cast<uint32_t*>(dfrag.t().data), static_cast<float*>(dd.t().data));
  ASSERT_EQ(cudaGetLastError(), cudaSuccess);
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  std::vector<uint32_t> frag(32 * kFrag);
  copy_to_host(frag.data(), dfrag.t());
  const std::vector<float> d = dd.download();
  for (int lane = 0; lane < 32; lane++) {
    const uint32_t* f = frag.data() + lane * kFrag;
    for (int i = 0; i < 4; i++) {
      EXPECT_EQ(f[4 + i], f[i]) << "ldsm_a, lane " << lane << ", register " << i;
      EXPECT_EQ(f[8 + i], f[16 + i]) << "ldsm_b_nk, lane " << lane << ", register " << i;
      EXPECT_EQ(f[12 + i], f[16 + i]) << "ldsm_b_kn, lane " << lane << ", register " << i;
    }
    const int g = lane / 4, q = lane % 4;
    const float c0[4] = {0.5f, -0.25f, 1.0f, 2.0f};
    for (int i = 0; i < 4; i++) {  // d[i]: row g (+8 for i >= 2), column 2q + (i & 1)
      const int r = g + (i >> 1) * 8, c = 2 * q + (i & 1);
      double want = c0[i];
      for (int k = 0; k < 16; k++) want += static_cast<double>(a[r * 16 + k]) * bt[c * 16 + k];
      // bf16 products are exact in fp32; 16 fp32 additions of terms <= 1: 1e-5 absolute.
      EXPECT_NEAR(d[lane * 4 + i], want, 1e-5) << "mma, lane " << lane << ", d[" << i << "] = D(" << r << ", " << c << ")";
    }
  }
}

// ---- launch checks ------------------------------------------------------------------------

__global__ void noop_kernel(float* p) {
  extern __shared__ __align__(16) unsigned char smem[];
  if (threadIdx.x == 0 && p) p[0] = static_cast<float>(smem[0] * 0);
}

TEST_F(GpuDeviceModel, BadLaunchConfigurationsAreRefused) {
  cudaGetLastError();
  noop_kernel<<<1, 1025>>>(nullptr);
  EXPECT_EQ(cudaGetLastError(), cudaErrorInvalidConfiguration) << "1025 threads per block";
  noop_kernel<<<0, 32>>>(nullptr);
  EXPECT_EQ(cudaGetLastError(), cudaErrorInvalidConfiguration) << "an empty grid";
  noop_kernel<<<1, 32, 64 << 10>>>(nullptr);
  EXPECT_NE(cudaGetLastError(), cudaSuccess) << "64 KiB of dynamic shared memory without opting in";
  ASSERT_EQ(cudaFuncSetAttribute(noop_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 64 << 10), cudaSuccess);
  noop_kernel<<<1, 32, 64 << 10>>>(nullptr);
  EXPECT_EQ(cudaGetLastError(), cudaSuccess) << "64 KiB after opting in";
  EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
}

#ifdef MU_CUDA_EMU
// ---- the emulator's own diagnoses (no device equivalent to compare with) ------------------

__global__ void racy_rotate_kernel(float* out) {
  __shared__ float s[64];
  s[threadIdx.x] = static_cast<float>(threadIdx.x) + 1.0f;
  out[threadIdx.x] = s[(threadIdx.x + 1) % blockDim.x];  // no barrier: a race
}

TEST_F(GpuDeviceModel, EmulatorExposesAMissingBarrierInOneOfTheOrders) {
  DevTensor d(DType::F32, {64});
  int wrong[2] = {0, 0};
  for (int reverse = 0; reverse < 2; reverse++) {
    mu_emu::set_reverse_order(reverse == 1);
    d.poison();
    racy_rotate_kernel<<<1, 64>>>(static_cast<float*>(d.t().data));
    const std::vector<float> got = d.download();
    for (int t = 0; t < 64; t++) wrong[reverse] += got[t] != static_cast<float>((t + 1) % 64) + 1.0f;
  }
  mu_emu::set_reverse_order(false);
  EXPECT_GT(wrong[0] + wrong[1], 0) << "the race went unseen in both orders";
}

__global__ void stuck_kernel(float*) {
  if (threadIdx.x < 16)
    __syncthreads();
  else
    __shfl_xor_sync(0xffffffffu, 1.0f, 1);  // lanes 0..15 never come
}

__global__ void trap_kernel(float*) {
  if (threadIdx.x == 3) __trap();
}

__global__ void early_read_kernel(const float* src, float* out) {
  extern __shared__ __align__(16) unsigned char smem[];
  float* s = reinterpret_cast<float*>(smem);
  attn::cp_async16(s, src, true);
  attn::cp_async_commit();
  out[0] = s[0];  // before the wait: still the poison
  attn::cp_async_wait_all();
  out[1] = s[0];
}

__global__ void stale_shared_kernel(float* out) {
  __shared__ float s[32];
  out[blockIdx.x * 32 + threadIdx.x] = s[threadIdx.x];  // never written before: garbage on a GPU
  s[threadIdx.x] = 1.0f;                                // what the next block must not see
}

TEST_F(GpuDeviceModel, EmulatorPoisonsSharedMemoryForEveryBlock) {
  DevTensor out(DType::F32, {64});
  out.upload(std::vector<float>(64, 0.0f));
  stale_shared_kernel<<<2, 32>>>(static_cast<float*>(out.t().data));
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  const std::vector<float> got = out.download();
  for (int i = 0; i < 64; i++) EXPECT_TRUE(std::isnan(got[i])) << "block " << i / 32 << " thread " << i % 32 << " read " << got[i];
}

__global__ void uncommitted_copy_kernel(const float* src, float* out) {
  extern __shared__ __align__(16) unsigned char smem[];
  float* s = reinterpret_cast<float*>(smem);
  attn::cp_async16(s, src, true);
  attn::cp_async_wait_all();  // no commit: the copy is in no group, so nothing waits for it
  out[0] = s[0];
}

__global__ void write_at_kernel(float* p, int i) { p[i] = 1.0f; }

// Device memory is closed to host code between the emulator's calls, ends at a guard page,
// and kernels take no host pointers.
TEST_F(GpuDeviceModel, EmulatorGuardsDeviceMemory) {
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "under ASan device memory is heap memory, for ASan's own checks";
#endif
  DevTensor d(DType::F32, {256});  // 1 KiB: its end is the guard page
  float* p = static_cast<float*>(d.t().data);
  EXPECT_DEATH({ volatile float x = p[3]; (void)x; }, "the host touched device memory");
  EXPECT_DEATH(
      {
        write_at_kernel<<<1, 1>>>(p, 256);
        cudaDeviceSynchronize();
      },
      "bytes past the end of the allocation");
  write_at_kernel<<<1, 1>>>(p, 255);  // the last element is fine
  EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  float host[4] = {};
  write_at_kernel<<<1, 1>>>(host, 0);
  EXPECT_EQ(cudaDeviceSynchronize(), cudaErrorLaunchFailure) << "a host pointer as a kernel argument";
  cudaDeviceReset();
}

TEST_F(GpuDeviceModel, EmulatorReportsStuckBlocksTrapsAndEarlyReads) {
  stuck_kernel<<<1, 32>>>(nullptr);
  EXPECT_EQ(cudaDeviceSynchronize(), cudaErrorLaunchFailure) << "a block that cannot go on";
  cudaDeviceReset();
  trap_kernel<<<2, 32>>>(nullptr);
  EXPECT_EQ(cudaDeviceSynchronize(), cudaErrorLaunchFailure) << "__trap";
  cudaDeviceReset();
  DevTensor src(DType::F32, {4}), out(DType::F32, {2});
  src.upload({1.0f, 2.0f, 3.0f, 4.0f});
  early_read_kernel<<<1, 1, 16>>>(static_cast<const float*>(src.t().data), static_cast<float*>(out.t().data));
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  const std::vector<float> got = out.download();
  const char* delivery = std::getenv("MU_EMU_CPASYNC");  // "early": delivered at issue
  if (!delivery || std::string(delivery) != "early") {
    EXPECT_TRUE(std::isnan(got[0])) << "a read before cp.async.wait_group saw " << got[0];
  }
  EXPECT_EQ(got[1], 1.0f);
  uncommitted_copy_kernel<<<1, 1, 16>>>(static_cast<const float*>(src.t().data), static_cast<float*>(out.t().data));
  EXPECT_EQ(cudaDeviceSynchronize(), cudaErrorLaunchFailure) << "a cp.async never committed";
  cudaDeviceReset();
  float host[4];
  EXPECT_EQ(cudaMemcpy(host, host, sizeof host, cudaMemcpyHostToDevice), cudaErrorInvalidValue)
      << "a host pointer passed as the device side";
  cudaGetLastError();
}
#endif

}  // namespace
