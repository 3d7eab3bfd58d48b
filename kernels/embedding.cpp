// embedding entries: validate, then dispatch on the device.
#include "kernels/embedding.h"

#include "kernels/cpu/cpu_ops.h"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/op_check.h"

namespace mu {
namespace {

void check_args(const char* op, const char* table_name, const Tensor& table, const Tensor& tokens,
                const char* rows_name, const Tensor& rows) {
  check_present(op, {{table_name, table}, {"tokens", tokens}, {rows_name, rows}});
  check_same_device(op, {table, tokens, rows});
  MU_CHECK(table.ndim() == 2, "%s: %s has shape %s, expected (V, C)", op, table_name, table.shape.str().c_str());
  MU_CHECK(tokens.ndim() >= 1, "%s: tokens has shape %s, expected (N) or (B, T)", op, tokens.shape.str().c_str());
  check_dtype(op, "tokens", tokens, DType::I32);
  check_shape(op, rows_name, rows, Shape{tokens.numel(), table.size(1)});
}

}  // namespace

void embedding_forward(Tensor out, Tensor tokens, Tensor table) {
  const char* op = "embedding_forward";
  check_args(op, "table", table, tokens, "out", out);
  check_apart(op, {"out", out}, {{"table", table}, {"tokens", tokens}});  // the cuda kernel's __restrict__
  if (table.device == Device::CUDA) return cuda::embedding_forward(out, tokens, table);
  check_cpu_f32(op, {{"out", out}, {"table", table}});
  cpu::embedding_forward(out, tokens, table);
}

void embedding_backward(Tensor dtable, Tensor tokens, Tensor dout, const int32_t* host_tokens) {
  const char* op = "embedding_backward";
  check_args(op, "dtable", dtable, tokens, "dout", dout);
  if (dtable.device == Device::CUDA) return cuda::embedding_backward(dtable, tokens, dout, host_tokens);
  check_cpu_f32(op, {{"dtable", dtable}, {"dout", dout}});
  cpu::embedding_backward(dtable, tokens, dout);
}

}  // namespace mu
