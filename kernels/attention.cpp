// attention entries: validate the shape contract, then dispatch on the device.
#include "kernels/attention.h"

#include <utility>

#include "kernels/cpu/cpu_ops.h"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/op_check.h"

namespace mu {
namespace {

void check_attention_shape(const char* op, const AttentionShape& s) {
  MU_CHECK(s.B > 0 && s.T > 0 && s.n_head > 0 && s.n_kv_head > 0 && s.head_dim > 0,
           "%s: every size must be positive (B=%d, T=%d, n_head=%d, n_kv_head=%d, head_dim=%d)", op, s.B, s.T,
           s.n_head, s.n_kv_head, s.head_dim);
  MU_CHECK(s.n_head % s.n_kv_head == 0, "%s: n_head %d is not a multiple of n_kv_head %d", op, s.n_head,
           s.n_kv_head);
}

Shape qkv_shape(const AttentionShape& s) { return Shape{s.B, s.T, s.n_head + 2 * s.n_kv_head, s.head_dim}; }
Shape out_shape(const AttentionShape& s) { return Shape{s.B, s.T, s.n_head, s.head_dim}; }
Shape lse_shape(const AttentionShape& s) { return Shape{s.B, s.n_head, s.T}; }

}  // namespace

void attention_forward(Tensor out, Tensor lse, Tensor qkv, const AttentionShape& s) {
  const char* op = "attention_forward";
  check_attention_shape(op, s);
  check_present(op, {{"out", out}, {"lse", lse}, {"qkv", qkv}});
  check_same_device(op, {out, lse, qkv});
  check_shape(op, "qkv", qkv, qkv_shape(s));
  check_shape(op, "out", out, out_shape(s));
  check_shape(op, "lse", lse, lse_shape(s));
  check_dtype(op, "lse", lse, DType::F32);
  if (qkv.device == Device::CUDA) return cuda::attention_forward(out, lse, qkv, s);
  check_cpu_f32(op, {{"out", out}, {"qkv", qkv}});
  cpu::attention_forward(out, lse, qkv, s);
}

void attention_backward(Tensor dqkv, Tensor dout, Tensor out, Tensor lse, Tensor qkv, const AttentionShape& s) {
  const char* op = "attention_backward";
  check_attention_shape(op, s);
  check_present(op, {{"dqkv", dqkv}, {"dout", dout}, {"out", out}, {"lse", lse}, {"qkv", qkv}});
  check_same_device(op, {dqkv, dout, out, lse, qkv});
  // dqkv is written while the others are read (on cuda by two kernels at once): no sharing.
  check_apart(op, {"dqkv", dqkv}, {{"dout", dout}, {"out", out}, {"lse", lse}, {"qkv", qkv}});
  check_shape(op, "qkv", qkv, qkv_shape(s));
  check_shape(op, "dqkv", dqkv, qkv_shape(s));
  check_shape(op, "out", out, out_shape(s));
  check_shape(op, "dout", dout, out_shape(s));
  check_shape(op, "lse", lse, lse_shape(s));
  check_dtype(op, "lse", lse, DType::F32);
  if (qkv.device == Device::CUDA) return cuda::attention_backward(dqkv, dout, out, lse, qkv, s);
  check_cpu_f32(op, {{"dqkv", dqkv}, {"dout", dout}, {"out", out}, {"qkv", qkv}});
  cpu::attention_backward(dqkv, dout, out, lse, qkv, s);
}

}  // namespace mu
