// Data parallel with sharded optimizer state (issue 6, DESIGN.md §7).
//
// Every rank holds the whole model and computes gradients on its own rows of the global batch.
// The parameters are cut into pieces, each a contiguous element range of one parameter owned
// by one rank: ZeRO-1 ranges for the AdamW parameters (their elements, in order, cut into
// `world` near-equal runs) and whole matrices for Muon (optim/muon_shard.h). A step then is
//   reduce_grads():  pack every piece's gradient into its owner's segment of a staging buffer,
//                    reduce-scatter (sum), unpack the owned pieces: each rank now has the
//                    global gradient of what it owns (and stale values elsewhere, never read);
//   clip():          the global norm from each rank's squares over its own pieces;
//   the optimizers update the owned pieces only (their state exists only for those);
//   gather_params(): pack the owned pieces' weights, all-gather, unpack everybody else's.
// Segments are padded to the longest one, so the collectives see equal counts.
#pragma once
#include <string>
#include <vector>

#include "core/arena.h"
#include "core/comm.h"
#include "optim/clip.h"
#include "optim/muon.h"
#include "optim/optimizer.h"

namespace mu {

struct DpPiece {
  size_t param = 0;            // index into the parameter list
  int64_t offset = 0, count = 0;  // elements of the (flattened) parameter
  int owner = 0;
};

// ZeRO-1: the elements of params[i] for i in `which` (in that order) as one run, cut into
// `world` contiguous ranges [floor(r*N/W), floor((r+1)*N/W)); a parameter crossing a boundary
// becomes two pieces.
std::vector<DpPiece> zero1_pieces(const std::vector<ParamRef>& params, const std::vector<size_t>& which, int world);
// Muon's matrices as pieces: matrix i covers its rows of hidden param mats[i].param, which is
// params[hidden_index[mats[i].param]]; owner[i] is its rank.
std::vector<DpPiece> muon_pieces(const std::vector<ParamRef>& params, const std::vector<size_t>& hidden_index,
                                 const std::vector<MuonMatrix>& mats, const std::vector<int>& owner);
// The piece's elements of t (shaped like its parameter) as a flat view.
Tensor piece_view(const Tensor& t, const DpPiece& p);

class DataParallel {
 public:
  // Adds the staging buffers "dp.send" (world x segment) and "dp.recv" (segment), dtype
  // `dtype` (the params' and grads'), to Region::Workspace.
  static void plan(ArenaPlan& plan, const std::vector<DpPiece>& pieces, int world, DType dtype);
  // The pieces must cover every element of every param exactly once (checked).
  DataParallel(Comm& comm, const std::vector<ParamRef>& params, std::vector<DpPiece> pieces, const Arena& arena);

  void reduce_grads();
  ClipResult clip(double max_norm);  // collective: every rank gets the same result
  void gather_params();

  int64_t segment() const { return segment_; }
  // "data parallel over 4 ranks (mpi): 1.2M elements per rank segment, ..."
  std::string describe() const;

 private:
  Tensor send_slot(int rank, int64_t pos, int64_t count) const;

  Comm& comm_;
  std::vector<ParamRef> params_;
  std::vector<DpPiece> pieces_;
  std::vector<int64_t> pos_;  // each piece's position within its owner's segment
  int64_t segment_ = 0;
  Tensor send_, recv_;
};

}  // namespace mu
