// Device scratch: the short-lived buffers some cuda ops need within one call (partial sums,
// an upload of host-built indices). Ops take it from kernels/cuda/runtime.h scratch(). In
// training it is planned with everything else (DESIGN.md §4): each plan function calls
// ArenaPlan::need_scratch with the bytes below for the shapes it will run; plan_scratch adds
// the largest as "cuda.scratch" (Region::Workspace), and while a ScratchLoan lives the ops
// use that buffer, and a request past it is an error naming the op (a planning bug), never a
// cudaMalloc inside the loop. Without a loan (tests, tools) the runtime grows its own buffer.
//
// Each op computes its request with the same function the planner calls, so the two agree.
// The bytes are the same for every device (no device properties involved); the cpu ops need
// none, and on the cpu plan_scratch adds nothing.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/arena.h"
#include "kernels/attention.h"

namespace mu {

size_t scratch_bytes_rmsnorm_backward(int64_t rows, int64_t C);
size_t scratch_bytes_attention_backward(const AttentionShape& s);
// An upper bound over every token sequence of N positions (the exact need depends on how
// often tokens repeat).
size_t scratch_bytes_embedding_backward(int64_t N, int64_t C);
size_t scratch_bytes_sum_squares(int64_t n);
size_t scratch_bytes_sum_squares(const std::vector<int64_t>& sizes);  // sum_squares over several tensors
size_t scratch_bytes_frobenius_normalize(int64_t batch, int64_t per_item);
size_t scratch_bytes_normuon(int64_t neurons);

void plan_scratch(ArenaPlan& plan, Device dev);
class ScratchLoan {
 public:
  explicit ScratchLoan(const Arena& arena);  // declare it after the arena, so it ends first
  ~ScratchLoan();
  ScratchLoan(const ScratchLoan&) = delete;
  ScratchLoan& operator=(const ScratchLoan&) = delete;

 private:
  bool lent_ = false;
};

}  // namespace mu
