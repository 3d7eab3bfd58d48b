// rmsnorm entries: validate, then dispatch on the device.
#include "kernels/rmsnorm.h"

#include <cmath>

#include "kernels/cpu/cpu_ops.h"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/op_check.h"

namespace mu {
namespace {

// x (N, C); the other tensors follow from it.
void check_x(const char* op, const Tensor& x) {
  MU_CHECK(x.ndim() == 2, "%s: x has shape %s, expected (N, C)", op, x.shape.str().c_str());
  MU_CHECK(x.size(1) > 0, "%s: x has shape %s, C must be > 0", op, x.shape.str().c_str());
}

}  // namespace

void rmsnorm_forward(Tensor out, Tensor rstd, Tensor x, Tensor weight, float eps) {
  const char* op = "rmsnorm_forward";
  check_present(op, {{"out", out}, {"rstd", rstd}, {"x", x}, {"weight", weight}});
  check_same_device(op, {out, rstd, x, weight});
  check_x(op, x);
  const int64_t N = x.size(0), C = x.size(1);
  check_shape(op, "out", out, Shape{N, C});
  check_shape(op, "rstd", rstd, Shape{N});
  check_shape(op, "weight", weight, Shape{C});
  check_dtype(op, "rstd", rstd, DType::F32);
  MU_CHECK(eps >= 0.0f && std::isfinite(eps), "%s: eps is %g, must be finite and >= 0", op, eps);
  if (x.device == Device::CUDA) return cuda::rmsnorm_forward(out, rstd, x, weight, eps);
  check_cpu_f32(op, {{"out", out}, {"x", x}, {"weight", weight}});
  cpu::rmsnorm_forward(out, rstd, x, weight, eps);
}

void rmsnorm_backward(Tensor dx, Tensor dweight, Tensor dout, Tensor x, Tensor weight, Tensor rstd) {
  const char* op = "rmsnorm_backward";
  check_present(op, {{"dx", dx}, {"dweight", dweight}, {"dout", dout}, {"x", x}, {"weight", weight}, {"rstd", rstd}});
  check_same_device(op, {dx, dweight, dout, x, weight, rstd});
  check_x(op, x);
  const int64_t N = x.size(0), C = x.size(1);
  check_shape(op, "dx", dx, Shape{N, C});
  check_shape(op, "dout", dout, Shape{N, C});
  check_shape(op, "dweight", dweight, Shape{C});
  check_shape(op, "weight", weight, Shape{C});
  check_shape(op, "rstd", rstd, Shape{N});
  check_dtype(op, "rstd", rstd, DType::F32);
  if (x.device == Device::CUDA) return cuda::rmsnorm_backward(dx, dweight, dout, x, weight, rstd);
  check_cpu_f32(op, {{"dx", dx}, {"dweight", dweight}, {"dout", dout}, {"x", x}, {"weight", weight}});
  cpu::rmsnorm_backward(dx, dweight, dout, x, weight, rstd);
}

}  // namespace mu
