// AdamW (torch.optim.AdamW semantics) over a list of parameters: fp32 first and second
// moments in the arena's optimizer-state region, one fused update per parameter
// (kernels/adamw.h), decoupled weight decay only where the parameter asks for it.
#pragma once
#include <vector>

#include "core/arena.h"
#include "optim/optimizer.h"

namespace mu {

struct AdamWConfig {
  double beta1 = 0.9, beta2 = 0.95, eps = 1e-8, weight_decay = 0.0;
};

class AdamW : public Optimizer {
 public:
  // Adds m and v for every param ("adamw.m.<name>", "adamw.v.<name>", F32, the param's
  // shape) to the plan, in Region::OptState, and for low-precision (BF16) params an fp32
  // master copy "adamw.master.<name>" in Region::Master: the update runs on the master and
  // the param is written from it (kernels/adamw_master.h). Reads only each ref's name,
  // param.shape and param.dtype, so it can run before the arena holding the params exists.
  static void plan(ArenaPlan& plan, const std::vector<ParamRef>& params);
  // Binds the state planned by plan() in `arena` (which must outlive the optimizer). The
  // arena hands out zeroed memory, which is the fresh state (m = v = 0, no steps taken).
  // Decay applies only to params with weight_decay == true.
  AdamW(const std::vector<ParamRef>& params, const Arena& arena, AdamWConfig cfg);

  // BF16 params: sets every master from its param (call once the weights are initialised or
  // loaded; a resume then overwrites the masters from the training state).
  void init_masters();

  void step(double lr, float grad_scale) override;
  std::vector<std::pair<std::string, Tensor>> state_tensors() override;
  int64_t steps_taken() const override { return steps_; }
  void set_steps_taken(int64_t n) override;
  std::string name() const override { return "adamw"; }

  const AdamWConfig& config() const { return cfg_; }

  static std::string m_name(const std::string& param) { return "adamw.m." + param; }
  static std::string v_name(const std::string& param) { return "adamw.v." + param; }
  static std::string master_name(const std::string& param) { return "adamw.master." + param; }

 private:
  struct Slot {
    ParamRef ref;
    Tensor m, v;    // F32, the param's shape
    Tensor master;  // F32 copy of a BF16 param; empty for F32 params
  };
  std::vector<Slot> slots_;
  AdamWConfig cfg_;
  int64_t steps_ = 0;
};

}  // namespace mu
