// cpu backend declarations of the Muon per-matrix ops (kernels/muon.h). Called only by
// kernels/muon.cpp after it validated every argument.
#pragma once
#include "core/tensor.h"
#include "kernels/muon.h"

namespace mu {
namespace cpu {

void muon_momentum(const MuonMomentumParams& p);
void frobenius_normalize(Tensor x, double norm_scale, double eps);
void normuon_normalize(const NorMuonParams& p);
void muon_apply(const MuonApplyParams& p);
void mirror_lower_blocks(Tensor x, int64_t block);

}  // namespace cpu
}  // namespace mu
