#include "train/data_parallel.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "kernels/elementwise.h"

namespace mu {
namespace {

// Each piece's position in its owner's segment, and the longest segment.
int64_t layout(const std::vector<DpPiece>& pieces, int world, std::vector<int64_t>* pos) {
  std::vector<int64_t> fill(static_cast<size_t>(world), 0);
  if (pos) pos->clear();
  for (const DpPiece& p : pieces) {
    MU_CHECK(p.owner >= 0 && p.owner < world, "data parallel: a piece of param %zu is owned by rank %d of %d",
             p.param, p.owner, world);
    if (pos) pos->push_back(fill[p.owner]);
    fill[p.owner] += p.count;
  }
  return std::max<int64_t>(1, *std::max_element(fill.begin(), fill.end()));
}

Tensor flat_at(const Tensor& t, int64_t offset, int64_t count) {
  return Tensor(static_cast<char*>(t.data) + static_cast<size_t>(offset) * dtype_size(t.dtype), t.dtype, t.device,
                Shape{count});
}

}  // namespace

std::vector<DpPiece> zero1_pieces(const std::vector<ParamRef>& params, const std::vector<size_t>& which, int world) {
  MU_CHECK(world >= 1, "data parallel: world size %d", world);
  int64_t total = 0;
  for (size_t i : which) total += params.at(i).param.numel();
  std::vector<DpPiece> out;
  int64_t at = 0;  // the run's element index where params[i] starts
  for (size_t i : which) {
    const int64_t n = params[i].param.numel();
    for (int r = 0; r < world; r++) {
      const int64_t lo = total * r / world, hi = total * (r + 1) / world;  // rank r's range of the run
      const int64_t b = std::max(lo, at), e = std::min(hi, at + n);
      if (b < e) out.push_back(DpPiece{i, b - at, e - b, r});
    }
    at += n;
  }
  return out;
}

std::vector<DpPiece> muon_pieces(const std::vector<ParamRef>& params, const std::vector<size_t>& hidden_index,
                                 const std::vector<MuonMatrix>& mats, const std::vector<int>& owner) {
  MU_CHECK(owner.size() == mats.size(), "data parallel: %zu owners for %zu Muon matrices", owner.size(), mats.size());
  std::vector<DpPiece> out;
  for (size_t i = 0; i < mats.size(); i++) {
    const MuonMatrix& m = mats[i];
    const size_t p = hidden_index.at(m.param);
    const Shape& s = params.at(p).param.shape;
    const int64_t layer_elems = m.layer >= 0 ? s.numel() / s[0] : s.numel();
    const int64_t offset = (m.layer >= 0 ? m.layer * layer_elems : 0) + m.row0 * m.cols;
    out.push_back(DpPiece{p, offset, m.rows * m.cols, owner[i]});
  }
  return out;
}

Tensor piece_view(const Tensor& t, const DpPiece& p) {
  MU_CHECK(p.offset >= 0 && p.count >= 0 && p.offset + p.count <= t.numel(),
           "data parallel: piece [%lld, +%lld) outside %s", static_cast<long long>(p.offset),
           static_cast<long long>(p.count), t.str().c_str());
  return flat_at(t, p.offset, p.count);
}

void DataParallel::plan(ArenaPlan& plan, const std::vector<DpPiece>& pieces, int world, DType dtype) {
  const int64_t seg = layout(pieces, world, nullptr);
  plan.add("dp.send", Region::Workspace, dtype, Shape{world * seg});
  plan.add("dp.recv", Region::Workspace, dtype, Shape{seg});
}

DataParallel::DataParallel(Comm& comm, const std::vector<ParamRef>& params, std::vector<DpPiece> pieces,
                           const Arena& arena)
    : comm_(comm), params_(params), pieces_(std::move(pieces)) {
  const int world = comm_.world();
  segment_ = layout(pieces_, world, &pos_);
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
  MU_CHECK(send_.numel() >= world * segment_ && recv_.numel() >= segment_ && send_.dtype == dt && recv_.dtype == dt,
           "data parallel: staging buffers %s / %s do not fit a segment of %lld %s elements (plan them with the same "
           "pieces)", send_.str().c_str(), recv_.str().c_str(), static_cast<long long>(segment_), dtype_name(dt));
  for (const ParamRef& r : params_)
    MU_CHECK(r.param.dtype == dt, "data parallel: param '%s' is %s, the others %s", r.name.c_str(),
             dtype_name(r.param.dtype), dtype_name(dt));
  send_ = send_.view(Shape{send_.numel()});
  recv_ = Tensor(recv_.data, dt, recv_.device, Shape{segment_});
}

Tensor DataParallel::send_slot(int rank, int64_t pos, int64_t count) const {
  return flat_at(send_, rank * segment_ + pos, count);
}

void DataParallel::reduce_grads() {
  for (size_t i = 0; i < pieces_.size(); i++) {
    const DpPiece& p = pieces_[i];
    copy(send_slot(p.owner, pos_[i], p.count), piece_view(params_[p.param].grad, p));
  }
  comm_.reduce_scatter_sum(recv_, Tensor(send_.data, send_.dtype, send_.device, Shape{comm_.world() * segment_}));
  for (size_t i = 0; i < pieces_.size(); i++) {
    const DpPiece& p = pieces_[i];
    if (p.owner == comm_.rank()) copy(piece_view(params_[p.param].grad, p), flat_at(recv_, pos_[i], p.count));
  }
}

ClipResult DataParallel::clip(double max_norm) {
  double sum = 0.0;
  for (const DpPiece& p : pieces_)
    if (p.owner == comm_.rank()) sum += sum_squares(piece_view(params_[p.param].grad, p));
  comm_.all_reduce_sum(&sum, 1);
  return clip_from_norm(std::sqrt(sum), max_norm);
}

void DataParallel::gather_params() {
  const int me = comm_.rank();
  for (size_t i = 0; i < pieces_.size(); i++) {
    const DpPiece& p = pieces_[i];
    if (p.owner == me) copy(send_slot(me, pos_[i], p.count), piece_view(params_[p.param].param, p));
  }
  // In place: this rank's input is its own slot of the output.
  comm_.all_gather(Tensor(send_.data, send_.dtype, send_.device, Shape{comm_.world() * segment_}),
                   send_slot(me, 0, segment_));
  for (size_t i = 0; i < pieces_.size(); i++) {
    const DpPiece& p = pieces_[i];
    if (p.owner != me) copy(piece_view(params_[p.param].param, p), send_slot(p.owner, pos_[i], p.count));
  }
}

std::string DataParallel::describe() const {
  std::vector<int64_t> owned(static_cast<size_t>(comm_.world()), 0);
  int64_t total = 0;
  for (const DpPiece& p : pieces_) {
    owned[p.owner] += p.count;
    total += p.count;
  }
  return strformat("data parallel over %d ranks (%s): %lld parameters in %zu pieces, %lld updated per rank at most "
                   "(%.1f%%); gradients reduce-scattered and weights all-gathered in segments of %lld %s elements",
                   comm_.world(), comm_.name(), static_cast<long long>(total), pieces_.size(),
                   static_cast<long long>(*std::max_element(owned.begin(), owned.end())),
                   100.0 * static_cast<double>(*std::max_element(owned.begin(), owned.end())) /
                       static_cast<double>(std::max<int64_t>(1, total)),
                   static_cast<long long>(segment_), dtype_name(send_.dtype));
}

}  // namespace mu
