// fp32 cpu token embedding.
#include <cstring>

#include "kernels/cpu/cpu_ops.h"

namespace mu {
namespace cpu {
namespace {

// Token ids are data, not shapes: check them all before touching memory, so a bad id is an
// error naming it and its position and nothing is read or written out of bounds.
void check_token_ids(const char* op, const int32_t* tok, int64_t n, int64_t V) {
  for (int64_t i = 0; i < n; i++)
    MU_CHECK(tok[i] >= 0 && tok[i] < V, "%s: token id %d at position %lld is outside the vocabulary [0, %lld)", op,
             tok[i], static_cast<long long>(i), static_cast<long long>(V));
}

}  // namespace

void embedding_forward(Tensor out, Tensor tokens, Tensor table) {
  const int64_t N = tokens.numel(), V = table.size(0), C = table.size(1);
  const int32_t* tok = tokens.i32();
  check_token_ids("embedding_forward", tok, N, V);
  const float* w = table.f32();
  float* o = out.f32();
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < N; n++) std::memcpy(o + n * C, w + tok[n] * C, C * sizeof(float));
}

void embedding_backward(Tensor dtable, Tensor tokens, Tensor dout) {
  const int64_t N = tokens.numel(), V = dtable.size(0), C = dtable.size(1);
  const int32_t* tok = tokens.i32();
  check_token_ids("embedding_backward", tok, N, V);
  float* dw = dtable.f32();
  const float* g = dout.f32();
  // Threads own channel blocks and walk the positions in order: two positions with the same
  // token never race, and every sum is taken in position order whatever the thread count.
  constexpr int64_t kBlock = 64;
  const int64_t nblocks = (C + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static)
  for (int64_t blk = 0; blk < nblocks; blk++) {
    const int64_t c0 = blk * kBlock, c1 = c0 + kBlock < C ? c0 + kBlock : C;
    for (int64_t n = 0; n < N; n++) {
      float* dst = dw + tok[n] * C;
      const float* src = g + n * C;
      for (int64_t c = c0; c < c1; c++) dst[c] += src[c];
    }
  }
}

}  // namespace cpu
}  // namespace mu
