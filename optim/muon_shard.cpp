#include "optim/muon_shard.h"

#include <algorithm>
#include <map>
#include <numeric>

#include "optim/muon.h"

namespace mu {

double muon_ortho_flops(const MuonMatrix& mm, int ns_steps) {
  const double m = static_cast<double>(std::min(mm.rows, mm.cols)), n = static_cast<double>(std::max(mm.rows, mm.cols));
  return ns_steps * (4.0 * m * m * n + 2.0 * m * m * m);
}

double MuonShardPlan::total_flops() const { return std::accumulate(rank_flops.begin(), rank_flops.end(), 0.0); }

double MuonShardPlan::max_over_mean() const {
  const double total = total_flops();
  if (total <= 0.0 || rank_flops.empty()) return 1.0;
  return *std::max_element(rank_flops.begin(), rank_flops.end()) / (total / static_cast<double>(world));
}

std::string MuonShardPlan::describe() const {
  std::string s = strformat("%d ranks, max/mean orthogonalization FLOPs %.3f:", world, max_over_mean());
  // Consecutive ranks with the same load print as one range: 64 ranks stay readable.
  for (int r = 0; r < world;) {
    int e = r;
    while (e + 1 < world && rank_matrices[e + 1] == rank_matrices[r] && rank_flops[e + 1] == rank_flops[r]) e++;
    const std::string who = e == r ? strformat("rank %d", r) : strformat("ranks %d-%d", r, e);
    s += strformat(" %s: %d matrices, %.3g GFLOP;", who.c_str(), rank_matrices[r], rank_flops[r] / 1e9);
    r = e + 1;
  }
  s.pop_back();
  return s;
}

MuonShardPlan muon_shard_plan(const std::vector<MuonMatrix>& matrices, int world, int ns_steps) {
  MU_CHECK(world >= 1, "muon shard plan: world size %d, must be >= 1", world);
  MuonShardPlan p;
  p.world = world;
  p.owner.assign(matrices.size(), 0);
  p.rank_flops.assign(static_cast<size_t>(world), 0.0);
  p.rank_matrices.assign(static_cast<size_t>(world), 0);
  std::vector<double> flops(matrices.size());
  for (size_t i = 0; i < matrices.size(); i++) flops[i] = muon_ortho_flops(matrices[i], ns_steps);
  std::vector<size_t> order(matrices.size());
  std::iota(order.begin(), order.end(), size_t{0});
  auto wide = [&](size_t i) {
    const MuonMatrix& m = matrices[i];
    return std::make_pair(std::min(m.rows, m.cols), std::max(m.rows, m.cols));
  };
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    if (flops[a] != flops[b]) return flops[a] > flops[b];
    return wide(a) < wide(b);
  });
  for (size_t i : order) {
    const int r = static_cast<int>(std::min_element(p.rank_flops.begin(), p.rank_flops.end()) - p.rank_flops.begin());
    p.owner[i] = r;
    p.rank_flops[r] += flops[i];
    p.rank_matrices[r]++;
  }
  return p;
}

}  // namespace mu
