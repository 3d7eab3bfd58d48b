#include "train/optim_setup.h"

#include "kernels/elementwise.h"
#include "kernels/scratch.h"
#include "model/layout.h"

namespace mu {

std::vector<ParamRef> llama_param_shapes(const LlamaConfig& c, DType dtype, Device dev) {
  std::vector<ParamRef> out;
  for (const ParamInfo& p : llama_param_infos(c))
    out.push_back({p.name, Tensor(nullptr, dtype, dev, p.shape), Tensor(nullptr, dtype, dev, p.shape), p.weight_decay,
                   p.hidden_matrix});
  return out;
}

MuonSplits llama_muon_splits(const LlamaConfig& c) {
  return llama_muon_splits(c.hidden_size, c.num_attention_heads, c.num_key_value_heads, c.head_dim,
                           c.intermediate_size);
}

std::vector<MuonMatrix> llama_muon_matrices(const LlamaConfig& c, bool split_heads) {
  std::vector<ParamRef> hidden;
  for (const ParamRef& r : llama_param_shapes(c, DType::F32, Device::CPU))
    if (r.hidden_matrix) hidden.push_back(r);
  return muon_matrices(hidden, llama_muon_splits(c), split_heads);
}

AdamWConfig adamw_config(const TrainOptions& o) {
  AdamWConfig a;
  a.beta1 = o.adam_beta1;
  a.beta2 = o.adam_beta2;
  a.eps = o.adam_eps;
  a.weight_decay = o.weight_decay;
  return a;
}

MuonConfig muon_config(const TrainOptions& o, Comm* comm, Device dev) {
  MuonConfig m;
  m.lr = o.lr;
  m.muon_lr = o.muon_lr < 0 ? o.lr : o.muon_lr;
  m.momentum = o.muon_momentum;
  m.momentum_kind = parse_momentum_kind(o.muon_momentum_kind);
  m.nesterov = o.nesterov;
  m.ortho = parse_ortho(o.muon_ortho);
  m.ns_steps = o.muon_ns_steps;
  m.normuon = o.normuon;
  m.normuon_beta2 = o.normuon_beta2;
  m.lr_scale = parse_lr_scale(o.muon_lr_scale);
  m.weight_decay = o.muon_wd < 0 ? o.weight_decay : o.muon_wd;
  m.wd_kind = parse_wd_kind(o.muon_wd_kind);
  m.split_heads = o.muon_split_heads;
  m.adamw = adamw_config(o);
  m.comm = comm;
  MU_CHECK(o.muon_ortho_dtype != "bf16" || dev == Device::CUDA,
           "--muon-ortho-dtype bf16 needs --device cuda (the cpu backend computes in fp32)");
  m.ortho_bf16 = o.muon_ortho_dtype == "bf16" || (o.muon_ortho_dtype == "auto" && dev == Device::CUDA);
  return m;
}

TrainOptimizer::TrainOptimizer(const TrainOptions& o, const LlamaConfig& cfg, Comm* comm, Device dev)
    : opts_(o),
      splits_(llama_muon_splits(cfg)),
      comm_(comm),
      dev_(dev),
      layers_(cfg.num_hidden_layers),
      muon_config_(o.optimizer == "muon") {}

void TrainOptimizer::route(const std::vector<ParamRef>& shapes) {
  adamw_index_.clear();
  hidden_index_.clear();
  adamw_names_.clear();
  for (size_t i = 0; i < shapes.size(); i++) {
    (muon_config_ && shapes[i].hidden_matrix ? hidden_index_ : adamw_index_).push_back(i);
    if (!(muon_config_ && shapes[i].hidden_matrix)) adamw_names_.push_back(shapes[i].name);
  }
  pieces_.clear();
  if (!comm_) return;
  // Buckets: one per layer (the "layers.*" params are stacked by layer, model/layout.h), then the rest.
  std::vector<bool> stacked;
  for (const ParamRef& r : shapes) stacked.push_back(r.name.rfind("layers.", 0) == 0);
  pieces_ = zero1_pieces(layer_slices(shapes, stacked, layers_), adamw_index_, comm_->world());
  if (muon_config_) {
    const std::vector<ParamRef> hidden = hidden_refs(shapes);
    const MuonConfig mc = muon_config(opts_, comm_, dev_);
    const std::vector<MuonMatrix> mats = muon_matrices(hidden, splits_, mc.split_heads);
    const MuonShardPlan plan = muon_shard_plan(mats, comm_->world(), mc.ns_steps);
    for (const DpPiece& p : muon_pieces(shapes, hidden_index_, mats, plan.owner, layers_)) pieces_.push_back(p);
  }
}

std::vector<ParamRef> TrainOptimizer::adamw_refs(const std::vector<ParamRef>& refs) const {
  std::vector<ParamRef> out;
  if (!comm_) {
    for (size_t i : adamw_index_) out.push_back(refs[i]);
    return out;
  }
  for (const DpPiece& p : pieces_) {
    const ParamRef& r = refs[p.param];
    if (p.owner != comm_->rank() || (r.hidden_matrix && muon_config_)) continue;
    // A flat view of this rank's range of the param within one bucket (one per bucket and
    // rank, so the names stay unique): state "adamw.m.layers.wqkv.3" for layer 3's range.
    const std::string name = p.bucket < layers_ ? strformat("%s.%d", r.name.c_str(), p.bucket) : r.name;
    out.push_back(ParamRef{name, r.param.data ? piece_view(r.param, p) : Tensor(nullptr, r.param.dtype, r.param.device, Shape{p.count}),
                           r.grad.data ? piece_view(r.grad, p) : Tensor(nullptr, r.grad.dtype, r.grad.device, Shape{p.count}),
                           r.weight_decay, false});
  }
  return out;
}

std::vector<ParamRef> TrainOptimizer::hidden_refs(const std::vector<ParamRef>& refs) const {
  std::vector<ParamRef> out;
  for (size_t i : hidden_index_) out.push_back(refs[i]);
  return out;
}

void TrainOptimizer::plan(ArenaPlan& plan, const std::vector<ParamRef>& shapes) {
  route(shapes);
  // The clip norm's sums of squares (kernels/scratch.h): over every gradient tensor at once,
  // or over this rank's owned part (one flat tensor, never more partials) when sharded.
  std::vector<int64_t> sizes;
  for (const ParamRef& r : shapes) sizes.push_back(r.param.numel());
  plan.need_scratch(scratch_bytes_sum_squares(sizes));
  if (!comm_) {
    if (muon_config_) Muon::plan(plan, shapes, muon_config(opts_, nullptr, dev_), splits_);
    else AdamW::plan(plan, shapes);
    return;
  }
  AdamW::plan(plan, adamw_refs(shapes));
  if (muon_config_) Muon::plan(plan, hidden_refs(shapes), muon_config(opts_, comm_, dev_), splits_);
  DataParallel::plan(plan, pieces_, comm_->world(), comm_->rank(), shapes.empty() ? DType::F32 : shapes[0].param.dtype);
}

void TrainOptimizer::bind(const std::vector<ParamRef>& refs, const Arena& arena) {
  route(refs);
  grads_.clear();
  for (const ParamRef& r : refs) grads_.push_back(r.grad);
  if (!comm_) {
    if (muon_config_) muon_ = std::make_unique<Muon>(refs, arena, muon_config(opts_, nullptr, dev_), splits_);
    else adamw_ = std::make_unique<AdamW>(refs, arena, adamw_config(opts_));
    return;
  }
  adamw_ = std::make_unique<AdamW>(adamw_refs(refs), arena, adamw_config(opts_));
  if (muon_config_) muon_ = std::make_unique<Muon>(hidden_refs(refs), arena, muon_config(opts_, comm_, dev_), splits_);
  dp_ = std::make_unique<DataParallel>(*comm_, refs, pieces_, arena);
}

std::function<void(int)> TrainOptimizer::layer_hook() {
  if (!dp_) return {};
  return [this](int layer) { dp_->start_bucket(layer); };
}

void TrainOptimizer::init_masters() {
  if (adamw_) adamw_->init_masters();
  if (muon_) muon_->init_masters();
}

ClipResult TrainOptimizer::reduce_and_clip(double max_norm) {
  if (!dp_) return clip_scale(grads_, max_norm);
  dp_->reduce_grads();
  return dp_->clip(max_norm);
}

void TrainOptimizer::step(double lr, float grad_scale) {
  // The order of one-rank Muon: its AdamW part first, then the matrices.
  if (adamw_) adamw_->step(lr, grad_scale);
  if (muon_) muon_->step(lr, grad_scale);
  if (dp_) dp_->gather_params();
}

std::vector<std::pair<std::string, Tensor>> TrainOptimizer::state_tensors() {
  std::vector<std::pair<std::string, Tensor>> out;
  if (adamw_) out = adamw_->state_tensors();
  if (muon_)
    for (auto& st : muon_->state_tensors()) out.push_back(st);
  return out;
}

int64_t TrainOptimizer::steps_taken() const { return muon_ ? muon_->steps_taken() : adamw_->steps_taken(); }

void TrainOptimizer::set_steps_taken(int64_t n) {
  if (adamw_) adamw_->set_steps_taken(n);
  if (muon_) muon_->set_steps_taken(n);
}

std::string TrainOptimizer::describe() const {
  std::string s;
  if (muon_) s = muon_->describe();
  else s = "adamw over every parameter";
  if (muon_ && dp_) {  // Muon's own AdamW list is empty here: the AdamW part is sharded beside it
    s += "\nadamw (ZeRO-1 element ranges across the ranks):";
    for (size_t i = 0; i < adamw_names_.size(); i++) s += (i ? ", " : " ") + adamw_names_[i];
  }
  if (dp_) s += "\n" + dp_->describe();
  return s;
}

}  // namespace mu
