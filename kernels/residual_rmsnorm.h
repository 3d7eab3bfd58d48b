// The residual add fused with the RMSNorm that follows it (every block of the model does
// `h = x + f(x)` and then normalises h): one pass reads both addends and writes the new
// residual stream and its normalised copy. The backward needs no fused op: it is
// rmsnorm_backward on res_out, whose dx accumulates into the residual gradient.
#pragma once
#include "core/tensor.h"

namespace mu {

// res_out (N, C) = a + b (it may alias a or b); out (N, C) = rmsnorm(res_out) * weight as in
// rmsnorm_forward (computed from res_out as stored, i.e. after rounding to its dtype);
// rstd (N) F32 = 1/sqrt(mean(res_out^2) + eps); weight (C).
void residual_rmsnorm_forward(Tensor res_out, Tensor out, Tensor rstd, Tensor a, Tensor b, Tensor weight, float eps);

}  // namespace mu
