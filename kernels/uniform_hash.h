// The value fill_uniform (kernels/elementwise.h) puts at element i: a counter-based hash, so
// the cpu and the cuda kernels give the same bits at every index with no state to carry.
// The hash is splitmix64's output function (Steele, Lea & Flood, "Fast splittable
// pseudorandom number generators", OOPSLA 2014; constants as in Vigna's splitmix64.c) applied
// to seed + (i + 1) * the golden-ratio increment: the i-th output of a splitmix64 stream.
// Its top 24 bits make u in [0, 1) exactly; the value is fma(hi - lo, u, lo), one rounding,
// which can round up to hi itself: values lie in [lo, hi].
#pragma once
#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)  // (the CUDA emulator compiles device code as plain C++: nothing to add)
#define MU_HOST_DEVICE __host__ __device__
#else
#define MU_HOST_DEVICE
#endif

namespace mu {

MU_HOST_DEVICE inline float uniform_at(uint64_t seed, int64_t i, float lo, float hi) {
  uint64_t z = seed + (static_cast<uint64_t>(i) + 1) * 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  const float u = static_cast<float>(z >> 40) * (1.0f / 16777216.0f);
  return fmaf(hi - lo, u, lo);
}

}  // namespace mu
