#include "optim/muon.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "kernels/elementwise.h"
#include "kernels/scratch.h"

namespace mu {
namespace {

void check_config(const MuonConfig& c) {
  MU_CHECK(std::isfinite(c.lr) && c.lr >= 0.0, "muon: lr is %g, must be finite and >= 0", c.lr);
  MU_CHECK(std::isfinite(c.muon_lr) && c.muon_lr >= 0.0, "muon: muon_lr is %g, must be finite and >= 0", c.muon_lr);
  MU_CHECK(c.lr > 0.0 || c.muon_lr == c.lr,
           "muon: --muon-lr %g with --lr 0: Muon's LR follows the schedule as muon_lr * lr_t / lr, so --lr must be > 0",
           c.muon_lr);
  MU_CHECK(c.momentum >= 0.0 && c.momentum < 1.0, "muon: momentum is %g, must be in [0, 1)", c.momentum);
  MU_CHECK(c.ns_steps >= 1 && c.ns_steps <= 100, "muon: ns_steps is %d, must be in [1, 100]", c.ns_steps);
  MU_CHECK(c.normuon_beta2 >= 0.0 && c.normuon_beta2 < 1.0, "muon: normuon_beta2 is %g, must be in [0, 1)",
           c.normuon_beta2);
  MU_CHECK(std::isfinite(c.weight_decay) && c.weight_decay >= 0.0, "muon: weight_decay is %g, must be finite and >= 0",
           c.weight_decay);
  MU_CHECK(c.max_batch_elems > 0, "muon: max_batch_elems must be > 0");
}

struct Routed {
  std::vector<ParamRef> hidden, adamw;
};
Routed route(const std::vector<ParamRef>& params) {
  Routed r;
  std::set<std::string> seen;
  for (const ParamRef& p : params) {
    MU_CHECK(seen.insert(p.name).second, "muon: parameter '%s' appears twice", p.name.c_str());
    (p.hidden_matrix ? r.hidden : r.adamw).push_back(p);
  }
  return r;
}

struct WorkspaceSize {
  int64_t x = 1, gram = 1;  // elements; at least 1 so the entries exist
};
WorkspaceSize workspace_size(const std::vector<MuonBatch>& batches) {
  WorkspaceSize w;
  for (const MuonBatch& b : batches) {
    const int64_t cnt = static_cast<int64_t>(b.items.size());
    w.x = std::max(w.x, cnt * b.m * b.n);
    w.gram = std::max(w.gram, cnt * b.m * b.m);
  }
  return w;
}

Shape normuon_shape(const ParamRef& p, int64_t len) {
  return p.param.ndim() == 3 ? Shape{p.param.size(0), len} : Shape{len};
}

}  // namespace

std::string muon_matrix_key(const std::string& param, const MuonMatrix& m) {
  std::string k = param;
  if (m.layer >= 0) k += strformat(".%lld", static_cast<long long>(m.layer));
  k += "." + m.group;
  if (m.head >= 0) k += strformat(".h%lld", static_cast<long long>(m.head));
  return k;
}

namespace {

MuonShardPlan shard_for(const MuonConfig& c, const std::vector<MuonMatrix>& mats) {
  return muon_shard_plan(mats, c.comm ? c.comm->world() : 1, c.ns_steps);
}
int rank_of(const MuonConfig& c) { return c.comm ? c.comm->rank() : 0; }

const char* const kWs[] = {"muon.ws.x", "muon.ws.x2", "muon.ws.gram", "muon.ws.poly"};

}  // namespace

void Muon::plan(ArenaPlan& plan, const std::vector<ParamRef>& params, const MuonConfig& cfg, const MuonSplits& splits) {
  check_config(cfg);
  const Routed r = route(params);
  AdamW::plan(plan, r.adamw);
  const std::vector<MuonMatrix> mats = muon_matrices(r.hidden, splits, cfg.split_heads);
  const MuonShardPlan shard = shard_for(cfg, mats);
  if (!cfg.comm) {
    for (size_t p = 0; p < r.hidden.size(); p++) {
      plan.add(momentum_name(r.hidden[p].name), Region::OptState, DType::F32, r.hidden[p].param.shape);
      if (r.hidden[p].param.dtype != DType::F32)
        plan.add(master_name(r.hidden[p].name), Region::Master, DType::F32, r.hidden[p].param.shape);
      if (cfg.normuon)
        plan.add(normuon_name(r.hidden[p].name), Region::OptState, DType::F32,
                 normuon_shape(r.hidden[p], normuon_layer_len(mats, p)));
    }
  } else {  // sharded: state for this rank's matrices only, one entry each
    for (size_t i = 0; i < mats.size(); i++) {
      if (shard.owner[i] != rank_of(cfg)) continue;
      const ParamRef& h = r.hidden[mats[i].param];
      const std::string key = muon_matrix_key(h.name, mats[i]);
      plan.add(momentum_name(key), Region::OptState, DType::F32, Shape{mats[i].rows, mats[i].cols});
      if (h.param.dtype != DType::F32)
        plan.add(master_name(key), Region::Master, DType::F32, Shape{mats[i].rows, mats[i].cols});
      if (cfg.normuon)
        plan.add(normuon_name(key), Region::OptState, DType::F32, Shape{std::max(mats[i].rows, mats[i].cols)});
    }
  }
  // the workspace need only fit this rank's batches
  const std::vector<MuonBatch> batches = muon_batches(mats, cfg.max_batch_elems, &shard.owner, rank_of(cfg));
  const WorkspaceSize ws = workspace_size(batches);
  // the device scratch of the step's ops (kernels/scratch.h): the batch's normalisation,
  // NorMuon's per-neuron sums, the diagnostics' sums of squares
  for (const MuonBatch& b : batches) {
    plan.need_scratch(scratch_bytes_frobenius_normalize(static_cast<int64_t>(b.items.size()), b.m * b.n));
    plan.need_scratch(scratch_bytes_normuon(std::max(b.m, b.n)));
    plan.need_scratch(scratch_bytes_sum_squares(b.m * b.n));
  }
  plan.add(kWs[0], Region::Workspace, DType::F32, Shape{ws.x});
  plan.add(kWs[1], Region::Workspace, DType::F32, Shape{ws.x});
  plan.add(kWs[2], Region::Workspace, DType::F32, Shape{ws.gram});
  plan.add(kWs[3], Region::Workspace, DType::F32, Shape{ws.gram});
}

Muon::Muon(const std::vector<ParamRef>& params, const Arena& arena, const MuonConfig& cfg, const MuonSplits& splits)
    : cfg_(cfg) {
  check_config(cfg);
  const Routed r = route(params);
  adamw_refs_ = r.adamw;
  adamw_ = std::make_unique<AdamW>(r.adamw, arena, cfg.adamw);
  matrices_ = muon_matrices(r.hidden, splits, cfg.split_heads);
  shard_ = shard_for(cfg, matrices_);
  batches_ = muon_batches(matrices_, cfg.max_batch_elems, &shard_.owner, rank_of(cfg));
  for (size_t p = 0; p < r.hidden.size(); p++) {
    const ParamRef& ref = r.hidden[p];
    const char* n = ref.name.c_str();
    MU_CHECK(!ref.param.empty() && !ref.grad.empty(), "muon: parameter '%s' has no %s tensor", n,
             ref.param.empty() ? "param" : "grad");
    MU_CHECK(ref.grad.shape == ref.param.shape, "muon: parameter '%s' is %s but its grad is %s", n,
             ref.param.str().c_str(), ref.grad.str().c_str());
    MU_CHECK(ref.param.device == arena.device() && ref.grad.device == arena.device(),
             "muon: parameter '%s' (%s), its grad (%s) and the optimizer state (%s) must share a device", n,
             device_name(ref.param.device), device_name(ref.grad.device), device_name(arena.device()));
    Hidden h{ref, Tensor(), Tensor(), Tensor()};
    if (cfg.comm) {  // sharded: per-matrix state, bound below
      hidden_.push_back(h);
      hidden_names_.push_back(ref.name);
      continue;
    }
    MU_CHECK(arena.has(momentum_name(ref.name)) && (!cfg.normuon || arena.has(normuon_name(ref.name))),
             "muon: no state for parameter '%s' in the arena (call Muon::plan with the same params and config)", n);
    h.momentum = arena.get(momentum_name(ref.name));
    check_shape("muon", h.ref.name.c_str(), h.momentum, ref.param.shape);
    if (ref.param.dtype != DType::F32) {
      MU_CHECK(arena.has(master_name(ref.name)), "muon: parameter '%s' is %s but has no fp32 master in the arena", n,
               dtype_name(ref.param.dtype));
      h.master = arena.get(master_name(ref.name));
      MU_CHECK(h.master.dtype == DType::F32 && h.master.shape == ref.param.shape,
               "muon: master of parameter '%s' is %s, expected F32%s", n, h.master.str().c_str(),
               ref.param.shape.str().c_str());
    }
    if (cfg.normuon) {
      h.normuon_v = arena.get(normuon_name(ref.name));
      check_shape("muon", normuon_name(ref.name).c_str(), h.normuon_v,
                  normuon_shape(ref, normuon_layer_len(matrices_, p)));
    }
    hidden_.push_back(h);
    hidden_names_.push_back(ref.name);
  }
  if (cfg.comm) {
    mat_state_.resize(matrices_.size());
    for (const MuonBatch& b : batches_)
      for (size_t i : b.items) {
        const MuonMatrix& mm = matrices_[i];
        const std::string key = muon_matrix_key(hidden_names_[mm.param], mm);
        const Shape shape{mm.rows, mm.cols};
        MU_CHECK(arena.has(momentum_name(key)) && (!cfg.normuon || arena.has(normuon_name(key))),
                 "muon: no state for matrix '%s' in the arena (call Muon::plan with the same params and config)",
                 key.c_str());
        MatrixState& st = mat_state_[i];
        st.momentum = arena.get(momentum_name(key));
        check_shape("muon", momentum_name(key).c_str(), st.momentum, shape);
        if (hidden_[mm.param].ref.param.dtype != DType::F32) {
          MU_CHECK(arena.has(master_name(key)), "muon: matrix '%s' has no fp32 master in the arena", key.c_str());
          st.master = arena.get(master_name(key));
          check_shape("muon", master_name(key).c_str(), st.master, shape);
        }
        if (cfg.normuon) {
          st.normuon_v = arena.get(normuon_name(key));
          check_shape("muon", normuon_name(key).c_str(), st.normuon_v, Shape{std::max(mm.rows, mm.cols)});
        }
      }
  }
  MU_CHECK(!cfg.ortho_bf16 || arena.device() == Device::CUDA,
           "muon: the bf16 orthogonalization runs on cuda only (the cpu backend is fp32)");
  const WorkspaceSize ws = workspace_size(batches_);
  Tensor* dst[] = {&ws_x_, &ws_x2_, &ws_gram_, &ws_poly_};
  for (int i = 0; i < 4; i++) {
    MU_CHECK(arena.has(kWs[i]), "muon: workspace '%s' is not in the arena (call Muon::plan)", kWs[i]);
    *dst[i] = arena.get(kWs[i]);
    MU_CHECK(dst[i]->dtype == DType::F32 && dst[i]->numel() >= (i < 2 ? ws.x : ws.gram),
             "muon: workspace '%s' is %s, too small for this config (plan it with the same config)", kWs[i],
             dst[i]->str().c_str());
  }
}

double Muon::muon_lr_at(double lr_t) const {
  if (cfg_.muon_lr == cfg_.lr) return lr_t;  // exactly the schedule, no rounding
  return cfg_.muon_lr * (lr_t / cfg_.lr);
}

Tensor Muon::view_of(const Tensor& t, const MuonMatrix& mm) const {
  const Tensor layer = mm.layer >= 0 ? t[mm.layer] : t;
  return layer.rows(mm.row0, mm.rows);
}

Tensor Muon::momentum_of(size_t i) const {
  if (cfg_.comm) return mat_state_[i].momentum;
  return view_of(hidden_[matrices_[i].param].momentum, matrices_[i]);
}

Tensor Muon::master_of(size_t i) const {
  if (cfg_.comm) return mat_state_[i].master;
  const Tensor& m = hidden_[matrices_[i].param].master;
  return m.empty() ? Tensor() : view_of(m, matrices_[i]);
}

Tensor Muon::v_of(size_t i) const {
  if (cfg_.comm) return mat_state_[i].normuon_v;
  const MuonMatrix& mm = matrices_[i];
  const Tensor& v = hidden_[mm.param].normuon_v;
  const Tensor layer = mm.layer >= 0 ? v[mm.layer] : v;
  return Tensor(layer.f32() + mm.v_offset, DType::F32, layer.device, Shape{std::max(mm.rows, mm.cols)});
}

void Muon::step(double lr, float grad_scale) {
  adamw_->step(lr, grad_scale);
  const double mlr = muon_lr_at(lr);
  MU_CHECK(std::isfinite(mlr) && mlr >= 0.0, "muon: LR %g (from the scheduled --lr %g), must be finite and >= 0", mlr,
           lr);
  const bool diag = want_diag_;
  struct GroupDiag {
    double sq = 0, count = 0, ortho_err = 0;
  };
  std::map<std::string, GroupDiag> gd;

  for (const MuonBatch& b : batches_) {
    const int64_t cnt = static_cast<int64_t>(b.items.size());
    const Device dev = ws_x_.device;
    Tensor x(ws_x_.data, DType::F32, dev, Shape{cnt, b.m, b.n});  // (cnt, m, n): the batch's wide X
    // bf16 iteration: the fp32 x2 buffer holds the two bf16 iterates (xb, x2) side by side, and
    // the gram / poly buffers their bf16 halves; the sizes planned for fp32 cover both.
    const DType wdt = cfg_.ortho_bf16 ? DType::BF16 : DType::F32;
    const Shape xs{cnt, b.m, b.n}, gs{cnt, b.m, b.m};
    OrthoWorkspace ws{Tensor(ws_x2_.data, wdt, dev, xs), Tensor(ws_gram_.data, wdt, dev, gs),
                      Tensor(ws_poly_.data, wdt, dev, gs), Tensor()};
    if (cfg_.ortho_bf16)
      ws.xb = Tensor(static_cast<char*>(ws_x2_.data) + static_cast<size_t>(xs.numel()) * dtype_size(DType::BF16),
                     DType::BF16, dev, xs);
    const Tensor gram_f32(ws_gram_.data, DType::F32, dev, Shape{b.m, b.m});  // diagnostics' scratch
    // momentum -> U, gathered into X (transposed when tall)
    for (int64_t i = 0; i < cnt; i++) {
      const MuonMatrix& mm = matrices_[b.items[i]];
      const Hidden& h = hidden_[mm.param];
      MuonMomentumParams mp;
      mp.buf = momentum_of(b.items[i]);
      mp.grad = view_of(h.ref.grad, mm);
      mp.out = x[i];
      mp.kind = cfg_.momentum_kind;
      mp.mu = static_cast<float>(cfg_.momentum);
      mp.nesterov = cfg_.nesterov;
      mp.transpose_out = mm.transposed();
      mp.grad_scale = grad_scale;
      muon_momentum(mp);
    }
    orthogonalize(x, ws, cfg_.ortho, cfg_.ns_steps);  // X = O (or O^T)
    for (int64_t i = 0; i < cnt; i++) {
      const MuonMatrix& mm = matrices_[b.items[i]];
      const Hidden& h = hidden_[mm.param];
      if (diag && mm.sample) gd[mm.group].ortho_err = orthogonality_error(x[i], gram_f32);
      if (cfg_.normuon) {
        // per neuron along the longer side: per row of O if A >= B, else per column. In X's
        // orientation that is per row only for square matrices (a tall O arrives as O^T).
        NorMuonParams np;
        np.o = x[i];
        np.v = v_of(b.items[i]);
        np.beta2 = static_cast<float>(cfg_.normuon_beta2);
        np.per_row = mm.rows == mm.cols;
        normuon_normalize(np);
      }
      MuonApplyParams ap;
      const Tensor master = master_of(b.items[i]);
      ap.param = master.empty() ? view_of(h.ref.param, mm) : master;  // BF16 params: the fp32 master
      ap.o = x[i];
      ap.o_transposed = mm.transposed();
      ap.lr = mlr;
      ap.scale = muon_lr_scale(cfg_.lr_scale, mm.rows, mm.cols);
      ap.weight_decay = h.ref.weight_decay ? cfg_.weight_decay : 0.0;
      ap.wd_kind = cfg_.wd_kind;
      muon_apply(ap);
      if (diag) {
        GroupDiag& g = gd[mm.group];
        g.sq += (mlr * ap.scale) * (mlr * ap.scale) * sum_squares(x[i]);
        g.count += static_cast<double>(mm.rows * mm.cols);
      }
    }
  }
  // The model computes with the low-precision param: write it from the updated master, once
  // per param (every matrix of it has been applied above), rounded once.
  // Sharded, only this rank's matrices: the others arrive by the all-gather.
  if (!cfg_.comm) {
    for (const Hidden& h : hidden_)
      if (!h.master.empty()) copy(h.ref.param, h.master);
  } else {
    for (const MuonBatch& b : batches_)
      for (size_t i : b.items) {
        const Tensor master = master_of(i);
        if (!master.empty()) copy(view_of(hidden_[matrices_[i].param].ref.param, matrices_[i]), master);
      }
  }
  steps_++;
  if (diag) {
    diag_.clear();
    diag_.emplace_back("muon.lr", mlr);
    std::vector<const MuonMatrix*> samples;  // one per group, in routing order
    for (const MuonMatrix& mm : matrices_)
      if (mm.sample) samples.push_back(&mm);
    // Sharded: each rank holds the sums over its own matrices (and the error of the samples it
    // owns, 0 elsewhere), so one all-reduce gives every rank the whole picture.
    std::vector<double> sums;
    for (const MuonMatrix* mm : samples) {
      const GroupDiag& d = gd[mm->group];
      sums.insert(sums.end(), {d.sq, d.count, d.ortho_err});
    }
    if (cfg_.comm && !sums.empty()) cfg_.comm->all_reduce_sum(sums.data(), static_cast<int64_t>(sums.size()));
    for (size_t i = 0; i < samples.size(); i++) {
      const std::string& g = samples[i]->group;
      const double sq = sums[3 * i], count = sums[3 * i + 1];
      diag_.emplace_back("muon." + g + ".lr_eff", mlr * muon_lr_scale(cfg_.lr_scale, samples[i]->rows, samples[i]->cols));
      diag_.emplace_back("muon." + g + ".update_rms", count > 0 ? std::sqrt(sq / count) : 0.0);
      diag_.emplace_back("muon." + g + ".ortho_err", sums[3 * i + 2]);
    }
    want_diag_ = false;
  }
}

std::vector<std::pair<std::string, double>> Muon::take_diagnostics() {
  std::vector<std::pair<std::string, double>> out;
  out.swap(diag_);
  return out;
}

std::vector<std::pair<std::string, Tensor>> Muon::state_tensors() {
  std::vector<std::pair<std::string, Tensor>> out = adamw_->state_tensors();
  if (cfg_.comm) {
    for (size_t i = 0; i < mat_state_.size(); i++) {
      const MatrixState& st = mat_state_[i];
      if (st.momentum.empty()) continue;  // another rank's matrix
      const std::string key = muon_matrix_key(hidden_names_[matrices_[i].param], matrices_[i]);
      out.emplace_back(momentum_name(key), st.momentum);
      if (cfg_.normuon) out.emplace_back(normuon_name(key), st.normuon_v);
      if (!st.master.empty()) out.emplace_back(master_name(key), st.master);
    }
    return out;
  }
  for (const Hidden& h : hidden_) {
    out.emplace_back(momentum_name(h.ref.name), h.momentum);
    if (cfg_.normuon) out.emplace_back(normuon_name(h.ref.name), h.normuon_v);
    if (!h.master.empty()) out.emplace_back(master_name(h.ref.name), h.master);
  }
  return out;
}

void Muon::init_masters() {
  adamw_->init_masters();
  if (cfg_.comm) {
    for (size_t i = 0; i < mat_state_.size(); i++)
      if (!mat_state_[i].master.empty())
        copy(mat_state_[i].master, view_of(hidden_[matrices_[i].param].ref.param, matrices_[i]));
    return;
  }
  for (const Hidden& h : hidden_)
    if (!h.master.empty()) copy(h.master, h.ref.param);
}

void Muon::set_steps_taken(int64_t n) {
  MU_CHECK(n >= 0, "muon: steps taken is %lld, must be >= 0", static_cast<long long>(n));
  steps_ = n;
  adamw_->set_steps_taken(n);
}

std::vector<std::string> Muon::adamw_params() const {
  std::vector<std::string> out;
  for (const ParamRef& r : adamw_refs_) out.push_back(r.name);
  return out;
}

std::string Muon::describe() const {
  std::string s = strformat("muon (%s momentum%s, %s x%d%s, lr scale %s, wd %g %s%s): ",
                            momentum_kind_name(cfg_.momentum_kind), cfg_.nesterov ? " + nesterov" : "",
                            ortho_name(cfg_.ortho), cfg_.ns_steps, cfg_.normuon ? ", normuon" : "",
                            lr_scale_name(cfg_.lr_scale), cfg_.weight_decay, wd_kind_name(cfg_.wd_kind),
                            cfg_.split_heads ? ", per head" : "");
  std::map<std::string, std::pair<int, std::string>> groups;  // name -> (count, shape)
  std::vector<std::string> order;
  for (const MuonMatrix& m : matrices_) {
    if (!groups.count(m.group)) order.push_back(m.group);
    auto& g = groups[m.group];
    g.first++;
    g.second = strformat("%lldx%lld", static_cast<long long>(m.rows), static_cast<long long>(m.cols));
  }
  for (size_t i = 0; i < order.size(); i++)
    s += strformat("%s%s %d x %s", i ? ", " : "", order[i].c_str(), groups[order[i]].first,
                   groups[order[i]].second.c_str());
  s += strformat(" in %zu batched orthogonalizations%s; adamw: ", batches_.size(), cfg_.comm ? " on this rank" : "");
  const std::vector<std::string> a = adamw_params();
  for (size_t i = 0; i < a.size(); i++) s += (i ? ", " : "") + a[i];
  if (a.empty()) s += "(none)";
  if (cfg_.comm) s += "\nmuon sharded over " + shard_.describe();
  return s;
}

}  // namespace mu
