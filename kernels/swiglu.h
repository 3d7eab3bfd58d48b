// The gated activation of Hugging Face's LlamaMLP: act = silu(gate) * up, where each row of
// gate_up holds [gate (F) | up (F)] (the fused gate/up projection's output).
#pragma once
#include "core/tensor.h"

namespace mu {

// out (N, F) =; gate_up (N, 2F).
void swiglu_forward(Tensor out, Tensor gate_up);
// dgate_up (N, 2F) =; dout (N, F); gate_up (N, 2F) from the forward.
void swiglu_backward(Tensor dgate_up, Tensor dout, Tensor gate_up);

}  // namespace mu
