#include "train/data_parallel.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "kernels/elementwise.h"

namespace mu {
namespace {

// Per bucket, each rank's part holds its own pieces back to back (no padding: the collectives
// take per-rank counts); parts follow each other rank by rank.
struct Layout {
  std::vector<int64_t> pos;                   // per piece: position within its owner's part of its bucket
  std::vector<std::vector<int64_t>> counts;   // per bucket, per rank
  int64_t send_total = 0;                     // sum over buckets of the bucket's elements
  std::vector<int64_t> recv_total;            // per rank: its parts over all buckets
};

Layout layout(const std::vector<DpPiece>& pieces, int world) {
  int nb = 0;
  for (const DpPiece& p : pieces) {
    MU_CHECK(p.owner >= 0 && p.owner < world, "data parallel: a piece of param %zu is owned by rank %d of %d",
             p.param, p.owner, world);
    MU_CHECK(p.bucket >= 0, "data parallel: a piece of param %zu has bucket %d", p.param, p.bucket);
    nb = std::max(nb, p.bucket + 1);
  }
  Layout l;
  l.counts.assign(static_cast<size_t>(nb), std::vector<int64_t>(world, 0));
  l.recv_total.assign(static_cast<size_t>(world), 0);
  for (const DpPiece& p : pieces) {
    l.pos.push_back(l.counts[p.bucket][p.owner]);
    l.counts[p.bucket][p.owner] += p.count;
    l.send_total += p.count;
    l.recv_total[p.owner] += p.count;
  }
  return l;
}

Tensor flat_at(const Tensor& t, int64_t offset, int64_t count) {
  return Tensor(static_cast<char*>(t.data) + static_cast<size_t>(offset) * dtype_size(t.dtype), t.dtype, t.device,
                Shape{count});
}

}  // namespace

std::vector<DpSlice> layer_slices(const std::vector<ParamRef>& params, const std::vector<bool>& stacked, int layers) {
  MU_CHECK(stacked.size() == params.size(), "data parallel: %zu stacked flags for %zu params", stacked.size(),
           params.size());
  MU_CHECK(layers >= 1, "data parallel: %d layers", layers);
  std::vector<DpSlice> out;
  for (size_t i = 0; i < params.size(); i++) {
    const Tensor& t = params[i].param;
    if (!stacked[i]) {
      out.push_back(DpSlice{i, 0, t.numel(), layers});
      continue;
    }
    MU_CHECK(t.ndim() >= 1 && t.size(0) == layers, "data parallel: param '%s' is %s, expected %d layers in dim 0",
             params[i].name.c_str(), t.str().c_str(), layers);
    const int64_t per = t.numel() / layers;
    for (int l = 0; l < layers; l++) out.push_back(DpSlice{i, l * per, per, l});
  }
  return out;
}

std::vector<DpPiece> zero1_pieces(const std::vector<DpSlice>& slices, const std::vector<size_t>& which, int world) {
  MU_CHECK(world >= 1, "data parallel: world size %d", world);
  std::vector<bool> take;
  for (size_t i : which) {
    if (take.size() <= i) take.resize(i + 1, false);
    take[i] = true;
  }
  std::map<int, std::vector<const DpSlice*>> by_bucket;  // in bucket order, slices in the given order
  for (const DpSlice& s : slices)
    if (s.param < take.size() && take[s.param]) by_bucket[s.bucket].push_back(&s);
  std::vector<DpPiece> out;
  for (const auto& [bucket, list] : by_bucket) {
    int64_t total = 0;
    for (const DpSlice* s : list) total += s->count;
    int64_t at = 0;  // the run's element index where the slice starts
    for (const DpSlice* s : list) {
      for (int r = 0; r < world; r++) {
        const int64_t lo = total * r / world, hi = total * (r + 1) / world;  // rank r's range of the run
        const int64_t b = std::max(lo, at), e = std::min(hi, at + s->count);
        if (b < e) out.push_back(DpPiece{s->param, s->offset + (b - at), e - b, r, bucket});
      }
      at += s->count;
    }
  }
  return out;
}

std::vector<DpPiece> muon_pieces(const std::vector<ParamRef>& params, const std::vector<size_t>& hidden_index,
                                 const std::vector<MuonMatrix>& mats, const std::vector<int>& owner, int layers) {
  MU_CHECK(owner.size() == mats.size(), "data parallel: %zu owners for %zu Muon matrices", owner.size(), mats.size());
  std::vector<DpPiece> out;
  for (size_t i = 0; i < mats.size(); i++) {
    const MuonMatrix& m = mats[i];
    const size_t p = hidden_index.at(m.param);
    const Shape& s = params.at(p).param.shape;
    const int64_t layer_elems = m.layer >= 0 ? s.numel() / s[0] : s.numel();
    const int64_t offset = (m.layer >= 0 ? m.layer * layer_elems : 0) + m.row0 * m.cols;
    out.push_back(DpPiece{p, offset, m.rows * m.cols, owner[i], m.layer >= 0 ? static_cast<int>(m.layer) : layers});
  }
  return out;
}

Tensor piece_view(const Tensor& t, const DpPiece& p) {
  MU_CHECK(p.offset >= 0 && p.count >= 0 && p.offset + p.count <= t.numel(),
           "data parallel: piece [%lld, +%lld) outside %s", static_cast<long long>(p.offset),
           static_cast<long long>(p.count), t.str().c_str());
  return flat_at(t, p.offset, p.count);
}

void DataParallel::plan(ArenaPlan& plan, const std::vector<DpPiece>& pieces, int world, int rank, DType dtype) {
  const Layout l = layout(pieces, world);
  plan.add("dp.send", Region::Workspace, dtype, Shape{std::max<int64_t>(1, l.send_total)});
  plan.add("dp.recv", Region::Workspace, dtype, Shape{std::max<int64_t>(1, l.recv_total.at(rank))});
}

DataParallel::DataParallel(Comm& comm, const std::vector<ParamRef>& params, std::vector<DpPiece> pieces,
                           const Arena& arena)
    : comm_(comm), params_(params), pieces_(std::move(pieces)) {
  const int world = comm_.world(), me = comm_.rank();
  const Layout l = layout(pieces_, world);
  pos_ = l.pos;
  buckets_.resize(l.counts.size());
  int64_t send_base = 0, recv_base = 0;
  for (size_t b = 0; b < buckets_.size(); b++) {
    Bucket& k = buckets_[b];
    k.counts = l.counts[b];
    k.displ.assign(static_cast<size_t>(world), 0);
    for (int r = 1; r < world; r++) k.displ[r] = k.displ[r - 1] + k.counts[r - 1];
    k.total = k.displ[world - 1] + k.counts[world - 1];
    k.send_base = send_base;
    k.recv_base = recv_base;
    send_base += k.total;
    recv_base += k.counts[me];
  }
  owned_ = recv_base;
  for (size_t i = 0; i < pieces_.size(); i++) buckets_[pieces_[i].bucket].pieces.push_back(i);
  // Every element exactly once: sort each param's pieces by offset and walk them.
  std::map<size_t, std::vector<std::pair<int64_t, int64_t>>> by_param;
  for (const DpPiece& p : pieces_) by_param[p.param].push_back({p.offset, p.count});
  for (size_t i = 0; i < params_.size(); i++) {
    const ParamRef& r = params_[i];
    MU_CHECK(r.grad.dtype == r.param.dtype && r.grad.shape == r.param.shape,
             "data parallel: param '%s' is %s but its grad is %s", r.name.c_str(), r.param.str().c_str(),
             r.grad.str().c_str());
    auto& v = by_param[i];
    std::sort(v.begin(), v.end());
    int64_t at = 0;
    for (auto [off, n] : v) {
      MU_CHECK(off == at, "data parallel: param '%s' has %s at element %lld", r.name.c_str(),
               off < at ? "overlapping pieces" : "a gap", static_cast<long long>(std::min(off, at)));
      at += n;
    }
    MU_CHECK(at == r.param.numel(), "data parallel: param '%s' is covered up to element %lld of %lld", r.name.c_str(),
             static_cast<long long>(at), static_cast<long long>(r.param.numel()));
  }
  MU_CHECK(by_param.size() == params_.size(), "data parallel: a piece names a param past the %zu given",
           params_.size());
  send_ = arena.get("dp.send");
  recv_ = arena.get("dp.recv");
  const DType dt = params_.empty() ? DType::F32 : params_[0].param.dtype;
  MU_CHECK(send_.numel() >= l.send_total && recv_.numel() >= owned_ && send_.dtype == dt && recv_.dtype == dt,
           "data parallel: staging buffers %s / %s do not fit %lld + %lld %s elements (plan them with the same "
           "pieces)", send_.str().c_str(), recv_.str().c_str(), static_cast<long long>(l.send_total),
           static_cast<long long>(owned_), dtype_name(dt));
  for (const ParamRef& r : params_)
    MU_CHECK(r.param.dtype == dt, "data parallel: param '%s' is %s, the others %s", r.name.c_str(),
             dtype_name(r.param.dtype), dtype_name(dt));
}

Tensor DataParallel::send_of(const Bucket& b) const { return flat_at(send_, b.send_base, b.total); }

Tensor DataParallel::send_part(const Bucket& b, int rank, int64_t pos, int64_t count) const {
  return flat_at(send_, b.send_base + b.displ[rank] + pos, count);
}

Tensor DataParallel::recv_at(const Bucket& b, int64_t pos, int64_t count) const {
  return flat_at(recv_, b.recv_base + pos, count);
}

void DataParallel::start_bucket(int index) {
  MU_CHECK(index >= 0 && index < buckets(), "data parallel: bucket %d of %d", index, buckets());
  Bucket& b = buckets_[index];
  MU_CHECK(!b.started, "data parallel: bucket %d started twice in one step", index);
  for (size_t i : b.pieces) {
    const DpPiece& p = pieces_[i];
    copy(send_part(b, p.owner, pos_[i], p.count), piece_view(params_[p.param].grad, p));
  }
  b.pending = comm_.reduce_scatter_sum_v_start(recv_at(b, 0, b.counts[comm_.rank()]), send_of(b), b.counts);
  b.started = true;
}

void DataParallel::reduce_grads() {
  for (int i = 0; i < buckets(); i++)
    if (!buckets_[i].started) start_bucket(i);
  for (Bucket& b : buckets_) {
    comm_.wait(b.pending);
    b.pending = CommRequest{};
    b.started = false;
    for (size_t i : b.pieces) {
      const DpPiece& p = pieces_[i];
      if (p.owner == comm_.rank()) copy(piece_view(params_[p.param].grad, p), recv_at(b, pos_[i], p.count));
    }
  }
}

ClipResult DataParallel::clip(double max_norm) {
  // This rank's reduced gradients lie back to back in the receive buffer: one sum.
  double sum = owned_ > 0 ? sum_squares(flat_at(recv_, 0, owned_)) : 0.0;
  comm_.all_reduce_sum(&sum, 1);
  return clip_from_norm(std::sqrt(sum), max_norm);
}

void DataParallel::gather_params() {
  const int me = comm_.rank();
  for (Bucket& b : buckets_) {
    for (size_t i : b.pieces) {
      const DpPiece& p = pieces_[i];
      if (p.owner == me) copy(send_part(b, me, pos_[i], p.count), piece_view(params_[p.param].param, p));
    }
    // In place: this rank's input is its own part of the output.
    b.pending = comm_.all_gather_v_start(send_of(b), send_part(b, me, 0, b.counts[me]), b.counts);
  }
  for (Bucket& b : buckets_) {
    comm_.wait(b.pending);
    b.pending = CommRequest{};
    for (size_t i : b.pieces) {
      const DpPiece& p = pieces_[i];
      if (p.owner != me) copy(piece_view(params_[p.param].param, p), send_part(b, p.owner, pos_[i], p.count));
    }
  }
}

std::string DataParallel::describe() const {
  std::vector<int64_t> owned(static_cast<size_t>(comm_.world()), 0);
  int64_t total = 0;
  for (const DpPiece& p : pieces_) {
    owned[p.owner] += p.count;
    total += p.count;
  }
  const auto [lo, hi] = std::minmax_element(owned.begin(), owned.end());
  return strformat("data parallel over %d ranks (%s): %lld parameters in %zu pieces, %lld to %lld owned per rank "
                   "(%.1f%% at most); gradients reduce-scattered in %d buckets (one per layer, started as the "
                   "backward pass leaves it, then the rest) and weights all-gathered, %s",
                   comm_.world(), comm_.name(), static_cast<long long>(total), pieces_.size(),
                   static_cast<long long>(*lo), static_cast<long long>(*hi),
                   100.0 * static_cast<double>(*hi) / std::max<int64_t>(1, total), buckets(), dtype_name(send_.dtype));
}

}  // namespace mu
