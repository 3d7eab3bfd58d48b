// The optimizer of a training run, on one rank or sharded across data-parallel ranks.
//
// One rank (comm == nullptr): AdamW over every parameter, or Muon (which routes the non-hidden
// parameters to its inner AdamW), exactly as optim/ defines them.
// Data parallel (a communicator, any world size; world 1 runs the same path, for tests and the
// NCCL check): AdamW's parameters are cut into ZeRO-1 element ranges and Muon's matrices are
// owned whole (optim/muon_shard.h); this rank's AdamW holds state for its ranges only, Muon
// updates its own matrices, and train/data_parallel.h moves gradients and weights.
// Both update the same elements by the same formulas in the same order, so N ranks reproduce
// one rank up to the order of the gradient sums.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/arena.h"
#include "core/comm.h"
#include "model/config.h"
#include "optim/adamw.h"
#include "optim/clip.h"
#include "optim/muon.h"
#include "train/data_parallel.h"
#include "train/options.h"

namespace mu {

// The model's parameters as ParamRefs with null tensors (names, shapes, dtype, flags): what the
// optimizers and data parallel plan with before any memory exists.
std::vector<ParamRef> llama_param_shapes(const LlamaConfig& c, DType dtype, Device dev);
// Muon's view of the model: how the stored hidden params split into logical matrices, and
// those matrices (optim/muon.h muon_matrices over the hidden params).
MuonSplits llama_muon_splits(const LlamaConfig& c);
std::vector<MuonMatrix> llama_muon_matrices(const LlamaConfig& c, bool split_heads);

AdamWConfig adamw_config(const TrainOptions& o);
// dev resolves --muon-ortho-dtype auto (bf16 on cuda); bf16 on the cpu is refused.
MuonConfig muon_config(const TrainOptions& o, Comm* comm, Device dev);

class TrainOptimizer : public Optimizer {
 public:
  TrainOptimizer(const TrainOptions& o, const LlamaConfig& cfg, Comm* comm, Device dev);

  // Before the arena exists: `shapes` are the model's params with null data (name, shape,
  // dtype, flags are read).
  void plan(ArenaPlan& plan, const std::vector<ParamRef>& shapes);
  // After: the real params and grads (same order), and the arena the plan went into.
  void bind(const std::vector<ParamRef>& refs, const Arena& arena);
  // BF16 params: the fp32 masters from the params (fresh runs; a resume loads them).
  void init_masters();

  // Data parallel: for Llama::set_layer_grads_hook on the last micro-batch of a step, so each
  // layer's gradient reduction starts while the backward pass continues. Empty on one rank.
  std::function<void(int)> layer_hook();
  // After the backward pass: data parallel reduces the gradients first. Collective.
  ClipResult reduce_and_clip(double max_norm);
  // The update; data parallel then all-gathers the weights. Collective.
  void step(double lr, float grad_scale) override;

  std::vector<std::pair<std::string, Tensor>> state_tensors() override;
  int64_t steps_taken() const override;
  void set_steps_taken(int64_t n) override;
  std::string name() const override { return muon_config_ ? "muon" : "adamw"; }

  Muon* muon() { return muon_.get(); }
  std::string describe() const;  // lines for the start-up log

 private:
  TrainOptions opts_;
  MuonSplits splits_;
  Comm* comm_;
  Device dev_;
  int layers_;
  bool muon_config_;
  std::vector<size_t> adamw_index_, hidden_index_;  // into the params, in order
  std::vector<std::string> adamw_names_;
  std::vector<DpPiece> pieces_;
  std::unique_ptr<AdamW> adamw_;  // one rank with --optimizer adamw, or data parallel
  std::unique_ptr<Muon> muon_;
  std::unique_ptr<DataParallel> dp_;
  std::vector<Tensor> grads_;

  void route(const std::vector<ParamRef>& shapes);
  std::vector<ParamRef> adamw_refs(const std::vector<ParamRef>& refs) const;  // whole, or this rank's pieces
  std::vector<ParamRef> hidden_refs(const std::vector<ParamRef>& refs) const;
};

}  // namespace mu
