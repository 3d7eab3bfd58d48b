// Sharding Muon across data-parallel ranks (issue 6, DESIGN.md §7): each rank owns whole
// matrices and runs momentum + orthogonalization + update for them only; the updated weights
// are then all-gathered. The plan is deterministic (every rank computes the same one from the
// shapes alone) and balances the Newton–Schulz FLOPs while keeping same-shape matrices
// together, so each rank still orthogonalizes its matrices in a few shape batches.
#pragma once
#include <string>
#include <vector>

namespace mu {

struct MuonMatrix;  // optim/muon.h, which includes this header

// FLOPs of one orthogonalization of `m`: ns_steps iterations of X X^T (2 m^2 n), the
// polynomial's A A (2 m^3) and B X (2 m^2 n), with (m, n) = (min, max) of its shape:
// ns_steps * (4 m^2 n + 2 m^3). Polar Express does the same work per iteration.
double muon_ortho_flops(const MuonMatrix& m, int ns_steps);

struct MuonShardPlan {
  int world = 1;
  std::vector<int> owner;          // per matrix (index into the matrix list): its rank
  std::vector<double> rank_flops;  // per rank: orthogonalization FLOPs per step
  std::vector<int> rank_matrices;  // per rank: matrices owned
  double total_flops() const;
  double max_over_mean() const;  // the balance: 1.0 is perfect
  // "rank 0: 14 matrices, 1.23 GFLOP; ..." (ranks with identical loads are folded together).
  std::string describe() const;
};

// Longest-processing-time greedy: matrices in order of decreasing FLOPs (same shapes stay
// together; ties by shape, then list order) each go to the rank with the least FLOPs so far
// (ties to the lowest rank). The result is within max(matrix FLOPs) of the mean per rank.
MuonShardPlan muon_shard_plan(const std::vector<MuonMatrix>& matrices, int world, int ns_steps);

}  // namespace mu
