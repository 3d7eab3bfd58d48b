// The interface every optimizer implements (AdamW now, Muon and its variants next). The
// trainer owns the schedule and the clipping; an optimizer only turns (lr, grad_scale) and
// the gradients into updated parameters, and exposes its state for checkpoints.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace mu {

// One parameter as the model hands it to the optimizers (the router splits the list).
struct ParamRef {
  std::string name;    // engine name, e.g. "layers.wqkv"; state tensors are named after it
  Tensor param;        // updated in place
  Tensor grad;         // same shape as param; read only
  bool weight_decay;   // decoupled decay applies (2-D matrices; the model marks them)
  bool hidden_matrix;  // a hidden 2-D matrix (Muon's group); AdamW ignores it
};

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  // One update. lr: the scheduled LR for this step; grad_scale: the clipping factor, applied
  // to every gradient inside the update (the gradients themselves are not modified).
  virtual void step(double lr, float grad_scale) = 0;
  // Named state for checkpoints (e.g. "adamw.m.layers.wqkv"); views into the optimizer's
  // memory, so loading a checkpoint means copying into them.
  virtual std::vector<std::pair<std::string, Tensor>> state_tensors() = 0;
  // Steps taken so far (bias corrections and the like depend on it); restore it on resume.
  virtual int64_t steps_taken() const = 0;
  virtual void set_steps_taken(int64_t n) = 0;
  virtual std::string name() const = 0;
};

}  // namespace mu
