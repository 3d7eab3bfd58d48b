// RMSNorm (HF LlamaRMSNorm: y = x * rsqrt(mean(x^2) + eps) * w) forward and backward, and the
// forward fused with the residual add that precedes every norm in the model.
//
// One block per row (forward) or per fixed chunk of rows (backward). Each thread owns the
// same columns for the whole kernel (kMaxIt vectors of VEC), so a row is read from memory
// once, the gains are loaded once per block, and the backward accumulates its share of
// dweight in registers. dweight: per-block partial sums (fp32, in scratch) reduced in a fixed
// order by a second kernel, so the result is deterministic without atomics.
#include <algorithm>
#include <type_traits>

#include "kernels/cuda/common.cuh"
#include "kernels/scratch.h"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/op_check.h"

namespace mu {
namespace cuda {
namespace {

constexpr int kMaxIt = 4;  // vectors per thread per row
// Threads per block at most, so that every register a thread takes fits the SM's 64K: the
// kernels carry these as __launch_bounds__, and a row wider than they cover is refused. The
// 8-wide kernels hold 8x the values per thread (ptxas, sm_90a: up to 80 registers forward,
// 235 backward); the scalar ones fit a whole 1024-thread block.
constexpr int forward_max_threads(int vec) { return vec == 8 ? 768 : 1024; }
constexpr int backward_max_threads(int vec) { return vec == 8 ? 256 : 1024; }

// ---- kernels -------------------------------------------------------------------------------

// res_out = x + x2 (RESIDUAL; rounded to T first, so the norm sees the stored value the
// backward will read), out = v * r * w, rstd = r = 1/sqrt(mean(v^2) + eps).
template <class T, int VEC, bool RESIDUAL>
__global__ void __launch_bounds__(forward_max_threads(VEC))
    rmsnorm_forward_kernel(T* out, float* rstd, T* res_out, const T* x, const T* x2, const void* weight, bool w_bf16,
                           int C, float eps) {
  __shared__ float red[32];
  const int64_t row = int64_t{blockIdx.x} * C;
  float v[kMaxIt][VEC];
  float ss = 0.0f;
  // Every load of the row before the first store: res_out may alias x (the residual stream
  // updated in place), so the compiler could not move later loads above an earlier store.
  [[maybe_unused]] float y[kMaxIt][VEC];
#pragma unroll
  for (int it = 0; it < kMaxIt; it++) {
    const int c = (it * blockDim.x + threadIdx.x) * VEC;
    if (c < C) {
      load_vec<VEC>(x + row + c, v[it]);
      if constexpr (RESIDUAL) load_vec<VEC>(x2 + row + c, y[it]);
    }
  }
#pragma unroll
  for (int it = 0; it < kMaxIt; it++) {
    const int c = (it * blockDim.x + threadIdx.x) * VEC;
    if (c < C) {
      if constexpr (RESIDUAL) {
#pragma unroll
        for (int j = 0; j < VEC; j++) v[it][j] = round_to<T>(v[it][j] + y[it][j]);
        store_vec<VEC>(res_out + row + c, v[it]);
      }
#pragma unroll
      for (int j = 0; j < VEC; j++) ss += v[it][j] * v[it][j];
    }
  }
  ss = block_sum(ss, red);
  const float r = 1.0f / sqrtf(ss / static_cast<float>(C) + eps);
  if (threadIdx.x == 0) rstd[blockIdx.x] = r;
#pragma unroll
  for (int it = 0; it < kMaxIt; it++) {
    const int c = (it * blockDim.x + threadIdx.x) * VEC;
    if (c < C) {
      float w[VEC], y[VEC];
      load_vec_any<VEC>(weight, w_bf16, c, w);
#pragma unroll
      for (int j = 0; j < VEC; j++) y[j] = v[it][j] * r * w[j];
      store_vec<VEC>(out + row + c, y);
    }
  }
}

// With g = dout, u = x*r:  dx += r * (g*w - u * mean(g*w*u)),  dweight partial = sum_rows g*u.
// IT vectors per thread (the launcher picks the fewest that cover C), so the registers the
// arrays take are the ones the row needs: at C = 2048 two, not kMaxIt. dx (accumulated into)
// is read with dout and x, before the barrier, so one round trip serves the row.
template <class T, int VEC, int IT>
__global__ void __launch_bounds__(backward_max_threads(VEC))
    rmsnorm_backward_kernel(T* dx, float* dw_partial, const T* dout, const T* x, const void* weight, bool w_bf16,
                            const float* rstd, int64_t N, int C, int rows_per_block) {
  __shared__ float red[32];
  float w[IT][VEC], dw[IT][VEC];
#pragma unroll
  for (int it = 0; it < IT; it++) {
    const int c = (it * blockDim.x + threadIdx.x) * VEC;
#pragma unroll
    for (int j = 0; j < VEC; j++) w[it][j] = dw[it][j] = 0.0f;
    if (c < C) load_vec_any<VEC>(weight, w_bf16, c, w[it]);
  }
  const int64_t n0 = int64_t{blockIdx.x} * rows_per_block;
  const int64_t n1 = n0 + rows_per_block < N ? n0 + rows_per_block : N;
  for (int64_t n = n0; n < n1; n++) {
    const float r = rstd[n];
    const int64_t row = n * C;
    float g[IT][VEC], u[IT][VEC], d[IT][VEC];
    float dot = 0.0f;
#pragma unroll
    for (int it = 0; it < IT; it++) {
      const int c = (it * blockDim.x + threadIdx.x) * VEC;
      if (c < C) {
        load_vec<VEC>(dout + row + c, g[it]);
        load_vec<VEC>(x + row + c, u[it]);
        load_vec<VEC>(dx + row + c, d[it]);
      }
    }
#pragma unroll
    for (int it = 0; it < IT; it++) {
      const int c = (it * blockDim.x + threadIdx.x) * VEC;
      if (c < C) {
#pragma unroll
        for (int j = 0; j < VEC; j++) {
          u[it][j] *= r;
          dot += g[it][j] * w[it][j] * u[it][j];
          dw[it][j] += g[it][j] * u[it][j];
        }
      }
    }
    dot = block_sum(dot, red);
    const float m = dot / static_cast<float>(C);
#pragma unroll
    for (int it = 0; it < IT; it++) {
      const int c = (it * blockDim.x + threadIdx.x) * VEC;
      if (c < C) {
#pragma unroll
        for (int j = 0; j < VEC; j++) d[it][j] += r * (g[it][j] * w[it][j] - u[it][j] * m);
        store_vec<VEC>(dx + row + c, d[it]);
      }
    }
  }
#pragma unroll
  for (int it = 0; it < IT; it++) {
    const int c = (it * blockDim.x + threadIdx.x) * VEC;
    if (c < C) store_vec<VEC>(dw_partial + int64_t{blockIdx.x} * C + c, dw[it]);
  }
}

// dweight[c] += sum_p partial[p][c]. Block (32 columns) x (32 lanes over p): lane ty sums
// p = ty, ty+32, ... in order, then row 0 sums the 32 lane results in order.
__global__ void rmsnorm_dweight_kernel(void* dweight, bool dw_bf16, const float* partial, int nparts, int C) {
  __shared__ float acc[32][33];
  const int c = blockIdx.x * 32 + threadIdx.x;
  float s = 0.0f;
  if (c < C)
    for (int p = threadIdx.y; p < nparts; p += 32) s += partial[int64_t{p} * C + c];
  acc[threadIdx.y][threadIdx.x] = s;
  __syncthreads();
  if (threadIdx.y != 0 || c >= C) return;
  s = 0.0f;
  for (int k = 0; k < 32; k++) s += acc[k][threadIdx.x];
  if (dw_bf16) {
    bf16_t* d = static_cast<bf16_t*>(dweight) + c;
    *d = __float2bfloat16_rn(__bfloat162float(*d) + s);
  } else {
    static_cast<float*>(dweight)[c] += s;
  }
}

// ---- launchers -----------------------------------------------------------------------------

// Threads per row: enough that kMaxIt vectors each cover C, at least `min_threads`.
int row_threads(int64_t C, int vec, int min_threads) {
  const int64_t t = round_up(ceil_div(C, int64_t{vec} * kMaxIt), 32);
  return static_cast<int>(std::max<int64_t>(t, min_threads));
}

// VEC 8 when C divides and every row pointer is 16-byte aligned; C must fit max_threads(vec).
int choose_vec(const char* op, int64_t C, std::initializer_list<const void*> ptrs, int (*max_threads_for)(int)) {
  bool v8 = C % 8 == 0;
  for (const void* p : ptrs) v8 = v8 && aligned_to(p, 16);
  const int vec = v8 ? 8 : 1;
  const int max_threads = max_threads_for(vec);
  MU_CHECK(C <= int64_t{max_threads} * vec * kMaxIt, "%s: C = %lld is too wide for the cuda kernel (max %d%s)", op,
           static_cast<long long>(C), max_threads * vec * kMaxIt,
           v8 ? "" : " when C is not a multiple of 8 or a pointer is not 16-byte aligned");
  return vec;
}

template <class T, bool RESIDUAL>
void launch_forward(const char* op, Tensor out, Tensor rstd, Tensor res_out, Tensor x, Tensor x2, Tensor weight,
                    float eps) {
  const int64_t N = x.size(0), C = x.size(1);
  if (N == 0) return;
  const int vec = choose_vec(op, C, {out.data, x.data, weight.data, res_out.data, x2.data}, forward_max_threads);
  const bool wb = weight.dtype == DType::BF16;
  T* res = RESIDUAL ? dptr<T>(res_out) : nullptr;
  const T* b = RESIDUAL ? dptr<const T>(x2) : nullptr;
  const int threads = row_threads(C, vec, 64);
  const unsigned grid = static_cast<unsigned>(N);
  if (vec == 8)
    rmsnorm_forward_kernel<T, 8, RESIDUAL><<<grid, threads>>>(dptr<T>(out), dptr<float>(rstd), res, dptr<const T>(x), b,
                                                              weight.data, wb, static_cast<int>(C), eps);
  else
    rmsnorm_forward_kernel<T, 1, RESIDUAL><<<grid, threads>>>(dptr<T>(out), dptr<float>(rstd), res, dptr<const T>(x), b,
                                                              weight.data, wb, static_cast<int>(C), eps);
  MU_CUDA_CHECK_LAUNCH();
}

// Rows per block of the backward pass: from N alone, so the partial sums, hence dweight, are
// the same bits on every run (and every GPU).
int backward_rows_per_block(int64_t N) { return static_cast<int>(std::max<int64_t>(8, ceil_div(N, 2048))); }

template <class T>
void launch_backward(Tensor dx, Tensor dweight, Tensor dout, Tensor x, Tensor weight, Tensor rstd) {
  const char* op = "rmsnorm_backward";
  const int64_t N = x.size(0), C = x.size(1);
  if (N == 0) return;
  const int vec = choose_vec(op, C, {dx.data, dout.data, x.data, weight.data}, backward_max_threads);
  const int rpb = backward_rows_per_block(N);
  const int nparts = static_cast<int>(ceil_div(N, rpb));
  float* partial = static_cast<float*>(scratch(scratch_bytes_rmsnorm_backward(N, C), op));
  const int threads = row_threads(C, vec, 128);
  const bool wb = weight.dtype == DType::BF16;
  const int it = static_cast<int>(ceil_div(C, int64_t{threads} * vec));  // 1..kMaxIt (choose_vec bounds C)
  auto run = [&](auto vec_tag, auto it_tag) {
    rmsnorm_backward_kernel<T, decltype(vec_tag)::value, decltype(it_tag)::value><<<nparts, threads>>>(
        dptr<T>(dx), partial, dptr<const T>(dout), dptr<const T>(x), weight.data, wb, dptr<const float>(rstd), N,
        static_cast<int>(C), rpb);
  };
  auto with_it = [&](auto vec_tag) {
    switch (it) {
      case 1: run(vec_tag, std::integral_constant<int, 1>{}); break;
      case 2: run(vec_tag, std::integral_constant<int, 2>{}); break;
      case 3: run(vec_tag, std::integral_constant<int, 3>{}); break;
      default: run(vec_tag, std::integral_constant<int, kMaxIt>{}); break;
    }
  };
  if (vec == 8) with_it(std::integral_constant<int, 8>{});
  else with_it(std::integral_constant<int, 1>{});
  MU_CUDA_CHECK_LAUNCH();
  rmsnorm_dweight_kernel<<<static_cast<unsigned>(ceil_div(C, 32)), dim3(32, 32)>>>(
      dweight.data, dweight.dtype == DType::BF16, partial, nparts, static_cast<int>(C));
  MU_CUDA_CHECK_LAUNCH();
}

void check_act_dtypes(const char* op, std::initializer_list<NamedTensor> ts) {
  const Tensor& first = ts.begin()->t;
  check_float_dtype(op, ts.begin()->name, first);
  for (const NamedTensor& n : ts)
    MU_CHECK(n.t.dtype == first.dtype, "%s: %s has dtype %s but %s has %s; the cuda kernel needs one activation dtype",
             op, n.name, dtype_name(n.t.dtype), ts.begin()->name, dtype_name(first.dtype));
}

}  // namespace

// ---- entries ---------------------------------------------------------------------------------

void rmsnorm_forward(Tensor out, Tensor rstd, Tensor x, Tensor weight, float eps) {
  require_device("rmsnorm_forward");
  const char* op = "rmsnorm_forward";
  check_act_dtypes(op, {{"x", x}, {"out", out}});
  check_float_dtype(op, "weight", weight);
  dispatch_float(x.dtype, [&](auto tag) {
    using T = decltype(tag);
    launch_forward<T, false>(op, out, rstd, Tensor(), x, Tensor(), weight, eps);
  });
}

void residual_rmsnorm_forward(Tensor res_out, Tensor out, Tensor rstd, Tensor a, Tensor b, Tensor weight, float eps) {
  require_device("residual_rmsnorm_forward");
  const char* op = "residual_rmsnorm_forward";
  check_act_dtypes(op, {{"a", a}, {"b", b}, {"res_out", res_out}, {"out", out}});
  check_float_dtype(op, "weight", weight);
  dispatch_float(a.dtype, [&](auto tag) {
    using T = decltype(tag);
    launch_forward<T, true>(op, out, rstd, res_out, a, b, weight, eps);
  });
}

void rmsnorm_backward(Tensor dx, Tensor dweight, Tensor dout, Tensor x, Tensor weight, Tensor rstd) {
  require_device("rmsnorm_backward");
  const char* op = "rmsnorm_backward";
  check_act_dtypes(op, {{"x", x}, {"dx", dx}, {"dout", dout}});
  check_float_dtype(op, "weight", weight);
  check_float_dtype(op, "dweight", dweight);
  dispatch_float(x.dtype, [&](auto tag) {
    using T = decltype(tag);
    launch_backward<T>(dx, dweight, dout, x, weight, rstd);
  });
}

}  // namespace cuda

size_t scratch_bytes_rmsnorm_backward(int64_t rows, int64_t C) {
  return static_cast<size_t>(cuda::ceil_div(rows, cuda::backward_rows_per_block(rows)) * C) * sizeof(float);
}
}  // namespace mu
