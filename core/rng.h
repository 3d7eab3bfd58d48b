// Deterministic random numbers: xoshiro256** seeded through splitmix64 (Blackman & Vigna,
// https://prng.di.unimi.it/). The state is four uint64 words so checkpoints can save and
// restore it exactly; normals come from Box–Muller in double.
#pragma once
#include <array>
#include <cstdint>

namespace mu {

class Rng {
 public:
  explicit Rng(uint64_t seed = 0) { seed_with(seed); }
  void seed_with(uint64_t seed);
  uint64_t next_u64();
  double uniform();                 // [0, 1), 53 random bits
  double normal();                  // standard normal
  uint64_t below(uint64_t n);       // uniform integer in [0, n), unbiased
  std::array<uint64_t, 4> state() const { return s_; }
  void set_state(const std::array<uint64_t, 4>& s) { s_ = s; }

 private:
  std::array<uint64_t, 4> s_{};
};

}  // namespace mu
