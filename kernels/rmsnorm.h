// RMSNorm as Hugging Face's LlamaRMSNorm: y = x * rsqrt(mean(x^2) + eps) * w (eps inside
// the square root, the gain applied after normalising).
#pragma once
#include "core/tensor.h"

namespace mu {

// out (N, C) =; rstd (N) = 1/sqrt(mean(x^2) + eps), saved for the backward; x (N, C); weight (C).
void rmsnorm_forward(Tensor out, Tensor rstd, Tensor x, Tensor weight, float eps);
// dx (N, C) +=; dweight (C) +=; dout (N, C); x, weight, rstd as in the forward.
void rmsnorm_backward(Tensor dx, Tensor dweight, Tensor dout, Tensor x, Tensor weight, Tensor rstd);

}  // namespace mu
