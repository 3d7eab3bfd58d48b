// cpu backend declaration of the fused AdamW update (kept out of cpu_ops.h, which another
// op family owns). Called only by kernels/adamw.cpp after it validated every argument.
#pragma once
#include "core/tensor.h"
#include "kernels/adamw.h"

namespace mu {
namespace cpu {

void adamw_update(Tensor param, Tensor grad, Tensor m, Tensor v, const AdamWHyper& h);

}  // namespace cpu
}  // namespace mu
