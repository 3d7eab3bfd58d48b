// Data parallel with sharded optimizer state (issue 6, DESIGN.md §7).
//
// Every rank holds the whole model and computes gradients on its own rows of the global batch.
// The parameters are cut into pieces, each a contiguous element range of one parameter owned
// by one rank, and grouped into buckets, one per layer (that layer's slice of every stacked
// parameter) and one for the rest (embedding, final norm, LM head):
//   AdamW's parameters: within each bucket, their elements (in order) cut into `world`
//                       near-equal runs (ZeRO-1);
//   Muon's matrices:    whole, owned as optim/muon_shard.h plans, in their layer's bucket.
// A step then is
//   start_bucket(l):  called as soon as the backward pass has finished layer l (Llama's layer
//                     hook): pack the bucket's gradients into their owners' parts of a
//                     staging buffer and start a reduce-scatter (sum), which runs while the
//                     backward pass goes on to the layers below;
//   reduce_grads():   start what is left (the rest bucket), wait for every bucket, unpack the
//                     owned pieces: each rank now has the global gradient of what it owns (and
//                     stale values elsewhere, never read);
//   clip():           the global norm from each rank's squares over its own pieces (one sum
//                     over its receive buffer, where they lie back to back);
//   the optimizers update the owned pieces only (their state exists only for those);
//   gather_params():  pack the owned pieces' weights, all-gather every bucket, unpack the rest.
// Ranks own unequal parts (whole Muon matrices), so the collectives take per-rank counts
// (Comm::*_v_start) and nothing is padded: the staging holds one copy of the gradients (send)
// and this rank's reduced part (recv).
#pragma once
#include <string>
#include <vector>

#include "core/arena.h"
#include "core/comm.h"
#include "optim/clip.h"
#include "optim/muon.h"
#include "optim/optimizer.h"

namespace mu {

// A contiguous element range of one parameter (flattened) in one bucket.
struct DpSlice {
  size_t param = 0;
  int64_t offset = 0, count = 0;
  int bucket = 0;
};

struct DpPiece {
  size_t param = 0;               // index into the parameter list
  int64_t offset = 0, count = 0;  // elements of the (flattened) parameter
  int owner = 0;
  int bucket = 0;
};

// The buckets of a model of `layers` layers: a stacked parameter (stacked[i], dim 0 = layers)
// gives one slice per layer, in bucket l; any other parameter is one slice in bucket `layers`.
std::vector<DpSlice> layer_slices(const std::vector<ParamRef>& params, const std::vector<bool>& stacked, int layers);
// ZeRO-1: per bucket, the slices of the parameters in `which` (in parameter order) as one run of
// elements cut into `world` contiguous ranges [floor(r*N/W), floor((r+1)*N/W)); a slice crossing
// a boundary becomes two pieces.
std::vector<DpPiece> zero1_pieces(const std::vector<DpSlice>& slices, const std::vector<size_t>& which, int world);
// Muon's matrices as pieces: matrix i covers its rows of hidden param mats[i].param, which is
// params[hidden_index[mats[i].param]]; owner[i] is its rank; its bucket is its layer (the rest
// bucket `layers` for an unstacked matrix).
std::vector<DpPiece> muon_pieces(const std::vector<ParamRef>& params, const std::vector<size_t>& hidden_index,
                                 const std::vector<MuonMatrix>& mats, const std::vector<int>& owner, int layers);
// The piece's elements of t (shaped like its parameter) as a flat view.
Tensor piece_view(const Tensor& t, const DpPiece& p);

class DataParallel {
 public:
  // Adds the staging buffers "dp.send" (every element once) and "dp.recv" (what `rank` owns),
  // dtype `dtype` (the params' and grads'), to Region::Workspace.
  static void plan(ArenaPlan& plan, const std::vector<DpPiece>& pieces, int world, int rank, DType dtype);
  // The pieces must cover every element of every param exactly once (checked).
  DataParallel(Comm& comm, const std::vector<ParamRef>& params, std::vector<DpPiece> pieces, const Arena& arena);

  int buckets() const { return static_cast<int>(buckets_.size()); }
  void start_bucket(int b);  // collective; at most once per step for each bucket
  void reduce_grads();       // collective: starts the buckets not started yet, then completes all
  ClipResult clip(double max_norm);  // collective: every rank gets the same result
  void gather_params();              // collective

  // "data parallel over 4 ranks (mpi): 1.2M parameters in 40 pieces, ..."
  std::string describe() const;

 private:
  struct Bucket {
    std::vector<size_t> pieces;          // indices into pieces_
    std::vector<int64_t> counts, displ;  // per rank: elements owned, offset of its part
    int64_t total = 0;                   // elements in the bucket
    int64_t send_base = 0, recv_base = 0;
    CommRequest pending;
    bool started = false;
  };
  Tensor send_of(const Bucket& b) const;  // the bucket's part of the send buffer, all ranks
  Tensor send_part(const Bucket& b, int rank, int64_t pos, int64_t count) const;
  Tensor recv_at(const Bucket& b, int64_t pos, int64_t count) const;  // this rank's reduced part

  Comm& comm_;
  std::vector<ParamRef> params_;
  std::vector<DpPiece> pieces_;
  std::vector<int64_t> pos_;  // each piece's position within its owner's part of its bucket
  std::vector<Bucket> buckets_;
  int64_t owned_ = 0;  // elements this rank owns (its reduced gradients, back to back in recv_)
  Tensor send_, recv_;
};

}  // namespace mu
