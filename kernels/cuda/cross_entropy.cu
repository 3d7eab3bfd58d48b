// Softmax cross-entropy over the vocabulary, fused with its backward: the LM head's logits
// (N, V) stay in their storage dtype (bf16 in training) and are overwritten in place with
// dlogits; all math is fp32 and no fp32 copy of the logits ever exists.
//
// One block per row. Pass 1: each thread keeps an online (max, sum of exp) over its
// elements; the block combines the pairs in a fixed order. Pass 2 (forward_backward) re-reads
// the row (from L2 at training sizes) and writes grad_scale * (softmax - onehot).
#include <algorithm>
#include <climits>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_ops.h"

namespace mu {
namespace cuda {
namespace {

// (m1, s1) and (m2, s2) are sums of exp(z - m); their union relative to max(m1, m2).
__device__ __forceinline__ void combine(float& m, float& s, float m2, float s2) {
  const float mm = fmaxf(m, m2);
  if (mm == -INFINITY) return;  // both empty
  s = s * expf(m - mm) + s2 * expf(m2 - mm);
  m = mm;
}

// The block-wide (max, sum) pair, returned to every thread.
__device__ __forceinline__ void block_combine(float& m, float& s, float* sm, float* ss) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const float m2 = __shfl_xor_sync(0xffffffffu, m, o), s2 = __shfl_xor_sync(0xffffffffu, s, o);
    combine(m, s, m2, s2);
  }
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
  if (lane == 0) {
    sm[warp] = m;
    ss[warp] = s;
  }
  __syncthreads();
  m = lane < nwarps ? sm[lane] : -INFINITY;
  s = lane < nwarps ? ss[lane] : 0.0f;
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const float m2 = __shfl_xor_sync(0xffffffffu, m, o), s2 = __shfl_xor_sync(0xffffffffu, s, o);
    combine(m, s, m2, s2);
  }
}

// x[u] = the VEC logits at base + u*step, for each u whose vector starts below V: U loads in
// flight before the first use.
template <int U, int VEC, class T>
__device__ __forceinline__ void load_vecs(const T* z, int64_t base, int64_t step, int64_t V, float (&x)[U][VEC]) {
#pragma unroll
  for (int u = 0; u < U; u++)
    if (base + u * step < V) load_vec<VEC>(z + base + u * step, x[u]);
}

// Up to 1024 threads a row (the launcher's choice at large V): at most 64 registers a thread.
template <class T, int VEC, bool BACKWARD>
__global__ void __launch_bounds__(1024) cross_entropy_kernel(float* losses, T* logits, const int32_t* targets, int64_t V, float grad_scale,
                                     int* bad) {
  __shared__ float sm[32];
  __shared__ float ss[32];
  const int64_t n = blockIdx.x;
  T* z = logits + n * V;
  const int32_t tgt = targets[n];
  if (tgt < 0 || tgt >= V) {  // the same for the whole block: nobody reaches a barrier
    if (threadIdx.x == 0) {
      atomicMin(bad, static_cast<int>(n));
      losses[n] = __int_as_float(0x7fc00000);
    }
    return;
  }
  // Read before anyone overwrites the row (pass 2 starts after the barriers in block_combine).
  const float zt = threadIdx.x == 0 ? to_f32(z[tgt]) : 0.0f;
  // Both passes load kUnroll vectors before using the first (more bytes in flight per thread)
  // and then take them in the same order as one at a time, so the sums are unchanged.
  // Pass 1 holds 64 bytes of logits per thread; pass 2, which also keeps its results until the
  // stores, half that (more spills past the 64 registers a 1024-thread block allows).
  constexpr int kUnroll = sizeof(T) == 2 ? 4 : 2, kUnroll2 = kUnroll / 2;
  const int64_t step = int64_t{blockDim.x} * VEC;
  float m = -INFINITY, s = 0.0f;
  for (int64_t base = int64_t{threadIdx.x} * VEC; base < V; base += step * kUnroll) {
    float x[kUnroll][VEC];
    load_vecs(z, base, step, V, x);
#pragma unroll
    for (int u = 0; u < kUnroll; u++) {
      if (base + u * step >= V) break;
      float mx = x[u][0];
#pragma unroll
      for (int j = 1; j < VEC; j++) mx = fmaxf(mx, x[u][j]);
      if (mx > m) {
        s *= expf(m - mx);  // m = -inf at first: exp(-inf) = 0 and s is 0 anyway
        m = mx;
      }
      // While every logit seen is -inf (masked vocabulary entries), m is -inf too and x - m
      // would be NaN: those entries contribute exp(-inf) = 0 (the cpu op subtracts a finite max).
      const float m_use = m == -INFINITY ? 0.0f : m;
#pragma unroll
      for (int j = 0; j < VEC; j++) s += expf(x[u][j] - m_use);
    }
  }
  block_combine(m, s, sm, ss);
  if (threadIdx.x == 0) losses[n] = logf(s) + m - zt;
  if constexpr (BACKWARD) {
    const float k = grad_scale / s;
    for (int64_t base = int64_t{threadIdx.x} * VEC; base < V; base += step * kUnroll2) {
      float x[kUnroll2][VEC];
      load_vecs(z, base, step, V, x);
#pragma unroll
      for (int u = 0; u < kUnroll2; u++) {
        const int64_t i = base + u * step;
        if (i >= V) break;
#pragma unroll
        for (int j = 0; j < VEC; j++) x[u][j] = expf(x[u][j] - m) * k - (i + j == tgt ? grad_scale : 0.0f);
        store_vec<VEC>(z + i, x[u]);
      }
    }
  }
}

template <class T, bool BACKWARD>
void launch(const char* op, Tensor losses, Tensor logits, Tensor targets, float grad_scale) {
  const int64_t N = logits.size(0), V = logits.size(1);
  MU_CHECK(N <= INT_MAX, "%s: %lld rows; the cuda kernel indexes rows with int", op, static_cast<long long>(N));
  if (N == 0) return;
  const int vec = V % 8 == 0 && aligned_to(logits.data, 16) ? 8 : 1;
  // About 8 vectors per thread at large V; at least two warps.
  const int threads =
      static_cast<int>(std::min<int64_t>(1024, std::max<int64_t>(64, round_up(ceil_div(V, vec * 8), 32))));
  reset_error_record();
  if (vec == 8)
    cross_entropy_kernel<T, 8, BACKWARD><<<static_cast<unsigned>(N), threads>>>(
        dptr<float>(losses), dptr<T>(logits), dptr<const int32_t>(targets), V, grad_scale, error_record());
  else
    cross_entropy_kernel<T, 1, BACKWARD><<<static_cast<unsigned>(N), threads>>>(
        dptr<float>(losses), dptr<T>(logits), dptr<const int32_t>(targets), V, grad_scale, error_record());
  MU_CUDA_CHECK_LAUNCH();
  const int bad = read_error_record();
  if (bad != kNoError) {
    int32_t t = 0;
    MU_CUDA_CHECK(cudaMemcpy(&t, dptr<const int32_t>(targets) + bad, sizeof(t), cudaMemcpyDeviceToHost));
    MU_FAIL("%s: target %d at position %d is outside the vocabulary [0, %lld)", op, t, bad, static_cast<long long>(V));
  }
}

}  // namespace

void cross_entropy_forward(Tensor losses, Tensor logits, Tensor targets) {
  require_device("cross_entropy_forward");
  const char* op = "cross_entropy_forward";
  check_float_dtype(op, "logits", logits);
  dispatch_float(logits.dtype, [&](auto tag) {
    using T = decltype(tag);
    launch<T, false>(op, losses, logits, targets, 0.0f);
  });
}

void cross_entropy_forward_backward(Tensor losses, Tensor logits_inout, Tensor targets, float grad_scale) {
  require_device("cross_entropy_forward_backward");
  const char* op = "cross_entropy_forward_backward";
  check_float_dtype(op, "logits_inout", logits_inout);
  dispatch_float(logits_inout.dtype, [&](auto tag) {
    using T = decltype(tag);
    launch<T, true>(op, losses, logits_inout, targets, grad_scale);
  });
}

}  // namespace cuda
}  // namespace mu
