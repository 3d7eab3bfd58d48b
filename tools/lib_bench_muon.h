// mu-bench --muon: Muon's optimizer step alone on a preset's parameters (issue 5): the
// orthogonalization of every hidden matrix batched by shape (cuBLASLt strided-batched) against
// one matrix at a time, in bf16 and fp32, its TFLOP/s (ns_steps * (4 m^2 n + 2 m^3) per matrix,
// m <= n, whichever way the symmetric products are computed) against the measured bf16 GEMM
// ceiling, the symmetric products as whole GEMMs against 3 of 4 blocks, and the whole step
// (momentum, NorMuon off, update, the AdamW part) against the training step. Needs a GPU.
#pragma once
#include <nlohmann/json.hpp>

#include "model/config.h"

namespace mu {

struct MuonBenchOptions {
  int ns_steps = 5, warmup = 2, runs = 10;
  double gemm_tflops = 0;    // the measured ceiling (0: not measured)
  double train_step_ms = 0;  // the measured training step (0: not measured)
};

nlohmann::json bench_muon(const LlamaConfig& c, const MuonBenchOptions& o);

}  // namespace mu
