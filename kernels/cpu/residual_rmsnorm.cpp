// fp32 cpu residual add + RMSNorm: the sum, then exactly cpu::rmsnorm_forward on it.
#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/residual_rmsnorm_cpu.h"

namespace mu {
namespace cpu {

void residual_rmsnorm_forward(Tensor res_out, Tensor out, Tensor rstd, Tensor a, Tensor b, Tensor weight, float eps) {
  cpu::add(res_out, a, b);
  cpu::rmsnorm_forward(out, rstd, res_out, weight, eps);
}

}  // namespace cpu
}  // namespace mu
