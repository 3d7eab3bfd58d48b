// residual_rmsnorm_forward entry: validate, then dispatch on the device.
#include "kernels/residual_rmsnorm.h"

#include <cmath>

#include "kernels/cpu/residual_rmsnorm_cpu.h"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/op_check.h"

namespace mu {

void residual_rmsnorm_forward(Tensor res_out, Tensor out, Tensor rstd, Tensor a, Tensor b, Tensor weight, float eps) {
  const char* op = "residual_rmsnorm_forward";
  check_present(op, {{"res_out", res_out}, {"out", out}, {"rstd", rstd}, {"a", a}, {"b", b}, {"weight", weight}});
  check_same_device(op, {res_out, out, rstd, a, b, weight});
  MU_CHECK(a.ndim() == 2 && a.size(1) > 0, "%s: a has shape %s, expected (N, C) with C > 0", op, a.shape.str().c_str());
  const int64_t N = a.size(0), C = a.size(1);
  check_shape(op, "b", b, Shape{N, C});
  check_shape(op, "res_out", res_out, Shape{N, C});
  check_shape(op, "out", out, Shape{N, C});
  check_shape(op, "rstd", rstd, Shape{N});
  check_shape(op, "weight", weight, Shape{C});
  check_dtype(op, "rstd", rstd, DType::F32);
  MU_CHECK(eps >= 0.0f && std::isfinite(eps), "%s: eps is %g, must be finite and >= 0", op, eps);
  MU_CHECK(out.data != res_out.data && out.data != a.data && out.data != b.data,
           "%s: out must not alias res_out, a or b (res_out may alias a or b)", op);
  if (a.device == Device::CUDA) return cuda::residual_rmsnorm_forward(res_out, out, rstd, a, b, weight, eps);
  check_cpu_f32(op, {{"res_out", res_out}, {"out", out}, {"a", a}, {"b", b}, {"weight", weight}});
  cpu::residual_rmsnorm_forward(res_out, out, rstd, a, b, weight, eps);
}

}  // namespace mu
