// Global-norm gradient clipping, as torch.nn.utils.clip_grad_norm_ (torch 1.13,
// torch/nn/utils/clip_grad.py): total_norm = ||all grads||_2, clip_coef = max_norm /
// (total_norm + 1e-6), clamped to 1 (so scale < 1 exactly when norm > max_norm - 1e-6).
// The factor is not applied here: the optimizers fold it into their update (grad_scale),
// saving a pass over the gradients.
#pragma once
#include <vector>

#include "core/tensor.h"

namespace mu {

struct ClipResult {
  double norm;  // the global L2 norm before clipping (may be inf or NaN: see below)
  float scale;  // multiply the gradients by this (1 when not clipping)
};

// Squares accumulate in double (kernels/elementwise.h sum_squares, a fixed order; on cuda one
// host wait for all the gradients). max_norm
// <= 0 disables clipping (scale 1; the norm is still computed, for logging). A non-finite
// norm is returned as is with scale 1: the caller must check std::isfinite(norm), report and
// stop; clipping cannot repair it.
ClipResult clip_scale(const std::vector<Tensor>& grads, double max_norm);
// The same from a norm computed elsewhere (data parallel: the sum of the ranks' squares).
ClipResult clip_from_norm(double norm, double max_norm);

}  // namespace mu
