// RoPE in place on the q and k heads of the fused qkv buffer, HF "rotate_half" convention:
// x[i] pairs with x[i + D/2]. The cos/sin tables (T, D/2) are computed once on the host in
// double (rope_tables) and read here as fp32; the backward is the rotation by -angle.
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_ops.h"

namespace mu {
namespace cuda {
namespace {

constexpr int kThreads = 256;

// One thread per (b, t, rotated head, VEC consecutive pairs).
template <class T, int VEC>
__global__ void rope_kernel(T* qkv, const float* cos, const float* sin, int64_t total, int seq_len, int n_heads,
                            int n_rot, int head_dim, float sign) {
  const int half = head_dim / 2;
  const int nvec = half / VEC;
  for (int64_t idx = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; idx < total;
       idx += int64_t{gridDim.x} * blockDim.x) {
    const int i = static_cast<int>(idx % nvec) * VEC;
    const int64_t rest = idx / nvec;
    const int h = static_cast<int>(rest % n_rot);
    const int64_t bt = rest / n_rot;
    const int64_t t = bt % seq_len;
    T* v = qkv + (bt * n_heads + h) * head_dim + i;
    float x1[VEC], x2[VEC], c[VEC], s[VEC];
    load_vec<VEC>(v, x1);
    load_vec<VEC>(v + half, x2);
    load_vec<VEC>(cos + t * half + i, c);
    load_vec<VEC>(sin + t * half + i, s);
    float y1[VEC], y2[VEC];
#pragma unroll
    for (int j = 0; j < VEC; j++) {
      const float si = sign * s[j];
      y1[j] = x1[j] * c[j] - x2[j] * si;
      y2[j] = x2[j] * c[j] + x1[j] * si;
    }
    store_vec<VEC>(v, y1);
    store_vec<VEC>(v + half, y2);
  }
}

template <class T>
void launch_rope(Tensor qkv, int n_rot, Tensor cos, Tensor sin, float sign) {
  const int64_t B = qkv.size(0), Tn = qkv.size(1), H = qkv.size(2), D = qkv.size(3);
  const int64_t half = D / 2;
  if (n_rot == 0 || B * Tn == 0) return;
  const bool v8 = half % 8 == 0 && aligned_to(qkv.data, 16) && aligned_to(cos.data, 16) && aligned_to(sin.data, 16);
  const int vec = v8 ? 8 : 1;
  const int64_t total = B * Tn * n_rot * (half / vec);
  if (v8)
    rope_kernel<T, 8><<<grid_for(total, kThreads), kThreads>>>(dptr<T>(qkv), dptr<const float>(cos),
                                                               dptr<const float>(sin), total, static_cast<int>(Tn),
                                                               static_cast<int>(H), n_rot, static_cast<int>(D), sign);
  else
    rope_kernel<T, 1><<<grid_for(total, kThreads), kThreads>>>(dptr<T>(qkv), dptr<const float>(cos),
                                                               dptr<const float>(sin), total, static_cast<int>(Tn),
                                                               static_cast<int>(H), n_rot, static_cast<int>(D), sign);
  MU_CUDA_CHECK_LAUNCH();
}

void rope(const char* op, Tensor qkv, int n_rot, Tensor cos, Tensor sin, float sign) {
  check_float_dtype(op, "qkv", qkv);
  dispatch_float(qkv.dtype, [&](auto tag) {
    using T = decltype(tag);
    launch_rope<T>(qkv, n_rot, cos, sin, sign);
  });
}

}  // namespace

void rope_forward(Tensor qkv, int n_rot_heads, Tensor cos, Tensor sin) {
  require_device("rope_forward");
  rope("rope_forward", qkv, n_rot_heads, cos, sin, 1.0f);
}

void rope_backward(Tensor dqkv, int n_rot_heads, Tensor cos, Tensor sin) {
  require_device("rope_backward");
  rope("rope_backward", dqkv, n_rot_heads, cos, sin, -1.0f);
}

}  // namespace cuda
}  // namespace mu
