// One fused AdamW update over a tensor, with torch.optim.AdamW semantics (decoupled weight
// decay, bias-corrected moments). The optimizer (optim/adamw.h) calls it once per parameter.
#pragma once
#include <cstdint>

#include "core/tensor.h"

namespace mu {

// The scalars are doubles because torch's are Python floats: 1 - lr*wd, lr/(1 - beta1^t) and
// sqrt(1 - beta2^t) are formed in double and rounded to float once, as torch does.
struct AdamWHyper {
  double lr = 0.0, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.0;
  int64_t step = 1;         // 1-based step number, for the bias corrections
  float grad_scale = 1.0f;  // multiplies the gradient before anything else (global-norm clipping)
};

// With g = grad * grad_scale, per element (torch/optim/adamw.py, _single_tensor_adamw):
//   p = p * (1 - lr*wd)
//   m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g^2
//   p = p - (lr / (1-b1^t)) * m / (sqrt(v) / sqrt(1-b2^t) + eps)
// param, m, v are updated in place; grad is only read. All four have the same numel (shapes
// may differ, e.g. a flattened view) and device; the cpu backend wants F32 for all of them.
// The hyperparameter checks shared by the AdamW entries (op names the caller in messages).
void adamw_check_hyper(const char* op, const AdamWHyper& h);

void adamw_update(Tensor param, Tensor grad, Tensor m, Tensor v, const AdamWHyper& h);

}  // namespace mu
