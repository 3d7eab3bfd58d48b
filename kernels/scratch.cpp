// The planned device scratch (kernels/scratch.h); the byte counts live beside the cuda ops
// that use them (kernels/cuda/*.cu).
#include "kernels/scratch.h"

#include "kernels/cuda/runtime.h"

namespace mu {

constexpr const char* kScratch = "cuda.scratch";

void plan_scratch(ArenaPlan& plan, Device dev) {
  if (dev != Device::CUDA || plan.scratch_bytes() == 0) return;
  plan.add(kScratch, Region::Workspace, DType::U8, Shape{static_cast<int64_t>(plan.scratch_bytes())});
}

ScratchLoan::ScratchLoan(const Arena& arena) {
  if (arena.device() != Device::CUDA || !arena.has(kScratch)) return;
  const Tensor s = arena.get(kScratch);
  cuda::lend_scratch(s.data, s.nbytes());
  lent_ = true;
}

ScratchLoan::~ScratchLoan() {
  if (!lent_) return;
  try {
    cuda::lend_scratch(nullptr, 0);
  } catch (...) {  // a destructor must not throw; the process is ending with a CUDA error anyway
  }
}

}  // namespace mu
