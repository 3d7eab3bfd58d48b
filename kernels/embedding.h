// Token embedding lookup: out[n] = table[tokens[n]].
#pragma once
#include <cstdint>

#include "core/tensor.h"

namespace mu {

// out (N, C) =; tokens (N) I32; table (V, C). An id outside [0, V) is an error naming the
// id and its position; nothing is read out of bounds.
void embedding_forward(Tensor out, Tensor tokens, Tensor table);
// dtable (V, C) += the rows of dout (N, C) scattered to their token ids. Deterministic:
// the sum order does not depend on the thread count. host_tokens: a host copy of the same N
// ids when the caller has one (the model keeps its batch); the cuda backend then plans from
// it instead of reading tokens back, so the host does not wait for the device.
void embedding_backward(Tensor dtable, Tensor tokens, Tensor dout, const int32_t* host_tokens = nullptr);

}  // namespace mu
