// cpu backend declarations of the fused ops added with the cuda backend (kept out of
// cpu_ops.h, which another op family owns). Called only by their entries after validation.
#pragma once
#include "core/tensor.h"
#include "kernels/adamw.h"

namespace mu {
namespace cpu {

void residual_rmsnorm_forward(Tensor res_out, Tensor out, Tensor rstd, Tensor a, Tensor b, Tensor weight, float eps);
void adamw_update_master(Tensor param, Tensor master, Tensor grad, Tensor m, Tensor v, const AdamWHyper& h);

}  // namespace cpu
}  // namespace mu
