// adamw_update_master entry: validate, then dispatch on the device.
#include "kernels/adamw_master.h"

#include <cmath>

#include "kernels/cpu/residual_rmsnorm_cpu.h"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/op_check.h"

namespace mu {

void adamw_update_master(Tensor param, Tensor master, Tensor grad, Tensor m, Tensor v, const AdamWHyper& h) {
  const char* op = "adamw_update_master";
  check_present(op, {{"param", param}, {"master", master}, {"grad", grad}, {"m", m}, {"v", v}});
  check_same_device(op, {param, master, grad, m, v});
  const int64_t n = master.numel();
  for (const NamedTensor& t :
       {NamedTensor{"param", param}, NamedTensor{"grad", grad}, NamedTensor{"m", m}, NamedTensor{"v", v}})
    MU_CHECK(t.t.numel() == n, "%s: %s is %s but master is %s (numel must match)", op, t.name, t.t.str().c_str(),
             master.str().c_str());
  check_dtype(op, "master", master, DType::F32);
  MU_CHECK(param.data != master.data, "%s: param and master must be different buffers", op);
  adamw_check_hyper(op, h);
  if (master.device == Device::CUDA) return cuda::adamw_update_master(param, master, grad, m, v, h);
  check_cpu_f32(op, {{"param", param}, {"grad", grad}, {"m", m}, {"v", v}});
  cpu::adamw_update_master(param, master, grad, m, v, h);
}

}  // namespace mu
