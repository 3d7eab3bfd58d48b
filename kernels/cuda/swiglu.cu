// SwiGLU (HF LlamaMLP: silu(gate) * up) forward and backward; each row of gate_up is
// [gate (F) | up (F)]. Element-wise and memory-bound: 8 elements per thread when F divides.
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_ops.h"

namespace mu {
namespace cuda {
namespace {

constexpr int kThreads = 256;

__device__ __forceinline__ float sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

template <class T, int VEC>
__global__ void swiglu_forward_kernel(T* out, const T* gate_up, int64_t N, int64_t F) {
  const int64_t per_row = F / VEC, total = N * per_row;
  for (int64_t idx = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; idx < total;
       idx += int64_t{gridDim.x} * blockDim.x) {
    const int64_t n = idx / per_row, i = (idx % per_row) * VEC;
    float g[VEC], u[VEC], y[VEC];
    load_vec<VEC>(gate_up + n * 2 * F + i, g);
    load_vec<VEC>(gate_up + n * 2 * F + F + i, u);
#pragma unroll
    for (int j = 0; j < VEC; j++) y[j] = g[j] * sigmoid(g[j]) * u[j];
    store_vec<VEC>(out + n * F + i, y);
  }
}

// d/dg [g s(g)] = s(g) (1 + g (1 - s(g))), s the logistic sigmoid.
template <class T, int VEC>
__global__ void swiglu_backward_kernel(T* dgate_up, const T* dout, const T* gate_up, int64_t N, int64_t F) {
  const int64_t per_row = F / VEC, total = N * per_row;
  for (int64_t idx = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; idx < total;
       idx += int64_t{gridDim.x} * blockDim.x) {
    const int64_t n = idx / per_row, i = (idx % per_row) * VEC;
    float g[VEC], u[VEC], d[VEC], dg[VEC], du[VEC];
    load_vec<VEC>(gate_up + n * 2 * F + i, g);
    load_vec<VEC>(gate_up + n * 2 * F + F + i, u);
    load_vec<VEC>(dout + n * F + i, d);
#pragma unroll
    for (int j = 0; j < VEC; j++) {
      const float s = sigmoid(g[j]);
      du[j] = d[j] * g[j] * s;
      dg[j] = d[j] * u[j] * s * (1.0f + g[j] * (1.0f - s));
    }
    store_vec<VEC>(dgate_up + n * 2 * F + i, dg);
    store_vec<VEC>(dgate_up + n * 2 * F + F + i, du);
  }
}

bool vec8_ok(int64_t F, std::initializer_list<const void*> ptrs) {
  if (F % 8 != 0) return false;
  for (const void* p : ptrs)
    if (!aligned_to(p, 16)) return false;
  return true;
}

void check_dtypes(const char* op, std::initializer_list<const Tensor*> ts) {
  const Tensor* first = *ts.begin();
  check_float_dtype(op, "gate_up", *first);
  for (const Tensor* t : ts)
    MU_CHECK(t->dtype == first->dtype, "%s: every tensor must share one dtype on cuda (%s vs %s)", op,
             dtype_name(t->dtype), dtype_name(first->dtype));
}

}  // namespace

void swiglu_forward(Tensor out, Tensor gate_up) {
  require_device("swiglu_forward");
  check_dtypes("swiglu_forward", {&gate_up, &out});
  const int64_t N = out.size(0), F = out.size(1);
  if (N * F == 0) return;
  dispatch_float(out.dtype, [&](auto tag) {
    using T = decltype(tag);
    if (vec8_ok(F, {out.data, gate_up.data}))
      swiglu_forward_kernel<T, 8>
          <<<grid_for(N * F / 8, kThreads), kThreads>>>(dptr<T>(out), dptr<const T>(gate_up), N, F);
    else
      swiglu_forward_kernel<T, 1><<<grid_for(N * F, kThreads), kThreads>>>(dptr<T>(out), dptr<const T>(gate_up), N, F);
    MU_CUDA_CHECK_LAUNCH();
  });
}

void swiglu_backward(Tensor dgate_up, Tensor dout, Tensor gate_up) {
  require_device("swiglu_backward");
  check_dtypes("swiglu_backward", {&gate_up, &dgate_up, &dout});
  const int64_t N = dout.size(0), F = dout.size(1);
  if (N * F == 0) return;
  dispatch_float(dout.dtype, [&](auto tag) {
    using T = decltype(tag);
    if (vec8_ok(F, {dgate_up.data, dout.data, gate_up.data}))
      swiglu_backward_kernel<T, 8><<<grid_for(N * F / 8, kThreads), kThreads>>>(dptr<T>(dgate_up), dptr<const T>(dout),
                                                                                dptr<const T>(gate_up), N, F);
    else
      swiglu_backward_kernel<T, 1><<<grid_for(N * F, kThreads), kThreads>>>(dptr<T>(dgate_up), dptr<const T>(dout),
                                                                            dptr<const T>(gate_up), N, F);
    MU_CUDA_CHECK_LAUNCH();
  });
}

}  // namespace cuda
}  // namespace mu
