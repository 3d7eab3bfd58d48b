// adamw_update entry: validate, then dispatch on the device.
#include "kernels/adamw.h"

#include <cmath>

#include "kernels/cpu/adamw_cpu.h"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/op_check.h"

namespace mu {

void adamw_check_hyper(const char* op, const AdamWHyper& h) {
  MU_CHECK(std::isfinite(h.lr) && h.lr >= 0.0, "%s: lr is %g, must be finite and >= 0", op, h.lr);
  MU_CHECK(h.beta1 >= 0.0 && h.beta1 < 1.0, "%s: beta1 is %g, must be in [0, 1)", op, h.beta1);
  MU_CHECK(h.beta2 >= 0.0 && h.beta2 < 1.0, "%s: beta2 is %g, must be in [0, 1)", op, h.beta2);
  MU_CHECK(std::isfinite(h.eps) && h.eps >= 0.0, "%s: eps is %g, must be finite and >= 0", op, h.eps);
  MU_CHECK(std::isfinite(h.weight_decay) && h.weight_decay >= 0.0,
           "%s: weight_decay is %g, must be finite and >= 0", op, h.weight_decay);
  MU_CHECK(h.step >= 1, "%s: step is %lld, must be >= 1 (1-based, for the bias corrections)", op,
           static_cast<long long>(h.step));
  MU_CHECK(std::isfinite(h.grad_scale), "%s: grad_scale is %g, must be finite", op, h.grad_scale);
}

void adamw_update(Tensor param, Tensor grad, Tensor m, Tensor v, const AdamWHyper& h) {
  const char* op = "adamw_update";
  check_present(op, {{"param", param}, {"grad", grad}, {"m", m}, {"v", v}});
  check_same_device(op, {param, grad, m, v});
  const int64_t n = param.numel();
  for (const NamedTensor& t : {NamedTensor{"grad", grad}, NamedTensor{"m", m}, NamedTensor{"v", v}})
    MU_CHECK(t.t.numel() == n, "%s: %s is %s but param is %s (numel must match)", op, t.name, t.t.str().c_str(),
             param.str().c_str());
  adamw_check_hyper(op, h);
  if (param.device == Device::CUDA) return cuda::adamw_update(param, grad, m, v, h);
  check_cpu_f32(op, {{"param", param}, {"grad", grad}, {"m", m}, {"v", v}});
  cpu::adamw_update(param, grad, m, v, h);
}

}  // namespace mu
