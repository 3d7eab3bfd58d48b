// Micro-batches of B rows x (T+1) tokens from a ShardSet, sharded across data-parallel ranks.
//
// The token stream (all shards concatenated, in ShardSet order) is cut into non-overlapping
// windows of world*B*T tokens; window w spans tokens [w*world*B*T, (w+1)*world*B*T] (one extra
// token for the last target). Row r of a window (r in [0, world*B)) has inputs
// tokens[w*world*B*T + r*T, ... + T) and targets the same span shifted by one; rank k takes
// rows k*B .. k*B+B-1. An epoch visits every window that fits once:
//   shuffle off (llm.c semantics): windows 0, 1, 2, ... in order;
//   shuffle on: a permutation drawn per epoch (Fisher–Yates, Rng::below) from one Rng stream
//   seeded with cfg.seed. Every rank must use the same seed so the ranks agree on the order.
// After the last window of an epoch the loader wraps to the start (epoch + 1).
#pragma once
#include <array>
#include <cstdint>
#include <vector>

#include "core/rng.h"
#include "train/shards.h"

namespace mu {

struct LoaderConfig {
  int B = 0, T = 0;      // rows per rank, tokens per row
  bool shuffle = true;
  uint64_t seed = 0;
  int rank = 0, world = 1;
};

class DataLoader {
 public:
  // `data` must outlive the loader.
  DataLoader(const ShardSet& data, LoaderConfig cfg);

  // Fills inputs (B, T) and targets (B, T) for this rank's part of the next micro-batch.
  void next(int32_t* inputs, int32_t* targets);

  // Exact resume: restoring a state into a loader over the same data and config continues
  // bitwise-identically. `position` is the index (within the epoch) of the next window,
  // `rng` the generator state the current epoch's permutation was drawn from.
  struct State {
    int64_t position = 0;
    std::array<uint64_t, 4> rng{};
    int64_t epoch = 0;
  };
  State state() const { return {position_, epoch_rng_, epoch_}; }
  void set_state(const State& s);

  int64_t batches_per_epoch() const { return batches_per_epoch_; }
  int64_t epoch() const { return epoch_; }

 private:
  void start_epoch();  // draws the epoch's order from rng_ (which it advances)

  const ShardSet& data_;
  LoaderConfig cfg_;
  int64_t window_tokens_ = 0;  // world*B*T
  int64_t batches_per_epoch_ = 0;
  std::vector<int64_t> order_;  // (batches_per_epoch,) window index per step; empty when not shuffling
  int64_t position_ = 0;
  int64_t epoch_ = 0;
  Rng rng_;
  std::array<uint64_t, 4> epoch_rng_{};  // rng_ state before this epoch's permutation
};

}  // namespace mu
