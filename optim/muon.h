// Muon (Keller Jordan et al.) with every published variant as a switch, beside an AdamW for
// the parameters Muon does not handle, in one Optimizer (issue 5, DESIGN.md §6).
//
// Per logical hidden matrix W (A = out features rows, B = in features cols), gradient G:
//   momentum     sgd: buf = mu*buf + G;             U = G + mu*buf (Nesterov) | buf
//                ema: buf = buf + (1-mu)*(G - buf); U = G + mu*(buf - G) (Nesterov) | buf
//   orthogonalize  O = ns5 | polar_express (U^T when A > B, so the iteration runs on a wide X)
//   NorMuon      per-neuron second moment along the longer side, norm-preserving (optional)
//   LR scale     match_rms_adamw 0.2*sqrt(max(A,B)) | original sqrt(max(1,A/B))
//                | spectral sqrt(A/B) | sqrt_max sqrt(max(A,B)) | none 1
//   update       decoupled: W = W*(1 - lr*wd) - lr*scale*O | cautious: masked decay | none
//
// Routing: params with ParamRef::hidden_matrix go to Muon, everything else to the inner AdamW
// (its own lr = the scheduled --lr, and its own weight decay). A hidden param is 2-D (A, B) or
// stacked 3-D (L, A, B); its rows may hold several logical matrices (fused QKV, gate|up), listed
// in MuonSplits, and each is orthogonalized on its own (per head with split_heads). Matrices of
// the same shape (after transposing tall ones) are orthogonalized together as one batched
// matmul, in batches of at most max_batch_elems elements.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/arena.h"
#include "core/comm.h"
#include "kernels/muon.h"
#include "optim/adamw.h"
#include "optim/optimizer.h"
#include "optim/muon_shard.h"
#include "optim/orthogonalize.h"

namespace mu {

enum class LrScaleKind : uint8_t { MatchRmsAdamw, Original, Spectral, SqrtMax, None };

LrScaleKind parse_lr_scale(const std::string& s);  // match_rms_adamw|original|spectral|sqrt_max|none
const char* lr_scale_name(LrScaleKind k);
MomentumKind parse_momentum_kind(const std::string& s);  // sgd|ema
const char* momentum_kind_name(MomentumKind k);
WeightDecayKind parse_wd_kind(const std::string& s);  // decoupled|cautious|none
const char* wd_kind_name(WeightDecayKind k);

// The LR multiplier of an (A, B) = (rows, cols) matrix.
double muon_lr_scale(LrScaleKind k, int64_t rows, int64_t cols);

struct MuonConfig {
  double lr = 3e-4;       // the schedule's peak LR (--lr); Muon's LR at a step is muon_lr * lr_t / lr
  double muon_lr = 3e-4;  // Muon's peak LR (--muon-lr)
  double momentum = 0.95;
  MomentumKind momentum_kind = MomentumKind::Sgd;
  bool nesterov = true;
  OrthoKind ortho = OrthoKind::Ns5;
  int ns_steps = 5;
  bool normuon = false;
  double normuon_beta2 = 0.95;
  LrScaleKind lr_scale = LrScaleKind::MatchRmsAdamw;
  double weight_decay = 0.1;  // Muon's, applied to hidden params with ParamRef::weight_decay
  WeightDecayKind wd_kind = WeightDecayKind::Decoupled;
  bool split_heads = false;
  int64_t max_batch_elems = int64_t{1} << 26;  // caps one orthogonalization batch (and its workspace)
  // cuda only: iterate the orthogonalizer in bf16 (fp32 accumulation), the tensor-core path;
  // false iterates in fp32 (the reference, and what the cpu backend always does).
  bool ortho_bf16 = false;
  AdamWConfig adamw;                           // the non-hidden params
  // Data parallel (issue 6): with a communicator of world W, the matrices are divided among the
  // ranks by muon_shard_plan (optim/muon_shard.h) and this rank updates only its own; the caller
  // reduces their gradients first and all-gathers the weights after (train/data_parallel.h).
  // Diagnostics are summed over the ranks. Null: one rank updates every matrix.
  Comm* comm = nullptr;
};

// A row range of a stored hidden param that is one logical matrix.
struct MuonBlock {
  std::string name;       // "q", "k", ...: names its diagnostics group
  int64_t rows = 0;       // rows of the stored matrix it covers (blocks follow each other)
  int64_t head_rows = 0;  // > 0: with split_heads, each head_rows-row slice is its own matrix
};
// Stored param name -> its blocks, top to bottom. A hidden param not listed is one block
// named after the param.
using MuonSplits = std::map<std::string, std::vector<MuonBlock>>;

// The engine's Llama layout (model/layout.h): wqkv rows q | k | v (heads of head_dim rows),
// w_gate_up rows gate | up, wo and w_down whole.
MuonSplits llama_muon_splits(int64_t hidden, int64_t heads, int64_t kv_heads, int64_t head_dim, int64_t ffn);

// One logical matrix: rows [row0, row0 + rows) of layer `layer` of hidden param `param`.
struct MuonMatrix {
  size_t param = 0;        // index among the hidden params, in the order given
  std::string group;       // the block's name
  int64_t layer = -1;      // -1 for a 2-D param
  int64_t head = -1;       // -1 when the block is whole
  int64_t row0 = 0, rows = 0, cols = 0;
  int64_t v_offset = 0;    // its NorMuon second moment (max(rows, cols) entries) within the layer's vector
  bool sample = false;     // the first matrix of its group: the orthogonality-error sample
  bool transposed() const { return rows > cols; }
};

// Same-shape matrices orthogonalized together: (count, m, n) with m <= n.
struct MuonBatch {
  int64_t m = 0, n = 0;
  std::vector<size_t> items;  // indices into the matrix list
};

// The routing, as plan() and the constructor compute it. `hidden` are the hidden params only, in
// order; matrices come param by param, layer by layer, block by block (head by head).
std::vector<MuonMatrix> muon_matrices(const std::vector<ParamRef>& hidden, const MuonSplits& splits,
                                      bool split_heads);
// Groups matrices by their wide shape (min(A,B), max(A,B)) in order of first appearance, then cuts
// each group into batches of at most max_batch_elems elements (at least one matrix each). With
// `owner` (one rank per matrix), only the matrices owned by `rank` are batched.
std::vector<MuonBatch> muon_batches(const std::vector<MuonMatrix>& matrices, int64_t max_batch_elems,
                                    const std::vector<int>* owner = nullptr, int rank = 0);
// The name of a matrix's own state entries when sharded: "<param>.<layer>.<group>[.h<head>]",
// e.g. "layers.wqkv.3.k" -> "muon.momentum.layers.wqkv.3.k".
std::string muon_matrix_key(const std::string& param, const MuonMatrix& m);
// NorMuon state entries per layer of hidden param p: the sum of max(A, B) over its matrices.
int64_t normuon_layer_len(const std::vector<MuonMatrix>& matrices, size_t p);

class Muon : public Optimizer {
 public:
  // Adds the state to the plan (Region::OptState): the inner AdamW's ("adamw.m/v.<name>") for
  // the non-hidden params; "muon.momentum.<name>" (F32, the param's shape) and with NorMuon
  // "muon.normuon_v.<name>" ((L, sum of max(A, B)) or (sum)) for the hidden ones; and the
  // orthogonalization workspace "muon.ws.{x,x2,gram,poly}" (Region::Workspace). A hidden param
  // that is not F32 (BF16 on cuda) also gets an fp32 master "muon.master.<name>" (Region::Master):
  // the update runs on the master and the param is written from it after each step. Sharded
  // (cfg.comm set), the state is per owned matrix instead: "muon.momentum.<key>" (rows, cols),
  // "muon.normuon_v.<key>" (max(rows, cols)), "muon.master.<key>", key = muon_matrix_key().
  // Reads only names, shapes and flags, so it can run before the params are allocated.
  static void plan(ArenaPlan& plan, const std::vector<ParamRef>& params, const MuonConfig& cfg,
                   const MuonSplits& splits);
  // Binds the planned state (zeroed by the arena: fresh). `arena` must outlive the optimizer.
  Muon(const std::vector<ParamRef>& params, const Arena& arena, const MuonConfig& cfg, const MuonSplits& splits);

  // Low-precision (BF16, the cuda training path) params: sets every fp32 master, the hidden
  // ones' "muon.master.<name>" and the inner AdamW's "adamw.master.<name>", from its param.
  // Call once the weights are initialised or loaded; a resume overwrites the masters from the
  // training state instead (they are in state_tensors()).
  void init_masters();

  void step(double lr, float grad_scale) override;
  std::vector<std::pair<std::string, Tensor>> state_tensors() override;
  int64_t steps_taken() const override { return steps_; }
  void set_steps_taken(int64_t n) override;
  std::string name() const override { return "muon"; }

  // Muon's LR for a scheduled --lr value: muon_lr * lr_t / lr.
  double muon_lr_at(double lr_t) const;

  // The next step() records diagnostics; take_diagnostics() returns them (and clears):
  //   muon.lr                   Muon's scheduled LR
  //   muon.<group>.lr_eff       muon.lr * the group's LR scale
  //   muon.<group>.update_rms   RMS of lr_eff * O over the group's matrices (decay excluded)
  //   muon.<group>.ortho_err    ||X X^T - I||_F / sqrt(m) of the orthogonalizer's output for
  //                             the group's first matrix (before NorMuon)
  void request_diagnostics() { want_diag_ = true; }
  std::vector<std::pair<std::string, double>> take_diagnostics();

  // Routing, for logs and tests.
  const std::vector<MuonMatrix>& matrices() const { return matrices_; }
  const std::vector<MuonBatch>& batches() const { return batches_; }  // this rank's
  // The owner of each matrix (all 0 without a communicator) and the plan behind it.
  const std::vector<int>& owners() const { return shard_.owner; }
  const MuonShardPlan& shard_plan() const { return shard_; }
  const std::vector<std::string>& hidden_params() const { return hidden_names_; }
  std::vector<std::string> adamw_params() const;
  std::string describe() const;  // one paragraph: groups, shapes, batches, the AdamW params
  const MuonConfig& config() const { return cfg_; }

  static std::string momentum_name(const std::string& p) { return "muon.momentum." + p; }
  static std::string normuon_name(const std::string& p) { return "muon.normuon_v." + p; }
  static std::string master_name(const std::string& p) { return "muon.master." + p; }

 private:
  struct Hidden {
    ParamRef ref;
    Tensor momentum;  // the param's shape
    Tensor normuon_v; // (L, len) or (len); empty without NorMuon
    Tensor master;    // F32 copy of a BF16 param, the param's shape; empty for F32 params
  };
  Tensor view_of(const Tensor& t, const MuonMatrix& mm) const;  // the matrix's rows of a param-shaped tensor
  // Matrix i's state: a view into its param's tensors, or (sharded) its own entry.
  Tensor momentum_of(size_t i) const;
  Tensor master_of(size_t i) const;  // empty for F32 params
  Tensor v_of(size_t i) const;
  struct MatrixState {
    Tensor momentum, normuon_v, master;  // (rows, cols), (max(rows, cols)), (rows, cols)
  };
  std::vector<MatrixState> mat_state_;  // sharded only: per matrix, empty where another rank owns it

  MuonConfig cfg_;
  std::unique_ptr<AdamW> adamw_;
  std::vector<ParamRef> adamw_refs_;
  std::vector<Hidden> hidden_;
  std::vector<std::string> hidden_names_;
  std::vector<MuonMatrix> matrices_;
  std::vector<MuonBatch> batches_;
  MuonShardPlan shard_;
  Tensor ws_x_, ws_x2_, ws_gram_, ws_poly_;  // flat F32
  int64_t steps_ = 0;
  bool want_diag_ = false;
  std::vector<std::pair<std::string, double>> diag_;
};

}  // namespace mu
