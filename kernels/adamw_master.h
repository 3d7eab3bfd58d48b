// AdamW on an fp32 master copy of a low-precision parameter: the update of kernels/adamw.h
// (same formula, same rounding) is applied to `master`, then the parameter the model computes
// with is written from the master (on cuda: bf16, rounded once to nearest even).
#pragma once
#include "core/tensor.h"
#include "kernels/adamw.h"

namespace mu {

// param: BF16 or F32 on cuda (written, = master); F32 on the cpu (an fp32 copy, so the cpu
// backend can act as the reference). master, m, v: F32, updated in place. grad: F32 (cpu),
// F32 or BF16 (cuda), read only. All five have the same numel and device.
void adamw_update_master(Tensor param, Tensor master, Tensor grad, Tensor m, Tensor v, const AdamWHyper& h);

}  // namespace mu
