#include "optim/clip.h"

#include <cmath>

#include "kernels/elementwise.h"

namespace mu {

ClipResult clip_scale(const std::vector<Tensor>& grads, double max_norm) {
  MU_CHECK(!std::isnan(max_norm), "clip: max_norm is NaN");
  return clip_from_norm(std::sqrt(sum_squares(grads)), max_norm);
}

ClipResult clip_from_norm(double norm, double max_norm) {
  MU_CHECK(!std::isnan(max_norm), "clip: max_norm is NaN");
  ClipResult r{norm, 1.0f};
  if (!std::isfinite(norm) || max_norm <= 0.0) return r;
  // torch: clamp(max_norm / (norm + 1e-6), max=1). Because of the 1e-6 this already scales
  // (by a factor within 1e-6/max_norm of 1) when norm is within 1e-6 below max_norm; kept
  // so the engine and torch agree everywhere.
  const double coef = max_norm / (norm + 1e-6);
  if (coef < 1.0) r.scale = static_cast<float>(coef);
  return r;
}

}  // namespace mu
