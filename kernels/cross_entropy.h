// Softmax cross-entropy over the vocabulary (max-subtracted, fp32 storage).
#pragma once
#include "core/tensor.h"

namespace mu {

// losses (N) = logsumexp(logits[n]) - logits[n, targets[n]]; logits (N, V); targets (N) I32.
// A target outside [0, V) is an error naming it and its position.
void cross_entropy_forward(Tensor losses, Tensor logits, Tensor targets);
// Fused forward and backward: writes losses, then overwrites logits IN PLACE with
// dlogits = grad_scale * (softmax(logits) - onehot(target)). For the mean loss over B*T
// positions pass grad_scale = 1/(B*T).
void cross_entropy_forward_backward(Tensor losses, Tensor logits_inout, Tensor targets, float grad_scale);

}  // namespace mu
