// rope entries: the host-side tables, and rope_forward/backward validated and dispatched.
#include "kernels/rope.h"

#include <cmath>
#include <vector>

#include "kernels/cpu/cpu_ops.h"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/op_check.h"

namespace mu {
namespace {

// inv_freq[i] = theta^(-2i/D) for i < D/2, then, for llama3 scaling, the rule of
// transformers' modeling_rope_utils._compute_llama3_parameters: wavelengths longer than
// old_ctx/low_freq_factor are slowed down by `factor`, shorter than old_ctx/high_freq_factor
// are kept, and those in between are interpolated smoothly.
std::vector<double> inv_freq(const RopeParams& p) {
  const int half = p.head_dim / 2;
  std::vector<double> f(half);
  for (int i = 0; i < half; i++) f[i] = 1.0 / std::pow(p.theta, 2.0 * i / p.head_dim);
  if (p.scaling_type == "llama3") {
    const double pi = 3.14159265358979323846;
    const double old_ctx = p.original_max_position;
    const double low_wavelen = old_ctx / p.low_freq_factor;
    const double high_wavelen = old_ctx / p.high_freq_factor;
    for (double& inv : f) {
      const double wavelen = 2.0 * pi / inv;
      if (wavelen > low_wavelen) {
        inv = inv / p.factor;
      } else if (wavelen >= high_wavelen) {
        const double smooth = (old_ctx / wavelen - p.low_freq_factor) / (p.high_freq_factor - p.low_freq_factor);
        inv = (1.0 - smooth) * inv / p.factor + smooth * inv;
      }
    }
  }
  return f;
}

void check_params(const char* op, const RopeParams& p) {
  MU_CHECK(p.head_dim > 0 && p.head_dim % 2 == 0, "%s: head_dim %d must be positive and even", op, p.head_dim);
  MU_CHECK(p.theta > 0 && std::isfinite(p.theta), "%s: rope theta %g must be positive", op, p.theta);
  if (p.scaling_type.empty()) return;
  MU_CHECK(p.scaling_type == "llama3", "%s: rope scaling type \"%s\" is not supported (supported: none, \"llama3\")",
           op, p.scaling_type.c_str());
  MU_CHECK(p.factor > 0, "%s: llama3 rope scaling factor %g must be > 0", op, p.factor);
  MU_CHECK(p.low_freq_factor > 0 && p.high_freq_factor > p.low_freq_factor,
           "%s: llama3 rope scaling needs 0 < low_freq_factor < high_freq_factor (got %g and %g)", op,
           p.low_freq_factor, p.high_freq_factor);
  MU_CHECK(p.original_max_position > 0, "%s: llama3 original_max_position_embeddings %d must be > 0", op,
           p.original_max_position);
}

void check_rotate(const char* op, const char* name, const Tensor& qkv, int n_rot_heads, const Tensor& cos,
                  const Tensor& sin) {
  check_present(op, {{name, qkv}, {"cos", cos}, {"sin", sin}});
  check_same_device(op, {qkv, cos, sin});
  MU_CHECK(qkv.ndim() == 4, "%s: %s has shape %s, expected (B, T, n_heads_total, head_dim)", op, name,
           qkv.shape.str().c_str());
  const int64_t T = qkv.size(1), H = qkv.size(2), D = qkv.size(3);
  MU_CHECK(D > 0 && D % 2 == 0, "%s: head_dim %lld of %s must be positive and even", op, static_cast<long long>(D),
           name);
  MU_CHECK(n_rot_heads >= 0 && n_rot_heads <= H, "%s: n_rot_heads %d is outside [0, %lld] (the heads of %s)", op,
           n_rot_heads, static_cast<long long>(H), name);
  MU_CHECK(cos.ndim() == 2 && cos.size(1) == D / 2 && cos.size(0) >= T,
           "%s: cos has shape %s, expected (T_table >= %lld, head_dim/2 = %lld)", op, cos.shape.str().c_str(),
           static_cast<long long>(T), static_cast<long long>(D / 2));
  check_shape(op, "sin", sin, cos.shape);
  check_dtype(op, "cos", cos, DType::F32);
  check_dtype(op, "sin", sin, DType::F32);
}

}  // namespace

void rope_tables(Tensor cos, Tensor sin, const RopeParams& p) {
  const char* op = "rope_tables";
  check_params(op, p);
  check_present(op, {{"cos", cos}, {"sin", sin}});
  MU_CHECK(cos.device == Device::CPU && sin.device == Device::CPU,
           "%s: cos and sin must be cpu tensors (the tables are computed on the host, then copied)", op);
  check_dtype(op, "cos", cos, DType::F32);
  check_dtype(op, "sin", sin, DType::F32);
  MU_CHECK(cos.ndim() == 2 && cos.size(1) == p.head_dim / 2, "%s: cos has shape %s, expected (T, head_dim/2 = %d)",
           op, cos.shape.str().c_str(), p.head_dim / 2);
  check_shape(op, "sin", sin, cos.shape);
  const std::vector<double> f = inv_freq(p);
  const int64_t T = cos.size(0), half = p.head_dim / 2;
  float* c = cos.f32();
  float* s = sin.f32();
  for (int64_t t = 0; t < T; t++)
    for (int64_t i = 0; i < half; i++) {
      const double angle = static_cast<double>(t) * f[i];
      c[t * half + i] = static_cast<float>(std::cos(angle));
      s[t * half + i] = static_cast<float>(std::sin(angle));
    }
}

void rope_forward(Tensor qkv, int n_rot_heads, Tensor cos, Tensor sin) {
  const char* op = "rope_forward";
  check_rotate(op, "qkv", qkv, n_rot_heads, cos, sin);
  if (qkv.device == Device::CUDA) return cuda::rope_forward(qkv, n_rot_heads, cos, sin);
  check_cpu_f32(op, {{"qkv", qkv}});
  cpu::rope_forward(qkv, n_rot_heads, cos, sin);
}

void rope_backward(Tensor dqkv, int n_rot_heads, Tensor cos, Tensor sin) {
  const char* op = "rope_backward";
  check_rotate(op, "dqkv", dqkv, n_rot_heads, cos, sin);
  if (dqkv.device == Device::CUDA) return cuda::rope_backward(dqkv, n_rot_heads, cos, sin);
  check_cpu_f32(op, {{"dqkv", dqkv}});
  cpu::rope_backward(dqkv, n_rot_heads, cos, sin);
}

}  // namespace mu
