// cross-entropy entries: validate, then dispatch on the device.
#include "kernels/cross_entropy.h"

#include <cmath>

#include "kernels/cpu/cpu_ops.h"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/op_check.h"

namespace mu {
namespace {

void check_args(const char* op, const char* logits_name, const Tensor& losses, const Tensor& logits,
                const Tensor& targets) {
  check_present(op, {{"losses", losses}, {logits_name, logits}, {"targets", targets}});
  check_same_device(op, {losses, logits, targets});
  MU_CHECK(logits.ndim() == 2 && logits.size(1) > 0, "%s: %s has shape %s, expected (N, V) with V > 0", op,
           logits_name, logits.shape.str().c_str());
  const int64_t N = logits.size(0);
  MU_CHECK(targets.numel() == N, "%s: targets has shape %s, expected N = %lld entries (one per %s row)", op,
           targets.shape.str().c_str(), static_cast<long long>(N), logits_name);
  check_shape(op, "losses", losses, Shape{N});
  check_dtype(op, "targets", targets, DType::I32);
  check_dtype(op, "losses", losses, DType::F32);
}

}  // namespace

void cross_entropy_forward(Tensor losses, Tensor logits, Tensor targets) {
  const char* op = "cross_entropy_forward";
  check_args(op, "logits", losses, logits, targets);
  if (logits.device == Device::CUDA) return cuda::cross_entropy_forward(losses, logits, targets);
  check_cpu_f32(op, {{"logits", logits}});
  cpu::cross_entropy_forward(losses, logits, targets);
}

void cross_entropy_forward_backward(Tensor losses, Tensor logits_inout, Tensor targets, float grad_scale) {
  const char* op = "cross_entropy_forward_backward";
  check_args(op, "logits_inout", losses, logits_inout, targets);
  MU_CHECK(std::isfinite(grad_scale), "%s: grad_scale %g is not finite", op, grad_scale);
  if (logits_inout.device == Device::CUDA)
    return cuda::cross_entropy_forward_backward(losses, logits_inout, targets, grad_scale);
  check_cpu_f32(op, {{"logits_inout", logits_inout}});
  cpu::cross_entropy_forward_backward(losses, logits_inout, targets, grad_scale);
}

}  // namespace mu
